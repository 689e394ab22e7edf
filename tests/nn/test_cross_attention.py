"""Cross-attention against finite differences (both inputs), and that masked keys are never read."""

from hypothesis import given, strategies as st

from minillm.backend import to_float, xp
from minillm.nn.cross_attention import CrossAttention
from minillm.nn.gradcheck import assert_gradients_close, gradcheck

seeds = st.integers(0, 2**31 - 1)
NAMES = ["input0", "input1", "key.weight"] + [f"{p}.{w}" for p in ("query", "value", "output")
                                              for w in ("weight", "bias")]


@given(seeds, st.integers(1, 3), st.integers(1, 4), st.sampled_from([(2, 1), (4, 2), (6, 3)]))
def test_cross_attention_gradients(seed, tq, tk, dims):
    dim, n_head = dims
    rng = xp.random.default_rng(seed)
    attn = CrossAttention(dim, n_head, rng, std=0.7, dtype="float64")
    for _, p in attn.named_parameters():
        if p.data.ndim == 1:
            p.data = rng.standard_normal(p.shape)
    x, context = rng.standard_normal((2, tq, dim)), rng.standard_normal((2, tk, dim))
    mask = xp.ones((2, tk))
    mask[1, tk - 1:] = 0 if tk > 1 else 1
    # softmax ignores a shift shared by every key, so the key bias's true gradient is 0: checked apart
    params = [(n, p) for n, p in attn.named_parameters() if n != "key.bias"]
    errors = gradcheck(lambda x, c: attn(x, c, mask), attn.backward, [x, context], params)
    assert_gradients_close(errors, NAMES)
    assert to_float(abs(attn.key.bias.grad).max()) < 1e-12


def test_masked_context_is_not_read():
    rng = xp.random.default_rng(0)
    attn = CrossAttention(4, 2, rng, std=1.0, dtype="float64")
    x, context = rng.standard_normal((1, 2, 4)), rng.standard_normal((1, 3, 4))
    mask = xp.array([[1, 1, 0]])
    before = attn(x, context, mask)
    context[0, 2] += 100.0
    assert to_float(abs(attn(x, context, mask) - before).max()) < 1e-12
    assert to_float(abs(attn(x, context) - before).max()) > 1e-3
