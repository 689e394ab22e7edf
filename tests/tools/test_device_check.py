"""The prepared GPU check, dry-run on the CPU: every stage runs, its numbers reach the summary."""

import json

from minillm.tools import device_check


def test_device_check_runs_its_stages_and_summarises_them(tmp_path, capsys):
    code = device_check.main([
        "--out-dir", str(tmp_path), "--device", "cpu", "--pytest-args", "tests/nn/test_layers.py", "--precisions", "float32",
        "--bench-sizes", "default", "--bench-args", "--rounds 1 --iters 1 --no-torch",
        "--train-args", "--n-layer 1 --n-head 2 --n-embd 16 --block-size 16 --batch-size 2 --max-iters 2 "
                        "--eval-interval 1 --eval-iters 1 --log-interval 1 --sample-tokens 0 --full-val-tokens 200"])
    summary = json.load(open(tmp_path / "summary.json"))
    stages = {s["stage"]: s for s in summary["stages"]}
    assert code == 0 and list(stages) == ["tests", "bench-float32", "train"]  # (NumPy's float16 products crawl)
    assert stages["tests"]["passed"] > 0 and "failed" not in stages["tests"]
    assert [(r["size"], r["precision"]) for r in summary["bench"]] == [("default", "float32")]
    assert all(r["tokens_per_s"] > 0 for r in summary["bench"])
    assert stages["train"]["full_val_loss"] > 0 and stages["train"]["median_tokens_per_s"] > 0
    printed = capsys.readouterr().out
    assert "---- device check ----" in printed and "bench default  float32" in printed


def test_pytest_counts_reads_the_summary_line():
    assert device_check.pytest_counts("3 failed, 571 passed, 2 skipped in 270.1s") == {
        "failed": 3, "passed": 571, "skipped": 2}
