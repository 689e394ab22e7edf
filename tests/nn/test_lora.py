"""LoRA's pair and layer against finite differences (float64): only A and B (and the input) get gradients."""

from hypothesis import given, strategies as st

from minillm.backend import to_float, xp
from minillm.nn.gradcheck import assert_gradients_close, gradcheck
from minillm.nn.layers import Conv1D, Linear, RandomSource
from minillm.nn.lora import LoRALinear, lora_backward, lora_forward

seeds = st.integers(0, 2**31 - 1)
dims = st.integers(1, 4)


@given(seeds, dims, dims, dims, st.floats(0.25, 4.0))
def test_lora_pair(seed, i, o, r, scale):
    rng = xp.random.default_rng(seed)
    x, a, b = rng.standard_normal((2, 3, i)), rng.standard_normal((r, i)), rng.standard_normal((o, r))
    out, _ = lora_forward(x, a, b, scale)
    assert to_float(abs(out - scale * x @ a.T @ b.T).max()) < 1e-12  # delta = s x A^T B^T

    errors = gradcheck(lambda *v: lora_forward(*v, scale)[0],
                       lambda dout: lora_backward(dout, lora_forward(x, a, b, scale)[1]), [x, a, b])
    assert_gradients_close(errors, ["input0", "input1", "input2"])  # dx, dA, dB


@given(seeds, dims, dims, dims, st.sampled_from([Linear, Conv1D]))
def test_lora_layer_trains_a_and_b_only(seed, i, o, r, base_class):
    rng = xp.random.default_rng(seed)
    base = base_class(i, o, rng, std=1.0, dtype="float64")
    base.requires_grad_(False)
    layer = LoRALinear(base, RandomSource(seed))
    layer.add_adapter("default", r, 2.0 * r, 0.0, rng)
    layer.lora_B.data = rng.standard_normal(layer.lora_B.shape)  # B starts at 0; any value checks the math
    x = rng.standard_normal((2, 3, i))
    assert [n for n, _ in layer.named_parameters()] == ["weight", "bias", "lora_A", "lora_B"]
    errors = gradcheck(layer.forward, layer.backward, [x], [("lora_A", layer.lora_A), ("lora_B", layer.lora_B)])
    assert_gradients_close(errors, ["input0", "lora_A", "lora_B"])
    assert layer.weight.grad is None and layer.bias.grad is None
    expected = base(x) + 2.0 * x @ layer.lora_A.data.T @ layer.lora_B.data.T
    assert to_float(abs(layer(x) - expected).max()) < 1e-10
    merged = layer.merged()
    assert merged is base and to_float(abs(merged(x) - expected).max()) < 1e-10
