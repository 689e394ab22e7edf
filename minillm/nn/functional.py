"""The math of every layer, as pairs of stateless functions.

Each `*_forward` returns `(out, cache)`; the matching `*_backward(dout, cache)`
returns the gradient of every input, in the order the forward took them.
Nothing here owns parameters: `layers.py` binds them. Shapes use B batch,
T time, C channels, H heads, D head size, V vocabulary, N rows.
"""

import math

from minillm.backend import host_arrays, scatter_add, xp
from minillm.nn import normal


# ---------------------------------------------------------------- matrix products
MATMUL_PRECISION = {"dtype": None}  # None: products in their operands' own dtype


def set_matmul_precision(name):
    """Mixed precision: "float16" runs every matrix product of linear layers and attention with float16
    operands (the GPU's tensor cores; the result is cast back), "float32" (or None) in the operands' dtype.
    Parameters, activations, gradients and AdamW's state stay float32 (the master copies)."""
    if name not in (None, "float32", "float16"):
        raise ValueError(f"precision {name!r}: expected 'float32' or 'float16' (NumPy and CuPy have no bfloat16)")
    MATMUL_PRECISION["dtype"] = "float16" if name == "float16" else None


def matmul(a, b):
    """a @ b, with operands rounded to MATMUL_PRECISION's dtype when one is set; the result in a's dtype.

    On a device the product runs in float16 (tensor cores, float32 accumulation).
    NumPy has no fast float16 product, so on the host the rounded operands are
    multiplied in a's dtype: the same inputs, float32 accumulation, BLAS speed.
    """
    low = MATMUL_PRECISION["dtype"]
    if low is None:
        return a @ b
    if host_arrays():
        return a.astype(low).astype(a.dtype) @ b.astype(low).astype(a.dtype)
    return (a.astype(low) @ b.astype(low)).astype(a.dtype)


# ---------------------------------------------------------------- linear
def linear_forward(x, w, b):
    """y = x W + b, with W stored (in, out).  x: (..., I), w: (I, O), b: (O,) or None."""
    x2 = x.reshape(-1, x.shape[-1])  # (N, I): one 2-D GEMM is faster than a batched one
    y = matmul(x2, w)
    if b is not None:
        y += b
    return y.reshape(*x.shape[:-1], w.shape[1]), (x2, w, b is not None, x.shape)


def linear_backward(dy, cache, weight_grad=True, bias_grad=True, input_grad=True):
    """dx = dy W^T, dW = x^T dy, db = sum_n dy; dW (db) is None without weight_grad (bias_grad):
    a frozen weight skips its product, the larger half of the backward; dx is None without
    input_grad (the input is frozen embeddings' output)."""
    x2, w, has_bias, x_shape = cache
    dy2 = dy.reshape(-1, dy.shape[-1])  # (N, O)
    dx = matmul(dy2, w.T).reshape(x_shape) if input_grad else None
    dw = matmul(x2.T, dy2) if weight_grad else None
    db = dy2.sum(axis=0) if has_bias and bias_grad else None
    return dx, dw, db


# ---------------------------------------------------------------- embedding
def embedding_forward(idx, w):
    """out[b, t] = W[idx[b, t]].  idx: (B, T) ints, w: (V, C) -> (B, T, C)."""
    return w[idx], (idx, w.shape)


def embedding_backward(dout, cache):
    """dW[v] = sum of dout over every position whose index is v (scatter-add)."""
    idx, w_shape = cache
    dw = xp.zeros(w_shape, dtype=dout.dtype)
    scatter_add(dw, idx.ravel(), dout.reshape(-1, w_shape[1]))
    return dw


# ---------------------------------------------------------------- layernorm
def sum_last(x, scale=1.0):
    """scale * (x summed over its last axis), that axis kept with size 1: (..., C) -> (..., 1).

    einsum's summing loop runs 1.5-3x faster than ndarray.sum over a short last
    axis (LayerNorm's channels, softmax's keys). A matrix-vector product with a
    vector of ones is faster still on one BLAS thread but, on two, several times
    slower at some shapes.
    """
    out = xp.einsum("...c->...", x)[..., None]
    if scale != 1.0:
        out *= scale
    return out


def layernorm_forward(x, w, b, eps=1e-5):
    """y = (x - mean) / sqrt(var + eps) * w + b, over the last axis.  x: (..., C)."""
    C = x.shape[-1]
    xhat = x - sum_last(x, 1.0 / C)  # x - mean, then scaled in place to xhat
    var = sum_last(xhat * xhat, 1.0 / C)  # biased variance, as PyTorch
    rstd = 1.0 / xp.sqrt(var + eps)
    xhat *= rstd
    y = xhat * w
    y += b
    return y, (xhat, rstd, w)


def layernorm_backward(dy, cache, weight_grad=True, bias_grad=True):
    """dx = rstd * (g - mean(g) - xhat * mean(g * xhat)) with g = dy * w; dw = sum dy * xhat, db = sum dy
    (each None when not asked for: a frozen gain or bias)."""
    xhat, rstd, w = cache
    lead = tuple(range(dy.ndim - 1))
    dw = (dy * xhat).sum(axis=lead) if weight_grad else None
    db = dy.sum(axis=lead) if bias_grad else None
    C = dy.shape[-1]
    g = dy * w
    dx = g - sum_last(g, 1.0 / C)
    g *= xhat
    dx -= xhat * sum_last(g, 1.0 / C)
    dx *= rstd
    return dx, dw, db


