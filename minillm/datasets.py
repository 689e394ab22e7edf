"""Where each dataset lives and how it is read.

The data directory is `--data-dir`, else $MINILLM_DATA, else ./data. A file
that is missing there is downloaded from its canonical source into ./data when
the machine is online; offline, the error says which file to put where.
Nothing is ever written into the data directory except by that download:
caches go to $MINILLM_CACHE (default ~/.cache/minillm).
"""

import csv
import dataclasses
import json
import os
import re
import urllib.request

from minillm.backend import host_rng


@dataclasses.dataclass(frozen=True)
class Dataset:
    name: str
    files: tuple  # paths relative to the data directory
    urls: dict  # relative path -> canonical download URL (files not listed cannot be downloaded)
    about: str


DATASETS = {d.name: d for d in [
    Dataset("tinyshakespeare", ("tinyshakespeare/input.txt",),
            {"tinyshakespeare/input.txt":
             "https://raw.githubusercontent.com/karpathy/char-rnn/master/data/tinyshakespeare/input.txt"},
            "Tiny Shakespeare, 1.1M characters (char-rnn)"),
    Dataset("wikitext-2", ("wikitext-2/valid.txt", "wikitext-2/test.txt"),
            {"wikitext-2/valid.txt":
             "https://raw.githubusercontent.com/pytorch/examples/main/word_language_model/data/wikitext-2/valid.txt",
             "wikitext-2/test.txt":
             "https://raw.githubusercontent.com/pytorch/examples/main/word_language_model/data/wikitext-2/test.txt"},
            "WikiText-2 v1, tokenized (valid and test; train is not available here)"),
    Dataset("imdb", ("imdb/aclImdb/train/pos", "imdb/aclImdb/train/neg",
                     "imdb/aclImdb/test/pos", "imdb/aclImdb/test/neg"), {},
            "IMDB Large Movie Review v1.0 (https://ai.stanford.edu/~amaas/data/sentiment/aclImdb_v1.tar.gz)"),
    Dataset("chnsenticorp", ("chnsenticorp/ChnSentiCorp_htl_all.csv",),
            {"chnsenticorp/ChnSentiCorp_htl_all.csv":
             "https://raw.githubusercontent.com/SophonPlus/ChineseNlpCorpus/master/datasets/"
             "ChnSentiCorp_htl_all/ChnSentiCorp_htl_all.csv"},
            "ChnSentiCorp hotel reviews, 7,766 Chinese reviews labelled 1/0 (SophonPlus/ChineseNlpCorpus)"),
]}


def data_dir(explicit=None):
    """The data directory: the argument, else $MINILLM_DATA, else ./data."""
    return explicit or os.environ.get("MINILLM_DATA") or "data"


def cache_dir():
    """A writable directory for derived files (tokenized arrays, vocabularies)."""
    path = os.environ.get("MINILLM_CACHE") or os.path.join(os.path.expanduser("~"), ".cache", "minillm")
    os.makedirs(path, exist_ok=True)
    return path


def dataset_path(name, relative, directory=None):
    """The path of one file of a dataset, downloading it into ./data if missing and possible."""
    if name not in DATASETS:
        raise KeyError(f"unknown dataset {name!r}; known: {', '.join(sorted(DATASETS))}")
    root = data_dir(directory)
    path = os.path.join(root, relative)
    if os.path.exists(path):
        return path
    url = DATASETS[name].urls.get(relative)
    target = os.path.join("data", relative)
    if url is None:
        raise FileNotFoundError(f"dataset {name}: {path} not found. Put {DATASETS[name].about} there "
                                f"(or set --data-dir / MINILLM_DATA to a directory that has {relative}).")
    if not os.path.exists(target):
        try:
            _download(url, target)
        except OSError as err:
            raise FileNotFoundError(
                f"dataset {name}: {path} not found and the download from {url} failed ({err}). "
                f"Offline, put the file at {target}, or set --data-dir / MINILLM_DATA to a directory "
                f"that has {relative}.") from None
    return target


def _download(url, target):
    os.makedirs(os.path.dirname(target), exist_ok=True)
    tmp = target + ".part"
    with urllib.request.urlopen(url, timeout=30) as response, open(tmp, "wb") as f:
        f.write(response.read())
    os.replace(tmp, target)  # never leave a half-downloaded file under the real name


def read_text(name, relative, directory=None):
    path = dataset_path(name, relative, directory)
    with open(path, encoding="utf-8") as f:
        return f.read()


