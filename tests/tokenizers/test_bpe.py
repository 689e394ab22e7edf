"""Byte-level BPE: exact ids reasoned from the algorithm, training, files, and properties.

Byte ids follow GPT-2's table: the 188 printable bytes "!".."~", "¡".."¬", "®".."ÿ" get
ids 0..187 in byte order (so byte b in "!".."~" has id b - 33), and the other 68 bytes
get 188..255 in byte order (space, byte 32, is the 33rd of them: id 220, written "Ġ").
Merged tokens take ids 256, 257... in merge order.
"""

import functools
import itertools
import os

import pytest
from hypothesis import given, strategies as st

from minillm.data.corpora import imdb, tinyshakespeare, wikitext2
from minillm.data.labelled import chnsenticorp
from minillm.tokenizers import load_tokenizer
from minillm.tokenizers.bpe import ENDOFTEXT, BPETokenizer, bytes_to_unicode
from minillm.tokenizers.merges import learn_merges, learn_merges_naive

BYTE = bytes_to_unicode()


def hand_built(merges, pattern="gpt2"):
    """A tokenizer from a merge list: the 256 bytes, then one id per merge, then <|endoftext|>."""
    vocab = {c: i for i, c in enumerate(BYTE.values())}
    for a, b in merges:
        vocab.setdefault(a + b, len(vocab))
    vocab[ENDOFTEXT] = len(vocab)
    return BPETokenizer(vocab, merges, pattern=pattern)


@functools.lru_cache(maxsize=None)
def trained(pattern):
    return BPETokenizer.train(tinyshakespeare()[:30_000], 400, pattern=pattern)


def test_byte_table_is_gpt2s():
    assert len(set(BYTE.values())) == 256
    assert BYTE[ord("!")] == "!" and BYTE[32] == "Ġ" and BYTE[0] == "Ā" and BYTE[0xAD] == "Ń"
    ids = {c: i for i, c in enumerate(BYTE.values())}
    assert ids["!"] == 0 and ids["t"] == 83 and ids["Ġ"] == 220 and ids["Ã"] == 127


def test_tinyshakespeare_first_line_by_hand():
    # "First" -> F ir s t; " Citizen" -> ĠC (rank 1), then it (rank 2), then en (rank 3); ":".
    tok = hand_built([("i", "r"), ("Ġ", "C"), ("i", "t"), ("e", "n")])
    text = tinyshakespeare()[:14]
    assert text == "First Citizen:"
    assert tok.encode(text) == [37, 256, 82, 83, 257, 258, 72, 89, 259, 25]


def test_imdb_review_by_hand():
    # Ġi (rank 1) must exist before Ġi+s (rank 2) can apply; "ll" merges inside "Bromwell".
    tok = hand_built([("Ġ", "H"), ("Ġ", "i"), ("Ġi", "s"), ("l", "l")])
    text = imdb("train", limit=1)[0][0][:16]
    assert text == "Bromwell High is"
    assert tok.encode(text) == [33, 81, 78, 76, 86, 68, 259, 256, 72, 70, 71, 258]


def test_wikitext_heading_by_hand():
    tok = hand_built([("Ġ", "=")])
    line = wikitext2("valid")[1]
    assert line == " = Homarus gammarus = "
    assert tok.pattern.findall(line) == [" =", " Homarus", " gammarus", " =", " "]
    assert tok.encode(" = ") == [256, 220]


def test_chinese_review_bytes_by_hand():
    # 房 is E6 88 BF and 间 is E9 97 B4 in UTF-8. Printable E6, BF, E9, B4: 106 + (b - 0xAE);
    # 88 and 97 are among the shifted bytes: 188 + 33 + (b - 127).
    text = chnsenticorp()[1][0]
    assert text.startswith("商务大床房，房间很大")
    assert hand_built([]).encode("房间") == [162, 230, 123, 165, 245, 112]
    tok = hand_built([(BYTE[0xE6], BYTE[0x88]), (BYTE[0xE6] + BYTE[0x88], BYTE[0xBF])])
    assert tok.encode("房间") == [257, 165, 245, 112]
    assert tok.encode(text).count(257) == 2 and tok.decode(tok.encode(text)) == text


def test_patterns_split_as_documented():
    text = "I'VE 12345 done\n\nok"
    assert hand_built([]).pattern.findall(text) == ["I", "'", "VE", " 12345", " done", "\n", "\n", "ok"]
    assert hand_built([], "cl100k").pattern.findall(text) == ["I", "'VE", " ", "123", "45", " done", "\n\n", "ok"]


def test_training_merges_by_hand():
    # Words "ab" x1, " ab" x2, " abc" x1: (a,b)=4 > (Ġ,a)=3 > (b,c)=1. Then (Ġ,ab)=3, then (Ġab,c)=1.
    tok = BPETokenizer.train("ab ab ab abc", 260)
    assert tok.merges == [("a", "b"), ("Ġ", "ab"), ("Ġab", "c")]
    assert tok.vocab["Ġabc"] == 258 and tok.vocab[ENDOFTEXT] == 259
    assert tok.encode(" abc ab") == [258, 257]


def test_training_ties_go_to_the_smallest_pair_of_ids():
    # Every pair occurs once: (a,b) = (64,65) < (c,d) = (66,67) < (Ġ,c) = (220,66); then (Ġ,cd).
    tok = BPETokenizer.train("ab cd", 260)
    assert tok.merges == [("a", "b"), ("c", "d"), ("Ġ", "cd")]


