"""The Task protocol: tasks written here drive the Trainer, carry state through resume, or carry none."""

import pytest

from minillm.backend import host_rng, np, to_device, to_float
from minillm.checkpoint import load_safetensors
from minillm.models.gpt import GPT, GPTConfig
from minillm.tasks.causal_lm import CausalLMTask, ar_loss, ar_loss_backward
from minillm.tasks.classification import SequenceClassificationTask
from minillm.tasks.masked_lm import MaskedLMTask
from minillm.tasks.ner import TokenClassificationTask
from minillm.tasks.permutation_lm import PermutationLMTask
from minillm.tasks.qa import SpanExtractionTask
from minillm.tasks.tbptt import TruncatedBPTTTask
from minillm.training.task import EpochTask, PretrainingTask, Task
from minillm.training.trainer import TrainConfig, Trainer


def tiny_gpt():
    cfg = GPTConfig(vocab_size=5, n_positions=4, n_embd=8, n_layer=1, n_head=2, resid_pdrop=0.1, embd_pdrop=0.1,
                    attn_pdrop=0.1)
    return GPT(cfg, seed=0)


class NextTokenTask(Task):
    """The least a task provides: next-token loss on 2 random rows of 4 tokens drawn from (it, micro)."""

    tokens_per_step = 8

    def __init__(self, model):
        self.model, self.calls = model, []

    def tokens(self, *key):
        x = to_device(host_rng([0, *key]).integers(0, 5, (2, 5)))
        return x[:, :-1], x[:, 1:]

    def train_step(self, it, micro, scale):
        self.calls.append((it, micro, scale))
        x, y = self.tokens(0, it, micro)
        loss, cache = ar_loss(self.model(x), y)
        self.model.backward(ar_loss_backward(scale, cache))
        return to_float(loss)

    def evaluate(self):
        self.model.eval()
        x, y = self.tokens(1)
        return {"val_loss": to_float(ar_loss(self.model(x), y)[0])}


class CountingTask(NextTokenTask):
    """Carries a count of the micro-batches it has run, which only its state_dict keeps across a resume."""

    def __init__(self, model):
        super().__init__(model)
        self.seen = 0

    def train_step(self, it, micro, scale):
        self.seen += 1
        return super().train_step(it, micro, scale)

    def state_dict(self):
        return {"seen": np.array([self.seen])}

    def load_state_dict(self, tensors):
        self.seen = int(tensors["seen"][0])


def trainer(task, run_dir, max_iters):
    cfg = TrainConfig(max_iters=max_iters, eval_interval=3, log_interval=1, grad_accum=2, warmup_iters=2)
    return Trainer(task.model, task, cfg, str(run_dir), progress=False)


def losses(history):
    return [(r["iter"], r["loss"]) for r in history if "loss" in r]


def test_a_minimal_task_drives_the_trainer(tmp_path):
    task = NextTokenTask(tiny_gpt())
    history = trainer(task, tmp_path, 6).run()
    assert task.calls == [(it, micro, 0.5) for it in range(6) for micro in range(2)]  # scale = 1 / grad_accum
    assert [r["iter"] for r in history if "val_loss" in r] == [0, 3, 6]
    assert [it for it, _ in losses(history)] == list(range(6))
    assert all(r["tokens_per_s"] > 0 for r in history if "loss" in r)


def test_task_state_round_trips_through_save_and_resume(tmp_path):
    whole = CountingTask(tiny_gpt())
    expected = trainer(whole, tmp_path / "whole", 6).run()
    trainer(CountingTask(tiny_gpt()), tmp_path / "split", 3).run()
    saved = load_safetensors(str(tmp_path / "split" / "checkpoint" / "task_state.safetensors"))
    assert saved["seen"].tolist() == [6]  # 3 steps of 2 micro-batches
    resumed_task = CountingTask(tiny_gpt())
    resumed = trainer(resumed_task, tmp_path / "split", 6).run(resume=True)
    assert resumed_task.seen == whole.seen == 12
    assert losses(resumed) == losses(expected)[3:]  # same batches and, through reseed_dropout, same masks


def test_a_task_without_state_saves_none_and_is_given_none_back(tmp_path):
    trainer(NextTokenTask(tiny_gpt()), tmp_path, 3).run()
    assert load_safetensors(str(tmp_path / "checkpoint" / "task_state.safetensors")) == {}
    resumed = trainer(NextTokenTask(tiny_gpt()), tmp_path, 6).run(resume=True)
    assert [r["iter"] for r in resumed if "val_loss" in r] == [6]
    with pytest.raises(ValueError, match="carries no state"):
        NextTokenTask(tiny_gpt()).load_state_dict({"seen": np.array([1])})


def test_a_task_must_define_train_step_and_evaluate():
    class NoEvaluation(Task):
        def train_step(self, it, micro, scale):
            return 0.0

    with pytest.raises(TypeError, match="evaluate"):
        NoEvaluation()


@pytest.mark.parametrize("cls, kind", [
    (CausalLMTask, PretrainingTask), (TruncatedBPTTTask, PretrainingTask), (MaskedLMTask, PretrainingTask),
    (PermutationLMTask, PretrainingTask), (SequenceClassificationTask, EpochTask),
    (TokenClassificationTask, EpochTask), (SpanExtractionTask, EpochTask)])
def test_every_task_states_its_protocol(cls, kind):
    assert issubclass(cls, kind) and issubclass(cls, Task)
    if kind is PretrainingTask:
        assert isinstance(cls.full_val_scope, str)
