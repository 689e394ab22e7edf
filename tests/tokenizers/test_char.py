"""The character tokenizer: round trip and errors."""

import pytest

from minillm.tokenizers import CharTokenizer, load_tokenizer


def test_char_tokenizer_round_trip_and_errors(tmp_path):
    tok = CharTokenizer.train("hello world")
    assert tok.vocab_size == 8 and tok.encode("hello") == [3, 2, 4, 4, 5]  # " dehlorw" sorted
    assert tok.decode(tok.encode("world hello")) == "world hello"
    with pytest.raises(ValueError, match="'z' at offset 2"):
        tok.encode("hoz")
    tok.save(tmp_path)
    assert load_tokenizer(tmp_path).itos == tok.itos
