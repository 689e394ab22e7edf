"""Batches of labelled sequences: every example once an epoch, grouped by length, in a seeded order."""

from hypothesis import given, strategies as st

from minillm.backend import np
from minillm.tasks.batching import epoch_batches


@given(st.lists(st.integers(1, 60), min_size=1, max_size=300), st.integers(1, 16), st.integers(0, 3),
       st.booleans())
def test_every_example_once_per_epoch(lengths, batch_size, epoch, grouped):
    batches = epoch_batches(lengths, batch_size, seed=5, epoch=epoch, group_by_length=grouped, batches_per_group=4)
    seen = np.concatenate(batches)
    assert sorted(seen.tolist()) == list(range(len(lengths)))
    assert all(1 <= len(b) <= batch_size for b in batches)
    assert sum(len(b) < batch_size for b in batches) <= 1  # only the epoch's last examples make a short batch


def test_grouping_cuts_padding_and_order_depends_on_seed_and_epoch():
    lengths = np.random.default_rng(0).integers(1, 100, 2000).tolist()

    def padded(batches):
        return sum(len(b) * max(lengths[i] for i in b) for b in batches)

    grouped = epoch_batches(lengths, 32, seed=1, epoch=0)
    plain = epoch_batches(lengths, 32, seed=1, epoch=0, group_by_length=False)
    assert padded(grouped) < 0.6 * padded(plain)  # sorted groups of 50 batches: ~3% padding instead of ~95%
    again = epoch_batches(lengths, 32, seed=1, epoch=0)
    assert all((a == b).all() for a, b in zip(grouped, again))  # exact resume sees the same batches
    assert [b.tolist() for b in epoch_batches(lengths, 32, seed=1, epoch=1)] != [b.tolist() for b in grouped]
    assert [b.tolist() for b in epoch_batches(lengths, 32, seed=2, epoch=0)] != [b.tolist() for b in grouped]
