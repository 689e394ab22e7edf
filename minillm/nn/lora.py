"""LoRA (Hu et al., 2021): a frozen linear layer plus a trained low-rank update.

    y = x W + b + s * dropout(x) A^T B^T,    A (r, in), B (out, r), s = alpha / r

Only A and B train: r (in + out) numbers instead of in * out. B starts at 0,
so the wrapped layer starts as the pretrained one; A starts as PyTorch's
default Linear init (Kaiming uniform), as PEFT does. After training the
update folds into the weight, W' = W + s (B A)^T (W stored (in, out)), and
the layer costs nothing extra at inference.
"""

import math

from minillm.backend import xp
from minillm.nn.layers import Conv1D, Dropout, Module, Parameter


def lora_forward(x, a, b, scale):
    """delta = w B^T with w = scale * x A^T.  x: (..., I), a: (r, I), b: (O, r) -> (..., O).

    The scale multiplies the narrow (N, r) w, not the wide (N, O) delta.
    """
    x2 = x.reshape(-1, x.shape[-1])  # (N, I)
    w = x2 @ a.T  # (N, r): the input in the low-rank basis
    w *= scale
    delta = w @ b.T  # (N, O)
    return delta.reshape(*x.shape[:-1], b.shape[0]), (x2, w, a, b, scale, x.shape)


def lora_backward(ddelta, cache, input_grad=True):
    """With u = x A^T (so w = scale u): dB = ddelta^T w,  du = scale ddelta B,  dA = du^T x,  dx = du A
    (None without input_grad)."""
    x2, w, a, b, scale, x_shape = cache
    g = ddelta.reshape(-1, ddelta.shape[-1])  # (N, O)
    db = g.T @ w  # (O, r)
    du = g @ b  # (N, r)
    du *= scale
    da = du.T @ x2  # (r, I)
    dx = (du @ a).reshape(x_shape) if input_grad else None
    return dx, da, db


class LoRALinear(Module):
    """A Linear or Conv1D (`base_layer`) with named low-rank adapters beside it; one is active.

    The base layer's parameters are also this module's own `weight` and `bias`,
    so a wrapped model names them as before (`query.weight`: a parameter is
    named where it is first met, and a module's own attributes come before its
    submodules'); the active adapter's are `lora_A` (r, in) and `lora_B` (out, r),
    PyTorch's layout, as PEFT stores them for both base layouts. The others
    wait in `adapters`, so switching needs no reload of the base.
    """

    def __init__(self, base_layer, dropout_source):
        self.weight, self.bias = base_layer.weight, base_layer.bias
        self.base_layer = base_layer
        self.fan_in_fan_out = isinstance(base_layer, Conv1D)  # W stored (in, out): PEFT's flag of that name
        self.lora_dropout = Dropout(0.0, dropout_source)
        self.adapters = {}  # name -> (A, B, scale, dropout p)
        self.active = self.lora_A = self.lora_B = None
        self.train(base_layer.training)  # a model wrapped in eval mode stays there

    def shape_in_out(self):
        return self.weight.shape if self.fan_in_fan_out else self.weight.shape[::-1]

    def add_adapter(self, name, r, alpha, dropout, rng):
        """A new adapter (A Kaiming-uniform, B zero), made active."""
        n_in, n_out = self.shape_in_out()
        bound = 1.0 / math.sqrt(n_in)  # kaiming_uniform_(a=sqrt(5)) on (r, in), PyTorch's Linear init
        dtype = self.weight.data.dtype
        a = Parameter(rng.uniform(-bound, bound, (r, n_in)).astype(dtype))
        b = Parameter(xp.zeros((n_out, r), dtype=dtype))
        self.adapters[name] = (a, b, alpha / r, dropout)
        self.set_adapter(name)

    def set_adapter(self, name):
        self.active = name
        self.lora_A, self.lora_B, self.scale, self.lora_dropout.p = self.adapters[name]

    def forward(self, x):  # (..., in) -> (..., out)
        delta, self.lora_cache = lora_forward(self.lora_dropout(x), self.lora_A.data, self.lora_B.data, self.scale)
        y = self.base_layer(x)
        y += delta
        return y

    def backward(self, dy, input_grad=True):
        """Returns dx (None without input_grad: then only A's and B's gradients, and a trained bias's)."""
        dx_lora, da, db = lora_backward(dy, self.lora_cache, input_grad)
        self.lora_A.accumulate(da)
        self.lora_B.accumulate(db)
        dx = self.base_layer.backward(dy, input_grad)
        if input_grad:
            dx += self.lora_dropout.backward(dx_lora)
        return dx

    def merged(self):
        """The base layer with the active adapter folded in: W += s (B A), transposed for (in, out) storage."""
        update = self.scale * (self.lora_B.data @ self.lora_A.data)  # (out, in)
        self.weight.data = self.weight.data + (update.T if self.fan_in_fan_out else update)
        return self.base_layer
