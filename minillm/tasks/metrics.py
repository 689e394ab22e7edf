"""Evaluation metrics: classification, entity-level NER, SQuAD, language modelling.

Everything here runs on the host on plain Python lists (labels, tag strings,
answer strings): metrics are computed once per evaluation, not per step.
Conventions follow the reference tools so numbers are comparable:
scikit-learn for per-class scores (a 0/0 ratio counts as 0), seqeval's
default mode for entities, and the official SQuAD v1.1 evaluation script.
"""

import collections
import math
import re
import string

from minillm.backend import np


# ------------------------------------------------------------ classification
def accuracy(gold, pred):
    """Fraction of positions where pred equals gold."""
    _check_lengths(gold, pred)
    return sum(g == p for g, p in zip(gold, pred)) / len(gold)


def _check_lengths(gold, pred):
    if len(gold) != len(pred):
        raise ValueError(f"gold has {len(gold)} items but pred has {len(pred)}")
    if not gold:
        raise ValueError("cannot score an empty set of examples")


def _ratio(numerator, denominator):
    """numerator / denominator, with 0/0 (nothing predicted, or nothing to find) counted as 0."""
    return numerator / denominator if denominator else 0.0


def _prf(true_positives, n_predicted, n_gold):
    """Precision, recall and F1 = 2PR / (P + R) from counts."""
    precision = _ratio(true_positives, n_predicted)
    recall = _ratio(true_positives, n_gold)
    return {"precision": precision, "recall": recall,
            "f1": _ratio(2 * precision * recall, precision + recall), "support": n_gold}


def confusion_matrix(gold, pred, labels=None):
    """(labels, counts) with counts[i, j] = number of examples of gold labels[i] predicted labels[j].

    labels defaults to the sorted union of the labels seen in gold and pred.
    """
    _check_lengths(gold, pred)
    labels = sorted(set(gold) | set(pred)) if labels is None else list(labels)
    position = {label: i for i, label in enumerate(labels)}
    unknown = (set(gold) | set(pred)) - set(position)
    if unknown:
        raise ValueError(f"labels {sorted(unknown, key=str)} are not in labels={labels}")
    counts = np.zeros((len(labels), len(labels)), dtype=np.int64)
    for g, p in zip(gold, pred):
        counts[position[g], position[p]] += 1
    return labels, counts


def per_class_scores(gold, pred, labels=None):
    """{label: {precision, recall, f1, support}} read off the confusion matrix:
    true positives on the diagonal, predicted counts in columns, gold counts in rows."""
    labels, counts = confusion_matrix(gold, pred, labels)
    return {label: _prf(int(counts[i, i]), int(counts[:, i].sum()), int(counts[i, :].sum()))
            for i, label in enumerate(labels)}


def macro_f1(gold, pred, labels=None):
    """Unweighted mean of the per-class F1 over labels (default: every label in gold or pred)."""
    scores = per_class_scores(gold, pred, labels)
    return sum(s["f1"] for s in scores.values()) / len(scores)


def classification_scores(gold, pred, labels=None):
    """Accuracy, macro-F1, the per-class scores and the confusion matrix, for reports."""
    labels, counts = confusion_matrix(gold, pred, labels)
    per_class = per_class_scores(gold, pred, labels)
    return {"accuracy": accuracy(gold, pred),
            "macro_f1": sum(s["f1"] for s in per_class.values()) / len(per_class),
            "per_class": per_class, "labels": labels, "confusion_matrix": counts.tolist()}


# ------------------------------------------------------------ entity-level (NER)
def _split_tag(tag):
    """("B", "PER") from "B-PER"; ("O", "") from "O". A tag with no prefix is its own type."""
    if tag == "O":
        return "O", ""
    prefix, dash, entity_type = tag.partition("-")
    return (prefix, entity_type) if dash else (tag[0], tag[1:])


def _ends_chunk(prev_prefix, prev_type, prefix, entity_type):
    """Does the entity open at the previous token end before this one?"""
    if prev_prefix in ("E", "S"):  # E- and S- close their entity themselves
        return True
    if prev_prefix in ("B", "I") and prefix in ("B", "S", "O"):
        return True
    return prev_prefix != "O" and prev_type != entity_type


def _starts_chunk(prev_prefix, prev_type, prefix, entity_type):
    """Does an entity start at this token? Always at B-/S-; at I-/E- when nothing of the
    same type is open (after O, after E-/S-, or after another type): seqeval's default."""
    if prefix in ("B", "S"):
        return True
    if prefix in ("I", "E") and prev_prefix in ("O", "E", "S"):
        return True
    return prefix != "O" and prev_type != entity_type


