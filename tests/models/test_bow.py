"""Bag-of-n-grams features and classifiers: n-grams, tf-idf, the sparse product and its gradient, naive Bayes."""

import math

import pytest
from hypothesis import given, strategies as st

from minillm.backend import host_rng, np, to_device, to_host, xp
from minillm.data.labelled import classification_data
from minillm.models import bow
from minillm.nn.gradcheck import gradcheck
from minillm.nn.loss import cross_entropy_backward, cross_entropy_forward


def random_rows(rng, n_rows, n_columns, density=0.4):
    """A random SparseRows (some rows may be empty) and the same matrix dense."""
    dense = rng.standard_normal((n_rows, n_columns)) * (rng.random((n_rows, n_columns)) < density)
    rows, columns = np.nonzero(dense)
    indptr = np.concatenate([[0], np.cumsum(np.bincount(rows, minlength=n_rows))])
    return bow.SparseRows(dense[rows, columns], columns, indptr, n_columns), dense


def test_ngrams_and_vectorizer_counts_by_hand():
    assert bow.ngrams("Not good, not BAD.") == ["not", "good", ",", "not", "bad", ".",
                                                 "not good", "good ,", ", not", "not bad", "bad ."]
    assert bow.ngrams("房间很好, ok", n_max=1) == ["房", "间", "很", "好", ",", "ok"]  # one token per ideograph
    vectorizer = bow.NgramVectorizer(n_max=1).fit(["a a b", "b c"])
    assert vectorizer.vocabulary == {"a": 0, "b": 1, "c": 2}
    x = vectorizer.transform(["b a a unseen", ""])
    assert x.indptr.tolist() == [0, 2, 2] and x.columns.tolist() == [0, 1] and x.values.tolist() == [2.0, 1.0]
    assert vectorizer.idf.tolist() == pytest.approx([math.log(3 / 2) + 1, 1.0, math.log(3 / 2) + 1])


def test_tfidf_rows_have_unit_norm():
    vectorizer = bow.NgramVectorizer(n_max=1, tfidf=True).fit(["a a b", "b c", "c d e"])
    x = vectorizer.transform(["a a b", "", "d d c"])
    a, b = 2 * (math.log(4 / 2) + 1), math.log(4 / 3) + 1  # "a" twice and "b" once, by their idf
    assert x.values[x.indptr[0]:x.indptr[1]].tolist() == pytest.approx([a / math.hypot(a, b), b / math.hypot(a, b)])
    assert np.bincount(x.row_ids(), weights=x.values ** 2, minlength=3).tolist() == pytest.approx([1.0, 0.0, 1.0])


@given(st.integers(1, 6), st.integers(1, 7), st.integers(1, 4), st.integers(0, 2 ** 16))
def test_sparse_product_and_take_match_dense(n_rows, n_columns, n_classes, seed):
    rng = host_rng(seed)
    x, dense = random_rows(rng, n_rows, n_columns)
    w, b = rng.standard_normal((n_columns, n_classes)), rng.standard_normal(n_classes)
    scores, _ = bow.sparse_linear_forward(x, to_device(w), to_device(b))
    assert to_host(scores) == pytest.approx(dense @ w + b)
    picked = rng.integers(0, n_rows, size=5)
    part = x.take(picked)
    scores, _ = bow.sparse_linear_forward(part, to_device(w), to_device(b))
    assert to_host(scores) == pytest.approx(dense[picked] @ w + b)


@given(st.integers(1, 5), st.integers(1, 6), st.integers(2, 4), st.integers(0, 2 ** 16))
def test_softmax_regression_loss_gradient(n_rows, n_columns, n_classes, seed):
    """d(mean cross-entropy)/d(W, b, input values) against central differences, float64."""
    rng = host_rng(seed)
    x, _ = random_rows(rng, n_rows, n_columns, density=0.6)
    labels = to_device(rng.integers(0, n_classes, n_rows))
    layer = bow.SparseLinear(n_columns, n_classes, dtype="float64")
    layer.weight.data = to_device(rng.standard_normal((n_columns, n_classes)))
    layer.bias.data = to_device(rng.standard_normal(n_classes))
    caches = []

    def forward(values):
        loss, cache = cross_entropy_forward(layer(bow.SparseRows(values, x.columns, x.indptr, n_columns)), labels)
        caches[:] = [cache]
        return xp.asarray(loss)

    def backward(dloss):
        return layer.backward(cross_entropy_backward(dloss, caches[0]))

    errors = gradcheck(forward, backward, (to_device(x.values),), list(layer.named_parameters()))
    expected = ["weight", "bias"] + (["input0"] if x.values.size else [])
    assert sorted(errors) == sorted(expected)
    assert max(errors.values()) <= 1e-6, errors


def test_naive_bayes_by_hand():
    assert bow.ngrams("房间很好, ok", n_max=1) == ["房", "间", "很", "好", ",", "ok"]  # one token per ideograph
    vectorizer = bow.NgramVectorizer(n_max=1).fit(["a a b", "b c"])
    nb = bow.MultinomialNB(alpha=1.0).fit(vectorizer.transform(["a a b", "b c"]), [0, 1])
    # counts + 1: class 0 (a 3, b 2, c 1) / 6, class 1 (a 1, b 2, c 2) / 5; priors 1/2.
    assert np.exp(nb.log_likelihood).ravel().tolist() == pytest.approx([3 / 6, 1 / 5, 2 / 6, 2 / 5, 1 / 6, 2 / 5])
    # "a c": class 0 has 1/2 * 3/6 * 1/6 = 1/24, class 1 has 1/2 * 1/5 * 2/5 = 1/25.
    proba = nb.predict_proba(vectorizer.transform(["a c"]))
    assert proba[0].tolist() == pytest.approx([(1 / 24) / (1 / 24 + 1 / 25), (1 / 25) / (1 / 24 + 1 / 25)])
    assert nb.predict(vectorizer.transform(["a c", "c c", "zzz"])).tolist() == [0, 1, 0]  # tie -> lowest class


def test_chnsenticorp_split_is_stratified_and_disjoint():
    splits, names, note = classification_data("sentiment", "chnsenticorp")
    sizes = {s: len(splits[s][0]) for s in splits}
    assert sizes == {"train": 6213, "dev": 777, "test": 776}  # per class: round(0.8 n), round(0.9 n) - ...
    assert sum(splits["train"][1]) == round(0.8 * 5322) and "80/10/10" in note
    assert not set(splits["train"][0]) & set(splits["test"][0]) - {""}
