"""Texts for pretraining: Tiny Shakespeare, WikiText-2 and IMDB reviews, split for training and validation."""

import os

from minillm.data.datasets import dataset_path, read_text
from minillm.data.labelled import chnsenticorp

CORPORA = ("tinyshakespeare", "imdb", "wikitext-2")


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


def lm_corpus(name, directory=None):
    """(train documents, validation documents) of a dataset.

    tinyshakespeare: the first 90% / the last 10% of the text (nanoGPT's split);
    imdb: the 25,000 train reviews / the 25,000 test reviews;
    wikitext-2: valid.txt / test.txt lines (train.txt is not available here).
    """
    if name == "tinyshakespeare":
        text = tinyshakespeare(directory)
        cut = int(0.9 * len(text))  # nanoGPT's data[:int(n * 0.9)]: 1,003,854 / 111,540 characters
        return [text[:cut]], [text[cut:]]
    if name == "imdb":
        return [t for t, _ in imdb("train", directory)], [t for t, _ in imdb("test", directory)]
    if name == "wikitext-2":
        return wikitext2("valid", directory), wikitext2("test", directory)
    raise ValueError(f"unknown corpus {name!r}; known: {', '.join(CORPORA)}")


def training_texts(name, directory=None):
    """The texts a tokenizer learns from: a corpus's training part (all of ChnSentiCorp, which has no split)."""
    if name == "chnsenticorp":
        return [text for text, _ in chnsenticorp(directory)]
    return lm_corpus(name, directory)[0]
