"""Labelled sets for sequence classification: SST-2, ChnSentiCorp (sentiment), AG News (news), SNIPS (intent).

Every reader returns plain Python lists, checks the format as it reads, and
stops at the first malformed record with the file and line in the message.
Splits are named "train", "dev" and "test" for every task.
"""

import csv
import re

from minillm.data.datasets import (FINETUNE_SPLITS, DataFormatError, check_split, dataset_path, optional_path,
                                   read_lines, stratified_split)


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


# SST-2 ----------------------------------------------------------------------
def sst2(split, directory=None):
    """SST-2 sentences of "train" or "dev" as (text, label), label 1 positive, 0 negative.

    GLUE's test.tsv has no labels, so there is no "test" here: report results on
    dev (872 sentences, 444 positive). Text is lower-cased and PTB-tokenized
    already; the trailing space before the tab is stripped.
    """
    check_split("sst2", split, ("train", "dev"), " (GLUE's SST-2 test has no labels: evaluate on dev)")
    path = dataset_path("sst2", f"sst2/{split}.tsv", directory)
    lines = read_lines(path)
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
    names = [line.strip() for line in read_lines(path)]
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
    check_split("ag_news", split)
    n_classes = len(ag_news_classes(directory))
    test_path = dataset_path("ag_news", "ag_news/test.csv", directory)
    train_path = optional_path("ag_news/train.csv", directory)
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
    return optional_path("ag_news/train.csv", directory) is not None


# SNIPS ----------------------------------------------------------------------
SNIPS_FOLDERS = {"train": "train", "dev": "valid", "test": "test"}


def snips(split, directory=None):
    """SNIPS utterances of "train", "dev" (the folder valid/) or "test" as (tokens, slot_tags, intent).

    seq.in, seq.out and label are line-aligned; every line must have as many
    BIO slot tags as tokens (seq.out's trailing spaces are not tags).
    """
    check_split("snips", split)
    folder = SNIPS_FOLDERS[split]
    paths = [dataset_path("snips", f"snips/{folder}/{name}", directory) for name in ("seq.in", "seq.out", "label")]
    texts, tags, intents = (read_lines(p) for p in paths)
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
