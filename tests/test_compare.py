"""`python -m minillm.compare`: the three language models under one budget, in one table."""

import math

import pytest

from minillm import compare


@pytest.mark.parametrize("parallel", [[], ["--parallel"]])
def test_compare_trains_all_three_within_the_budget_and_reports_them(tmp_path, capsys, parallel):
    report = tmp_path / "report.md"
    rows = compare.main(["--data", "tinyshakespeare", "--budget", "1", "--max-order", "3", "--sample-tokens", "5",
                         "--out-dir", str(tmp_path), "--report", str(report)] + parallel)
    ngram, lstm, gpt = rows
    assert ngram["model"].endswith("(modified Kneser-Ney)") and lstm["model"] == "LSTM" and gpt["model"] == "GPT"
    # the kept order is the better of 2 and 3 on the same validation characters
    orders = {int(r["model"].split("-")[0]): r["full_val_loss"] for r in
              (compare.read_metrics(str(tmp_path / f"ngram-{n}"))[-1] for n in (2, 3))}
    assert ngram["val_loss"] == min(orders.values()) and ngram["model"].startswith(f"{min(orders, key=orders.get)}-gram")
    for r in (lstm, gpt):  # the budget bounds training time (one step may overrun it)
        assert 0 < r["train_seconds"] < 1 + 5 and r["parameters"] > 0 and 0 < r["val_loss"] < math.log(65) + 1
    text = report.read_text()
    assert text.count("\n| ") == 4 and "bits/char" in text  # header + three rows
    assert f"{ngram['val_loss']:.4f}" in text and f"{math.exp(gpt['val_loss']):.2f}" in text
