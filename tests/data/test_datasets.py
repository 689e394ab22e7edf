"""The dataset registry and the stratified split."""

import collections

import pytest

from minillm.data.datasets import DATASETS, stratified_split


def test_stratified_split_proportions_and_errors():
    labels = ["a"] * 10 + ["b"] * 20
    train, dev = stratified_split(labels, (0.7, 0.3), seed=3)
    assert sorted(train + dev) == list(range(30))
    assert collections.Counter(labels[i] for i in dev) == {"a": 3, "b": 6}
    with pytest.raises(ValueError, match="sum to 1"):
        stratified_split(labels, (0.5, 0.4))


def test_registry_lists_every_task_dataset():
    for name in ("sst2", "ag_news", "snips", "conll2003", "squad1.1"):
        entry = DATASETS[name]
        assert entry.name == name and entry.files and entry.about