def tinyshakespeare(directory=None):
    """The whole text (1,115,394 characters)."""
    return read_text("tinyshakespeare", "tinyshakespeare/input.txt", directory)


def wikitext2(split, directory=None):
    """WikiText-2 (tokenized) lines of "valid" or "test"."""
    if split not in ("valid", "test"):
        raise ValueError(f"wikitext-2 split must be 'valid' or 'test' here (train is not available), got {split!r}")
    return read_text("wikitext-2", f"wikitext-2/{split}.txt", directory).splitlines()


def imdb(split, directory=None, limit=None):
    """IMDB reviews of "train" or "test": a list of (text, label), label 1 positive, 0 negative.

    Files are read in order of their numeric id, positives first, so the list is
    the same on every machine. `limit`: read only the first `limit` of each class.
    """
    if split not in ("train", "test"):
        raise ValueError(f"imdb split must be 'train' or 'test', got {split!r}")
    out = []
    for label, folder in ((1, "pos"), (0, "neg")):
        path = dataset_path("imdb", f"imdb/aclImdb/{split}/{folder}", directory)
        names = sorted(os.listdir(path), key=lambda n: int(n.split("_")[0]))
        for n in names[:limit]:
            with open(os.path.join(path, n), encoding="utf-8") as f:
                out.append((f.read(), label))
    return out


def chnsenticorp(directory=None):
    """ChnSentiCorp hotel reviews: a list of (text, label), label 1 positive, 0 negative, in file order.

    The file is CSV with the header `label,review`; reviews with commas are quoted,
    and one review is empty. A malformed row is a ValueError naming its line.
    """
    path = dataset_path("chnsenticorp", "chnsenticorp/ChnSentiCorp_htl_all.csv", directory)
    out = []
    with open(path, encoding="utf-8", newline="") as f:
        reader = csv.reader(f)
        header = next(reader, None)
        if header != ["label", "review"]:
            raise ValueError(f"{path}, line 1: expected the header label,review, got {header!r}")
        for row in reader:
            if len(row) != 2 or row[0] not in ("0", "1"):
                raise ValueError(f"{path}, line {reader.line_num}: expected label (0 or 1),review, got {row!r}")
            out.append((row[1], int(row[0])))
    return out


# ------------------------------------------------- fine-tuning task datasets
# Readers for the labelled sets of `finetune.py`: SST-2 (sentiment), AG News
# (news), SNIPS (intent and slots), CoNLL-2003 (NER), SQuAD v1.1 (QA). Every
# reader returns plain Python lists, checks the format as it reads, and stops
# at the first malformed record with the file and line (or JSON field) in the
# message. Splits are named "train", "dev" and "test" for every task.

DATASETS.update({d.name: d for d in [
    Dataset("sst2", ("sst2/train.tsv", "sst2/dev.tsv"), {},
            "SST-2 from GLUE: train.tsv and dev.tsv, `sentence<TAB>label` with a header "
            "(https://dl.fbaipublicfiles.com/glue/data/SST-2.zip)"),
    Dataset("ag_news", ("ag_news/test.csv", "ag_news/classes.txt"), {},
            "AG News v3 (ag_news_csv): test.csv and classes.txt; the official train.csv is used when "
            "present, else test.csv is split 70/10/20 by class (seed 0)"),
    Dataset("snips", tuple(f"snips/{s}/{f}" for s in ("train", "valid", "test")
                           for f in ("seq.in", "seq.out", "label")), {},
            "SNIPS NLU in the SlotGated-SLU split (https://github.com/MiuLab/SlotGated-SLU, data/snips)"),
    Dataset("conll2003", ("conll2003/eng.train", "conll2003/eng.testa", "conll2003/eng.testb"), {},
            "CoNLL-2003 English NER: eng.train, eng.testa, eng.testb with the original IOB1 tags"),
    Dataset("squad1.1", ("squad1.1/dev-v1.1.json",),
            {"squad1.1/dev-v1.1.json": "https://rajpurkar.github.io/SQuAD-explorer/dataset/dev-v1.1.json"},
            "SQuAD v1.1: dev-v1.1.json; the official train-v1.1.json is used when present, else dev is "
            "split 80/20 by article (seed 0)"),
]})

FINETUNE_SPLITS = ("train", "dev", "test")


