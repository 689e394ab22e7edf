"""WordPiece: exact ids and offsets reasoned from BERT's algorithm, pairs, training, files, properties.

The offset property (tested with hypothesis below): for every token that is not special or [UNK],
with `norm(s)` = each character of s normalized as the tokenizer does (control characters dropped;
if lower-casing: NFD, non-spacing marks dropped, lower-cased) and `piece` the token without "##":

- cased:   norm(text[start:end]) == piece
- uncased: piece is a substring of norm(text[start:end]), and equal to it whenever no original
  character normalizes to several characters that end up in different pieces (always for ASCII,
  where norm(text[start:end]) == text[start:end].lower() == piece). Hangul syllables, which NFD
  splits into jamo, are the usual case where two pieces share one original character.

An [UNK] spans the whole word it replaces.
"""

import functools
import os

import pytest
from hypothesis import given, strategies as st

from minillm.data.conll2003 import conll2003
from minillm.data.corpora import imdb, tinyshakespeare, wikitext2
from minillm.data.labelled import chnsenticorp
from minillm.models.pretrained import is_installed, resolve_init
from minillm.tokenizers import load_tokenizer
from minillm.tokenizers.normalize import normalize_char
from minillm.tokenizers.wordpiece import WordPieceTokenizer, longest_first

VOCAB = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]",  # 0-4
         "un", "##aff", "##able", "hello", "world",  # 5-9
         ",", "!", "the", "movie", "##s",  # 10-14
         "first", "citizen", ":", "酒", "店",  # 15-19
         "is", "a", "car", "##toon", "=",  # 20-24
         "homa", "##rus", "@", "-", "cafe",  # 25-29
         "##a"]  # 30

needs_minilm = pytest.mark.skipif(not is_installed("minilm"), reason="all-MiniLM-L6-v2 not installed")


def hand_built(lowercase=True):
    return WordPieceTokenizer(VOCAB, lowercase=lowercase)


def with_offsets(tok, text):
    return [(i, s, e) for i, s, e in tok.tokenize_with_offsets(text)]


@functools.lru_cache(maxsize=None)
def trained(lowercase):
    texts = [t for t, _ in imdb("train", limit=2)] + [t for t, _ in chnsenticorp()[:10]]
    return WordPieceTokenizer.train(texts, 600, lowercase=lowercase)


def test_greedy_longest_match_with_continuations():
    tok = hand_built()
    assert tok.encode("unaffable") == [5, 6, 7]
    assert tok.encode("movies") == [13, 14]
    assert tok.encode("unaffables") == [5, 6, 7, 14]
    assert tok.encode("unmovie") == [1]  # "un", then no "##m..." piece: the whole word is [UNK]


def test_basic_tokenization_offsets_lower_case():
    assert with_offsets(hand_built(), "Hello, WORLD!") == [(8, 0, 5), (10, 5, 6), (9, 7, 12), (11, 12, 13)]
    assert with_offsets(hand_built(False), "Hello, world!") == [(1, 0, 5), (10, 5, 6), (9, 7, 12), (11, 12, 13)]


def test_accents_are_stripped_only_when_lower_casing():
    assert with_offsets(hand_built(), "  Café") == [(29, 2, 6)]
    assert with_offsets(hand_built(False), "  Café") == [(1, 2, 6)]
    # A span runs from the first to the last character that survives normalization: a
    # combining accent at the end of a word is dropped and left outside, as in BertTokenizerFast.
    assert with_offsets(hand_built(), "cafe\u0301") == [(29, 0, 4)]


def test_cleaning_drops_controls_and_replacement_characters():
    assert with_offsets(hand_built(), "hel\x00lo\ufffd\u200b world\t\n!") == [(8, 0, 6), (9, 9, 14), (11, 16, 17)]


def test_each_cjk_character_is_a_word():
    assert with_offsets(hand_built(), "酒店好") == [(18, 0, 1), (19, 1, 2), (1, 2, 3)]
    assert hand_built().encode("あい酒") == [1, 18]  # Hiragana is not CJK: "あい" is one word


def test_words_over_100_characters_are_unknown():
    tok = hand_built()
    assert tok.encode("a" * 100) == [21] + [30] * 99
    assert with_offsets(tok, " " + "a" * 101) == [(1, 1, 102)]


def test_special_tokens_written_in_text():
    assert with_offsets(hand_built(), "hello [MASK] world") == [(8, 0, 5), (4, 6, 12), (9, 13, 18)]
    assert hand_built().encode("[mask]") == [1, 1, 1]  # only the exact spelling is special: [ mask ]


