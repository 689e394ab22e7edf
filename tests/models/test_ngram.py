"""n-gram models: normalisation, hand-computed discounts and probabilities, ARPA round trips."""

import math

import pytest
from hypothesis import given, strategies as st

from minillm.backend import host_rng, np
from minillm.models import kneser_ney
from minillm.models.arpa import read_arpa, write_arpa
from minillm.models.ngram import SMOOTHINGS, train_ngram
from minillm.models.ngram_counts import UNK_ID, count_ngrams, encode_training, tokens_of

# Bigram raw counts: <s> a 4, a </s> 4, <s> b 3, b </s> 3, <s> c 2, c </s> 2,
# <s> d 1, d </s> 1, <s> e 1, e f 1, f </s> 1  ->  n1 = 5, n2 = 2, n3 = 2, n4 = 2.
HAND = ["a"] * 4 + ["b"] * 3 + ["c"] * 2 + ["d", "e f"]
V_PREDICTED = 8  # <unk> </s> a b c d e f: every word but <s>

corpora = st.lists(st.lists(st.sampled_from("abcde"), max_size=7).map(" ".join), min_size=1, max_size=8)


def contexts_of(lines):
    """Every context a model meets on `lines`: each prefix of each sentence."""
    for line in lines:
        tokens = tokens_of(line)
        for i in range(len(tokens) + 1):
            yield tokens[:i]


@given(train=corpora, test=corpora, order=st.integers(1, 4), smoothing=st.sampled_from(SMOOTHINGS))
def test_probabilities_sum_to_one_for_every_context(train, test, order, smoothing):
    model = train_ngram(train, order, smoothing, k=0.5)
    for context in contexts_of(train + test + ["zz " + test[0]]):
        p = 10.0 ** model.next_log10_probs(context)
        assert p[1] == 0.0  # <s> is never predicted
        assert abs(p.sum() - 1.0) < 1e-9, (context, p.sum())


def test_bigram_discounts_by_hand():
    vocab, corpus = encode_training(HAND)
    tables = kneser_ney.adjusted_counts(count_ngrams(corpus, 2, len(vocab)))
    assert kneser_ney.count_of_counts(tables[1]) == [5, 2, 2, 2]
    y = 5 / (5 + 2 * 2)  # n1 / (n1 + 2 n2) = 5/9
    by_hand = (1 - 2 * y * 2 / 5, 2 - 3 * y * 2 / 2, 3 - 4 * y * 2 / 2)  # = 5/9, 1/3, 7/9
    d, fell_back = kneser_ney.discounts(tables[1])
    assert not fell_back and d == pytest.approx(by_hand, abs=1e-15)
    assert d == pytest.approx((5 / 9, 1 / 3, 7 / 9), abs=1e-15)
    # unigram continuation counts: a b c d e f have one left word each, </s> five (a b c d f)
    unigrams = dict(zip(vocab.words, tables[0].tolist()))
    assert unigrams == {"<unk>": 0, "<s>": 0, "</s>": 5, "a": 1, "b": 1, "c": 1, "d": 1, "e": 1, "f": 1}
    assert kneser_ney.discounts(tables[0]) == (kneser_ney.KENLM_FALLBACK, True)  # n2 = 0


def test_modified_kneser_ney_probability_by_hand():
    model = train_ngram(HAND, 2, "modified-kneser-ney")
    d1, d2, d3 = 5 / 9, 1 / 3, 7 / 9
    # unigrams: adjusted counts six 1s and one 5 (</s>), fallback discounts 0.5, 1, 1.5
    gamma_unigram = (0.5 * 6 + 1.5 * 1) / 11
    p_a = (1 - 0.5) / 11 + gamma_unigram / V_PREDICTED
    p_unk = gamma_unigram / V_PREDICTED
    # after <s>: a 4, b 3, c 2, d 1, e 1 (total 11); N1 = 2, N2 = 1, N3+ = 2
    gamma_bos = (d1 * 2 + d2 * 1 + d3 * 2) / 11
    p_a_bos = (4 - d3) / 11 + gamma_bos * p_a
    logp = model.next_log10_probs([])
    assert 10 ** logp[model.vocab.index["a"]] == pytest.approx(p_a_bos, rel=1e-12)
    assert 10 ** logp[0] == pytest.approx(gamma_bos * p_unk, rel=1e-12)  # <unk>: only the uniform share
    # "e" is a context seen once (e f): backoff gamma(e) = D1 / 1
    assert 10 ** model.next_log10_probs(["e"])[model.vocab.index["a"]] == pytest.approx(d1 * p_a, rel=1e-12)


def test_interpolated_kneser_ney_uses_one_discount():
    model = train_ngram(HAND, 2, "kneser-ney")
    assert model.discounts[1] == pytest.approx((5 / 9,) * 3)  # Y = n1 / (n1 + 2 n2)
    assert model.discounts[0] == (0.75,) * 3 and model.fallback_orders == [1]  # unigrams: n2 = 0


