"""Test setup: hypothesis profiles and the device under test.

`pytest` runs the small "ci" profile; `pytest --hypothesis-profile=thorough`
draws many more shapes and values. `MINILLM_DEVICE=gpu pytest` runs the same
suite on CuPy.
"""

import os
import tempfile

import pytest
from hypothesis import HealthCheck, settings

# tokenizers and token streams that tests build are cached apart from the user's own cache
os.environ.setdefault("MINILLM_CACHE", tempfile.mkdtemp(prefix="minillm-test-cache-"))
for name in ("MINILLM_DATA", "MINILLM_CACHE"):  # absolute, so commands the tests run in other folders find them
    if os.environ.get(name):
        os.environ[name] = os.path.abspath(os.environ[name])

settings.register_profile("ci", max_examples=6, deadline=None, derandomize=True,
                          suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("thorough", max_examples=200, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))

TINY_CLIP = ["--hidden-size", "8", "--heads", "2", "--layers", "1", "--projection-dim", "8", "--batch-size", "16",
             "--max-iters", "2", "--eval-interval", "2", "--limit", "32", "--no-progress"]


@pytest.fixture
def tiny_clip_flags():
    """Settings that make `python -m minillm.cli.clip` run in seconds."""
    return list(TINY_CLIP)


@pytest.fixture(scope="session")
def tiny_clips(tmp_path_factory):
    """An image CLIP and a speech CLIP aligned to its text tower, 2 steps each, by `python -m minillm.cli.clip`:
    {"image", "speech": their best/ directories, "speaker": the one held out, "image_run", "speech_run": what
    the commands returned}."""
    from minillm.cli import clip

    root = tmp_path_factory.mktemp("clips")
    image_run = clip.main(["--modality", "image", "--out-dir", str(root / "image")] + TINY_CLIP)
    speech_run = clip.main(["--modality", "speech", "--held-out-speaker", "lucas", "--text-from",
                            str(root / "image" / "best"), "--out-dir", str(root / "speech")] + TINY_CLIP)
    return {"image": str(root / "image" / "best"), "speech": str(root / "speech" / "best"), "speaker": "lucas",
            "image_run": image_run, "speech_run": speech_run}
