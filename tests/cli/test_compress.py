"""python -m minillm.cli.compress: quantized and pruned classifiers that finetune.py --predict runs, students."""

import json

import pytest

from minillm.checkpoint import load_safetensors
from minillm.cli import compress, finetune


def test_quantize_then_predict(tiny_classifier_dir, tmp_path, capsys):
    out = tmp_path / "q"
    compress.main(["quantize", "--model", str(tiny_classifier_dir), "--out", str(out / "best"),
                   "--keep-float", "classifier"])
    assert "kept in float: classifier" in capsys.readouterr().out
    assert json.loads((out / "best" / "config.json").read_text())["quantization_config"]["activations"] == "int8"
    lines = []
    for run in (tiny_classifier_dir.parent, out):
        finetune.main(["--task", "sentiment", "--out-dir", str(run), "--predict", "a gripping film"])
        lines.append(json.loads(capsys.readouterr().out.strip().splitlines()[-1]))
    exact, quantized = (line["probabilities"]["positive"] for line in lines)
    assert quantized == pytest.approx(exact, abs=0.02)
    compress.main(["quantize", "--model", str(tiny_classifier_dir), "--out", str(tmp_path / "q4"),
                   "--weights", "int4", "--group-size", "32"])
    assert json.loads((tmp_path / "q4" / "config.json").read_text())["quantization_config"]["activations"] is None


def test_student_then_distil_with_finetune(tiny_classifier_dir, tmp_path, capsys):
    compress.main(["student", "--teacher", str(tiny_classifier_dir), "--out", str(tmp_path / "student"),
                   "--hidden-size", "32", "--num-layers", "1", "--intermediate-size", "64"])
    assert "of the teacher's" in capsys.readouterr().out
    compress.main(["student", "--teacher", str(tiny_classifier_dir), "--out", str(tmp_path / "even"), "--layers", "0",
                   "--vocab", "3000"])
    config = json.loads((tmp_path / "even" / "config.json").read_text())
    assert config["num_hidden_layers"] == 1 and config["vocab_size"] == 3000
    assert len((tmp_path / "even" / "vocab.txt").read_text().splitlines()) == 3000
    results = finetune.main(["--task", "sentiment", "--init", str(tmp_path / "even"), "--teacher",
                             str(tiny_classifier_dir), "--distill-temperature", "3", "--max-train-examples", "32",
                             "--transfer-examples", "16", "--max-eval-examples", "32", "--batch-size", "16",
                             "--no-progress", "--out-dir", str(tmp_path / "distilled")])
    out = capsys.readouterr().out
    assert f"teacher {tiny_classifier_dir}: logits on 48 training texts" in out
    assert "train 48 (of which 16 unlabelled" in out
    assert 0 <= results["dev"]["accuracy"] <= 1
    with pytest.raises(SystemExit, match="--transfer-examples reads unlabelled texts"):
        finetune.main(["--task", "sentiment", "--init", str(tmp_path / "even"), "--transfer-examples", "16"])
    with pytest.raises(SystemExit, match="--teacher distils a sequence classifier"):
        finetune.main(["--task", "ner", "--init", str(tmp_path / "student"), "--teacher", str(tiny_classifier_dir)])


def test_prune_heads_and_weights(tiny_classifier_dir, tmp_path, capsys):
    compress.main(["prune", "--model", str(tiny_classifier_dir), "--out", str(tmp_path / "p" / "best"), "--heads",
                   "0.5", "--importance-examples", "16", "--importance-skip", "0"])
    assert "removed 2 of 4 heads" in capsys.readouterr().out
    config = json.loads((tmp_path / "p" / "best" / "config.json").read_text())
    assert sum(map(len, config["pruned_heads"].values())) == 2
    finetune.main(["--task", "sentiment", "--out-dir", str(tmp_path / "p"), "--predict", "a film"])
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["label"] in ("negative", "positive")
    compress.main(["prune", "--model", str(tiny_classifier_dir), "--out", str(tmp_path / "m"), "--sparsity", "0.5"])
    assert "50.0% of the 14 weight matrices' entries zero" in capsys.readouterr().out
    finetune.main(["--task", "sentiment", "--init", str(tmp_path / "m"), "--hold-zeros", "--max-train-examples", "32",
                   "--max-eval-examples", "16", "--batch-size", "16", "--no-progress", "--out-dir", str(tmp_path / "f")])
    held = int(capsys.readouterr().out.split("--hold-zeros: ")[1].split()[0].replace(",", ""))
    before, after = (load_safetensors(str(d / "model.safetensors")) for d in (tmp_path / "m", tmp_path / "f" / "best"))
    zeros = sum(int((before[n] == 0).sum()) for n in before if n.endswith(".weight") and before[n].ndim == 2
                and "embeddings" not in n)
    assert held == zeros > 0
    assert all(((after[n] == 0) >= (before[n] == 0)).all() for n in before if "embeddings" not in n)
