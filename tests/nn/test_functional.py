"""Every paired forward/backward in nn.functional against finite differences (float64)."""

import math
import warnings

import pytest
from hypothesis import given, strategies as st

from minillm.backend import to_float, to_host, xp
from minillm.nn import functional as F
from minillm.nn.gradcheck import assert_gradients_close, gradcheck
from minillm.nn.loss import cross_entropy_backward, cross_entropy_forward

seeds = st.integers(0, 2**31 - 1)
dims = st.integers(1, 5)


def randn(rng, *shape, scale=1.0):
    return rng.standard_normal(shape) * scale


def first(pair_forward):
    """forward that drops the cache, for gradcheck."""
    return lambda *a: pair_forward(*a)[0]


def backward_of(forward, backward):
    """Run forward again for its cache, then backward: keeps gradcheck generic."""
    state = {}

    def fwd(*a):
        out, state["cache"] = forward(*a)
        return out

    return fwd, lambda dout: backward(dout, state["cache"])


@given(seeds, dims, dims, dims, st.booleans())
def test_linear(seed, n, i, o, bias):
    rng = xp.random.default_rng(seed)
    x, w = randn(rng, 2, n, i), randn(rng, i, o)
    b = randn(rng, o) if bias else None
    if bias:
        fwd, bwd = backward_of(F.linear_forward, F.linear_backward)
        assert_gradients_close(gradcheck(fwd, bwd, (x, w, b)))
    else:
        fwd, bwd = backward_of(lambda x, w: F.linear_forward(x, w, None),
                               lambda d, c: F.linear_backward(d, c)[:2])
        assert_gradients_close(gradcheck(fwd, bwd, (x, w)))


@given(seeds, dims, dims, dims)
def test_embedding_scatter_adds_repeated_rows(seed, b, t, c):
    rng = xp.random.default_rng(seed)
    v = 3  # few rows, so indices repeat within a batch
    idx, w = rng.integers(0, v, (b, t)), randn(rng, v, c)
    fwd, bwd = backward_of(F.embedding_forward, lambda d, cache: (None, F.embedding_backward(d, cache)))
    assert_gradients_close(gradcheck(fwd, bwd, (idx, w)))


def test_embedding_backward_counts_each_use():
    w = xp.zeros((4, 2))
    _, cache = F.embedding_forward(xp.array([[1, 1, 3]]), w)
    dw = F.embedding_backward(xp.ones((1, 3, 2)), cache)
    assert to_host(dw).tolist() == [[0, 0], [2, 2], [0, 0], [1, 1]]


@given(seeds, dims, st.integers(3, 8), st.floats(0.01, 10.0))
def test_layernorm(seed, n, c, scale):
    """c >= 3: with two channels the output is +-1 whatever x is, and dx is only O(eps) noise."""
    rng = xp.random.default_rng(seed)
    x = randn(rng, n, 2, c, scale=scale) + 3.0
    fwd, bwd = backward_of(F.layernorm_forward, F.layernorm_backward)
    assert_gradients_close(gradcheck(fwd, bwd, (x, randn(rng, c), randn(rng, c))))


def test_layernorm_normalises():
    x = xp.array([[1.0, 2.0, 3.0, 4.0]])
    y, _ = F.layernorm_forward(x, xp.ones(4), xp.zeros(4), eps=0.0)
    expected = (x - 2.5) / math.sqrt(1.25)
    assert to_float(abs(y - expected).max()) < 1e-12


@given(seeds, dims, dims, st.floats(0.1, 5.0))
def test_gelu_tanh_and_erf(seed, n, c, scale):
    """Inputs within [-4, 4]: further left, 1 + tanh(u) and 1 + erf cancel and the function itself is rounding noise."""
    rng = xp.random.default_rng(seed)
    for forward, backward in ((F.gelu_forward, F.gelu_backward), (F.gelu_erf_forward, F.gelu_erf_backward)):
        fwd, bwd = backward_of(forward, backward)
        assert_gradients_close(gradcheck(fwd, bwd, (xp.clip(randn(rng, n, c, scale=scale), -4.0, 4.0),)))


def test_gelu_values():
    x = xp.array([-1.0, 0.0, 1.0, 2.0])
    tanh_form, _ = F.gelu_forward(x)
    erf_form, _ = F.gelu_erf_forward(x)
    k = math.sqrt(2 / math.pi)
    for i, v in enumerate([-1.0, 0.0, 1.0, 2.0]):
        assert to_float(tanh_form[i]) == pytest.approx(0.5 * v * (1 + math.tanh(k * (v + 0.044715 * v**3))), rel=1e-12)
        assert to_float(erf_form[i]) == pytest.approx(0.5 * v * (1 + math.erf(v / math.sqrt(2))), rel=1e-12, abs=1e-15)