def test_training_stops_when_no_pair_is_left():
    tok = BPETokenizer.train("aaaa", 1000)
    assert tok.merges == [("a", "a"), ("aa", "aa")]
    assert tok.vocab_size == 256 + 2 + 1


@pytest.mark.parametrize("texts", [
    [tinyshakespeare()[:8000]],
    [text for text, _ in imdb("train", limit=3)],
    wikitext2("valid")[:40],
    [text for text, _ in chnsenticorp()[:15]],
], ids=["tinyshakespeare", "imdb", "wikitext-2", "chnsenticorp"])
def test_incremental_counts_give_the_naive_merges(texts):
    fast = BPETokenizer.train(texts, 400)
    slow = BPETokenizer.train(texts, 400, learner=learn_merges_naive)
    assert len(fast.merges) > 100 and fast.merges == slow.merges and fast.vocab == slow.vocab


def test_merge_learners_agree_on_counts():
    words = {(1, 2, 1, 2, 1, 2): 3, (2, 1): 5, (1, 1, 1): 2}

    def run(learner):
        ids = itertools.count(10)
        return list(learner(words, lambda a, b: next(ids)))

    fast, slow = run(learn_merges), run(learn_merges_naive)
    # (2,1): 3*2 + 5 = 11 beats (1,2): 3*3 = 9 and (1,1): 2*2 = 4.
    assert fast == slow and fast[0] == ((2, 1), 10, 11)


def test_special_tokens_allowed_disallowed_or_text():
    tok = hand_built([])
    eot = tok.vocab[ENDOFTEXT]
    text = "a<|endoftext|>b"
    assert tok.encode(text) == [64, eot, 65]
    with pytest.raises(ValueError, match=r"special token '<\|endoftext\|>' at offset 1"):
        tok.encode(text, allowed_special=(), disallowed_special="all")
    as_text = tok.encode(text, allowed_special=(), disallowed_special=())
    assert eot not in as_text and tok.decode(as_text) == text
    with pytest.raises(ValueError, match="not special tokens"):
        tok.encode(text, allowed_special={"<|nope|>"})


def test_decode_replaces_partial_utf8_and_rejects_unknown_ids():
    tok = hand_built([])
    ids = tok.encode("é")
    assert len(ids) == 2 and tok.decode(ids[:1]) == "\ufffd"
    with pytest.raises(ValueError, match="id 257 at position 1"):
        tok.decode([0, 257])


def test_lone_surrogate_is_a_clear_error():
    with pytest.raises(ValueError, match=r"lone surrogate '\\ud800' at offset 2"):
        hand_built([]).encode("ab\ud800")


def test_save_load_round_trip_and_dispatch(tmp_path):
    tok = trained("gpt2")
    tok.save(tmp_path)
    with open(tmp_path / "merges.txt", encoding="utf-8") as f:
        assert f.readline() == "#version: 0.2\n" and len(f.readlines()) == len(tok.merges)
    back = load_tokenizer(tmp_path)
    assert isinstance(back, BPETokenizer) and back.vocab == tok.vocab and back.merges == tok.merges
    os.remove(tmp_path / "tokenizer_config.json")  # merges.txt alone says BPE
    text = tinyshakespeare()[-500:]
    assert load_tokenizer(tmp_path).encode(text) == tok.encode(text)


def test_malformed_merges_name_file_and_line(tmp_path):
    hand_built([("a", "b")]).save(tmp_path)
    with open(tmp_path / "merges.txt", "a", encoding="utf-8") as f:
        f.write("a b c\n")
    with pytest.raises(ValueError, match=r"merges.txt, line 3: expected two tokens"):
        BPETokenizer.load(tmp_path)


@pytest.mark.parametrize("pattern", ["gpt2", "cl100k"])
@given(text=st.text())
def test_decode_inverts_encode(pattern, text):
    tok = trained(pattern)
    assert tok.decode(tok.encode(text)) == text


@given(parts=st.lists(st.one_of(st.text(max_size=8), st.just(ENDOFTEXT)), max_size=6))
def test_decode_inverts_encode_around_special_tokens(parts):
    tok = trained("gpt2")
    text = "".join(parts)
    ids = tok.encode(text)
    assert ids.count(tok.vocab[ENDOFTEXT]) == text.count(ENDOFTEXT)
    assert tok.decode(ids) == text


@given(text=st.text(st.one_of(st.characters(), st.characters(categories=["Cs"]))), allowed=st.sampled_from(["all", ()]),
       disallowed=st.sampled_from(["all", ()]))
def test_encode_raises_only_documented_errors(text, allowed, disallowed):
    tok = trained("gpt2")
    try:
        ids = tok.encode(text, allowed_special=allowed, disallowed_special=disallowed)
    except ValueError as err:
        assert "lone surrogate" in str(err) or "special token" in str(err)
    else:
        assert all(0 <= i < tok.vocab_size for i in ids)


@given(ids=st.lists(st.integers(-5, 500), max_size=20))
def test_decode_raises_only_for_unknown_ids(ids):
    tok = trained("gpt2")
    if all(0 <= i < tok.vocab_size for i in ids):
        assert isinstance(tok.decode(ids), str)
    else:
        with pytest.raises(ValueError, match="not in the vocabulary"):
            tok.decode(ids)
