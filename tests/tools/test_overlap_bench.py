"""The blocking-against-bucketed benchmark with 2 ranks at a tiny size: both ways timed, numbers that add up."""

import importlib.util
import os
import shutil
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.mark.skipif(shutil.which("mpirun") is None or importlib.util.find_spec("mpi4py") is None,
                    reason="MPI is an optional extra: pip install -r requirements-mpi.txt")
def test_overlap_bench_times_both_ways_in_turn():
    tiny = "--n-layer 1 --n-embd 16 --n-head 2 --block-size 16 --batch-size 2 --bucket-mb 0.002".split()
    done = subprocess.run(["mpirun", "--allow-run-as-root", "--oversubscribe", "-n", "2", sys.executable, "-m",
                           "minillm.tools.overlap_bench", "--steps", "4", *tiny], cwd=ROOT,
                          env={**os.environ, "PYTHONPATH": ROOT}, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    lines = done.stdout.splitlines()  # one rank prints
    assert " 8 buckets of at most 0.002 MB, 2 ranks, 4 steps each way" in lines[0] and len(lines) == 4
    for line in lines[1:3]:
        tokens_per_s, ms_per_step, wait_ms = (float(w.replace(",", "")) for w in line.split()[1:7:2])
        # 2 ranks x 2 x 16 tokens a step; ms/step is printed to 0.1 ms, so it is within 0.05 of the exact one
        assert 2 * 2 * 16 / tokens_per_s * 1000 == pytest.approx(ms_per_step, abs=0.051)
        assert 0 <= wait_ms < ms_per_step
    assert lines[3].startswith("bucketed / blocking: ")
