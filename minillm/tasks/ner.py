"""Named-entity recognition on CoNLL-2003: one BIO2 tag per word, read at the word's first sub-token.

    input      [CLS] pieces(w_1) ... pieces(w_n) [SEP]    WordPiece: each word cut into pieces on its own
               w_1 " w_2" ... " w_n"                        GPT-2's BPE: the words joined by spaces, no specials
    targets    y_t = tag(w) at the first token of each word w; -100 (not counted) at every other token
    loss       L = -(1 / |counted|) sum_{t counted} log softmax(W h_t + b)[y_t]
    decoding   tag(w) = argmax_k p_k(first token of w); entities are chunked from the word tags as
               seqeval's default mode does (an I- after O starts an entity; not its strict mode)
               and count when type, start and end all match

Truncation: a sentence longer than max_length tokens is cut at max_length, so
the words whose first token still fits are tagged and the words cut off are
predicted O. They stay in the gold tags, so their entities count as missed.
"""

import re

from minillm.backend import np, to_float
from minillm.checkpoint import write_json
from minillm.data.conll2003 import conll2003
from minillm.data.datasets import FINETUNE_SPLITS
from minillm.nn.loss import IGNORE_INDEX, cross_entropy_backward, cross_entropy_forward
from minillm.tasks import metrics
from minillm.tasks.batching import pad_batch, predict_probabilities
from minillm.tasks.classification import SequenceClassificationTask
from minillm.tokenizers import WordPieceTokenizer

TAGS = ["O", "B-PER", "I-PER", "B-ORG", "I-ORG", "B-LOC", "I-LOC", "B-MISC", "I-MISC"]  # Hugging Face's order
NOTE = "CoNLL-2003 English: train eng.train, dev eng.testa, test eng.testb; IOB1 tags read as BIO2"
_WORD = re.compile(r"\w+(?:[-'.]\w+)*|[^\w\s]")


def split_words(text):
    """Words of raw text, roughly as CoNLL-2003 splits them: letters and digits with inner
    hyphens, apostrophes and dots ("Anglo-Dutch", "U.S"), every other symbol on its own."""
    return _WORD.findall(text)


def encode_words(tokenizer, words, max_length):
    """(input_ids, word_ids) of a sentence given as words: word_ids[t] is the index of the word
    token t comes from (None for [CLS] and [SEP]); at most max_length tokens."""
    if isinstance(tokenizer, WordPieceTokenizer):
        return tokenizer.encode_words(words, max_length)
    ids, word_ids = [], []
    for w, word in enumerate(words):
        pieces = tokenizer.encode(word if w == 0 else " " + word)  # a space before all but the first word
        ids += pieces
        word_ids += [w] * len(pieces)
    return ids[:max_length], word_ids[:max_length]


def first_subtoken_labels(word_ids, word_labels, ignore_index=IGNORE_INDEX):
    """Token-classification targets: each word's label on its first sub-token, ignore_index elsewhere.

    word_ids: per token, the index of the word it comes from, or None for
    special tokens; word_labels: one label id per word.
    """
    out, previous = [], None
    for w in word_ids:
        out.append(ignore_index if w is None or w == previous else word_labels[w])
        previous = w
    return out


def conll_splits(tokenizer, max_length, max_train_examples=0, max_eval_examples=0, directory=None):
    """({split: token ids}, {split: word ids}, {split: (words, gold tags)}) of CoNLL-2003's three
    splits; train cut to its first max_train_examples sentences, dev and test to their first
    max_eval_examples (0: all)."""
    sentences = {s: conll2003(s, directory) for s in FINETUNE_SPLITS}
    for split in sentences:
        sentences[split] = sentences[split][:(max_train_examples if split == "train" else max_eval_examples) or None]
    encoded = {s: [encode_words(tokenizer, words, max_length) for words, _ in rows] for s, rows in sentences.items()}
    return ({s: [ids for ids, _ in pairs] for s, pairs in encoded.items()},
            {s: [w for _, w in pairs] for s, pairs in encoded.items()}, sentences)


