"""Batching of tasks: length-grouped fine-tuning epochs, BERT's held-out pairs."""

from hypothesis import given, strategies as st

from minillm.backend import np
from minillm.tasks.batching import epoch_batches
from minillm.tasks.masked_lm import MaskedLMTask, SpecialTokens


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


def test_bert_held_out_pairs_do_not_depend_on_the_training_batch_size():
    rng = np.random.default_rng(0)
    docs = [[rng.integers(5, 50, rng.integers(3, 12)).tolist() for _ in range(6)] for _ in range(40)]
    special = SpecialTokens(pad=0, unk=1, cls=2, sep=3, mask=4)
    small, large = (MaskedLMTask(None, docs, docs, batch_size, 24, special, 50, eval_iters=3)
                    for batch_size in (4, 16))
    assert len(small.val_batches) == 3 and small.val_batches[0]["input_ids"].shape == (MaskedLMTask.EVAL_ROWS, 24)
    for a, b in zip(small.val_batches, large.val_batches):
        assert all((a[k] == b[k]).all() for k in a)
    assert small.batch(0)["input_ids"].shape == (4, 24)
