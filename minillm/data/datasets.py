"""Where each dataset lives: the registry, the data and cache directories, downloads, shared reading helpers.

The data directory is `--data-dir`, else $MINILLM_DATA, else ./data. A file
that is missing there is downloaded from its canonical source into ./data when
the machine is online; offline, the error says which file to put where.
Nothing is ever written into the data directory except by that download:
caches go to $MINILLM_CACHE (default ~/.cache/minillm). The readers live
beside this module: corpora.py (texts for pretraining), labelled.py, conll2003.py
and squad.py (the fine-tuning sets).
"""

import dataclasses
import os
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
    Dataset("mnist", ("mnist/t10k-images-idx3-ubyte.gz", "mnist/t10k-labels-idx1-ubyte.gz"), {},
            "the MNIST test set: t10k-images-idx3-ubyte.gz and t10k-labels-idx1-ubyte.gz (gzipped IDX files)"),
    Dataset("fsdd", ("fsdd/recordings",), {},
            "the Free Spoken Digit Dataset's recordings/*.wav (Jakobovski/free-spoken-digit-dataset)"),
]})


FINETUNE_SPLITS = ("train", "dev", "test")


def data_dir(explicit=None):
    """The data directory: the argument (--data-dir, which must exist), else $MINILLM_DATA, else ./data."""
    if explicit and not os.path.isdir(explicit):
        raise FileNotFoundError(f"data directory {explicit} does not exist (--data-dir)")
    return explicit or os.environ.get("MINILLM_DATA") or "data"


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
    """Fetch url to target; a failed download leaves nothing behind, not even empty folders."""
    with urllib.request.urlopen(url, timeout=30) as response:
        data = response.read()
    os.makedirs(os.path.dirname(target), exist_ok=True)
    tmp = target + ".part"
    with open(tmp, "wb") as f:
        f.write(data)
    os.replace(tmp, target)  # never leave a half-written file under the real name


def read_text(name, relative, directory=None):
    path = dataset_path(name, relative, directory)
    with open(path, encoding="utf-8") as f:
        return f.read()


class DataFormatError(ValueError):
    """A malformed record. `where` is a line number (`file:12: ...`) or, in JSON, a field path
    (`file: data[3].paragraphs[0].qas[2]: ...`)."""

    def __init__(self, path, where, message):
        location = f"{path}:{where}" if isinstance(where, int) else f"{path}: {where}"
        super().__init__(f"{location}: {message}")


def check_split(name, split, allowed=FINETUNE_SPLITS, why=""):
    if split not in allowed:
        raise ValueError(f"{name} split must be one of {', '.join(allowed)}, got {split!r}{why}")


def optional_path(relative, directory=None):
    """The path of an optional file (an official train file) if it is present, else None.

    Never downloads: whether the official file is used must not depend on the network.
    """
    path = os.path.join(data_dir(directory), relative)
    return path if os.path.exists(path) else None


def text_lines(text):
    """A text's lines without their newline characters: a final newline closes the last line
    rather than opening an empty one (so line i is [i - 1])."""
    lines = text.split("\n")
    return lines[:-1] if text.endswith("\n") else lines


def read_lines(path):
    """The lines of a UTF-8 text file (see text_lines)."""
    with open(path, encoding="utf-8") as f:
        return text_lines(f.read())


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
