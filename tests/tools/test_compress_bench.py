"""The compression benchmark runs end to end on tiny models and writes its table."""

import json

from minillm.tools import compress_bench


def test_compress_bench_tiny(tiny_classifier_dir, tiny_gpt_run, tmp_path):
    rows = compress_bench.main(["--classifier", str(tiny_classifier_dir), "--gpt", str(tiny_gpt_run), "--out-dir",
                                str(tmp_path), "--max-eval-examples", "16", "--timed", "4", "--rounds", "1",
                                "--max-val-tokens", "200", "--batch-size", "4", "--head-fractions", "0.5",
                                "--sparsities", "0.5", "--importance-examples", "8", "--importance-skip", "0",
                                "--sensitivity", "4", "--matmul", "4", "8", "4"])
    assert [r["setting"] for r in rows] == ["float32", "int8", "int8-weights", "int4-g64", "heads-2", "sparse-0.5",
                                            "float32", "int8", "int8-weights", "int4-g64"]
    for r in rows:
        assert 0 <= r["score"] and r["peak_mb"] > 0 and (r.get("sentences_per_cpu_s") or r.get("tokens_per_cpu_s")) > 0
    assert rows[4]["parameters"] < rows[0]["parameters"] == rows[1]["parameters"] == rows[5]["parameters"]
    float_gpt, int8_gpt = rows[6], rows[7]
    assert int8_gpt["disk_mb"] < 0.35 * float_gpt["disk_mb"] and abs(int8_gpt["score"] - float_gpt["score"]) < 0.1
    assert "| classifier (best) | int8 weights + int8 activations" in (tmp_path / "compression.md").read_text()
    sensitivity = json.loads((tmp_path / "sensitivity.json").read_text())
    assert len(sensitivity) == 2 * 6 + 2 + 3 and list(sensitivity.values()) == sorted(sensitivity.values())[::-1]
