"""Bottleneck adapters (Houlsby et al., 2019): a small residual MLP after a frozen layer's output.

    y = z + f(z W_down^T + b_down) W_up^T + b_up,    z = base_layer(x)

W_down (m, C) projects the C channels down to m (the adapter size, m << C),
f is GPT-2's tanh GELU, W_up (C, m) projects back up, and the residual keeps
z. Only the adapter trains: 2 m C + m + C numbers per wrapped layer. The
weights start small (normal, std 1e-2) and the biases at zero, so the adapter
starts near the identity and the wrapped model near the pretrained one.
"""

from minillm.nn import functional as F
from minillm.nn.layers import Conv1D, Linear, Module

INIT_STD = 1e-2  # Houlsby et al.'s near-identity start


def adapter_forward(z, w_down, b_down, w_up, b_up):
    """y = z + gelu(z W_down^T + b_down) W_up^T + b_up.  z: (..., C), w_down: (m, C), w_up: (C, m)."""
    h, down_cache = F.linear_forward(z, w_down.T, b_down)  # (..., m): the bottleneck
    a, act_cache = F.gelu_forward(h)
    u, up_cache = F.linear_forward(a, w_up.T, b_up)  # (..., C)
    return z + u, (down_cache, act_cache, up_cache)


def adapter_backward(dy, cache):
    """The residual passes dy straight to z, and the MLP adds its own share:
    da = dy W_up, dh = gelu'(h) da, dz = dy + dh W_down.  Returns (dz, dW_down, db_down, dW_up, db_up)."""
    down_cache, act_cache, up_cache = cache
    da, dw_up, db_up = F.linear_backward(dy, up_cache)  # dw_up (m, C) in (in, out) storage
    dh = F.gelu_backward(da, act_cache)
    dz, dw_down, db_down = F.linear_backward(dh, down_cache)
    return dy + dz, dw_down.T, db_down, dw_up.T, db_up


class BottleneckAdapter(Module):
    """A Linear or Conv1D (`base_layer`) followed by named bottleneck adapters; one is active.

    As in nn/lora.py's LoRALinear, the base layer's `weight` and `bias` are also
    this module's own, so the wrapped model names them as before; the active
    adapter's layers are `adapter_down` and `adapter_up` (Linear, weights
    stored (out, in)), the others wait in `adapters`.
    """

    def __init__(self, base_layer):
        self.weight, self.bias = base_layer.weight, base_layer.bias
        self.base_layer = base_layer
        self.adapters = {}  # name -> (adapter_down, adapter_up)
        self.active = self.adapter_down = self.adapter_up = None
        self.train(base_layer.training)

    def n_out(self):
        return self.weight.shape[1] if isinstance(self.base_layer, Conv1D) else self.weight.shape[0]

    def add_adapter(self, name, size, rng):
        """A new adapter of `size` hidden units, near the identity, made active."""
        dtype, n = self.weight.data.dtype, self.n_out()
        self.adapters[name] = (Linear(n, size, rng, std=INIT_STD, dtype=dtype),
                               Linear(size, n, rng, std=INIT_STD, dtype=dtype))
        self.set_adapter(name)

    def set_adapter(self, name):
        self.active = name
        self.adapter_down, self.adapter_up = self.adapters[name]

    def forward(self, x):  # (..., in) -> (..., out)
        down, up = self.adapter_down, self.adapter_up
        y, self.adapter_cache = adapter_forward(self.base_layer(x), down.weight.data, down.bias.data,
                                                up.weight.data, up.bias.data)
        return y

    def backward(self, dy):
        dz, dw_down, db_down, dw_up, db_up = adapter_backward(dy, self.adapter_cache)
        for p, g in ((self.adapter_down.weight, dw_down), (self.adapter_down.bias, db_down),
                     (self.adapter_up.weight, dw_up), (self.adapter_up.bias, db_up)):
            p.accumulate(g)
        return self.base_layer.backward(dz)
