"""Datasets are found under the data directory, with clear errors when missing; characters round-trip."""

import pytest

from minillm.data import datasets
from minillm.data.corpora import imdb, lm_corpus, tinyshakespeare, wikitext2
from minillm.data.lm_data import sentence_documents, token_stream
from minillm.tokenizers import CharTokenizer, load_tokenizer


def test_tinyshakespeare_is_the_real_file():
    text = tinyshakespeare()
    assert len(text) == 1_115_394 and len(set(text)) == 65 and text.startswith("First Citizen:")


def test_tinyshakespeare_split_is_nanogpts():
    """nanoGPT's prepare.py keeps data[:int(n * 0.9)] for training and the rest for validation."""
    (train,), (val,) = lm_corpus("tinyshakespeare")
    assert (len(train), len(val)) == (1_003_854, 111_540) and train + val == tinyshakespeare()


def test_missing_dataset_says_what_to_put_where(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
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
    with pytest.raises(FileNotFoundError, match="put the file at data/tinyshakespeare/input.txt"):
        tinyshakespeare(directory=str(tmp_path / "empty"))


def test_wikitext_and_imdb_counts():
    assert len(wikitext2("valid")) == 3760
    test = imdb("test")
    assert len(test) == 25_000 and sum(label for _, label in test) == 12_500


def test_char_tokenizer_round_trip_and_errors(tmp_path):
    tok = CharTokenizer.train("hello world")
    assert tok.vocab_size == 8 and tok.encode("hello") == [3, 2, 4, 4, 5]  # " dehlorw" sorted
    assert tok.decode(tok.encode("world hello")) == "world hello"
    with pytest.raises(ValueError, match="'z' at offset 2"):
        tok.encode("hoz")
    tok.save(tmp_path)
    assert load_tokenizer(tmp_path).itos == tok.itos


def test_cached_streams_follow_their_texts(tmp_path, monkeypatch):
    """A cache key names the data set and tokenizer; a changed text (split, data file) must still miss the cache."""
    monkeypatch.setenv("MINILLM_CACHE", str(tmp_path))
    tok = CharTokenizer.train("abcd. ")
    assert token_stream(tok, ["abc"], "key").tolist() == tok.encode("abc")
    assert token_stream(tok, ["abd"], "key").tolist() == tok.encode("abd")
    assert token_stream(tok, ["abd"], "key").tolist() == tok.encode("abd")  # now from the cache
    first = sentence_documents(tok, ["ab. cd."], "key")
    assert sentence_documents(tok, ["ab. cd."], "key") == first
    assert sentence_documents(tok, ["cd. ab."], "key") != first
