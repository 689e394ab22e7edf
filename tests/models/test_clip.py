"""CLIP and its supervised twin: gradients from the contrastive loss to every parameter of both towers
and the temperature; save and load in the usual layout."""

import pytest
from hypothesis import given, settings, strategies as st

from minillm.backend import to_float, to_host, xp
from minillm.models.clip import CLIPConfig, CLIPModel, MediaClassifier
from minillm.nn.contrastive import clip_loss_backward, clip_loss_forward
from minillm.nn.gradcheck import assert_gradients_close, gradcheck

SHARED_SHIFT = "attention.self.key.bias"  # softmax ignores a shift shared by every key: true gradient 0


def _cfg(modality):
    size, patch = ((4, 4), 2) if modality == "image" else ((4, 3), 2)
    return CLIPConfig(modality=modality, input_size=size, patch_size=patch, hidden_size=4, num_hidden_layers=1,
                      num_attention_heads=2, intermediate_size=6, text_vocab_size=7, text_max_positions=5,
                      projection_dim=3, initializer_range=0.5, logit_scale_init_value=0.7,
                      media_pooling="cls" if modality == "image" else "mean")  # each pooling checked once


def _checked(model):
    return [(n, p) for n, p in model.named_parameters() if SHARED_SHIFT not in n]


@pytest.mark.parametrize("modality", ["image", "speech"])
@settings(max_examples=1)
@given(seed=st.integers(0, 2**31 - 1))
def test_clip_gradients_through_both_towers_and_the_temperature(seed, modality):
    cfg = _cfg(modality)
    model = CLIPModel(cfg, dtype="float64", seed=seed % 1000)
    rng = xp.random.default_rng(seed)
    x = rng.standard_normal((3, *cfg.input_size))
    ids, mask = xp.array([[1, 2, 3, 0], [1, 4, 0, 0], [5, 6, 2, 3]]), xp.array([[1, 1, 1, 0], [1, 1, 0, 0], [1] * 4])
    positives = xp.array([[1.0, 0, 1], [0, 1, 0], [1, 0, 1]])  # items 0 and 2 show the same digit
    cache = {}

    def forward(x):
        loss, cache["c"] = clip_loss_forward(model.encode_media(x), model.encode_text(ids, mask),
                                             model.logit_scale.data, positives)
        return loss.reshape(1)

    def backward(dloss):
        du, dv, dt = clip_loss_backward(dloss.reshape(()), cache["c"])
        model.backward_media(du)
        model.backward_text(dv)
        model.logit_scale.accumulate(dt)
        return None  # (the patch encoder's tests check the input's gradient)

    errors = gradcheck(forward, backward, [x], _checked(model))
    assert_gradients_close(errors, [n for n, _ in _checked(model)])
    assert to_float(abs(model.text_model.encoder.layer[0].attention.self.key.bias.grad).max()) < 1e-12


def test_media_classifier_gradients():
    cfg = _cfg("image")
    model = MediaClassifier(cfg, dtype="float64", seed=3)
    x = xp.random.default_rng(0).standard_normal((2, 4, 4))
    errors = gradcheck(model, model.backward, [x], _checked(model))
    assert_gradients_close(errors, [n for n, _ in _checked(model)])


def test_names_save_and_load(tmp_path):
    model = CLIPModel(_cfg("speech"), seed=1)
    names = dict(model.named_parameters())
    assert {"logit_scale", "audio_projection.weight", "text_projection.weight",
            "audio_model.embeddings.cls_token", "audio_model.embeddings.patch_embeddings.projection.weight",
            "text_model.embeddings.word_embeddings.weight"} <= set(names)
    assert names["logit_scale"].shape == ()
    model.save_pretrained(str(tmp_path / "m"))
    again = CLIPModel.from_pretrained(str(tmp_path / "m"))
    x = xp.random.default_rng(0).standard_normal((2, 4, 3)).astype("float32")
    assert to_float(abs(again.eval().encode_media(x) - model.eval().encode_media(x)).max()) == 0.0
    assert to_host(again.logit_scale.data).tolist() == pytest.approx(0.7)
    with pytest.raises(ValueError, match="modality must be one of image, speech"):
        CLIPConfig(modality="video")
    with pytest.raises(ValueError, match="media_pooling must be 'cls' or 'mean', got 'max'"):
        CLIPConfig(media_pooling="max")
    with pytest.raises(ValueError, match=r"input_size \(28, 28\) does not divide into patches of 5"):
        CLIPConfig(patch_size=5)
