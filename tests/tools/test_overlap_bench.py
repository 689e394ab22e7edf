"""The blocking-against-bucketed benchmark with 2 ranks, at a tiny size: one row a run, numbers that add up."""

import importlib.util
import shutil

import pytest

from minillm.tools import overlap_bench


@pytest.mark.skipif(shutil.which("mpirun") is None or importlib.util.find_spec("mpi4py") is None,
                    reason="MPI is an optional extra: pip install -r requirements-mpi.txt")
def test_overlap_bench_runs_both_ways_in_turn(capsys):
    tiny = "--n-layer 1 --n-embd 16 --n-head 2 --block-size 16 --batch-size 2 --max-iters 6 --log-interval 2"
    rows = overlap_bench.main(["--sizes", "train.py", "--rounds", "1", "--bucket-mb", "0.002", "--train-args", tiny])
    assert [(r["mode"], r["round"]) for r in rows] == [("blocking", 1), ("bucketed", 1)]
    for r in rows:  # 2 micro-batches of 2 x 16 tokens a step
        assert r["tokens_per_s"] == pytest.approx(64 / (r["ms_per_step"] / 1000), rel=0.1)
        assert 0 <= r["sum_wait_ms"] < r["ms_per_step"] and r["load"] >= 0
    assert "bucketed / blocking" in capsys.readouterr().out
