"""The alpha-beta model: the ring all-reduce's time, a fit that recovers alpha and beta, and the scaling rows."""

import json

import pytest

from minillm.tools import scaling_model as sm


def test_ring_allreduce_time_and_the_fit_that_recovers_it(tmp_path):
    assert sm.ring_allreduce_seconds(1e6, 1, 1e-5, 1e-9) == 0.0
    assert sm.ring_allreduce_seconds(1e6, 4, 1e-5, 1e-9) == pytest.approx(6e-5 + 1.5e6 * 1e-9)
    rows = [{"ranks": p, "bytes": n, "seconds": sm.ring_allreduce_seconds(n, p, 20e-6, 1 / 3e9)}
            for p in (2, 4) for n in (4096, 1 << 20, 1 << 24)]
    alpha, beta = sm.fit_alpha_beta(rows)
    assert alpha == pytest.approx(20e-6) and beta == pytest.approx(1 / 3e9)
    path = tmp_path / "allreduce.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    results = sm.main(["--fit", str(path), "--overlap", "0"])
    one, two = results[0], results[1]
    assert one["dp"][1] == one["tp"][1] == 1.0 and results[-1]["ranks"] == 1024
    compute = 6 * 124e6 * 8192 / 400e12
    assert two["dp"][0] == pytest.approx(compute + sm.ring_allreduce_seconds(124e6 * 4, 2, 5e-6, 1 / 25e9))
    assert results[4]["tp"] is None  # 16 ranks: more than GPT-2 small's 12 heads
