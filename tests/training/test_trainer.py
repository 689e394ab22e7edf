"""The Trainer's resume: from whatever a crash left, with one metrics record per step, and clear errors."""

import json
import os
import shutil

import pytest

from minillm.models.gpt import GPT, GPTConfig
from minillm.training.task import Task
from minillm.training.trainer import TrainConfig, Trainer

CFG = TrainConfig(max_iters=6, eval_interval=3, log_interval=1, warmup_iters=0)


class CountingTask(Task):
    """A loss and a validation loss that say which step made them; killed at step `kill_at`."""

    tokens_per_step = 1

    def __init__(self, model, kill_at=None):
        self.model, self.kill_at = model, kill_at

    def train_step(self, it, micro, scale):
        if it == self.kill_at:
            raise KeyboardInterrupt
        return 1.0 / (it + 1)

    def evaluate(self):
        return {"val_loss": 1.0 / (self.trainer.iter + 1)}


def trainer(run_dir, kill_at=None):
    model = GPT(GPTConfig(vocab_size=5, n_positions=4, n_embd=4, n_layer=1, n_head=1))
    task = CountingTask(model, kill_at)
    task.trainer = Trainer(model, task, CFG, str(run_dir), progress=False)
    return task.trainer


def records(run_dir):
    lines = (run_dir / "metrics.jsonl").read_text().splitlines()
    return [{k: v for k, v in json.loads(line).items() if k not in ("train_seconds", "tokens_per_s", "ms_per_step")}
            for line in lines]


def test_a_resumed_run_leaves_one_record_per_step(tmp_path):
    trainer(tmp_path / "whole").run()
    with pytest.raises(KeyboardInterrupt):
        trainer(tmp_path / "killed", kill_at=5).run()  # after the checkpoint at 3, steps 3 and 4 were logged
    trainer(tmp_path / "killed").run(resume=True)
    assert records(tmp_path / "killed") == records(tmp_path / "whole")
    assert not [name for name in os.listdir(tmp_path / "killed") if name.endswith(".tmp")]


def test_resume_after_a_crash_between_the_renames_of_a_save(tmp_path):
    trainer(tmp_path).run()
    os.rename(tmp_path / "checkpoint", tmp_path / "checkpoint.old")
    assert trainer(tmp_path).resume()["iter"] == 6
    assert sorted(n for n in os.listdir(tmp_path) if "checkpoint" in n) == ["checkpoint"]


def test_resume_from_the_newer_save_when_it_is_complete(tmp_path):
    with pytest.raises(KeyboardInterrupt):
        trainer(tmp_path, kill_at=4).run()
    shutil.copytree(tmp_path / "checkpoint", tmp_path / "checkpoint.old")  # iter 3
    trainer(tmp_path).run(resume=True)
    os.rename(tmp_path / "checkpoint", tmp_path / "checkpoint.new")  # iter 6, complete, not yet in place
    assert trainer(tmp_path).resume()["iter"] == 6
    assert sorted(n for n in os.listdir(tmp_path) if "checkpoint" in n) == ["checkpoint"]


@pytest.mark.parametrize("key", ["iter", "optimizer_step", "run_config"])
def test_a_trainer_state_without_a_key_names_the_file_and_the_key(tmp_path, key):
    trainer(tmp_path).run()
    path = tmp_path / "checkpoint" / "trainer_state.json"
    state = json.loads(path.read_text())
    del state[key]
    path.write_text(json.dumps(state))
    with pytest.raises(ValueError, match=f"checkpoint/trainer_state.json: missing key '{key}'$"):
        trainer(tmp_path).resume()


def test_no_checkpoint_to_resume_from(tmp_path):
    with pytest.raises(FileNotFoundError, match="checkpoint: no checkpoint to resume from"):
        trainer(tmp_path).resume()