# ---------------------------------------------------------------- gelu
_GELU_K = math.sqrt(2.0 / math.pi)


def gelu_forward(x):
    """GPT-2's tanh GELU: y = 0.5 x (1 + tanh(u)), u = k (x + 0.044715 x^3), k = sqrt(2/pi)."""
    p = x * x  # in place from here on: this runs on the widest activation, (B, T, 4C)
    p *= 0.044715 * _GELU_K
    p += _GELU_K
    p *= x  # u
    xp.tanh(p, out=p)
    p += 1.0  # 1 + tanh(u), kept for backward
    y = x * p
    y *= 0.5
    return y, (x, p)


def gelu_backward(dy, cache):
    """dy/dx = 0.5 (1 + tanh u) + 0.5 x (1 - tanh^2 u) du/dx, with du/dx = k (1 + 3 * 0.044715 x^2).

    Computed as (1 + tanh u) (0.5 + 0.5 x du/dx (1 - tanh u)): in the left tail
    1 + tanh u is 0 and in the right 1 - tanh u is, so saturated units pass 0 or dy exactly.
    """
    x, p = cache  # p = 1 + tanh u
    g = x * x
    g *= 1.5 * 0.044715 * _GELU_K
    g += 0.5 * _GELU_K  # du/dx / 2
    g *= x
    g *= xp.subtract(2.0, p)  # 1 - tanh u
    g += 0.5
    g *= p
    g *= dy
    return g


GELU_BLOCK = 65536  # values the CPU's erf GELU works on at a time (256 KB in float32)


def gelu_erf_forward(x):
    """BERT's exact GELU: y = x Phi(x) = 0.5 x (1 + erf(x / sqrt 2)), Phi the standard normal CDF.

    The cache is dy/dx = Phi(x) + x phi(x), phi the density, made here from
    the exp that Phi is computed with (nn/normal.py): backward is one product.
    On the CPU the values go through in blocks of GELU_BLOCK, so the thirty
    passes of cdf_and_pdf run in the cache; over a whole (B, T, 4C)
    activation each pass would go out to memory and back, twice the time.
    """
    flat = x.reshape(-1)
    y, dydx = xp.empty_like(flat), xp.empty_like(flat)
    step = GELU_BLOCK if host_arrays() else max(flat.size, 1)
    for lo in range(0, flat.size, step):
        xb = flat[lo:lo + step]
        cdf, pdf = normal.cdf_and_pdf(xb)
        xp.multiply(xb, cdf, out=y[lo:lo + step])
        pdf *= xb
        xp.add(pdf, cdf, out=dydx[lo:lo + step])  # dy/dx
    return y.reshape(x.shape), dydx.reshape(x.shape)


def gelu_erf_backward(dy, dydx):
    """dL/dx = dL/dy (Phi(x) + x phi(x))."""
    return dy * dydx


# ---------------------------------------------------------------- dropout
def dropout_forward(x, p, rng, training):
    """Inverted dropout: y = x * m / (1 - p), m ~ Bernoulli(1 - p); identity in eval."""
    if not training or p == 0.0:
        return x, None
    mask = rng.random(x.shape, dtype=x.dtype)  # u ~ U[0, 1), then in place:
    xp.greater_equal(mask, p, out=mask)  # m = 1 where u >= p (probability 1 - p), else 0
    mask /= 1.0 - p
    return x * mask, mask


def dropout_backward(dy, mask):
    return dy if mask is None else dy * mask


# ---------------------------------------------------------------- softmax
def softmax_forward(s, out=None):
    """p_i = exp(s_i - max s) / sum_j exp(s_j - max s), over the last axis; out=s overwrites s with p."""
    p = xp.subtract(s, s.max(axis=-1, keepdims=True), out=out)
    xp.exp(p, out=p)
    p *= 1.0 / sum_last(p)  # one division a row, then products: a broadcast division costs nearly an exp
    return p, p


def log_softmax(z, axis=-1):
    """log p_i = (z_i - max z) - log sum_j exp(z_j - max z): computed from the shifted z, nothing overflows."""
    shifted = z - z.max(axis=axis, keepdims=True)
    return shifted - xp.log(xp.exp(shifted).sum(axis=axis, keepdims=True))


def softmax_backward(dp, p, out=None):
    """ds_i = p_i (dp_i - sum_j p_j dp_j); out=dp overwrites dp with ds."""
    ds = xp.subtract(dp, sum_last(dp * p), out=out)
    ds *= p
    return ds