def test_real_text_by_hand():
    tok = hand_built()
    assert tinyshakespeare()[:14] == "First Citizen:"
    assert tok.encode("First Citizen:") == [15, 16, 17]
    review = imdb("train", limit=1)[0][0]
    assert review.startswith("Bromwell High is a cartoon comedy.")
    assert with_offsets(tok, review[:26]) == [(1, 0, 8), (1, 9, 13), (20, 14, 16), (21, 17, 18), (22, 19, 22),
                                              (23, 22, 26)]
    line = wikitext2("valid")[1]
    assert line == " = Homarus gammarus = "
    assert tok.encode(line) == [24, 25, 26, 1, 24]
    assert tok.encode("2 @-@ 3") == [1, 27, 28, 27, 1]
    chinese = chnsenticorp()[0][0]
    assert chinese.startswith("距离川沙公路较近,但是")
    assert with_offsets(tok, chinese[:11]) == [(1, i, i + 1) for i in range(8)] + [(10, 8, 9), (1, 9, 10),
                                                                                     (1, 10, 11)]
    hotel = next(t for t, _ in chnsenticorp() if t.startswith("酒店"))
    assert tok.encode(hotel)[:2] == [18, 19]


def test_pair_encoding():
    enc = hand_built().encode_plus("hello world", "the movies")
    assert enc.input_ids == [2, 8, 9, 3, 12, 13, 14, 3]
    assert enc.token_type_ids == [0, 0, 0, 0, 1, 1, 1, 1]
    assert enc.attention_mask == [1] * 8
    assert enc.offsets == [(0, 0), (0, 5), (6, 11), (0, 0), (0, 3), (4, 9), (9, 10), (0, 0)]
    assert enc.special_tokens_mask == [1, 0, 0, 1, 0, 0, 0, 1]
    assert enc.sequence_ids == [None, 0, 0, None, 1, 1, 1, None]


def test_encode_tokens_builds_a_pair_from_cut_token_lists():
    tok = hand_built()
    question, context = "hello world", "the movies, the movie"
    whole = tok.encode_tokens(tok.tokenize_with_offsets(question), tok.tokenize_with_offsets(context))
    assert whole == tok.encode_plus(question, context)
    window = tok.encode_tokens(tok.tokenize_with_offsets(question), tok.tokenize_with_offsets(context)[4:6])
    assert window.input_ids == [2, 8, 9, 3, 12, 13, 3] and window.token_type_ids == [0, 0, 0, 0, 1, 1, 1]
    assert window.offsets[4:6] == [(12, 15), (16, 21)]  # offsets stay those of the whole context
    assert context[12:15] == "the" and context[16:21] == "movie"


def test_truncation_longest_first_and_padding():
    tok = hand_built()
    # 4 + 2 tokens, room for 4: the longer first text loses two.
    enc = tok.encode_plus("hello world hello world", "the movie", max_length=7, truncation=True)
    assert enc.input_ids == [2, 8, 9, 3, 12, 13, 3]
    # 2 + 2 tokens, room for 3: on a tie the second text keeps the spare token.
    enc = tok.encode_plus("hello world", "the movie", max_length=6, truncation=True, padding="max_length")
    assert enc.input_ids == [2, 8, 3, 12, 13, 3]
    enc = tok.encode_plus("hello", max_length=5, padding="max_length")
    assert enc.input_ids == [2, 8, 3, 0, 0] and enc.attention_mask == [1, 1, 1, 0, 0]
    assert enc.offsets[-1] == (0, 0) and enc.token_type_ids == [0] * 5
    with pytest.raises(ValueError, match="exceed max_length 3; pass truncation=True"):
        tok.encode_plus("hello world", max_length=3)
    with pytest.raises(ValueError, match="no room for the 3 special tokens"):
        tok.encode_plus("hello", "world", max_length=2, truncation=True)


# (la, lb, budget) -> what BertTokenizerFast (tokenizers 0.23) keeps of each text, truncating longest_first
HF_LONGEST_FIRST = {(5, 5, 7): (3, 4), (6, 5, 7): (4, 3), (5, 6, 7): (3, 4), (4, 4, 7): (3, 4), (2, 10, 7): (2, 5),
                    (10, 12, 7): (3, 4), (3, 5, 7): (3, 4), (0, 10, 5): (0, 5), (7, 5, 6): (3, 3), (5, 7, 6): (3, 3),
                    (6, 6, 6): (3, 3), (12, 1, 3): (2, 1), (3, 2, 9): (3, 2)}


@pytest.mark.parametrize("lengths", HF_LONGEST_FIRST)
def test_longest_first_shares_the_budget_as_the_fast_tokenizer(lengths):
    assert longest_first(*lengths) == HF_LONGEST_FIRST[lengths]


