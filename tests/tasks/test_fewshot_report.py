"""The few-shot report: mean +- sd per cell, zero-shot first, the ceiling last, a clear line without matplotlib."""

import importlib.util

from minillm.tasks.fewshot_report import grouped, task_table, write_report


def rows():
    common = {"task": "sentiment", "eval_split": "dev", "eval_texts": 872, "note": "SST-2"}
    out = [{**common, "method": "logreg", "k": 8, "seed": s, "augment": "none", "accuracy": a}
           for s, a in zip((13, 21, 42, 87, 100), (0.60, 0.62, 0.64, 0.66, 0.68))]
    out += [{**common, "method": "logreg", "k": 16, "seed": 13, "augment": "eda", "accuracy": 0.7},
            {**common, "method": "zero-shot", "k": 0, "seed": None, "augment": "none", "accuracy": 0.7305}]
    return out


def test_table_cells_and_row_order():
    lines = task_table("sentiment", grouped(rows())["sentiment"], rows()).splitlines()
    table = [line for line in lines if line.startswith("|")]
    assert table[0] == "| method | K=0 | K=8 | K=16 | all |"
    assert table[2] == "| zero-shot | 73.05 |  |  | |"  # no draws: one score
    assert table[3] == "| logreg |  | 64.00 ± 3.16 |  | |"  # sd of 60, 62, 64, 66, 68 with n - 1: sqrt(10)
    assert table[4] == "| logreg + EDA |  |  | 70.00 (1 draw) | |"
    assert table[5] == "| full-data fine-tuning* |  |  |  | 88.76 |"
    assert "872 texts of dev" in lines[2]


def test_report_files_and_the_plot_message(tmp_path, capsys):
    write_report(rows(), str(tmp_path))
    assert (tmp_path / "results.md").read_text(encoding="utf-8").startswith("### SST-2 (sentiment)")
    has_matplotlib = importlib.util.find_spec("matplotlib") is not None
    assert (tmp_path / "learning-curves.png").exists() == has_matplotlib
    if not has_matplotlib:
        assert "pip install -r requirements-plot.txt" in capsys.readouterr().out