def word_tags(probs, word_ids, n_words, names):
    """(tag per word, probability of that tag per word) from one sentence's token probabilities (T, K).

    A word's tag is the most probable at its first token; a word with no
    token (cut off by truncation) is O, with probability None.
    """
    tags, confidences = ["O"] * n_words, [None] * n_words
    for t, w in enumerate(first_subtoken_labels(word_ids, range(n_words))):  # w: the word starting at t
        if w != IGNORE_INDEX:
            k = int(probs[t].argmax())
            tags[w], confidences[w] = names[k], float(probs[t, k])
    return tags, confidences


class TokenClassificationTask(SequenceClassificationTask):
    """One tag per word: cross-entropy at each word's first sub-token; entity F1 on dev.

    Batches are drawn as SequenceClassificationTask draws them (an order
    shuffled by (seed, epoch), each batch padded to its own longest sentence);
    the targets are padded with IGNORE_INDEX, so padding is not counted either.
    encoded, word_ids: {split: [a sentence's token ids / word index of each token]};
    sentences: {split: [(words, gold tags)]}.
    """

    def __init__(self, model, encoded, word_ids, sentences, batch_size, pad_id, eval_split="dev", seed=1337,
                 grad_accum=1, progress=False):
        index = {name: i for i, name in enumerate(model.label_names)}
        labels = {s: [first_subtoken_labels(w, [index[t] for t in tags]) for w, (_, tags) in
                      zip(word_ids[s], sentences[s])] for s in encoded}
        super().__init__(model, encoded, labels, batch_size, pad_id, eval_split, seed, grad_accum, progress=progress)
        self.word_ids, self.sentences = word_ids, sentences

    def train_step(self, it, micro, scale):
        rows = self.batch_indices(it * self.grad_accum + micro)
        ids, mask = pad_batch([self.encoded["train"][i] for i in rows], self.pad_id)
        targets, _ = pad_batch([self.labels["train"][i] for i in rows], IGNORE_INDEX)  # (B, T)
        logits = self.model(ids, mask)  # (B, T, K)
        K = logits.shape[-1]
        loss, cache = cross_entropy_forward(logits.reshape(-1, K), targets.reshape(-1), IGNORE_INDEX)
        self.model.backward(cross_entropy_backward(scale, cache).reshape(logits.shape))
        return to_float(loss)

    def predict(self, sequences):
        """Tag probabilities, one (T_i, K) host array per sequence."""
        return predict_probabilities(self.model, sequences, self.batch_size, self.pad_id, per_token=True,
                                     progress=self.progress)

    def evaluate(self, split=None):
        """Entity precision, recall and F1 (micro over types), word-tag accuracy, and the mean
        loss over the counted tokens, on one split (default: dev)."""
        split = split or self.eval_split
        probs = self.predict(self.encoded[split])
        targets = np.concatenate([np.asarray(y, dtype=np.int64) for y in self.labels[split]])  # (N,)
        counted = targets != IGNORE_INDEX
        p_target = np.concatenate(probs)[counted, targets[counted]]
        scores = tag_scores(self.sentences[split], probs, self.word_ids[split], self.model.label_names)
        return {"val_loss": float(-np.log(np.maximum(p_target, 1e-30)).mean()),
                **{f"val_{k}": scores[k] for k in ("precision", "recall", "f1", "accuracy")}}


def tag_scores(sentences, probs, word_ids, names):
    """Entity scores (micro precision/recall/f1, "macro", "per_type") and word-tag accuracy, with
    the predicted tags and their probabilities ("pred", "confidences") for reports."""
    decoded = [word_tags(p, w, len(words), names) for p, w, (words, _) in zip(probs, word_ids, sentences)]
    gold = [tags for _, tags in sentences]
    pred = [tags for tags, _ in decoded]
    entity = metrics.entity_scores(gold, pred)
    return {**entity["micro"], "accuracy": metrics.accuracy(flatten(gold), flatten(pred)), "macro": entity["macro"],
            "per_type": entity["per_type"], "pred": pred, "confidences": [c for _, c in decoded]}


