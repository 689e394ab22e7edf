"""Corpora are found under the data directory, with clear errors when missing, and split as documented."""

import pytest

from minillm.data import datasets
from minillm.data.corpora import imdb, lm_corpus, tinyshakespeare, wikitext2


def test_tinyshakespeare_is_the_real_file():
    text = tinyshakespeare()
    assert len(text) == 1_115_394 and len(set(text)) == 65 and text.startswith("First Citizen:")


def test_tinyshakespeare_split_is_nanogpts():
    """nanoGPT's prepare.py keeps data[:int(n * 0.9)] for training and the rest for validation."""
    (train,), (val,) = lm_corpus("tinyshakespeare")
    assert (len(train), len(val)) == (1_003_854, 111_540) and train + val == tinyshakespeare()


def test_missing_dataset_says_what_to_put_where(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(FileNotFoundError, match="nowhere does not exist"):  # a --data-dir that is not there
        imdb("train", directory=str(tmp_path / "nowhere"))
    (tmp_path / "nowhere").mkdir()
    with pytest.raises(FileNotFoundError, match="imdb/aclImdb/train/pos") as info:
        imdb("train", directory=str(tmp_path / "nowhere"))
    assert "MINILLM_DATA" in str(info.value)
    with pytest.raises(ValueError, match="train is not available"):
        wikitext2("train")


def test_offline_download_failure_is_clear(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)

    def offline(url, target):
        raise OSError("network is unreachable")

    monkeypatch.setattr(datasets, "_download", offline)
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="put the file at data/tinyshakespeare/input.txt"):
        tinyshakespeare(directory=str(tmp_path / "empty"))


def test_wikitext_and_imdb_counts():
    assert len(wikitext2("valid")) == 3760
    test = imdb("test")
    assert len(test) == 25_000 and sum(label for _, label in test) == 12_500