@pytest.mark.parametrize("forward, backward", [(F.gelu_forward, F.gelu_backward),
                                               (F.gelu_erf_forward, F.gelu_erf_backward)])
def test_gelu_tails_are_exact_and_silent(forward, backward):
    """Far from 0 (tanh saturating to -1 or 1, Phi to 0 or 1): the left tail gives 0 and the right x, with
    no warning, for the tanh GELU and the erf one (whose float32 Phi is nn/normal.py's)."""
    x = xp.array([-200.0, -50.0, -12.0, 12.0, 50.0, 200.0])
    for dtype in ("float32", "float64"):
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            y, cache = forward(x.astype(dtype))
            g = backward(xp.ones(6, dtype=dtype), cache)
        assert to_float(abs(y[:3]).max()) < 1e-30 and to_float(abs(g[:3]).max()) < 1e-25  # the true ones are below 1e-60
        assert to_host(y[3:]).tolist() == [12.0, 50.0, 200.0] and to_host(g[3:]).tolist() == [1.0, 1.0, 1.0]


@given(seeds, st.floats(0.1, 0.9))
def test_dropout_scales_kept_units_and_gradient_matches(seed, p):
    rng = xp.random.default_rng(seed)
    x = randn(rng, 50, 40)
    y, mask = F.dropout_forward(x, p, xp.random.default_rng(seed), training=True)
    kept = mask != 0
    assert to_float(abs(y[kept] - x[kept] / (1 - p)).max()) < 1e-12
    assert to_float(abs(y[~kept]).max(initial=0.0)) == 0.0
    assert abs(to_float(kept.mean()) - (1 - p)) < 0.06  # 2000 Bernoulli draws
    assert to_float(abs(F.dropout_backward(xp.ones_like(x), mask) - mask).max()) == 0.0
    same, none = F.dropout_forward(x, p, None, training=False)
    assert same is x and none is None


@given(seeds, dims, dims, st.floats(0.1, 20.0))
def test_softmax(seed, n, c, scale):
    rng = xp.random.default_rng(seed)
    s = randn(rng, n, c, scale=scale)
    p, _ = F.softmax_forward(s)
    assert to_float(abs(p.sum(-1) - 1).max()) < 1e-12
    fwd, bwd = backward_of(F.softmax_forward, F.softmax_backward)
    assert_gradients_close(gradcheck(fwd, bwd, (s,)))


@st.composite
def attention_case(draw):
    seed = draw(seeds)
    rng = xp.random.default_rng(seed)
    b, h, tq, tk, d = draw(dims), draw(st.integers(1, 3)), draw(dims), draw(dims), draw(dims)
    mask = rng.random((b, 1, tq, tk)) < draw(st.floats(0.3, 1.0))
    mask[..., 0] = True  # every query sees at least one key (see the all-masked test)
    return randn(rng, b, h, tq, d), randn(rng, b, h, tk, d), randn(rng, b, h, tk, d), mask


@given(seed=seeds, lead=st.lists(dims, min_size=0, max_size=2), t=dims, h=st.integers(1, 3), d=dims)
def test_split_and_merge_heads_are_inverse_reshapes(seed, lead, t, h, d):
    x = randn(xp.random.default_rng(seed), *lead, t, h * d)  # (..., T, C)
    heads = F.split_heads(x, h)  # (..., H, T, D)
    assert heads.shape == (*lead, h, t, d)
    for i in range(h):  # head i is channels i D .. (i + 1) D - 1
        assert to_host((heads[..., i, :, :] == x[..., i * d:(i + 1) * d]).all())
    assert to_host((F.merge_heads(heads) == x).all())


@given(attention_case())
def test_attention_with_arbitrary_masks(case):
    q, k, v, mask = case
    fwd, bwd = backward_of(lambda q, k, v: F.attention_forward(q, k, v, mask), F.attention_backward)
    assert_gradients_close(gradcheck(fwd, bwd, (q, k, v)))


@given(attention_case(), st.sampled_from([(1, 1, 1), (2, 1, 1), (1, 1)]))
def test_attention_with_an_additive_bias(case, bias_lead):
    """e_ij = q_i . k_j / sqrt(D) + b_ij, b broadcast (per head, per batch row or shared): d(b) sums over
    the axes it was broadcast along."""
    q, k, v, mask = case
    b, h, tq, tk = q.shape[0], q.shape[1], q.shape[2], k.shape[2]
    shape = {(1, 1, 1): (1, h, tq, tk), (2, 1, 1): (b, 1, tq, tk), (1, 1): (h, tq, tk)}[bias_lead]
    bias = randn(xp.random.default_rng(tq), *shape)
    fwd, bwd = backward_of(lambda q, k, v, bias: F.attention_forward(q, k, v, mask, bias=bias),
                           F.attention_backward)
    assert_gradients_close(gradcheck(fwd, bwd, (q, k, v, bias)))
    plain, _ = F.attention_forward(q, k, v, mask)
    shifted, _ = F.attention_forward(q, k, v, mask, bias=xp.full(shape, 3.0))
    assert to_float(abs(plain - shifted).max()) < 1e-12  # a constant added to every score changes nothing