def test_maximum_likelihood_and_add_k_by_hand():
    ml = train_ngram(HAND, 2, "ml")
    a = ml.vocab.index["a"]
    laplace = train_ngram(HAND, 2, "laplace")
    add_half = train_ngram(HAND, 2, "add-k", k=0.5)
    assert 10 ** ml.next_log10_probs([])[a] == pytest.approx(4 / 11)  # c(<s> a) / c(<s>)
    assert 10 ** laplace.next_log10_probs([])[a] == pytest.approx((4 + 1) / (11 + V_PREDICTED))
    assert 10 ** add_half.next_log10_probs([])[a] == pytest.approx((4 + 0.5) / (11 + 0.5 * V_PREDICTED))
    f = ml.vocab.index["f"]
    assert 10 ** ml.next_log10_probs(["e"])[f] == pytest.approx(1.0)
    assert 10 ** laplace.next_log10_probs(["e"])[f] == pytest.approx(2 / (1 + V_PREDICTED))
    # an unseen context: ML falls back to unigrams (a: 4 of 23 tokens, </s> included), add-k is uniform
    assert 10 ** ml.next_log10_probs(["zz"])[a] == pytest.approx(4 / 23)
    assert 10 ** laplace.next_log10_probs(["zz"])[a] == pytest.approx(1 / V_PREDICTED)
    assert ml.next_log10_probs(["e"])[a] == -np.inf  # ML gives unseen events nothing


def test_evaluate_counts_end_of_sentence_and_oovs():
    model = train_ngram(HAND, 2, "modified-kneser-ney")
    result = model.evaluate(["a zz", ""])
    assert result["tokens"] == 4 and result["oov"] == 1  # a zz </s> | </s>
    logp = [model.next_log10_probs([])[model.vocab.index["a"]], model.next_log10_probs(["a"])[0],
            model.next_log10_probs(["a", "zz"])[2], model.next_log10_probs([])[2]]
    nats = -sum(logp) * math.log(10)
    assert result["cross_entropy"] == pytest.approx(nats / 4)
    assert result["perplexity"] == pytest.approx(math.exp(nats / 4))
    known = -(sum(logp) - logp[1]) * math.log(10) / 3
    assert result["cross_entropy_without_oov"] == pytest.approx(known)


def test_special_words_in_training_text():
    assert train_ngram(["a <unk> b"], 2).evaluate(["a b"])["oov"] == 0  # skipped like lmplz --skip_symbols
    with pytest.raises(ValueError, match="training line 2: the special word <s>"):
        train_ngram(["a", "b <s>"], 2, special_tokens="error")


def test_character_tokens_and_sampling():
    lines = [list("to be or not"), list("to see")]
    model = train_ngram(lines, 3, "modified-kneser-ney", discount_fallback=(0.5, 1.0, 1.5))
    sample = model.sample(host_rng(0), max_tokens=30)
    assert sample == model.sample(host_rng(0), max_tokens=30)
    assert set(sample) <= set("tobernsee ") | {"<unk>"} and len(sample) <= 30
    assert model.evaluate([list("to be")])["tokens"] == 6


@given(train=corpora, order=st.integers(1, 4), smoothing=st.sampled_from(["kneser-ney", "modified-kneser-ney"]))
def test_arpa_round_trip(tmp_path_factory, train, order, smoothing):
    model = train_ngram(train, order, smoothing)
    path = tmp_path_factory.mktemp("arpa") / "model.arpa"
    write_arpa(model, path)
    again = read_arpa(path)
    assert again.vocab.words == model.vocab.words
    for n in range(order):
        assert np.array_equal(again.keys[n], model.keys[n])
        assert np.array_equal(again.log10_p[n], model.log10_p[n])
        assert np.array_equal(again.log10_backoff[n], model.log10_backoff[n])
    test = train + ["zz a b"]
    assert again.evaluate(test) == model.evaluate(test)


def test_read_hand_written_arpa(tmp_path):
    path = tmp_path / "lm.arpa"
    path.write_text("\\data\\\nngram 1=3\nngram 2=2\n\n\\1-grams:\n-1.0 <s> -0.5\n-0.5 </s>\n-0.3 a -0.2\n\n"
                    "\\2-grams:\n-0.1 <s> a\n-0.2 a </s>\n\n\\end\\\n")
    model = read_arpa(path)
    assert model.vocab.words == ["<unk>", "<s>", "</s>", "a"]
    # p(a | <s>) is stored; p(</s> | <s>) backs off: -0.5 + -0.5; <unk> was missing: -100 (as KenLM)
    assert model.next_log10_probs([])[3] == pytest.approx(-0.1)
    assert model.next_log10_probs([])[2] == pytest.approx(-1.0)
    assert model.next_log10_probs(["a"])[2] == pytest.approx(-0.2)
    assert model.next_log10_probs([])[0] == pytest.approx(-100.5)


