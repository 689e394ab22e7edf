"""Cross-attention and late fusion: gradients of both modalities' inputs and every parameter."""

import pytest
from hypothesis import given, settings, strategies as st

from minillm.backend import xp
from minillm.models.fusion import FusionConfig, fusion_model
from minillm.nn.gradcheck import assert_gradients_close, gradcheck


@pytest.mark.parametrize("fusion", ["cross", "late"])
@settings(max_examples=2)
@given(seed=st.integers(0, 2**31 - 1), ts=st.integers(1, 3), tv=st.integers(1, 3))
def test_fusion_gradients(fusion, seed, ts, tv):
    cfg = FusionConfig(fusion=fusion, hidden_size=4, num_attention_heads=2, intermediate_size=6, initializer_range=0.5)
    model = fusion_model(cfg, dtype="float64", seed=seed % 1000)
    rng = xp.random.default_rng(seed)
    speech, image = rng.standard_normal((2, ts, 4)), rng.standard_normal((2, tv, 4))
    assert model(speech, image).shape == (2, 2)
    params = [(n, p) for n, p in model.named_parameters() if n != "cross.key.bias"]  # its true gradient is 0
    errors = gradcheck(model, model.backward, [speech, image], params)
    assert_gradients_close(errors, ["input0", "input1"] + [n for n, _ in params])


def test_fusion_config_errors():
    with pytest.raises(ValueError, match="fusion must be one of cross, late, got 'early'"):
        FusionConfig(fusion="early")