def test_attention_matches_the_equation():
    rng = xp.random.default_rng(0)
    q, k, v = randn(rng, 1, 1, 3, 4), randn(rng, 1, 1, 3, 4), randn(rng, 1, 1, 3, 4)
    causal = xp.tril(xp.ones((3, 3), dtype=bool))
    out, _ = F.attention_forward(q, k, v, causal)
    for i in range(3):
        e = [to_float(q[0, 0, i] @ k[0, 0, j]) / 2.0 for j in range(i + 1)]  # sqrt(D) = 2
        w = [math.exp(x - max(e)) for x in e]
        expected = sum(w[j] / sum(w) * v[0, 0, j] for j in range(i + 1))
        assert to_float(abs(out[0, 0, i] - expected).max()) < 1e-12


@given(seeds)
def test_attention_row_without_keys_is_finite_and_its_gradient_right(seed):
    """A fully masked row averages v uniformly; q and k get no gradient through it."""
    rng = xp.random.default_rng(seed)
    q, k, v = randn(rng, 1, 2, 3, 2), randn(rng, 1, 2, 3, 2), randn(rng, 1, 2, 3, 2)
    mask = xp.tril(xp.ones((3, 3), dtype=bool), k=-1)  # row 0 sees nothing
    out, _ = F.attention_forward(q, k, v, mask)
    assert to_host(xp.isfinite(out).all()) and to_float(abs(out[:, :, 0] - v.mean(axis=2)).max()) < 1e-12
    fwd, bwd = backward_of(lambda q, k, v: F.attention_forward(q, k, v, mask), F.attention_backward)
    assert_gradients_close(gradcheck(fwd, bwd, (q, k, v)))


@given(seeds, st.integers(1, 6), st.integers(2, 7), st.floats(0.0, 0.7))
def test_cross_entropy_with_ignored_rows(seed, n, v, p_ignore):
    rng = xp.random.default_rng(seed)
    logits = randn(rng, n, v, scale=3.0)
    targets = rng.integers(0, v, n)
    targets = xp.where(rng.random(n) < p_ignore, -100, targets)
    loss, cache = cross_entropy_forward(logits, targets)
    keep = to_host(targets) != -100
    host_logits = to_host(logits)
    expected = [math.log(sum(math.exp(z) for z in row)) - row[t] for row, t, k in
                zip(host_logits.tolist(), to_host(targets).tolist(), keep) if k]
    assert to_float(loss) == pytest.approx(sum(expected) / max(len(expected), 1), rel=1e-10, abs=1e-12)
    fwd, bwd = backward_of(lambda z: cross_entropy_forward(z, targets),
                           lambda d, c: cross_entropy_backward(d, c))
    assert_gradients_close(gradcheck(lambda z: xp.asarray(fwd(z)).reshape(1), lambda d: bwd(d[0]), (logits,)))


def test_gradcheck_catches_a_wrong_backward():
    """A softmax backward missing the -sum_j p_j dp_j term must fail loudly, even when saturated."""
    rng = xp.random.default_rng(0)
    for scale in (1.0, 30.0):
        s = randn(rng, 3, 4, scale=scale)
        fwd, _ = backward_of(F.softmax_forward, F.softmax_backward)
        wrong = lambda dp, p=None: dp * F.softmax_forward(s)[0]  # noqa: E731
        assert gradcheck(fwd, wrong, (s,))["input0"] > 1e-3


def test_matmul_in_float16_rounds_the_operands_and_keeps_the_callers_dtype():
    rng = xp.random.default_rng(0)
    a, b = rng.standard_normal((5, 7)).astype("float32"), rng.standard_normal((7, 3)).astype("float32")
    try:
        F.set_matmul_precision("float16")
        low = F.matmul(a, b)
        y, _ = F.linear_forward(a, b, None)
    finally:
        F.set_matmul_precision("float32")
    exact = to_host(a @ b)
    assert low.dtype == a.dtype and y.dtype == a.dtype
    rounded = to_host(a.astype("float16").astype("float64") @ b.astype("float16").astype("float64"))
    assert abs(to_host(low) - rounded).max() < 2.0 ** -10 * abs(rounded).max()  # float16 operands (and result)...
    assert 0 < abs(to_host(low) - exact).max() < 1e-2 * abs(exact).max()  # ...not float32's: rounded, no worse
    assert to_host(F.matmul(a, b)).tolist() == exact.tolist()  # float32 again
    with pytest.raises(ValueError, match="bfloat16"):
        F.set_matmul_precision("bfloat16")