def test_bad_arpa_names_the_line(tmp_path):
    path = tmp_path / "bad.arpa"
    path.write_text("\\data\\\nngram 1=2\nngram 2=1\n\n\\1-grams:\n-1 <s>\n-1 </s>\n\n"
                    "\\2-grams:\n-1 x </s>\n\n\\end\\\n")
    with pytest.raises(ValueError, match="word x that is no 1-gram"):
        read_arpa(path)
    path.write_text("\\data\\\nngram 1=2\n\n\\1-grams:\n-1 <s>\n-1 </s> 0 9\n\n\\end\\\n")
    with pytest.raises(ValueError, match=r"bad.arpa:6: a 1-gram line needs"):
        read_arpa(path)
    path.write_text("\\data\\\nngram 1=3\n\n\\1-grams:\n-1 <s>\n-1 </s>\n\n\\end\\\n")
    with pytest.raises(ValueError, match="declares 3 1-grams, the file lists 2"):
        read_arpa(path)


def test_add_k_has_no_arpa_form(tmp_path):
    with pytest.raises(TypeError, match="only backoff models"):
        write_arpa(train_ngram(HAND, 2, "laplace"), tmp_path / "x.arpa")


def test_degenerate_corpora_and_bad_arguments():
    for smoothing in SMOOTHINGS:
        model = train_ngram(["", ""], 3, smoothing)  # only <s> </s>: no trigrams at all
        assert model.evaluate(["", "a"])["tokens"] == 3
        assert abs((10.0 ** model.next_log10_probs(["a", "b"])).sum() - 1) < 1e-12
    with pytest.raises(ValueError, match="unknown smoothing 'kn'"):
        train_ngram(HAND, 2, "kn")
    with pytest.raises(ValueError, match="order must be a positive integer"):
        train_ngram(HAND, 0)


# KenLM 0.3.0's `lmplz -o 3 --discount_fallback` on LMPLZ_TINY, one sentence a
# line (bigram discounts fall back to 0.5 1 1.5 in both: their n3 is 0), scored
# word by word: log10 p of each word and of </s>, as KenLM's `query` prints
# them. The model file itself stays out of git; these are its probabilities
# (6 decimals; lmplz writes float32). The probes reach unseen bigrams, trigrams
# and an OOV word.
LMPLZ_TINY = HAND + ["a b a", "b a c", "e f a b", "g"]
LMPLZ_LOG10 = {
    "a b a": [-0.583719, -1.053273, -0.470781, -0.435438],
    "b a c": [-0.674146, -0.936258, -0.615684, -0.144534],
    "e f a b": [-0.975176, -0.095449, -0.470781, -0.354303, -0.393176],
    "g": [-1.139368, -0.144534],
    "a": [-0.583719, -0.071408],
    "b": [-0.674146, -0.086264],
    "c": [-0.951695, -0.078384],
    "d": [-1.139368, -0.144534],
    "e f": [-0.975176, -0.095449, -0.393176],
    "zz a b c": [-1.561442, -1.163502, -0.591128, -1.373871, -0.205826],
    "g f e d c b a": [-1.139368, -1.434569, -1.309630, -1.309630, -1.248932, -1.248932, -0.546202, -0.435438],
    "c g b d": [-0.951695, -1.668652, -1.248932, -1.309630, -0.205826],
}


def test_modified_kneser_ney_matches_lmplz():
    ours = train_ngram(LMPLZ_TINY, 3, "modified-kneser-ney")
    for line, expected in LMPLZ_LOG10.items():
        words = tokens_of(line) + ["</s>"]
        mine = [ours.next_log10_probs(words[:i])[ours.vocab.index.get(w, UNK_ID)] for i, w in enumerate(words)]
        assert np.abs(np.array(mine) - expected).max() < 2e-6, line


def test_maximum_likelihood_perplexity_is_infinite_on_unseen_events():
    result = train_ngram(HAND, 2, "ml").evaluate(["a", "zz"])
    assert result["perplexity"] == math.inf  # the OOV zz has probability 0
    # a | <s>: 4/11; </s> | a: 4/4; </s> | <unk>: context unseen, so the unigram 11/23
    assert result["perplexity_without_oov"] == pytest.approx((4 / 11 * 1 * 11 / 23) ** (-1 / 3))


def test_arpa_keeps_words_with_unicode_spaces(tmp_path):
    lines = ["climax)\u0085though it ends", "it\u00a0ends"]  # lmplz splits on ASCII blanks only
    model = train_ngram(lines, 2)
    assert "climax)\u0085though" in model.vocab.index
    write_arpa(model, tmp_path / "u.arpa")
    assert read_arpa(tmp_path / "u.arpa").vocab.words == model.vocab.words
    with pytest.raises(ValueError, match="the word ' ' cannot be written in ARPA"):
        write_arpa(train_ngram([list("a b")], 2), tmp_path / "chars.arpa")