def entities(tags):
    """The entities of one tag sequence as (type, start, end) with end exclusive.

    Chunking as seqeval's default mode (conlleval): an entity runs from a token
    that starts one to the token before the next that ends it, so an I-X after O
    or after another type starts a new entity of type X, and B-X always starts one.
    E- and S- (IOBES) are honoured when present.
    """
    found = []
    prev_prefix, prev_type, start = "O", "", None
    for i, tag in enumerate(list(tags) + ["O"]):  # the sentinel O closes a final entity
        prefix, entity_type = _split_tag(tag)
        if start is not None and _ends_chunk(prev_prefix, prev_type, prefix, entity_type):
            found.append((prev_type, start, i))
            start = None
        if _starts_chunk(prev_prefix, prev_type, prefix, entity_type):
            start = i
        prev_prefix, prev_type = prefix, entity_type
    return found


def entity_scores(gold_sequences, pred_sequences):
    """Entity-level precision, recall and F1: an entity counts as found only when the
    predicted type, start and end all match.

    Returns {"micro": {...}, "macro": {...}, "per_type": {type: {...}}}, each
    score dict with precision, recall, f1 and support (gold entities); "micro"
    pools all types (seqeval's f1_score), "macro" averages the per-type scores.
    """
    if len(gold_sequences) != len(pred_sequences):
        raise ValueError(f"{len(gold_sequences)} gold sequences but {len(pred_sequences)} predicted")
    gold, pred = set(), set()
    for n, (g, p) in enumerate(zip(gold_sequences, pred_sequences)):
        if len(g) != len(p):
            raise ValueError(f"sequence {n}: {len(g)} gold tags but {len(p)} predicted")
        gold.update((n,) + e for e in entities(g))
        pred.update((n,) + e for e in entities(p))
    hits = gold & pred
    types = sorted({e[1] for e in gold | pred})

    def count(items, entity_type):
        return sum(e[1] == entity_type for e in items)

    per_type = {t: _prf(count(hits, t), count(pred, t), count(gold, t)) for t in types}
    macro = {k: sum(s[k] for s in per_type.values()) / len(per_type) if per_type else 0.0
             for k in ("precision", "recall", "f1")}
    macro["support"] = len(gold)
    return {"micro": _prf(len(hits), len(pred), len(gold)), "macro": macro, "per_type": per_type}


# ------------------------------------------------------------ SQuAD v1.1
_PUNCTUATION = set(string.punctuation)
_ARTICLES = re.compile(r"\b(a|an|the)\b")


def normalize_answer(text):
    """The official SQuAD v1.1 normalization, in its order: lower-case, drop
    string.punctuation characters, replace the whole words a/an/the by a space,
    collapse whitespace."""
    text = "".join(ch for ch in text.lower() if ch not in _PUNCTUATION)
    text = _ARTICLES.sub(" ", text)
    return " ".join(text.split())


def exact_match(prediction, gold):
    """1.0 if the normalized strings are equal, else 0.0."""
    return float(normalize_answer(prediction) == normalize_answer(gold))


def token_f1(prediction, gold):
    """F1 over the bags of normalized tokens: overlap = sum of min counts per token;
    P = overlap / |pred|, R = overlap / |gold|. No overlap (including empty answers) is 0."""
    pred_tokens = normalize_answer(prediction).split()
    gold_tokens = normalize_answer(gold).split()
    overlap = sum((collections.Counter(pred_tokens) & collections.Counter(gold_tokens)).values())
    if overlap == 0:
        return 0.0
    precision, recall = overlap / len(pred_tokens), overlap / len(gold_tokens)
    return 2 * precision * recall / (precision + recall)


def squad_scores(predictions, examples):
    """Corpus exact match and F1 in percent, as the official v1.1 script computes them.

    predictions: {question id: answer text}; examples: the question dicts of
    `datasets.squad` (id and answers["text"]). Each question scores the maximum
    over its gold answers; a question without a prediction scores 0 and still
    counts in the denominator, as in the official script.
    """
    if not examples:
        raise ValueError("cannot score an empty set of questions")
    em = f1 = 0.0
    for example in examples:
        if example["id"] not in predictions:
            continue
        answer, golds = predictions[example["id"]], example["answers"]["text"]
        em += max(exact_match(answer, g) for g in golds)
        f1 += max(token_f1(answer, g) for g in golds)
    return {"exact_match": 100.0 * em / len(examples), "f1": 100.0 * f1 / len(examples)}


# ------------------------------------------------------------ language modelling
def perplexity(mean_nll):
    """exp(mean negative log-likelihood per token, in nats)."""
    return math.exp(mean_nll)


def bits_per_token(mean_nll):
    """The mean negative log-likelihood in bits: nats / ln 2 (bits per character for a char model)."""
    return mean_nll / math.log(2)