def test_truncated_pairs_and_batches_match_the_fast_tokenizer():
    tok = hand_built()
    # 3 + 3 tokens, room for 5: the first text keeps 2, the second 3 (BertTokenizerFast's ids, types and offsets)
    expected = ([2, 8, 9, 3, 12, 13, 14, 3], [0, 0, 0, 0, 1, 1, 1, 1],
                [(0, 0), (0, 5), (6, 11), (0, 0), (0, 3), (4, 9), (9, 10), (0, 0)])
    enc = tok.encode_plus("hello world !", "the movies", max_length=8, truncation=True)
    assert (enc.input_ids, enc.token_type_ids, enc.offsets) == expected
    batch = tok.encode_batch(["hello world !", "hello"], ["the movies", "the"], max_length=8, truncation=True)
    assert (batch[0].input_ids, batch[0].token_type_ids, batch[0].offsets) == expected
    assert batch[1].input_ids == [2, 8, 3, 12, 3, 0, 0, 0]


@needs_minilm
def test_the_issues_pair_as_the_fast_tokenizer_cuts_it():
    tok = load_tokenizer(resolve_init("minilm"))
    enc = tok.encode_plus("one two three four five", "one two three four five", max_length=10, truncation=True)
    assert tok.convert_ids_to_tokens(enc.input_ids) == ["[CLS]", "one", "two", "three", "[SEP]",
                                                        "one", "two", "three", "four", "[SEP]"]


def test_encode_words_marks_each_tokens_word():
    tok = hand_built()
    ids, word_ids = tok.encode_words(["Hello", "cartoons,", "[MASK]", "\x00"])
    assert ids == [2, 8, 22, 23, 14, 10, 4, 3]  # car ##toon ##s , all from word 1; word 3 gives no token
    assert word_ids == [None, 0, 1, 1, 1, 1, 2, None]
    assert tok.encode_words(["Hello", "cartoons,"], max_length=4) == ([2, 8, 22, 3], [None, 0, 1, None])
    assert tok.encode_words([]) == ([2, 3], [None, None])
    with pytest.raises(ValueError, match="no room for \\[CLS\\] and \\[SEP\\]"):
        tok.encode_words(["hello"], max_length=1)


def test_encode_words_on_conll_agrees_with_the_joined_text():
    tok = trained(False)
    for words, _ in conll2003("dev")[:50]:
        ids, word_ids = tok.encode_words(words)
        assert ids == tok.encode_plus(" ".join(words)).input_ids
        inner = word_ids[1:-1]
        assert inner == sorted(inner) and set(inner) == set(range(len(words)))  # every word, in order


def test_batch_pads_to_the_longest():
    encs = hand_built().encode_batch(["hello", "hello world !"])
    assert [e.input_ids for e in encs] == [[2, 8, 3, 0, 0], [2, 8, 9, 11, 3]]
    assert [e.attention_mask for e in encs] == [[1, 1, 1, 0, 0], [1] * 5]


def test_decode_glues_continuations():
    tok = hand_built()
    assert tok.decode([2, 5, 6, 7, 11, 3]) == "unaffable !"
    assert tok.decode([2, 5, 3], skip_special_tokens=False) == "[CLS] un [SEP]"
    with pytest.raises(ValueError, match="id 31 at position 1"):
        tok.decode([5, 31])


def test_training_by_hand():
    # Words "aab", "ab": alphabet a (5), ##a (6), ##b (7); pairs (a,##a), (##a,##b), (a,##b) all count 1.
    # Ties go to the smallest ids: (5,6) -> "aa"; then (5,7) -> "ab" beats (8,7); then (8,7) -> "aab".
    tok = WordPieceTokenizer.train("AAB Ab", 11)
    assert tok.itos == ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "a", "##a", "##b", "aa", "ab", "aab"]
    assert tok.encode("aab ab aaab") == [10, 9, 8, 6, 7]


def test_training_keeps_the_most_frequent_alphabet():
    tok = WordPieceTokenizer.train(["酒店 酒店 酒", "好"], 7)
    assert tok.itos[5:] == ["店", "酒"] and tok.encode("好酒") == [1, 6]


def test_trained_on_real_text_round_trips_through_files(tmp_path):
    tok = trained(True)
    assert tok.vocab_size == 600
    tok.save(tmp_path)
    with open(tmp_path / "vocab.txt", encoding="utf-8") as f:
        assert f.read().split("\n")[:5] == ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    back = load_tokenizer(tmp_path)
    assert isinstance(back, WordPieceTokenizer) and back.itos == tok.itos and back.lowercase
    review = imdb("test", limit=1)[0][0]
    assert back.encode(review) == tok.encode(review) and tok.unk_id not in tok.encode("the movie")
    os.remove(tmp_path / "tokenizer_config.json")  # vocab.txt alone says WordPiece, lower-cased
    assert load_tokenizer(tmp_path).encode(review) == tok.encode(review)


