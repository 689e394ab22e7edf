"""Dynamic loss scaling, and the trainer in float16: skipped steps on overflow, losses close to float32."""

import json
import math
import os

import numpy
import pytest

from minillm.backend import to_host
from minillm.models.gpt import GPT, GPTConfig
from minillm.nn import functional as F
from minillm.tasks.causal_lm import CausalLMTask
from minillm.training.loss_scale import DynamicLossScale
from minillm.training.trainer import TrainConfig, Trainer


@pytest.fixture(autouse=True)
def float32_afterwards():
    yield
    F.set_matmul_precision("float32")  # a float16 Trainer sets it for the process


def test_overflow_halves_the_scale_and_good_steps_double_it():
    s = DynamicLossScale(scale=8.0, growth_interval=3)
    assert s.update(False) is False and s.scale == 4.0 and s.good_steps == 0
    assert [s.update(True) for _ in range(3)] == [True] * 3 and s.scale == 8.0 and s.good_steps == 0
    assert s.update(True) and s.update(False) is False and s.scale == 4.0 and s.good_steps == 0
    restored = DynamicLossScale()
    restored.load_state_dict(json.loads(json.dumps(s.state_dict())))
    assert (restored.scale, restored.good_steps) == (4.0, 0)


def run(tmp_path, name, **settings):
    cfg = TrainConfig(max_iters=4, eval_interval=4, log_interval=1, warmup_iters=0, learning_rate=1e-2, **settings)
    model = GPT(GPTConfig(vocab_size=13, n_positions=8, n_embd=16, n_layer=2, n_head=2), seed=0)
    ids = numpy.random.default_rng(0).integers(0, 13, 400)
    task = CausalLMTask(model, ids[:300], ids[300:], batch_size=4, block_size=8, eval_iters=1)
    trainer = Trainer(model, task, cfg, str(tmp_path / name), progress=False)
    history = trainer.run()
    return trainer, [r["loss"] for r in history if "loss" in r], history


@pytest.mark.filterwarnings("ignore:overflow encountered:RuntimeWarning", "ignore:invalid value:RuntimeWarning")
def test_float16_training_follows_float32_and_skips_steps_whose_gradients_overflow(tmp_path):
    _, losses32, _ = run(tmp_path, "float32")
    trainer, losses16, history = run(tmp_path, "float16", precision="float16", loss_scale=2.0 ** 12)
    assert trainer.optimizer.t == 4 and not [r for r in history if "skipped_step" in r]
    assert losses16 != losses32 and numpy.allclose(losses16, losses32, rtol=2e-3)  # rounded, not different

    # 2^40 times the loss overflows float16 (max 65504) in the first product of backward: halve until it fits
    trainer, losses, history = run(tmp_path, "overflow", precision="float16", loss_scale=2.0 ** 40)
    skipped = [r for r in history if "skipped_step" in r]
    assert len(skipped) == 4 and [r["loss_scale"] for r in skipped] == [2.0 ** 39, 2.0 ** 38, 2.0 ** 37, 2.0 ** 36]
    assert trainer.optimizer.t == 0 and all(math.isfinite(v) for v in losses)  # parameters never touched
    saved = json.load(open(os.path.join(tmp_path, "overflow", "checkpoint", "trainer_state.json")))
    assert saved["loss_scale"] == {"scale": 2.0 ** 36, "good_steps": 0}  # and resumed from there
    assert to_host(trainer.model.transformer.wte.weight.data).tolist() == to_host(
        GPT(trainer.model.config, seed=0).transformer.wte.weight.data).tolist()
