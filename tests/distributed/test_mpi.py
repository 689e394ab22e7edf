"""Data parallelism over MPI with 2 ranks: train.py's and finetune.py's runs the same as one process's, with
the gradients summed in buckets during backward or in one Allreduce after it, resumable with another count
of ranks, and a failing or killed rank ends the job with a message naming it instead of a hang."""

import importlib.util
import json
import os
import shutil
import subprocess
import sys

import pytest

from minillm.checkpoint import load_safetensors
from minillm.distributed.mpi import launched_ranks

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
pytestmark = pytest.mark.skipif(shutil.which("mpirun") is None or importlib.util.find_spec("mpi4py") is None,
                                reason="MPI is an optional extra: pip install -r requirements-mpi.txt")
MPIRUN = ["mpirun", "--allow-run-as-root", "--oversubscribe", "-n", "2"]  # (CI runs as root; 2 cores)
TINY = ("--n-layer 1 --n-head 2 --n-embd 16 --block-size 16 --batch-size 4 --eval-interval 5 --eval-iters 1 "
        "--log-interval 1 --sample-tokens 0 --full-val-tokens 0 --no-progress --grad-accum 2 --threads 1 "
        "--dropout 0.1 --lr-decay-iters 20").split()


def run(argv, ranks=1, timeout=300):
    env = {**os.environ, "PYTHONPATH": ROOT, "MINILLM_DEVICE": "cpu"}
    command = (MPIRUN if ranks == 2 else []) + [sys.executable, *argv]
    return subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)


def train(out_dir, ranks, *extra):
    done = run(["train.py", *TINY, "--out-dir", str(out_dir), *extra], ranks)
    assert done.returncode == 0, done.stderr[-3000:]
    return done


def records(out_dir):
    with open(os.path.join(out_dir, "metrics.jsonl"), encoding="utf-8") as f:
        return [json.loads(line) for line in f]


def losses(out_dir):
    return [r["loss"] for r in records(out_dir) if "loss" in r]


SMALL_BUCKETS = ["--bucket-mb", "0.002"]  # 524 floats: a 1-layer, 16-wide GPT's gradient in 8 buckets


def weights(out_dir):
    return load_safetensors(os.path.join(out_dir, "checkpoint", "model.safetensors"))


def test_two_ranks_train_as_one_process_and_resume_with_either_count(tmp_path):
    train(tmp_path / "one", 1, "--max-iters", "20")
    two = train(tmp_path / "two", 2, "--max-iters", "20", *SMALL_BUCKETS)
    train(tmp_path / "blocking", 2, "--max-iters", "20", "--bucket-mb", "0")
    assert two.stdout.count("val_loss") == 5  # one rank reports (iters 0, 5, 10, 15, 20)
    one_losses, two_losses = losses(tmp_path / "one"), losses(tmp_path / "two")
    assert len(one_losses) == 20 and max(abs(a - b) for a, b in zip(one_losses, two_losses)) < 1e-5
    w1, w2 = weights(tmp_path / "one"), weights(tmp_path / "two")
    assert max(float(abs(w1[name] - w2[name]).max()) for name in w1) < 1e-5  # float32 sums in another order
    # buckets summed during backward, or the whole gradient after it: a + b either way, bit for bit
    assert losses(tmp_path / "blocking") == two_losses
    assert all((weights(tmp_path / "blocking")[name] == w2[name]).all() for name in w2)
    assert all(r["sum_wait_ms"] >= 0 for r in records(tmp_path / "two") if "loss" in r)
    # 10 steps on two ranks, then on one: the same run again
    train(tmp_path / "switch", 2, "--max-iters", "10")
    train(tmp_path / "switch", 1, "--max-iters", "20", "--resume")
    assert max(abs(a - b) for a, b in zip(losses(tmp_path / "switch"), one_losses)) < 1e-5


def test_a_sharded_optimizer_trains_as_plain_data_parallelism_in_half_the_state(tmp_path):
    plain = train(tmp_path / "plain", 2, "--max-iters", "6")
    sharded = train(tmp_path / "zero", 2, "--max-iters", "6", "--shard-optimizer")
    assert losses(tmp_path / "plain") == losses(tmp_path / "zero")  # the same arithmetic on each element
    w1, w2 = weights(tmp_path / "plain"), weights(tmp_path / "zero")
    assert all(float(abs(w1[name] - w2[name]).max()) == 0.0 for name in w1)
    o1, o2 = (load_safetensors(os.path.join(tmp_path / run, "checkpoint", "optimizer.safetensors"))
              for run in ("plain", "zero"))
    assert all(float(abs(o1[key] - o2[key]).max()) == 0.0 for key in o1)  # the whole moments, gathered to save
    mb = [float(line.split()[2]) for done in (plain, sharded) for line in done.stdout.splitlines()
          if line.startswith("AdamW's moments")]
    assert mb[1] == pytest.approx(mb[0] / 2, abs=0.01)


FINETUNE = ("finetune.py --task sentiment --max-train-examples 64 --max-eval-examples 32 --batch-size 8 "
            "--max-length 32 --epochs 1 --grad-accum 2 --threads 1 --no-progress").split()


def test_finetune_py_on_two_ranks_is_the_one_process_run(tmp_path):
    train(tmp_path / "gpt", 1, "--max-iters", "2", "--tokenizer", "bpe", "--vocab-size", "300")  # to fine-tune
    runs = {"1": (1,), "2": (2, *SMALL_BUCKETS), "blocking": (2, "--bucket-mb", "0")}
    for out, (ranks, *extra) in runs.items():
        done = run([*FINETUNE, "--init", str(tmp_path / "gpt"), "--out-dir", str(tmp_path / out), *extra], ranks)
        assert done.returncode == 0, done.stderr[-3000:]
        assert done.stdout.count("best checkpoint, dev") == 1  # one rank reports
    one, two, blocking = (records(tmp_path / out) for out in runs)
    assert [r["iter"] for r in one] == [r["iter"] for r in two] == [0, 2, 4]  # 8 batches, 2 a step
    assert max(abs(a["val_loss"] - b["val_loss"]) for a, b in zip(one, two)) < 1e-6
    assert [r["val_loss"] for r in blocking] == [r["val_loss"] for r in two]
    w1, w2, wb = (load_safetensors(os.path.join(tmp_path / out, "best", "model.safetensors")) for out in runs)
    assert max(float(abs(w1[name] - w2[name]).max()) for name in w1) < 1e-6
    assert all((wb[name] == w2[name]).all() for name in w2)


FAILING_RANK = """
import os, signal
from minillm.cli.errors import run_main
from minillm.distributed.mpi import world

def main(argv):
    ranks = world()
    if ranks.rank == 1:
        if os.environ["HOW"] == "kill":
            os.kill(os.getpid(), signal.SIGKILL)
        raise ValueError("shard 1 is unreadable")
    ranks.barrier()  # rank 0 waits for a rank that will never come

run_main(main)
"""


@pytest.mark.parametrize("how", ["raise", "kill"])
def test_a_failing_rank_ends_every_rank_with_a_message_naming_it(how):
    os.environ["HOW"] = how
    try:
        done = run(["-c", FAILING_RANK], ranks=2, timeout=60)  # a hang would raise TimeoutExpired
    finally:
        del os.environ["HOW"]
    assert done.returncode != 0
    if how == "raise":
        assert "error: rank 1 of 2: shard 1 is unreadable" in done.stderr
    else:
        assert "rank 1" in done.stderr + done.stdout and "signal 9" in done.stderr + done.stdout


def test_one_process_is_one_rank():
    assert launched_ranks() == 1