# ---------------------------------------------------------------- attention
def split_heads(x, n_head):
    """(..., T, C) -> (..., H, T, D), D = C / H: head h reads channels h D .. (h + 1) D - 1.

    A pure reshape and transpose, so its backward is merge_heads.
    """
    *lead, T, C = x.shape
    return x.reshape(*lead, T, n_head, C // n_head).swapaxes(-2, -3)


def merge_heads(x):
    """(..., H, T, D) -> (..., T, H D): the heads side by side again; its backward is split_heads."""
    *lead, H, T, D = x.shape
    return x.swapaxes(-2, -3).reshape(*lead, T, H * D)


def attention_forward(q, k, v, mask=None, dropout_p=0.0, rng=None, training=False, bias=None):
    """Scaled dot-product attention for every head at once.

        e_ij = q_i . k_j / sqrt(D) + b_ij   scores (b: an optional additive bias, e.g. by relative
                                            position), masked to -inf where mask is False
        alpha_ij = softmax_j(e_ij)          attention weights (then dropout, in training)
        out_i = sum_j alpha_ij v_j

    q: (B, H, Tq, D), k and v: (B, H, Tk, D), mask: bool broadcastable to
    (B, H, Tq, Tk), True where query i may attend to key j; bias: floats
    broadcastable to the same. A row with no allowed key gets uniform weights
    (the finite fill never makes NaN).
    """
    scale = 1.0 / math.sqrt(q.shape[-1])
    qs = q * scale  # scale q (Tq x D), not the larger score matrix (Tq x Tk)
    e = matmul(qs, k.swapaxes(-1, -2))  # (B, H, Tq, Tk)
    if bias is not None:
        e += bias
    keyless_rows = False
    if mask is not None:
        mask = xp.asarray(mask, dtype=bool)
        # a masked score becomes the most negative float (added to a score, it is all that is left):
        # exp(it - max) = 0, and never NaN. Adding the fill, (B, 1, 1, Tk) for padding, is a plain
        # broadcast sum; copying it in where the mask is False took a masked pass as long as the exp.
        e += xp.where(mask, 0.0, xp.finfo(e.dtype).min)
        # on the CPU, skip backward's masking pass when every row has a key; on a device, asking would wait on it
        keyless_rows = not host_arrays() or bool((~mask.any(axis=-1)).any())
    alpha, _ = softmax_forward(e, out=e)
    alpha_used, drop_mask = dropout_forward(alpha, dropout_p, rng, training)
    out = matmul(alpha_used, v)  # (B, H, Tq, D)
    bias_shape = None if bias is None else bias.shape
    return out, (qs, k, v, mask if keyless_rows else None, alpha, alpha_used, drop_mask, scale, bias_shape)


def attention_backward(dout, cache):
    """Back through out = alpha v, the dropout, the softmax and e = (q / sqrt(D)) k^T + b.

    Returns (dq, dk, dv), and d(bias) in the bias's own shape when the forward had one.
    """
    qs, k, v, keyless_mask, alpha, alpha_used, drop_mask, scale, bias_shape = cache
    dv = matmul(alpha_used.swapaxes(-1, -2), dout)  # (B, H, Tk, D)
    dalpha = matmul(dout, v.swapaxes(-1, -2))  # (B, H, Tq, Tk)
    if drop_mask is not None:
        dalpha *= drop_mask  # dropout's backward, in place
    de = softmax_backward(dalpha, alpha, out=dalpha)  # masked entries have alpha = 0, so de = 0 there...
    if keyless_mask is not None:  # ...except in a row with no allowed key, whose scores are all the fill
        de = xp.where(keyless_mask, de, 0.0)
    dq = matmul(de, k)
    dq *= scale
    dk = matmul(de.swapaxes(-1, -2), qs)
    if bias_shape is None:
        return dq, dk, dv
    return dq, dk, dv, sum_to_shape(de, bias_shape)


def sum_to_shape(g, shape):
    """The gradient of an array broadcast to g.shape: g summed over the broadcast axes."""
    lead = g.ndim - len(shape)
    g = g.sum(axis=tuple(range(lead))) if lead else g
    return g.sum(axis=tuple(i for i, n in enumerate(shape) if n == 1 and g.shape[i] != 1), keepdims=True)


# ---------------------------------------------------------------- pooling
def gather_positions_forward(h, positions):
    """out[b] = h[b, positions[b]]: one position per sequence (GPT's last token, BERT's [CLS]).

    h: (B, T, C), positions: (B,) ints -> (B, C).
    """
    return h[xp.arange(h.shape[0]), positions], (positions, h.shape)


def gather_positions_backward(dout, cache):
    """dh is zero except at the gathered position of each sequence."""
    positions, h_shape = cache
    dh = xp.zeros(h_shape, dtype=dout.dtype)
    dh[xp.arange(h_shape[0]), positions] = dout
    return dh


def masked_mean_forward(h, mask):
    """out[b] = sum_t mask[b, t] h[b, t] / sum_t mask[b, t]: mean over real tokens.

    h: (B, T, C), mask: (B, T) of 0/1 -> (B, C).
    """
    weights = mask.astype(h.dtype) / xp.maximum(mask.sum(axis=1, keepdims=True), 1).astype(h.dtype)  # (B, T)
    return (h * weights[:, :, None]).sum(axis=1), weights


def masked_mean_backward(dout, weights):
    """dh[b, t] = weights[b, t] dout[b]."""
    return weights[:, :, None] * dout[:, None, :]
