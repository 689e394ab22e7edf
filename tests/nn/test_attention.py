"""Attention with trained keys and values before the tokens' own (prefix tuning), against finite differences."""

from hypothesis import given, strategies as st

from minillm.backend import xp
from minillm.nn.attention import SelfAttention
from minillm.nn.gradcheck import assert_gradients_close, gradcheck
from minillm.nn.layers import RandomSource


@given(st.integers(0, 2**31 - 1), st.integers(1, 3), st.integers(1, 4), st.booleans())
def test_self_attention_with_a_prefix_passes_its_gradients_back(seed, n_prefix, t, padded):
    rng = xp.random.default_rng(seed)
    attn = SelfAttention(4, 2, rng, RandomSource(0), dtype="float64")
    for p in attn.parameters():
        p.data = rng.standard_normal(p.shape) * 0.5
    x = rng.standard_normal((2, t, 4))
    pk, pv = rng.standard_normal((2, 2, n_prefix, 2)), rng.standard_normal((2, 2, n_prefix, 2))  # (B, H, n, D)
    padding = xp.ones((2, n_prefix + t), dtype=xp.int64)
    if padded and t > 1:
        padding[1, -1] = 0

    def forward(x, pk, pv):
        return attn(x, causal=True, padding_mask=padding, past=(pk, pv))

    def backward(dy):
        dx = attn.backward(dy)
        return (dx, *attn.dpast)

    errors = gradcheck(forward, backward, [x, pk, pv], list(attn.named_parameters()))
    assert_gradients_close(errors, ["input0", "input1", "input2", "c_attn.weight", "c_proj.weight"])
    attn(x, causal=True)
    attn.backward(xp.ones((2, t, 4)))
    assert attn.dpast is None  # no prefix, no prefix gradient
