"""SQuAD v1.1: questions, their contexts and answers (character offsets), read and checked field by field."""

import json

from minillm.backend import host_rng
from minillm.data.datasets import DataFormatError, check_split, dataset_path, optional_path

# SQuAD v1.1 -----------------------------------------------------------------
SQUAD_TRAIN_FRACTION = 0.8  # of dev's articles, when train-v1.1.json is absent


def _read_squad_json(path):
    """The articles of a SQuAD v1.1 file, each a list of question dicts, every answer checked."""
    with open(path, encoding="utf-8") as f:
        try:
            document = json.load(f)
        except json.JSONDecodeError as err:
            raise DataFormatError(path, err.lineno, f"invalid JSON: {err.msg} (column {err.colno})") from None
    if not isinstance(document, dict) or not isinstance(document.get("data"), list):
        raise DataFormatError(path, "data", 'expected {"version": ..., "data": [articles]}')
    articles = []
    for a, article in enumerate(document["data"]):
        questions = []
        for p, paragraph in enumerate(_field(path, article, "paragraphs", list, f"data[{a}]")):
            where = f"data[{a}].paragraphs[{p}]"
            context = _field(path, paragraph, "context", str, where)
            for q, qa in enumerate(_field(path, paragraph, "qas", list, where)):
                where_q = f"{where}.qas[{q}]"
                texts, starts = [], []
                for k, answer in enumerate(_field(path, qa, "answers", list, where_q)):
                    where_a = f"{where_q}.answers[{k}]"
                    text = _field(path, answer, "text", str, where_a)
                    start = _field(path, answer, "answer_start", int, where_a)
                    if context[start:start + len(text)] != text:
                        raise DataFormatError(path, where_a, f"context[{start}:{start + len(text)}] is "
                                              f"{context[start:start + len(text)]!r}, not the answer {text!r}")
                    texts.append(text)
                    starts.append(start)
                if not texts:
                    raise DataFormatError(path, where_q, "a SQuAD v1.1 question needs at least one answer")
                questions.append({"id": _field(path, qa, "id", str, where_q),
                                  "title": article.get("title", ""),
                                  "question": _field(path, qa, "question", str, where_q),
                                  "context": context,
                                  "answers": {"text": texts, "answer_start": starts}})
        articles.append(questions)
    return articles


def _field(path, record, key, kind, where):
    """record[key], checked to be of the given type, or an error naming the JSON field."""
    value = record.get(key) if isinstance(record, dict) else None
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise DataFormatError(path, f"{where}.{key}", f"expected a {kind.__name__}, got {value!r}")
    return value


def squad(split, directory=None):
    """SQuAD v1.1 questions of "train" or "dev" as dicts with id, title, question,
    context and answers = {"text": [...], "answer_start": [character offsets]}.

    SQuAD has no public test set: evaluate on dev. With the official
    train-v1.1.json present, train is that file and dev is dev-v1.1.json.
    Without it (as in ../shared/data) dev-v1.1.json's 48 articles are shuffled
    with seed 0 and split by ARTICLE, 80/20 (38 / 10 articles, 8,338 / 2,232
    questions), so no context appears in both parts; those numbers are NOT comparable with published
    SQuAD dev scores: say so when reporting them.
    """
    check_split("squad", split, ("train", "dev"), " (SQuAD v1.1 has no public test set: evaluate on dev)")
    dev_path = dataset_path("squad1.1", "squad1.1/dev-v1.1.json", directory)
    train_path = optional_path("squad1.1/train-v1.1.json", directory)
    if train_path is not None:
        articles = _read_squad_json(train_path if split == "train" else dev_path)
        return [question for article in articles for question in article]
    articles = _read_squad_json(dev_path)
    order = host_rng(0).permutation(len(articles))
    n_train = round(SQUAD_TRAIN_FRACTION * len(articles))
    chosen = sorted(order[:n_train] if split == "train" else order[n_train:])
    return [question for a in chosen for question in articles[a]]


def squad_uses_official_train(directory=None):
    """True when train-v1.1.json is present, so the splits are the official ones (for reports)."""
    return optional_path("squad1.1/train-v1.1.json", directory) is not None
