"""python -m minillm.cli.clip end to end with tiny settings: image CLIP, speech aligned to its text tower,
the supervised baseline, and the errors for flags that do not apply."""

import json

import pytest

from minillm.cli import clip
from minillm.cli.errors import UsageError
from minillm.models.clip import CLIPModel

TINY = ["--hidden-size", "8", "--heads", "2", "--layers", "1", "--projection-dim", "8", "--batch-size", "16",
        "--max-iters", "2", "--eval-interval", "2", "--limit", "32", "--no-progress"]


def test_image_then_speech_on_its_text_tower(tmp_path, capsys):
    image = clip.main(["--modality", "image", "--out-dir", str(tmp_path / "img")] + TINY)
    assert image["train_items"] == 32 and image["held_out_items"] == 2000 and image["iters"] == 2
    config = json.loads((tmp_path / "img" / "best" / "config.json").read_text())
    assert config["architectures"] == ["CLIPModel"] and config["modality"] == "image"
    assert (tmp_path / "img" / "best" / "vocab.txt").exists()
    speech = clip.main(["--modality", "speech", "--held-out-speaker", "theo", "--text-from",
                        str(tmp_path / "img" / "best"), "--out-dir", str(tmp_path / "sp")] + TINY)
    assert speech["held_out_items"] == 500 and 0.0 <= speech["best_val_zero_shot_accuracy"] <= 1.0
    image_model = CLIPModel.from_pretrained(str(tmp_path / "img" / "best"))
    speech_model = CLIPModel.from_pretrained(str(tmp_path / "sp" / "best"))
    # the frozen text tower came through training unchanged
    assert (image_model.text_projection.weight.data == speech_model.text_projection.weight.data).all()
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["out_dir"] == str(tmp_path / "sp")


def test_supervised_and_flag_errors(tmp_path):
    result = clip.main(["--modality", "speech", "--objective", "supervised", "--out-dir", str(tmp_path / "s")] + TINY)
    assert result["held_out_items"] == 300 and "best_val_accuracy" in result  # the dataset's own split
    with pytest.raises(UsageError, match="--held-out-speaker applies to --modality speech"):
        clip.main(["--modality", "image", "--held-out-speaker", "theo"] + TINY)
    with pytest.raises(UsageError, match="--text-from applies to --modality speech --objective clip"):
        clip.main(["--modality", "image", "--text-from", str(tmp_path)] + TINY)
