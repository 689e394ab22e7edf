"""Few-shot draws: exactly K per class, fixed by the seed, nested across K, never from the evaluation split."""

import collections

import pytest

from minillm.data.fewshot import DRAW_SEEDS, draw_indices, fewshot_task

LABELS = [0, 1, 2] * 40 + [0, 2] * 10  # 50, 40 and 50 examples


def test_exactly_k_per_class_and_fixed_by_the_seed():
    for k in (0, 1, 8, 40):
        rows = draw_indices(LABELS, k, seed=13, n_classes=3)
        assert len(set(rows)) == len(rows) == 3 * k
        assert collections.Counter(LABELS[i] for i in rows) == ({c: k for c in range(3)} if k else {})
    assert draw_indices(LABELS, 8, 13, 3) == draw_indices(LABELS, 8, 13, 3)
    assert draw_indices(LABELS, 8, 13, 3) != draw_indices(LABELS, 8, 21, 3)


def test_draws_of_one_seed_are_nested():
    small, large = draw_indices(LABELS, 8, 42, 3), draw_indices(LABELS, 16, 42, 3)
    for c in range(3):
        assert [i for i in small if LABELS[i] == c] == [i for i in large if LABELS[i] == c][:8]


def test_a_class_smaller_than_k_is_an_error_naming_it():
    with pytest.raises(ValueError, match=r"class 'b' has 40 training examples, fewer than K = 41"):
        draw_indices(LABELS, 41, 13, 3, names=["a", "b", "c"])


def test_snips_draws_never_hold_an_evaluation_text():
    task = fewshot_task("intent")
    assert (task.eval_split, len(task.eval_texts), len(task.names)) == ("test", 700, 7)
    scored = set(task.eval_texts)
    assert len(task.pool_texts) == 13_084 - 64  # 64 training utterances occur word for word in test
    for seed in DRAW_SEEDS:
        texts, labels = task.draw(16, seed)
        assert not scored & set(texts)
        assert collections.Counter(labels) == {c: 16 for c in range(7)}


def test_min_words_leaves_short_texts_out_of_the_pool():
    whole, long = fewshot_task("intent"), fewshot_task("intent", min_words=8)
    assert long.pool_texts == [t for t in whole.pool_texts if len(t.split()) >= 8]
    assert 0 < len(long.pool_texts) < len(whole.pool_texts)
    assert f"and {len(whole.pool_texts) - len(long.pool_texts)} of fewer than 8 words" in long.note
    assert long.eval_texts == whole.eval_texts
