"""The Allreduce benchmark with 2 ranks: one row a size, bandwidths that follow from the times."""

import importlib.util
import json
import os
import shutil
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.mark.skipif(shutil.which("mpirun") is None or importlib.util.find_spec("mpi4py") is None,
                    reason="MPI is an optional extra: pip install -r requirements-mpi.txt")
def test_allreduce_bench_with_two_ranks(tmp_path):
    out = tmp_path / "allreduce.jsonl"
    done = subprocess.run(["mpirun", "--allow-run-as-root", "--oversubscribe", "-n", "2", sys.executable, "-m",
                           "minillm.tools.allreduce_bench", "--max-mb", "0.0625", "--repeats", "3", "--json", str(out)],
                          cwd=ROOT, env={**os.environ, "PYTHONPATH": ROOT}, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    rows = [json.loads(line) for line in open(out)]
    assert [r["bytes"] for r in rows] == [4096, 16384, 65536] and all(r["ranks"] == 2 for r in rows)
    for r in rows:
        assert r["algorithm_gb_s"] == pytest.approx(r["bytes"] / r["seconds"] / 1e9)
        assert r["bus_gb_s"] == pytest.approx(r["algorithm_gb_s"])  # 2 (n - 1) / n = 1 with two ranks
    assert done.stdout.count(" MB ") == 3  # one rank prints
