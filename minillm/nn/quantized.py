"""Quantized weights and matrix products, for inference.

Symmetric quantization keeps one float scale per row of a matrix (or per group
of `g` entries of a row) and a small integer per entry:

    s = max|w| / q_max,   q = round(w / s) in [-q_max, q_max],   w ~ s q,   |w - s q| <= s / 2

with q_max = 127 for int8 and 7 for int4. A weight matrix W (out, in) gets one
scale per output channel (a row of W); an activation x (N, in) one per row,
computed at each call (dynamic quantization). The three products:

    int8 weights and activations ("w8a8"):  y_nj = s_x[n] s_W[j] sum_i q_x[n, i] q_W[j, i]  + b_j
    int8 weights only ("w8"):               y_nj = s_W[j] sum_i x[n, i] q_W[j, i]  + b_j
    int4 weights in groups ("w4"):          W[j, i] = s_W[j, i // g] q_W[j, i],  y = x W^T + b

In the first two the scales factor out of the dot product, so the product
reads the stored integers as they are (w8a8: integers times integers, rescaled
once at the end); int4's scale changes along the sum, so its weight is
dequantized at each call (one layer at a time) and multiplied in float.

NumPy has no int8 matrix product (its integer matmul does not use BLAS and is
tens of times slower than float32's), so int_matmul computes the exact integer
product with float32 BLAS: a sum of at most 1040 products of int8 values is an
integer below 1040 * 127^2 < 2^24, and float32 holds every integer below 2^24
exactly, so each partial sum is exact whatever order BLAS adds in. Inputs are
cut into chunks of 1040 and the chunks' sums added in int32 (on CuPy the same
code runs; its int8 tensor-core product is not used here). The win of these
layers is the bytes they hold (4x fewer for int8, about 7x for int4 with its
group scales), not speed. Inference only: these layers have no backward.
"""

import dataclasses
import fnmatch

from minillm.backend import xp
from minillm.nn import functional as F
from minillm.nn.layers import Conv1D, Embedding, Linear, Module, Parameter

INT8_MAX, INT4_MAX = 127, 7
EXACT_CHUNK = 1040  # int8 products whose sum float32 holds exactly: 1040 * 127^2 = 16,774,160 < 2^24


# ---------------------------------------------------------------- quantize / dequantize
def quantize_rows(w, q_max=INT8_MAX):
    """Symmetric per-row quantization: s_r = max_i |w_ri| / q_max, q = round(w / s).  w: (R, C) -> int8 (R, C), (R,).

    A row of zeros gets scale 1 (its q are 0). Rounding half to even keeps |w - s q| <= s / 2.
    """
    scale = xp.abs(w).max(axis=-1) / q_max  # (R,)
    scale = xp.where(scale == 0, 1.0, scale).astype(xp.float32)
    q = xp.clip(xp.rint(w / scale[..., None]), -q_max, q_max).astype(xp.int8)  # (R, C)
    return q, scale


def dequantize_rows(q, scale):
    """w ~ s_r q_r.  q: (R, C) int8, scale: (R,) -> float32 (R, C)."""
    return q.astype(xp.float32) * scale[..., None]


