"""The episode sampler: N, K and Q exact, examples distinct, seeded; the meta-learning split's classes disjoint."""

import os

import pytest
from hypothesis import given, strategies as st

from minillm.backend import np
from minillm.data.episodes import META_TEST_INTENTS, EpisodeSampler, meta_split


@given(st.integers(0, 1000), st.integers(1, 4), st.integers(1, 3), st.integers(1, 3), st.integers(0, 50))
def test_episodes_have_n_classes_k_support_and_q_queries_all_distinct(seed, n, k, q, index):
    labels = np.repeat(np.arange(6), 7)  # six classes of seven examples
    sampler = EpisodeSampler(labels, [[0, 1, 2, 3], [4, 5, 0, 1]], n, k, q, seed)
    classes, support, query = sampler.episode(index)
    assert support.shape == (n, k) and query.shape == (n, q)
    assert len(set(classes.tolist())) == n
    assert set(classes.tolist()) <= {0, 1, 2, 3} or set(classes.tolist()) <= {4, 5, 0, 1}  # one group
    rows = np.concatenate([support.ravel(), query.ravel()])
    assert len(set(rows.tolist())) == rows.size  # no example twice
    assert (labels[support] == classes[:, None]).all() and (labels[query] == classes[:, None]).all()
    again = EpisodeSampler(labels, [[0, 1, 2, 3], [4, 5, 0, 1]], n, k, q, seed).episode(index)
    assert all((a == b).all() for a, b in zip(again, (classes, support, query)))


def test_different_seeds_and_episodes_differ():
    labels = np.repeat(np.arange(5), 20)
    a, b = EpisodeSampler(labels, [range(5)], 3, 2, 2, 0), EpisodeSampler(labels, [range(5)], 3, 2, 2, 1)
    assert not (a.episode(0)[1] == b.episode(0)[1]).all()
    assert not (a.episode(0)[1] == a.episode(1)[1]).all()


def test_too_small_classes_and_groups_are_errors():
    labels = np.repeat(np.arange(3), 4)
    with pytest.raises(ValueError, match="cannot make 4-way"):
        EpisodeSampler(labels, [[0, 1, 2]], 4, 1, 1)
    with pytest.raises(ValueError, match="class 0 has 4 examples"):
        EpisodeSampler(labels, [[0, 1, 2]], 2, 3, 2)


@pytest.mark.skipif(not os.environ.get("MINILLM_DATA"), reason="needs $MINILLM_DATA (SNIPS and AG News)")
def test_meta_train_and_meta_test_classes_are_disjoint():
    splits, names = meta_split()
    train_classes, test_classes = set(splits["train"][1]), set(splits["test"][1])
    assert not train_classes & test_classes
    assert {names[c] for c in test_classes} == set(META_TEST_INTENTS)
    assert len(train_classes) == 8 and {c for g in splits["train"][2] for c in g} == train_classes
