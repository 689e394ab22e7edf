"""`python -m minillm.tools.compare`: the three language models under one budget, in one table."""

import math

import pytest

from minillm.models.gpt import GPT, GPTConfig
from minillm.tools import compare


@pytest.mark.parametrize("extra", [[], ["--parallel", "--gpt-flags=--n-layer 1 --dropout 0.1"]])
def test_compare_trains_all_three_within_the_budget_and_reports_them(tmp_path, capsys, extra):
    report = tmp_path / "report.md"
    rows = compare.main(["--data", "tinyshakespeare", "--budget", "1", "--max-order", "3", "--sample-tokens", "5",
                         "--out-dir", str(tmp_path), "--report", str(report)] + extra)
    ngram, lstm, gpt = rows
    assert ngram["model"].endswith("(modified Kneser-Ney)") and lstm["model"] == "LSTM" and gpt["model"] == "GPT"
    # the kept order is the better of 2 and 3 on the same validation characters
    orders = {int(r["model"].split("-")[0]): r["full_val_loss"] for r in
              (compare.read_metrics(str(tmp_path / f"ngram-{n}"))[-1] for n in (2, 3))}
    assert ngram["val_loss"] == min(orders.values()) and ngram["model"].startswith(f"{min(orders, key=orders.get)}-gram")
    for r in (lstm, gpt):  # the budget bounds training time (one step may overrun it)
        assert 0 < r["train_seconds"] < 1 + 5 and r["parameters"] > 0 and 0 < r["val_loss"] < math.log(65) + 1
    layers = 1 if extra else 4  # --gpt-flags reach the GPT's train.py run, and only it
    assert gpt["parameters"] == GPT(GPTConfig(vocab_size=65, n_positions=64, n_embd=128, n_layer=layers,
                                              n_head=4)).num_parameters() and lstm["parameters"] == 946_625
    text = report.read_text()
    assert text.count("\n| ") == 4 and "bits/char" in text  # header + three rows
    assert f"{ngram['val_loss']:.4f}" in text and f"{math.exp(gpt['val_loss']):.2f}" in text
