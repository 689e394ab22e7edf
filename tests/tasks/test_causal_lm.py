"""Where a language model's sample starts: the document separator, a newline, else the first token."""

from minillm.tasks.causal_lm import sample_start
from minillm.tokenizers.bpe import BPETokenizer
from minillm.tokenizers.char import CharTokenizer


def test_sample_start_rule():
    assert sample_start(CharTokenizer.train("\tab\ncd")) == [1]  # "\t", "\n", "a", ...
    assert sample_start(CharTokenizer.train("xyz")) == [0]
    bpe = BPETokenizer.train(["a gripping film", "a dull film"], 270)
    assert sample_start(bpe) == [bpe.special_tokens["<|endoftext|>"]]