def quantize_groups(w, group_size, q_max=INT4_MAX):
    """Per-group quantization: each row cut into groups of group_size, one scale each.

    w: (R, C), C a multiple of group_size -> q int8 (R, C) in [-q_max, q_max], scales (R, C / group_size).
    """
    R, C = w.shape
    if C % group_size:
        raise ValueError(f"a row of {C} entries does not split into groups of {group_size}")
    q, scale = quantize_rows(w.reshape(R, C // group_size, group_size), q_max)  # (R, G, g), (R, G)
    return q.reshape(R, C), scale


def dequantize_groups(q, scale):
    """W[r, c] = s[r, c // g] q[r, c].  q: (R, C), scale: (R, G) -> float32 (R, C)."""
    R, C = q.shape
    G = scale.shape[1]
    return (q.reshape(R, G, C // G).astype(xp.float32) * scale[..., None]).reshape(R, C)


def pack_int4(q):
    """Two int4 values a byte: entry 2k in the low four bits, 2k + 1 in the high ones, each stored as q + 8.

    q: (R, C) ints in [-8, 7], C even -> uint8 (R, C / 2).
    """
    if q.shape[-1] % 2:
        raise ValueError(f"int4 packing needs an even number of entries a row, got {q.shape[-1]}")
    u = (q.astype(xp.int16) + 8).astype(xp.uint8)  # [0, 15]
    return u[..., 0::2] | (u[..., 1::2] << 4)


def unpack_int4(packed):
    """The inverse of pack_int4: uint8 (R, C / 2) -> int8 (R, C)."""
    low = (packed & 0x0F).astype(xp.int8) - 8
    high = (packed >> 4).astype(xp.int8) - 8
    return xp.stack([low, high], axis=-1).reshape(*packed.shape[:-1], 2 * packed.shape[-1])


# ---------------------------------------------------------------- products
def int_matmul(a, b):
    """The exact integer product of int8 matrices, accumulated in int32.  a: (N, K), b: (K, M) -> (N, M).

    Each chunk of at most EXACT_CHUNK inputs is multiplied in float32 (exact, see the module's docstring).
    """
    out = None
    for k in range(0, a.shape[1], EXACT_CHUNK):
        part = (a[:, k:k + EXACT_CHUNK].astype(xp.float32) @ b[k:k + EXACT_CHUNK].astype(xp.float32))
        part = part.astype(xp.int32)
        out = part if out is None else out + part
    return out


def linear_w8a8_forward(x, q_io, w_scale, b):
    """y = s_x s_W^T * (q_x q_W) + b, x quantized per row at this call.

    x: (..., I) float, q_io: (I, O) int8 (the weight as the product reads it), w_scale: (O,), b: (O,) or None.
    """
    x2 = x.reshape(-1, x.shape[-1])  # (N, I)
    q_x, x_scale = quantize_rows(x2)  # (N, I) int8, (N,)
    acc = int_matmul(q_x, q_io)  # (N, O) int32
    y = acc.astype(xp.float32) * x_scale[:, None] * w_scale[None, :]
    if b is not None:
        y += b
    return y.reshape(*x.shape[:-1], q_io.shape[1]).astype(x.dtype, copy=False)


def linear_w8_forward(x, q_io, w_scale, b):
    """y = (x q_W) * s_W + b: the output channel's scale factors out of its dot product."""
    x2 = x.reshape(-1, x.shape[-1])  # (N, I)
    y = (x2 @ q_io.astype(x.dtype)) * w_scale.astype(x.dtype)
    if b is not None:
        y += b
    return y.reshape(*x.shape[:-1], q_io.shape[1])


def linear_w4_forward(x, packed, w_scale, b):
    """y = x W^T + b with W (O, I) dequantized from its int4 groups for this call.

    packed: (O, I / 2) uint8, w_scale: (O, I / group_size).
    """
    w = dequantize_groups(unpack_int4(packed), w_scale).astype(x.dtype)  # (O, I)
    y, _ = F.linear_forward(x, w.T, b)
    return y


# ---------------------------------------------------------------- the scheme
@dataclasses.dataclass
class QuantizationScheme:
    """What a quantized checkpoint holds, as config.json's `quantization_config`.

    weights: "int8" (per output channel) or "int4" (groups of group_size along the input);
    activations: "int8" (dynamic, per row; with int8 weights only) or None (weight-only);
    embeddings: quantize the embedding tables too (per row, or per group for int4);
    keep_float: name patterns (fnmatch, e.g. "classifier", "*.pooler.dense") of layers left in float.
    """

    weights: str = "int8"
    activations: str = None
    group_size: int = 64
    embeddings: bool = True
    keep_float: tuple = ()

    def __post_init__(self):
        self.keep_float = tuple(self.keep_float)
        if self.weights not in ("int8", "int4"):
            raise ValueError(f"quantization weights must be 'int8' or 'int4', got {self.weights!r}")
        if self.activations not in (None, "int8"):
            raise ValueError(f"quantization activations must be 'int8' or null, got {self.activations!r}")
        if self.activations and self.weights != "int8":
            raise ValueError("int8 activations go with int8 weights only")
        if self.group_size < 2 or self.group_size % 2:
            raise ValueError(f"quantization group_size must be an even number >= 2, got {self.group_size}")

    @property
    def mode(self):
        """w8a8, w8 or w4: the forward function the layers run."""
        return "w8a8" if self.activations else ("w8" if self.weights == "int8" else "w4")

    def to_dict(self):
        return {"quant_method": "minillm", **dataclasses.asdict(self), "keep_float": list(self.keep_float)}

    @classmethod
    def from_dict(cls, d):
        if d.get("quant_method") != "minillm":
            raise ValueError(f"quant_method is {d.get('quant_method')!r}, expected 'minillm'")
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})


def quantize_matrix(w_oi, scheme):
    """(q, scale) of a weight stored (out, in): int8 per row, or int4 groups packed two a byte."""
    if scheme.weights == "int8":
        return quantize_rows(w_oi)
    q, scale = quantize_groups(w_oi, min(scheme.group_size, w_oi.shape[1]))
    return pack_int4(q), scale


def dequantize_matrix(q, scale, scheme):
    """The float32 (out, in) matrix quantize_matrix's (q, scale) stands for."""
    return dequantize_rows(q, scale) if scheme.weights == "int8" else dequantize_groups(unpack_int4(q), scale)


# ---------------------------------------------------------------- layers
class QuantizedLinear(Module):
    """A Linear (W stored (out, in)) or Conv1D (W stored (in, out)) whose weight is quantized.

    Parameters, frozen: `weight` (int8 in the layer's own layout; int4 packed as (out, in / 2) for both
    layouts), `weight_scale` ((out,) for int8, (out, in / group_size) for int4) and the float `bias`.
    """

    def __init__(self, layer, scheme):
        self.scheme, self.mode = scheme, scheme.mode
        self.in_out = isinstance(layer, Conv1D)  # GPT-2's layout
        w = layer.weight.data
        q, scale = quantize_matrix(w.T if self.in_out else w, scheme)
        if scheme.weights == "int8" and self.in_out:
            q = xp.ascontiguousarray(q.T)  # stored as the float weight was: (in, out)
        self.weight = Parameter(q, requires_grad=False)
        self.weight_scale = Parameter(scale, requires_grad=False)
        self.bias = layer.bias

    def dequantized(self):
        """The float32 weight the integers stand for, in the float layer's layout."""
        q = self.weight.data.T if self.scheme.weights == "int8" and self.in_out else self.weight.data
        w = dequantize_matrix(q, self.weight_scale.data, self.scheme)  # (out, in)
        return w.T if self.in_out else w

    def forward(self, x):  # (..., in) -> (..., out)
        b = None if self.bias is None else self.bias.data
        q, scale = self.weight.data, self.weight_scale.data
        if self.mode == "w4":
            return linear_w4_forward(x, q, scale, b)
        q_io = q if self.in_out else q.T  # (in, out): a view
        forward = linear_w8a8_forward if self.mode == "w8a8" else linear_w8_forward
        return forward(x, q_io, scale, b)

    def backward(self, dy):
        raise NotImplementedError("quantized layers run inference only")


class QuantizedEmbedding(Module):
    """An embedding table (V, C) quantized per row (int8) or per group of a row (int4).

    forward(idx) dequantizes the rows it gathers; logits_forward(h) reads the table as an output layer
    (GPT's tied head), the (V, C) table being a weight stored (out, in).
    """

    def __init__(self, layer, scheme):
        self.scheme, self.mode = scheme, scheme.mode
        q, scale = quantize_matrix(layer.weight.data, scheme)
        self.weight = Parameter(q, requires_grad=False)
        self.weight_scale = Parameter(scale, requires_grad=False)

    def dequantized(self):
        """The float32 table (V, C) the integers stand for."""
        return dequantize_matrix(self.weight.data, self.weight_scale.data, self.scheme)

    def forward(self, idx):  # (B, T) -> (B, T, C)
        q, scale = self.weight.data[idx], self.weight_scale.data[idx]
        if self.scheme.weights == "int8":
            return q.astype(xp.float32) * scale[..., None]
        shape = q.shape[:-1]
        rows = dequantize_groups(unpack_int4(q.reshape(-1, q.shape[-1])), scale.reshape(-1, scale.shape[-1]))
        return rows.reshape(*shape, -1)

    def logits_forward(self, h, bias=None):
        """(h W^T + b, None), h (..., C) -> (..., V); inference only, so no cache."""
        q, scale = self.weight.data, self.weight_scale.data
        if self.mode == "w4":
            return linear_w4_forward(h, q, scale, bias), None
        forward = linear_w8a8_forward if self.mode == "w8a8" else linear_w8_forward
        return forward(h, q.T, scale, bias), None

    def backward(self, dout):
        raise NotImplementedError("quantized layers run inference only")


def quantizable_layers(model, scheme):
    """(parent module, attribute name, dotted name, layer) of every Linear and Conv1D (and Embedding with
    scheme.embeddings) of `model` whose dotted name matches no keep_float pattern."""
    kinds = (Linear, Conv1D, Embedding) if scheme.embeddings else (Linear, Conv1D)
    for parent_name, parent in list(model.named_modules()):
        for name, child in list(parent.children()):
            full = f"{parent_name}.{name}" if parent_name else name
            if isinstance(child, kinds) and not any(fnmatch.fnmatchcase(full, p) for p in scheme.keep_float):
                yield parent, name, full, child


def quantized_layer(layer, scheme):
    """The quantized form of a Linear, Conv1D or Embedding."""
    return (QuantizedEmbedding if isinstance(layer, Embedding) else QuantizedLinear)(layer, scheme)


def quantize_model(model, scheme):
    """Replace, in place, every layer quantizable_layers finds by its quantized form; returns the model in
    eval mode. Tied parameters (GPT's head is W_te) stay tied: the head reads the quantized table."""
    for parent, name, _, layer in list(quantizable_layers(model, scheme)):
        setattr(parent, name, quantized_layer(layer, scheme))
    model.eval()
    return model