class DataFormatError(ValueError):
    """A malformed record. `where` is a line number (`file:12: ...`) or, in JSON, a field path
    (`file: data[3].paragraphs[0].qas[2]: ...`)."""

    def __init__(self, path, where, message):
        location = f"{path}:{where}" if isinstance(where, int) else f"{path}: {where}"
        super().__init__(f"{location}: {message}")


def _check_split(name, split, allowed=FINETUNE_SPLITS, why=""):
    if split not in allowed:
        raise ValueError(f"{name} split must be one of {', '.join(allowed)}, got {split!r}{why}")


def _optional_path(relative, directory=None):
    """The path of an optional file (an official train file) if it is present, else None.

    Never downloads: whether the official file is used must not depend on the network.
    """
    path = os.path.join(data_dir(directory), relative)
    return path if os.path.exists(path) else None


def _read_lines(path):
    """The lines of a UTF-8 text file without their newline characters (line i is [i - 1])."""
    with open(path, encoding="utf-8") as f:
        text = f.read()
    lines = text.split("\n")
    return lines[:-1] if text.endswith("\n") else lines


def stratified_split(labels, fractions, seed=0):
    """Index lists, one per fraction, that split every class in the same proportions.

    Within each class (in sorted order) the indices are shuffled with a fixed
    seed and cut at round(cumulative fraction * class size); each part is
    returned in ascending (file) order. The fractions must sum to 1.
    """
    if abs(sum(fractions) - 1.0) > 1e-9:
        raise ValueError(f"fractions must sum to 1, got {fractions}")
    rng = host_rng(seed)
    parts = [[] for _ in fractions]
    for label in sorted(set(labels)):
        members = [i for i, y in enumerate(labels) if y == label]
        shuffled = [members[j] for j in rng.permutation(len(members))]
        cuts = [0] + [round(sum(fractions[:k + 1]) * len(members)) for k in range(len(fractions))]
        for k, part in enumerate(parts):
            part.extend(shuffled[cuts[k]:cuts[k + 1]])
    return [sorted(part) for part in parts]


# SST-2 ----------------------------------------------------------------------
def sst2(split, directory=None):
    """SST-2 sentences of "train" or "dev" as (text, label), label 1 positive, 0 negative.

    GLUE's test.tsv has no labels, so there is no "test" here: report results on
    dev (872 sentences, 444 positive). Text is lower-cased and PTB-tokenized
    already; the trailing space before the tab is stripped.
    """
    _check_split("sst2", split, ("train", "dev"), " (GLUE's SST-2 test has no labels: evaluate on dev)")
    path = dataset_path("sst2", f"sst2/{split}.tsv", directory)
    lines = _read_lines(path)
    if not lines or lines[0] != "sentence\tlabel":
        raise DataFormatError(path, 1, f"expected the header 'sentence<TAB>label', got {lines[:1]!r}")
    out = []
    for number, line in enumerate(lines[1:], start=2):
        fields = line.split("\t")
        if len(fields) != 2 or fields[1] not in ("0", "1"):
            raise DataFormatError(path, number, f"expected 'sentence<TAB>0|1', got {line!r}")
        out.append((fields[0].strip(), int(fields[1])))
    return out


# AG News --------------------------------------------------------------------
AG_NEWS_FRACTIONS = (0.7, 0.1, 0.2)  # train/dev/test of test.csv, per class, when train.csv is absent
AG_NEWS_DEV_FRACTION = 0.05  # of the official train.csv, per class, held out as dev when it is present


def ag_news_classes(directory=None):
    """The class names in label order: World, Sports, Business, Sci/Tech."""
    path = dataset_path("ag_news", "ag_news/classes.txt", directory)
    names = [line.strip() for line in _read_lines(path)]
    for number, name in enumerate(names, start=1):
        if not name:
            raise DataFormatError(path, number, "empty class name")
    return names


def _ag_news_text(field):
    r"""Undo AG News's escapes.

    readme.txt says a newline is written `\n`; in the files the `n` is gone and
    one or two backslashes stand for the line break ("a second\team" is
    "a second" / "team"), while `\$` is a dollar sign. So: `\$` -> `$`, any
    other run of backslashes -> a newline.
    """
    return re.sub(r"\\+", "\n", field.replace("\\$", "$"))


