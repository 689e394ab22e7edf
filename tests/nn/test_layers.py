"""Modules (parameters bound to the functional pairs) against finite differences, float64."""

import pytest
from hypothesis import given, strategies as st

from minillm.backend import to_float, xp
from minillm.nn.attention import SelfAttention, combine_masks
from minillm.nn.gradcheck import assert_gradients_close, gradcheck, gradcheck_module
from minillm.nn.layers import GELU, Conv1D, Dropout, Embedding, LayerNorm, Linear, ModuleList, RandomSource

seeds = st.integers(0, 2**31 - 1)
dims = st.integers(1, 4)
F64 = "float64"


@given(seeds, dims, dims, dims)
def test_conv1d_and_linear(seed, t, i, o):
    rng = xp.random.default_rng(seed)
    x = rng.standard_normal((2, t, i))
    conv = Conv1D(i, o, rng, std=1.0, dtype=F64)
    conv.bias.data = rng.standard_normal(o)
    assert conv.weight.shape == (i, o)  # GPT-2 layout (in, out)
    assert_gradients_close(gradcheck_module(conv, x), ["input0", "weight", "bias"])
    lin = Linear(i, o, rng, std=1.0, dtype=F64)
    assert lin.weight.shape == (o, i)  # PyTorch layout (out, in)
    assert to_float(abs(lin(x) - (x @ lin.weight.data.T + lin.bias.data)).max()) < 1e-12
    assert_gradients_close(gradcheck_module(lin, x), ["input0", "weight", "bias"])


@given(seeds, dims, dims)
def test_embedding_and_layernorm(seed, t, c):
    rng = xp.random.default_rng(seed)
    emb = Embedding(5, c, rng, std=1.0, dtype=F64)
    assert_gradients_close(gradcheck_module(emb, rng.integers(0, 5, (3, t))), ["weight"])
    ln = LayerNorm(c + 2, dtype=F64)  # >= 3 channels (see test_functional.test_layernorm)
    ln.weight.data, ln.bias.data = rng.standard_normal(c + 2), rng.standard_normal(c + 2)
    assert_gradients_close(gradcheck_module(ln, rng.standard_normal((2, t, c + 2))), ["input0", "weight", "bias"])


@given(seeds)
def test_gelu_module_both_forms(seed):
    x = xp.random.default_rng(seed).standard_normal((3, 4))
    for form in ("tanh", "erf"):
        assert_gradients_close(gradcheck_module(GELU(form), x), ["input0"])
    with pytest.raises(ValueError, match="approximate"):
        GELU("relu")


@given(seeds, st.floats(0.05, 0.8))
def test_dropout_module_gradient_uses_the_same_mask(seed, p):
    source = RandomSource(seed)
    drop = Dropout(p, source)
    x = xp.random.default_rng(seed).standard_normal((4, 5))
    original = drop.forward

    def forward(x):  # the same mask every call, as within one training step
        source.reseed(seed)
        return original(x)

    drop.forward = forward
    assert_gradients_close(gradcheck_module(drop, x), ["input0"])
    with pytest.raises(ValueError):
        Dropout(1.0, source)


@st.composite
def attention_inputs(draw):
    seed = draw(seeds)
    rng = xp.random.default_rng(seed)
    n_head = draw(st.integers(1, 3))
    c = n_head * draw(st.integers(1, 3))
    b, t = draw(st.integers(1, 3)), draw(st.integers(1, 5))
    padding = (rng.random((b, t)) < 0.7).astype(xp.int64)
    padding[:, 0] = 1  # position 0 is real, so every causal row has a key
    extra = rng.random((b, 1, t, t)) < 0.6
    extra |= xp.eye(t, dtype=bool)  # every query keeps itself
    return seed, n_head, c, rng.standard_normal((b, t, c)), padding, extra, draw(st.booleans())


@given(attention_inputs())
def test_self_attention_with_causal_padding_and_arbitrary_masks(case):
    seed, n_head, c, x, padding, extra, causal = case
    rng = xp.random.default_rng(seed)
    attn = SelfAttention(c, n_head, rng, RandomSource(0), dtype=F64)
    for p in attn.parameters():
        p.data = rng.standard_normal(p.shape) * 0.5
    # padded queries attend to position 0 only through `extra`'s diagonal/column; keep rows non-empty
    extra[..., 0] = True
    errors = gradcheck_module(attn, x, causal=causal, padding_mask=padding, mask=extra)
    assert_gradients_close(errors, ["input0", "c_attn.weight", "c_attn.bias", "c_proj.weight", "c_proj.bias"])


