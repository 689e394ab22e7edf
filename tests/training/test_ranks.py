"""One process as the Trainer's ranks, and the Trainer's rule for sharing micro-batches among ranks."""

import pytest

from minillm.backend import to_host, xp
from minillm.models.gpt import GPT, GPTConfig
from minillm.training.ranks import OneProcess
from minillm.training.task import Task
from minillm.training.trainer import TrainConfig, Trainer


class Ranks(OneProcess):
    """Rank `rank` of `size`, whose sums add what the other ranks would contribute and which records the order
    of work in writer_first."""

    def __init__(self, rank, size, others=0.0):
        self.rank, self.size, self.others, self.events = rank, size, others, []

    def allreduce_sum(self, array):
        array += self.others
        return array

    def sum(self, value):
        return value + self.others

    def barrier(self):
        self.events.append("barrier")


def test_one_process_sums_nothing_and_is_the_writer():
    one, a = OneProcess(), xp.arange(3.0)
    assert one.is_writer and one.size == 1 and one.allreduce_sum(a) is a and one.sum(2.5) == 2.5
    with one.writer_first():
        pass


@pytest.mark.parametrize("rank, expected", [(0, ["work", "barrier"]), (1, ["barrier", "work"])])
def test_writer_first_lets_the_writer_work_before_the_others(rank, expected):
    ranks = Ranks(rank, 2)
    with ranks.writer_first():
        ranks.events.append("work")
    assert ranks.events == expected


class Micro(Task):
    """Records which micro-batches ran; each adds 1 to every gradient and has loss 1 + micro."""

    tokens_per_step = 1

    def __init__(self, model):
        self.model, self.ran = model, []

    def train_step(self, it, micro, scale):
        self.ran.append(micro)
        for p in self.model.parameters():
            p.grad = xp.full(p.shape, scale, dtype=p.data.dtype) + (0.0 if p.grad is None else p.grad)
        return 1.0 + micro

    def evaluate(self):
        return {"val_loss": 0.0}


def test_a_rank_runs_its_share_of_the_micro_batches_and_the_step_sums_over_ranks(tmp_path):
    model = GPT(GPTConfig(vocab_size=5, n_positions=4, n_embd=4, n_layer=1, n_head=1))
    task = Micro(model)
    cfg = TrainConfig(grad_accum=4, learning_rate=1.0, warmup_iters=0, weight_decay=0.0, grad_clip=0.0)
    trainer = Trainer(model, task, cfg, str(tmp_path), progress=False, ranks=Ranks(1, 2, others=0.5))
    loss = trainer.step(0, lr=1.0)
    assert task.ran == [1, 3]  # rank 1 of 2: micro-batches 1 and 3 of 4
    assert loss == pytest.approx((2.0 + 4.0) / 4 + 0.5)  # its losses' share of the mean, plus the other rank's
    grad = to_host(trainer.optimizer.flat_grad)
    assert grad.min() == grad.max() == pytest.approx(2 * 0.25 + 0.5)  # its two micro-batches, plus the others'
    with pytest.raises(ValueError, match="grad_accum 3 must be a multiple of the 2 ranks"):
        Trainer(model, task, TrainConfig(grad_accum=3), str(tmp_path), progress=False, ranks=Ranks(0, 2))