def _read_ag_news_csv(path, n_classes):
    """(title + newline + description, label 0..n_classes-1) for every row of an AG News CSV."""
    out = []
    with open(path, encoding="utf-8", newline="") as f:
        reader = csv.reader(f, strict=True)
        try:
            for row in reader:
                if len(row) != 3 or not row[0].isdigit() or not 1 <= int(row[0]) <= n_classes:
                    raise DataFormatError(path, reader.line_num,
                                          f"expected '\"class 1-{n_classes}\",\"title\",\"description\"', got {row!r}")
                out.append((_ag_news_text(row[1]) + "\n" + _ag_news_text(row[2]), int(row[0]) - 1))
        except csv.Error as err:
            raise DataFormatError(path, reader.line_num, f"bad CSV quoting ({err})") from None
    return out


def ag_news(split, directory=None):
    """AG News articles of "train", "dev" or "test" as (text, label), label = class index - 1.

    With the official train.csv in the data directory: train and dev are a
    95/5 stratified split of it (seed 0) and test is test.csv, the standard
    benchmark. Without it (as in ../shared/data): test.csv's 7,600 rows are
    split by class 70/10/20 with seed 0 into train 5,320 / dev 760 / test 1,520
    (1,330 / 190 / 380 per class), and results are NOT comparable with
    published AG News numbers: say so when reporting them.
    """
    _check_split("ag_news", split)
    n_classes = len(ag_news_classes(directory))
    test_path = dataset_path("ag_news", "ag_news/test.csv", directory)
    train_path = _optional_path("ag_news/train.csv", directory)
    if train_path is not None:
        if split == "test":
            return _read_ag_news_csv(test_path, n_classes)
        rows = _read_ag_news_csv(train_path, n_classes)
        fractions = (1 - AG_NEWS_DEV_FRACTION, AG_NEWS_DEV_FRACTION)
        part = stratified_split([y for _, y in rows], fractions)[split == "dev"]
    else:
        rows = _read_ag_news_csv(test_path, n_classes)
        part = stratified_split([y for _, y in rows], AG_NEWS_FRACTIONS)[FINETUNE_SPLITS.index(split)]
    return [rows[i] for i in part]


def ag_news_uses_official_train(directory=None):
    """True when train.csv is present, so the splits are the official ones (for reports)."""
    return _optional_path("ag_news/train.csv", directory) is not None


# SNIPS ----------------------------------------------------------------------
SNIPS_FOLDERS = {"train": "train", "dev": "valid", "test": "test"}


def snips(split, directory=None):
    """SNIPS utterances of "train", "dev" (the folder valid/) or "test" as (tokens, slot_tags, intent).

    seq.in, seq.out and label are line-aligned; every line must have as many
    BIO slot tags as tokens (seq.out's trailing spaces are not tags).
    """
    _check_split("snips", split)
    folder = SNIPS_FOLDERS[split]
    paths = [dataset_path("snips", f"snips/{folder}/{name}", directory) for name in ("seq.in", "seq.out", "label")]
    texts, tags, intents = (_read_lines(p) for p in paths)
    if not len(texts) == len(tags) == len(intents):
        raise DataFormatError(paths[0], len(texts), f"seq.in, seq.out and label have {len(texts)}, "
                              f"{len(tags)} and {len(intents)} lines; they must be line-aligned")
    out = []
    for number, (text, tag_line, intent) in enumerate(zip(texts, tags, intents), start=1):
        tokens, slot_tags, intent = text.split(), tag_line.split(), intent.strip()
        if not tokens:
            raise DataFormatError(paths[0], number, "empty utterance")
        if len(slot_tags) != len(tokens):
            raise DataFormatError(paths[1], number, f"{len(slot_tags)} tags for {len(tokens)} tokens {tokens!r}")
        for tag in slot_tags:
            if tag != "O" and not re.fullmatch(r"[BI]-\S+", tag):
                raise DataFormatError(paths[1], number, f"tag {tag!r} is not O, B-type or I-type")
        if not intent:
            raise DataFormatError(paths[2], number, "empty intent")
        out.append((tokens, slot_tags, intent))
    return out


# CoNLL-2003 -----------------------------------------------------------------
CONLL_FILES = {"train": "eng.train", "dev": "eng.testa", "test": "eng.testb"}
_CONLL_TAG = re.compile(r"O|[BI]-(PER|LOC|ORG|MISC)")


def iob1_to_bio2(tags):
    """IOB1 tags (an entity starts with I- unless it directly follows one of the
    same type, where B- marks the boundary) as BIO2 (every entity starts with B-).

    An I-X becomes B-X unless the previous token is of type X (I-X or B-X);
    B-X stays B-X and O stays O.
    """
    out = []
    previous_type = None
    for tag in tags:
        kind, _, entity_type = tag.partition("-")
        if kind == "I" and entity_type != previous_type:
            tag = "B-" + entity_type
        out.append(tag)
        previous_type = entity_type if kind in ("B", "I") else None
    return out


