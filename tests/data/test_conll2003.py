"""CoNLL-2003: IOB1 to BIO2, entity counts, malformed lines named."""

import collections

import pytest

from minillm.data.conll2003 import conll2003, iob1_to_bio2
from minillm.data.datasets import DataFormatError


# ------------------------------------------------------------ CoNLL-2003
def test_iob1_to_bio2_by_hand():
    iob1 = ["I-PER", "I-PER", "O", "I-LOC", "B-LOC", "I-LOC", "I-ORG", "I-MISC", "B-MISC", "O", "I-PER"]
    bio2 = ["B-PER", "I-PER", "O", "B-LOC", "B-LOC", "I-LOC", "B-ORG", "B-MISC", "B-MISC", "O", "B-PER"]
    assert iob1_to_bio2(iob1) == bio2
    assert iob1_to_bio2(bio2) == bio2  # BIO2 input is left as it is
    assert iob1_to_bio2([]) == []


def test_conll_dev_entity_counts_after_conversion_match_the_paper():
    dev = conll2003("dev")
    assert len(dev) == 3250 and sum(len(words) for words, _ in dev) == 51_362
    starts = collections.Counter(tag[2:] for _, tags in dev for tag in tags if tag.startswith("B-"))
    assert starts == {"LOC": 1837, "MISC": 922, "ORG": 1341, "PER": 1842}
    assert all(words[0] != "-DOCSTART-" for words, _ in dev)
    assert dev[0] == (["CRICKET", "-", "LEICESTERSHIRE", "TAKE", "OVER", "AT", "TOP", "AFTER", "INNINGS",
                       "VICTORY", "."], ["O", "O", "B-ORG", "O", "O", "O", "O", "O", "O", "O", "O"])


def test_conll_malformed_line_names_file_and_line(tmp_path, write_file):
    write_file(tmp_path, "conll2003/eng.testa", "-DOCSTART- -X- O O\n\nEU NNP I-NP I-ORG\nrejects VBZ I-VP\n")
    with pytest.raises(DataFormatError, match="eng.testa:4: expected 4 space-separated columns"):
        conll2003("dev", str(tmp_path))
    write_file(tmp_path, "conll2003/eng.testa", "EU NNP I-NP I-ORGANISATION\n")
    with pytest.raises(DataFormatError, match="eng.testa:1: NER tag 'I-ORGANISATION'"):
        conll2003("dev", str(tmp_path))
