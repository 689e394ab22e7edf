"""The compression benchmark runs end to end on tiny models and writes its table."""

import json

from minillm.efficiency.distill import keep_layers, kept_pieces, trim_vocabulary
from minillm.models.auto import load_model
from minillm.models.heads import BertForSequenceClassification
from minillm.tokenizers import load_tokenizer
from minillm.tools import compress_bench


def tiny_student(teacher_dir, out):
    """A 1-layer classifier with a 300-piece word table (its own tokenizer) built from the teacher's layer 0."""
    tokenizer = load_tokenizer(str(teacher_dir))
    body, pieces = trim_vocabulary(keep_layers(load_model(str(teacher_dir)), [0]), tokenizer,
                                   kept_pieces(tokenizer, ["a good film", "a dull one"], 300))
    BertForSequenceClassification(body.config, ["negative", "positive"], pieces.pad_id, seed=1).save_pretrained(
        str(out), extra_files=pieces.save)
    return str(out)


def test_compress_bench_tiny(tiny_classifier_dir, tiny_gpt_run, tmp_path):
    rows = compress_bench.main(["--classifier", str(tiny_classifier_dir), "--gpt", str(tiny_gpt_run), "--out-dir",
                                str(tmp_path), "--max-eval-examples", "16", "--timed", "4", "--rounds", "1",
                                "--max-val-tokens", "200", "--batch-size", "4", "--head-fractions", "0.5",
                                "--sparsities", "0.5", "--importance-examples", "8", "--importance-skip", "0",
                                "--sensitivity", "4", "--matmul", "4", "8", "4",
                                "--students", tiny_student(tiny_classifier_dir, tmp_path / "student")])
    student = f"student {tmp_path / 'student'}"
    assert [r["setting"] for r in rows] == ["float32", "int8", "int8-weights", "int4-g64", "heads-2", "sparse-0.5",
                                            student, "float32", "int8", "int8-weights", "int4-g64"]
    for r in rows:
        assert 0 <= r["score"] and r["peak_mb"] > 0 and (r.get("sentences_per_cpu_s") or r.get("tokens_per_cpu_s")) > 0
    assert rows[4]["parameters"] < rows[0]["parameters"] == rows[1]["parameters"] == rows[5]["parameters"]
    small = load_model(str(tmp_path / "student"))
    assert rows[6]["parameters"] == small.num_parameters() < rows[0]["parameters"]
    assert rows[6]["description"].endswith(f"(layers 1, width 64, {small.config.vocab_size} word pieces)")
    assert small.config.vocab_size < 300  # the 300 is a ceiling: the two texts need fewer pieces
    float_gpt, int8_gpt = rows[7], rows[8]
    assert int8_gpt["disk_mb"] < 0.35 * float_gpt["disk_mb"] and abs(int8_gpt["score"] - float_gpt["score"]) < 0.1
    assert "| classifier (best) | int8 weights + int8 activations" in (tmp_path / "compression.md").read_text()
    sensitivity = json.loads((tmp_path / "sensitivity.json").read_text())
    assert len(sensitivity) == 2 * 6 + 2 + 3 and list(sensitivity.values()) == sorted(sensitivity.values())[::-1]
