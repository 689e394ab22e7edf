"""The bottleneck adapter's pair and layer against finite differences (float64); only the adapter trains."""

from hypothesis import given, strategies as st

from minillm.backend import to_float, xp
from minillm.nn import functional as F
from minillm.nn.adapter import BottleneckAdapter, adapter_backward, adapter_forward
from minillm.nn.gradcheck import assert_gradients_close, gradcheck
from minillm.nn.layers import Conv1D, Linear

seeds = st.integers(0, 2**31 - 1)
dims = st.integers(1, 4)


@given(seeds, dims, dims)
def test_adapter_pair(seed, c, m):
    rng = xp.random.default_rng(seed)
    z, wd, bd = rng.standard_normal((2, 3, c)), rng.standard_normal((m, c)), rng.standard_normal(m)
    wu, bu = rng.standard_normal((c, m)), rng.standard_normal(c)
    out, _ = adapter_forward(z, wd, bd, wu, bu)
    expected = z + F.gelu_forward(z @ wd.T + bd)[0] @ wu.T + bu  # y = z + f(z W_d^T + b_d) W_u^T + b_u
    assert to_float(abs(out - expected).max()) < 1e-12
    errors = gradcheck(lambda *v: adapter_forward(*v)[0],
                       lambda dout: adapter_backward(dout, adapter_forward(z, wd, bd, wu, bu)[1]), [z, wd, bd, wu, bu])
    assert_gradients_close(errors, [f"input{i}" for i in range(5)])


@given(seeds, dims, dims, dims, st.sampled_from([Linear, Conv1D]))
def test_adapter_layer_trains_the_adapter_only_and_starts_near_the_identity(seed, i, o, m, base_class):
    rng = xp.random.default_rng(seed)
    base = base_class(i, o, rng, std=1.0, dtype="float64")
    base.requires_grad_(False)
    layer = BottleneckAdapter(base)
    layer.add_adapter("default", m, rng)
    x = rng.standard_normal((2, 3, i))
    assert to_float(abs(layer(x) - base(x)).max()) < 0.05 * (1 + to_float(abs(base(x)).max()))  # near-identity
    for p in (layer.adapter_down, layer.adapter_up):
        for q in p.parameters():
            q.data = rng.standard_normal(q.shape)  # any values check the math
    names = [n for n, _ in layer.named_parameters()]
    assert names == ["weight", "bias", "adapter_down.weight", "adapter_down.bias", "adapter_up.weight",
                     "adapter_up.bias"]
    params = [(n, p) for n, p in layer.named_parameters() if p.requires_grad]
    errors = gradcheck(layer.forward, layer.backward, [x], params)
    assert_gradients_close(errors, ["input0", *names[2:]])
    assert layer.weight.grad is None and layer.bias.grad is None
    first = layer(x)
    layer.add_adapter("other", m, rng)
    assert to_float(abs(layer(x) - first).max()) > 0
    layer.set_adapter("default")
    assert to_float(abs(layer(x) - first).max()) == 0
