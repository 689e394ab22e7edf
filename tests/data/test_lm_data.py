"""Token streams and sentence documents cached by the hash of their texts."""

from minillm.data.lm_data import sentence_documents, token_stream
from minillm.tokenizers import CharTokenizer


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
