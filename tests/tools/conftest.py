"""Fixtures of the tool tests."""

import pytest

from minillm.cli import clip

TINY_CLIP = ["--hidden-size", "8", "--heads", "2", "--layers", "1", "--projection-dim", "8", "--batch-size", "16",
             "--max-iters", "2", "--eval-interval", "2", "--limit", "32", "--no-progress"]


@pytest.fixture(scope="session")
def tiny_clips(tmp_path_factory):
    """(image CLIP dir, speech CLIP dir aligned to its text tower, speaker held out), trained for 2 steps."""
    root = tmp_path_factory.mktemp("clips")
    clip.main(["--modality", "image", "--out-dir", str(root / "image")] + TINY_CLIP)
    clip.main(["--modality", "speech", "--held-out-speaker", "lucas", "--text-from", str(root / "image" / "best"),
               "--out-dir", str(root / "speech")] + TINY_CLIP)
    return str(root / "image" / "best"), str(root / "speech" / "best"), "lucas"
