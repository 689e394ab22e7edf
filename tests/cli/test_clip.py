"""python -m minillm.cli.clip end to end with tiny settings: image CLIP, speech aligned to its text tower,
the supervised baseline, and the errors for flags that do not apply."""

import json
import os

import pytest

from minillm.cli import clip
from minillm.cli.errors import UsageError
from minillm.models.clip import CLIPModel

def test_image_then_speech_on_its_text_tower(tiny_clips):
    image, speech = tiny_clips["image"], tiny_clips["speech"]  # (tests/conftest.py ran the two commands)
    image_run, speech_run = tiny_clips["image_run"], tiny_clips["speech_run"]
    assert image_run["train_items"] == 32 and image_run["held_out_items"] == 2000 and image_run["iters"] == 2
    config = json.loads(open(os.path.join(image, "config.json")).read())
    assert config["architectures"] == ["CLIPModel"] and config["modality"] == "image"
    assert os.path.exists(os.path.join(image, "vocab.txt"))
    assert speech_run["held_out_items"] == 500 and 0.0 <= speech_run["best_val_zero_shot_accuracy"] <= 1.0
    image_model, speech_model = CLIPModel.from_pretrained(image), CLIPModel.from_pretrained(speech)
    # the frozen text tower came through training unchanged
    assert (image_model.text_projection.weight.data == speech_model.text_projection.weight.data).all()


def test_supervised_and_flag_errors(tmp_path, tiny_clip_flags):
    tiny = tiny_clip_flags
    result = clip.main(["--modality", "speech", "--objective", "supervised", "--out-dir", str(tmp_path / "s")] + tiny)
    assert result["held_out_items"] == 300 and "best_val_accuracy" in result  # the dataset's own split
    with pytest.raises(UsageError, match="--held-out-speaker applies to --modality speech"):
        clip.main(["--modality", "image", "--held-out-speaker", "theo"] + tiny)
    with pytest.raises(UsageError, match="--text-from applies to --modality speech --objective clip"):
        clip.main(["--modality", "image", "--text-from", str(tmp_path)] + tiny)
