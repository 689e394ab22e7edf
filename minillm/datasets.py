"""Where each dataset lives and how it is read.

The data directory is `--data-dir`, else $MINILLM_DATA, else ./data. A file
that is missing there is downloaded from its canonical source into ./data when
the machine is online; offline, the error says which file to put where.
Nothing is ever written into the data directory except by that download:
caches go to $MINILLM_CACHE (default ~/.cache/minillm).
"""

import csv
import dataclasses
import os
import urllib.request


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
