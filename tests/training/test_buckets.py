"""Gradient buckets: the partition, the sums started during backward by every model that reports its
blocks, none with threads, only in the last micro-batch, and the same summed gradient as one Allreduce."""

import pytest
from hypothesis import given, strategies as st

from minillm.backend import to_host, xp
from minillm.models.bert import BertConfig
from minillm.models.bert_pretraining import BertForPreTraining
from minillm.models.gpt import GPT, GPTConfig
from minillm.models.heads import (BertForQuestionAnswering, BertForSequenceClassification, BertForTokenClassification,
                                  GPTForSequenceClassification, GPTForTokenClassification)
from minillm.nn.parallel import BatchParallel
from minillm.training.buckets import partition
from minillm.training.optim import AdamW
from minillm.training.ranks import OneProcess
from minillm.training.task import Task
from minillm.training.trainer import TrainConfig, Trainer


@given(st.lists(st.integers(0, 50), max_size=30), st.integers(0, 120))
def test_buckets_hold_every_parameter_once_within_the_bound_last_first(sizes, limit):
    buckets = partition(sizes, limit)
    covered = [i for first, end in reversed(buckets) for i in range(first, end)]
    assert covered == list(range(len(sizes)))  # each parameter once; the last parameters' bucket first
    assert all(end > first for first, end in buckets)
    for k, (first, end) in enumerate(buckets):
        held = sum(sizes[first:end])
        if limit == 0:
            assert len(buckets) == 1
        elif end - first > 1:
            assert held <= limit  # only a parameter larger than a bucket makes one larger
        if limit and k + 1 < len(buckets):  # filled: the next parameter would not have fitted
            assert held + sizes[first - 1] > limit


class Recording(OneProcess):
    """Rank 0 of 2 whose partner holds the same gradients (so a sum doubles them); logs each started sum."""

    rank, size = 0, 2

    def __init__(self, log):
        self.log = log

    def allreduce_sum(self, array):
        array *= 2
        return array

    def start_sum(self, array):
        self.log.append(("sum", array.size))
        return super().start_sum(array)

    def sum(self, value):
        return 2 * value


GPT_CFG = dict(vocab_size=11, n_positions=8, n_embd=8, n_layer=2, n_head=2)
BERT_CFG = dict(vocab_size=13, hidden_size=8, num_hidden_layers=2, num_attention_heads=2, intermediate_size=16,
                max_position_embeddings=8, type_vocab_size=2, hidden_dropout_prob=0.0,
                attention_probs_dropout_prob=0.0)
MODELS = {
    "gpt": lambda: GPT(GPTConfig(**GPT_CFG)),
    "gpt-classifier": lambda: GPTForSequenceClassification(GPTConfig(**GPT_CFG), ["a", "b"]),
    "gpt-tagger": lambda: GPTForTokenClassification(GPTConfig(**GPT_CFG), ["O", "B", "I"]),
    "bert-pretraining": lambda: BertForPreTraining(BertConfig(**BERT_CFG)),
    "bert-classifier": lambda: BertForSequenceClassification(BertConfig(**BERT_CFG), ["a", "b", "c"]),
    "bert-tagger": lambda: BertForTokenClassification(BertConfig(**BERT_CFG), ["O", "B", "I"]),
    "bert-qa": lambda: BertForQuestionAnswering(BertConfig(**BERT_CFG)),
}


def forward_backward(model, seed=0):
    """A random batch of 4 x 6 tokens through the model and random output gradients back."""
    rng = xp.random.default_rng(seed)
    ids, mask = rng.integers(1, 11, (4, 6)), xp.ones((4, 6), dtype=xp.int64)
    outs = model(ids) if isinstance(model.model if isinstance(model, BatchParallel) else model, GPT) \
        else model(ids, mask)
    outs = outs if isinstance(outs, tuple) else (outs,)
    model.backward(*(rng.standard_normal(o.shape).astype(o.dtype) for o in outs))


def summed(name, bucket_mb, threads=1):
    """(flat gradient summed over the 2 ranks, sums started during backward, the optimizer)."""
    log, model = [], MODELS[name]()
    optimizer = AdamW(model, ranks=Recording(log), bucket_mb=bucket_mb)
    with optimizer.overlapped():
        forward_backward(BatchParallel(model, threads))
    during = len(log)
    optimizer.step()
    return to_host(optimizer.flat_grad), during, optimizer


@pytest.mark.parametrize("name", sorted(MODELS))
def test_every_bucket_but_the_embeddings_is_summed_during_backward_to_one_allreduce_s_gradient(name):
    grad, during, optimizer = summed(name, bucket_mb=200 * 4 / 2 ** 20)  # buckets of 200 floats
    bounds = optimizer.buckets.bounds
    tables = [n for n in optimizer.names if "embedding" in n or n.split(".")[-2] in ("wte", "wpe")]
    embeddings = next(b for b, (first, end) in enumerate(bounds) if set(optimizer.names[first:end]) & set(tables))
    assert len(bounds) > 3 and during == embeddings  # the rest wait for backward's end: nothing reports them
    blocking, during_blocking, _ = summed(name, bucket_mb=0)
    assert during_blocking == 0 and (grad == blocking).all()  # the same sums, cut otherwise


def test_with_threads_the_sums_start_after_backward_and_add_to_the_same_gradient():
    one, _, _ = summed("gpt", bucket_mb=200 * 4 / 2 ** 20)
    threads, during, _ = summed("gpt", bucket_mb=200 * 4 / 2 ** 20, threads=2)
    assert during == 0 and abs(threads - one).max() < 1e-6 * abs(one).max()  # (sums taken in another order)


class GPTSteps(Task):
    """Micro-batches of random tokens through a GPT, logging when each begins and ends."""

    tokens_per_step = 24

    def __init__(self, model, log):
        self.model, self.log = model, log

    def train_step(self, it, micro, scale):
        self.log.append(("micro", micro))
        forward_backward(self.model, seed=micro)
        self.log.append(("done", micro))
        return 1.0

    def evaluate(self):
        return {"val_loss": 0.0}


def test_only_the_last_micro_batch_starts_sums_during_backward(tmp_path):
    log, model = [], GPT(GPTConfig(**GPT_CFG))
    cfg = TrainConfig(grad_accum=4, bucket_mb=200 * 4 / 2 ** 20)
    trainer = Trainer(model, GPTSteps(model, log), cfg, str(tmp_path), progress=False, ranks=Recording(log))
    trainer.step(0, lr=1e-3)
    sums = [k for k, event in enumerate(log) if event[0] == "sum"]
    # rank 0 of 2 runs micro-batches 0 and 2 of 4; the sums start inside the second's backward, and the rest
    # (the embeddings' bucket) in the step
    assert log.index(("micro", 2)) < sums[0] and sums[-2] < log.index(("done", 2)) < sums[-1]
    assert len(sums) == len(trainer.optimizer.buckets.bounds)