def conll2003(split, directory=None):
    """CoNLL-2003 English sentences of "train", "dev" (eng.testa) or "test" (eng.testb)
    as (words, ner_tags) with the tags converted from IOB1 to BIO2.

    `-DOCSTART-` lines are document separators, not sentences, and are skipped;
    the POS and chunk columns are read, checked and dropped.
    """
    _check_split("conll2003", split)
    path = dataset_path("conll2003", f"conll2003/{CONLL_FILES[split]}", directory)
    out, words, tags = [], [], []

    def end_sentence():
        if words:
            out.append((list(words), iob1_to_bio2(tags)))
            words.clear()
            tags.clear()

    for number, line in enumerate(_read_lines(path), start=1):
        if not line.strip():
            end_sentence()
            continue
        fields = line.split(" ")
        if len(fields) != 4:
            raise DataFormatError(path, number,
                                  f"expected 4 space-separated columns 'word POS chunk NER', got {line!r}")
        if fields[0] == "-DOCSTART-":
            end_sentence()
            continue
        if not _CONLL_TAG.fullmatch(fields[3]):
            raise DataFormatError(path, number, f"NER tag {fields[3]!r} is not O or I-/B- PER, LOC, ORG, MISC")
        words.append(fields[0])
        tags.append(fields[3])
    end_sentence()
    return out


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
    _check_split("squad", split, ("train", "dev"), " (SQuAD v1.1 has no public test set: evaluate on dev)")
    dev_path = dataset_path("squad1.1", "squad1.1/dev-v1.1.json", directory)
    train_path = _optional_path("squad1.1/train-v1.1.json", directory)
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
    return _optional_path("squad1.1/train-v1.1.json", directory) is not None


# ------------------------------------------------- classification tasks
CLASSIFICATION_TASKS = {"sentiment": ("sst2", "chnsenticorp"), "news": ("ag_news",), "intent": ("snips",)}
CHNSENTICORP_FRACTIONS = (0.8, 0.1, 0.1)


def classification_data(task, dataset=None, directory=None):
    """({split: (texts, labels)}, class names, a note on the splits) of a classification task.

    sentiment: SST-2 (train/dev: GLUE's test has no labels) or ChnSentiCorp (no official
    split: 80/10/10 stratified by label, seed 0); news: AG News; intent: SNIPS.
    """
    if task not in CLASSIFICATION_TASKS:
        raise ValueError(f"unknown classification task {task!r}; choose {', '.join(CLASSIFICATION_TASKS)}")
    dataset = dataset or CLASSIFICATION_TASKS[task][0]
    if dataset not in CLASSIFICATION_TASKS[task]:
        raise ValueError(f"task {task} reads {', '.join(CLASSIFICATION_TASKS[task])}, not {dataset!r}")
    if dataset == "sst2":
        splits = {s: sst2(s, directory) for s in ("train", "dev")}
        names = ["negative", "positive"]
        note = "SST-2: GLUE test has no labels, evaluation is on dev"
    elif dataset == "chnsenticorp":
        rows = chnsenticorp(directory)
        parts = stratified_split([y for _, y in rows], CHNSENTICORP_FRACTIONS)
        splits = {s: [rows[i] for i in part] for s, part in zip(FINETUNE_SPLITS, parts)}
        names = ["negative", "positive"]
        note = "ChnSentiCorp: no official split, 80/10/10 stratified by label (seed 0)"
    elif dataset == "ag_news":
        splits = {s: ag_news(s, directory) for s in FINETUNE_SPLITS}
        names = ag_news_classes(directory)
        note = ("AG News: official train.csv/test.csv" if ag_news_uses_official_train(directory) else
                "AG News: train.csv absent, test.csv split 70/10/20 by class (seed 0); not comparable to published")
    else:
        raw = {s: snips(s, directory) for s in FINETUNE_SPLITS}
        names = sorted({intent for _, _, intent in raw["train"]})
        index = {name: i for i, name in enumerate(names)}
        splits = {s: [(" ".join(tokens), index[intent]) for tokens, _, intent in rows] for s, rows in raw.items()}
        note = "SNIPS (SlotGated-SLU split): train/valid/test"
    return {s: ([t for t, _ in rows], [y for _, y in rows]) for s, rows in splits.items()}, names, note