def test_combine_masks():
    m = combine_masks(3, 3, causal=True, padding_mask=xp.array([[1, 1, 0]]))
    assert m.shape == (1, 1, 3, 3)
    assert m[0, 0].tolist() == [[True, False, False], [True, True, False], [True, True, False]]
    with_past = combine_masks(1, 4, causal=True)  # one new query after 3 cached keys sees all 4
    assert with_past[0, 0].tolist() == [[True, True, True, True]]
    assert combine_masks(2, 2) is None


def test_attention_ignores_masked_keys():
    rng = xp.random.default_rng(0)
    attn = SelfAttention(4, 2, rng, RandomSource(0), dtype=F64)
    x = rng.standard_normal((1, 3, 4))
    y = attn(x, causal=False, padding_mask=xp.array([[1, 1, 0]]))
    x2 = x.copy()
    x2[0, 2] = 100.0  # change the padded token: real positions must not notice
    y2 = attn(x2, causal=False, padding_mask=xp.array([[1, 1, 0]]))
    assert to_float(abs(y[0, :2] - y2[0, :2]).max()) < 1e-12


def test_reseed_dropout_reaches_the_one_generator_the_layers_share():
    source = RandomSource(0)
    attn = SelfAttention(4, 2, xp.random.default_rng(0), source, attn_pdrop=0.5, resid_pdrop=0.5, dtype=F64)
    x = xp.random.default_rng(1).standard_normal((2, 3, 4))
    assert attn.random_source() is source
    attn.reseed_dropout(3)
    first = attn(x)
    source.reseed(3)
    assert to_float(abs(attn(x) - first).max()) == 0.0  # the same masks as reseeding the source itself
    attn.reseed_dropout(3)
    assert attn.dropout_seeds(2) == RandomSource(3).rng.integers(0, 2 ** 63, 2).tolist()
    plain = Linear(2, 2, xp.random.default_rng(0))
    assert plain.random_source() is None and plain.dropout_seeds(2) == []
    plain.reseed_dropout(3)  # nothing to reseed
    with pytest.raises(ValueError, match="2 RandomSources"):
        ModuleList([Dropout(0.1, RandomSource(0)), Dropout(0.1, RandomSource(1))]).reseed_dropout(3)


def test_attention_dropout_gradient():
    rng = xp.random.default_rng(1)
    source = RandomSource(5)
    attn = SelfAttention(4, 2, rng, source, attn_pdrop=0.3, resid_pdrop=0.2, dtype=F64)
    forward = attn.forward

    def same_masks(x, **kw):
        source.reseed(5)
        return forward(x, **kw)

    attn.forward = same_masks
    errors = gradcheck_module(attn, rng.standard_normal((2, 3, 4)))
    assert_gradients_close(errors, ["input0", "c_attn.weight"])


@given(seeds, dims, dims)
def test_frozen_parameters_get_no_gradient_and_the_rest_are_unchanged(seed, i, o):
    """requires_grad False: no .grad, while the input's and the other parameters' gradients stay exact."""
    rng = xp.random.default_rng(seed)
    x = rng.standard_normal((2, 3, i))
    for layer in (Linear(i, o, rng, std=1.0, dtype=F64), Conv1D(i, o, rng, std=1.0, dtype=F64),
                  LayerNorm(i + 2, dtype=F64)):
        inputs = x if not isinstance(layer, LayerNorm) else rng.standard_normal((2, 3, i + 2))
        layer.bias.data = rng.standard_normal(layer.bias.shape)
        layer.weight.requires_grad = False
        errors = gradcheck(layer.forward, layer.backward, [inputs], [("bias", layer.bias)])
        assert_gradients_close(errors, ["input0", "bias"])
        assert layer.weight.grad is None
    emb = Embedding(5, o, rng, dtype=F64).requires_grad_(False)
    emb.backward(emb(rng.integers(0, 5, (2, 3))))
    assert emb.weight.grad is None and emb.num_parameters(trainable_only=True) == 0