def test_cased_config_is_read(tmp_path):
    hand_built(False).save(tmp_path)
    assert load_tokenizer(tmp_path).encode("Hello hello") == [1, 8]


def test_mpnets_special_tokens_come_from_its_tokenizer_config(tmp_path):
    """MPNet's files (all-mpnet-base-v2's layout): WordPiece whose sentence is <s> ... </s>, <pad> id 1,
    the mask token a dict; the class name survives a save."""
    vocab = ["<s>", "<pad>", "</s>", "<unk>", "[UNK]", "the", "film", "##s", "<mask>"]
    (tmp_path / "vocab.txt").write_text("".join(t + "\n" for t in vocab), encoding="utf-8")
    (tmp_path / "tokenizer_config.json").write_text(
        '{"tokenizer_class": "MPNetTokenizer", "do_lower_case": true, "bos_token": "<s>", "eos_token": "</s>", '
        '"sep_token": "</s>", "cls_token": "<s>", "unk_token": "[UNK]", "pad_token": "<pad>", '
        '"mask_token": {"content": "<mask>", "lstrip": true}}', encoding="utf-8")
    tok = load_tokenizer(tmp_path)
    assert (tok.cls_id, tok.sep_id, tok.pad_id, tok.unk_id, tok.mask_id) == (0, 2, 1, 4, 8)
    assert tok.encode_plus("The films <mask> jazz").input_ids == [0, 5, 6, 7, 8, 4, 2]
    assert tok.encode_batch(["the", "the film"])[0].input_ids == [0, 5, 2, 1]
    # a pair as MPNetTokenizerFast writes it (RoBERTa's): <s> a </s></s> b </s>, four special tokens to fit
    assert tok.encode_plus("the film", "films").input_ids == [0, 5, 6, 2, 2, 6, 7, 2]
    assert tok.encode_plus("the film", "films", max_length=6, truncation=True).input_ids == [0, 5, 2, 2, 6, 2]
    tok.save(tmp_path / "again")
    assert load_tokenizer(tmp_path / "again").tokenizer_class == "MPNetTokenizer"


def test_vocabulary_without_special_tokens_names_the_file(tmp_path):
    (tmp_path / "vocab.txt").write_text("a\nb\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"vocab.txt: unk_token '\[UNK\]' is not in the vocabulary"):
        WordPieceTokenizer.load(tmp_path)


# Any code point, lone surrogates included, with Hangul, ß, İ, a combining accent and [MASK] made likely.
ANY_TEXT = st.text(st.one_of(st.characters(), st.characters(categories=["Cs"]),
                             st.sampled_from("한ß İ[MASK]\u0301")))


@pytest.mark.parametrize("lowercase", [True, False])
@given(text=ANY_TEXT)
def test_offsets_slice_the_original_text(lowercase, text):
    tok = trained(lowercase)
    last_end = 0
    for token_id, start, end in tok.tokenize_with_offsets(text):
        assert last_end <= start < end <= len(text)
        last_end = end
        if token_id in tok.special_ids and text[start:end] == tok.itos[token_id]:
            continue  # a special token written in the text
        norm = "".join(normalize_char(c, lowercase) for c in text[start:end])
        piece = tok.itos[token_id].removeprefix("##")
        if token_id == tok.unk_id:
            assert norm and not norm.isspace()
        elif lowercase:
            assert piece in norm
        else:
            assert norm == piece


@given(text=st.text(st.characters(max_codepoint=127)))
def test_offsets_of_ascii_text_are_exact_when_lower_casing(text):
    tok = trained(True)
    for token_id, start, end in tok.tokenize_with_offsets(text):
        if token_id not in tok.special_ids:
            assert "".join(normalize_char(c, True) for c in text[start:end]) == tok.itos[token_id].removeprefix("##")


@given(text=ANY_TEXT, pair=st.one_of(st.none(), ANY_TEXT), max_length=st.one_of(st.none(), st.integers(0, 12)),
       truncation=st.booleans(), padding=st.sampled_from([False, "max_length"]))
def test_encode_plus_raises_only_documented_errors(text, pair, max_length, truncation, padding):
    tok = trained(True)
    try:
        enc = tok.encode_plus(text, pair, max_length, truncation, padding)
    except ValueError as err:
        assert any(m in str(err) for m in ("exceed max_length", "no room for", "needs max_length"))
    else:
        fields = [enc.input_ids, enc.token_type_ids, enc.attention_mask, enc.offsets, enc.special_tokens_mask]
        assert len({len(f) for f in fields}) == 1
        assert max_length is None or len(enc.input_ids) <= max_length
        assert padding != "max_length" or len(enc.input_ids) == max_length