def flatten(sequences):
    return [x for sequence in sequences for x in sequence]


def entity_list(words, tags):
    """The entities of tagged words as [{"type", "text", "start", "end"}] (end exclusive)."""
    return [{"type": kind, "text": " ".join(words[start:end]), "start": start, "end": end}
            for kind, start, end in metrics.entities(tags)]


def write_report(path, split, names, sentences, probs, word_ids):
    """Entity P/R/F1 overall and per type, the word-tag confusion matrix and the ten sentences whose
    entities are wrong with the most confident wrong tag, as path.json and path.md."""
    scores = tag_scores(sentences, probs, word_ids, names)
    pred, confidences = scores.pop("pred"), scores.pop("confidences")
    gold = [tags for _, tags in sentences]
    _, matrix = metrics.confusion_matrix(flatten(gold), flatten(pred), names)

    def confidence(n):  # the highest probability the model gave a wrong tag in sentence n
        return max((c or 0.0) for g, p, c in zip(gold[n], pred[n], confidences[n]) if g != p)

    wrong = [n for n in range(len(gold)) if metrics.entities(gold[n]) != metrics.entities(pred[n])]
    mistakes = sorted(wrong, key=lambda n: -confidence(n))[:10]
    report = {"task": "ner", "split": split, "note": NOTE, "scores": scores,
              "confusion_matrix": {"labels": names, "rows_gold_cols_pred": matrix.tolist(),
                                   "counts": "words (each read at its first sub-token)"},
              "confident_mistakes": [{"text": " ".join(sentences[n][0]), "confidence": confidence(n),
                                      "gold": entity_list(sentences[n][0], gold[n]),
                                      "pred": entity_list(sentences[n][0], pred[n])} for n in mistakes]}
    write_json(path + ".json", report)

    def shown(found):
        return ", ".join(f"[{e['text']}] {e['type']}" for e in found) or "none"

    lines = [f"# ner: {split}", "", NOTE, "",
             f"entity precision {scores['precision']:.4f}, recall {scores['recall']:.4f}, F1 {scores['f1']:.4f} "
             f"({scores['support']} entities); word-tag accuracy {scores['accuracy']:.4f}", "",
             "| type | precision | recall | F1 | support |", "|---|---:|---:|---:|---:|"]
    lines += [f"| {kind} | {s['precision']:.4f} | {s['recall']:.4f} | {s['f1']:.4f} | {s['support']} |"
              for kind, s in scores["per_type"].items()]
    lines += ["", "## Word tags (rows gold, columns predicted)", "",
              "| gold \\ pred | " + " | ".join(names) + " |", "|---" * (len(names) + 1) + "|"]
    lines += [f"| {names[g]} | " + " | ".join(str(int(c)) for c in row) + " |" for g, row in enumerate(matrix)]
    lines += ["", "## Most confident mistakes", ""]
    lines += [f"- {m['confidence']:.3f}: {m['text'][:200]}\n  - gold: {shown(m['gold'])}\n"
              f"  - pred: {shown(m['pred'])}" for m in report["confident_mistakes"]]
    with open(path + ".md", "w", encoding="utf-8") as f:
        f.write("\n".join(lines) + "\n")
    return report


def predict_entities(model, tokenizer, texts, max_length, batch_size):
    """For each text: its words (split_words), a tag and probability per word, and the entities."""
    words = [split_words(text) for text in texts]
    encoded = [encode_words(tokenizer, w, max_length) for w in words]
    sequences = [ids or [model.pad_token_id] for ids, _ in encoded]  # an empty text still gets one token
    probs = predict_probabilities(model, sequences, batch_size, model.pad_token_id, per_token=True)
    for text, ws, (_, word_ids), p in zip(texts, words, encoded, probs):
        tags, confidences = word_tags(p, word_ids, len(ws), model.label_names)
        yield {"text": text, "words": ws, "tags": tags,
               "probabilities": [None if c is None else round(c, 4) for c in confidences],
               "entities": entity_list(ws, tags)}
