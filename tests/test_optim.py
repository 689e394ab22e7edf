"""AdamW, the schedule and clipping, against their equations computed by hand."""

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from minillm.backend import xp
from minillm.models.gpt import GPT, GPTConfig
from minillm.nn.layers import Module, Parameter
from minillm.optim import AdamW, clip_grad_norm, cosine_lr, weight_decay_groups


class TwoParams(Module):
    def __init__(self, w, b):
        self.weight, self.bias = Parameter(w), Parameter(b)


@given(st.integers(0, 1000), st.floats(1e-4, 1e-1), st.floats(0.0, 0.5), st.integers(1, 4))
def test_adamw_matches_its_equations(seed, lr, wd, steps):
    rng = xp.random.default_rng(seed)
    w0, b0 = rng.standard_normal((3, 2)), rng.standard_normal(2)
    model = TwoParams(w0.copy(), b0.copy())
    opt = AdamW(model, lr, (0.9, 0.99), eps=1e-8, weight_decay=wd)
    w, b = w0.copy(), b0.copy()
    mw, vw, mb, vb = 0 * w, 0 * w, 0 * b, 0 * b
    for t in range(1, steps + 1):
        gw, gb = rng.standard_normal((3, 2)), rng.standard_normal(2)
        model.weight.grad, model.bias.grad = gw.copy(), gb.copy()
        opt.step()
        w = w - lr * wd * w  # decoupled decay: matrices only, never the bias
        mw, vw = 0.9 * mw + 0.1 * gw, 0.99 * vw + 0.01 * gw**2
        mb, vb = 0.9 * mb + 0.1 * gb, 0.99 * vb + 0.01 * gb**2
        w = w - lr * (mw / (1 - 0.9**t)) / (xp.sqrt(vw / (1 - 0.99**t)) + 1e-8)
        b = b - lr * (mb / (1 - 0.9**t)) / (xp.sqrt(vb / (1 - 0.99**t)) + 1e-8)
    assert float(abs(model.weight.data - w).max()) < 1e-12
    assert float(abs(model.bias.data - b).max()) < 1e-12


def test_no_decay_for_biases_layernorm_and_embeddings():
    model = GPT(GPTConfig(vocab_size=5, n_positions=4, n_embd=4, n_layer=1, n_head=1))
    decay, no_decay = weight_decay_groups(model)
    assert decay == ["transformer.h.0.attn.c_attn.weight", "transformer.h.0.attn.c_proj.weight",
                     "transformer.h.0.mlp.c_fc.weight", "transformer.h.0.mlp.c_proj.weight"]
    assert "transformer.wte.weight" in no_decay and "transformer.ln_f.weight" in no_decay


def test_optimizer_state_round_trip_and_errors():
    model = TwoParams(xp.ones((2, 2)), xp.ones(2))
    opt = AdamW(model, 0.1)
    model.weight.grad, model.bias.grad = xp.ones((2, 2)), xp.ones(2)
    opt.step()
    other = AdamW(model, 0.1)
    other.load_state_dict(opt.state_dict(), opt.t)
    assert other.t == 1 and float(abs(other.m["weight"] - opt.m["weight"]).max()) == 0.0
    with pytest.raises(ValueError, match="missing"):
        other.load_state_dict({}, 1)


def test_cosine_schedule():
    lr = [cosine_lr(t, 1e-3, 1e-4, 100, 2000) for t in range(2100)]
    assert lr[0] == pytest.approx(1e-3 / 101) and lr[99] == pytest.approx(1e-3 * 100 / 101)
    assert lr[100] == pytest.approx(1e-3)
    assert lr[1050] == pytest.approx(1e-4 + 0.5 * 0.9e-3)  # halfway: cos(pi/2) = 0
    assert lr[2000] == lr[2099] == 1e-4
    assert all(a >= b for a, b in zip(lr[100:], lr[101:]))


def test_clip_grad_norm():
    ps = [Parameter(xp.zeros(2)), Parameter(xp.zeros(1)), Parameter(xp.zeros(1))]
    ps[0].grad, ps[1].grad = xp.array([3.0, 0.0]), xp.array([4.0])
    assert clip_grad_norm(ps, 1.0) == pytest.approx(5.0)
    assert math.sqrt(float((ps[0].grad ** 2).sum() + (ps[1].grad ** 2).sum())) == pytest.approx(1.0, rel=1e-5)
    assert clip_grad_norm(ps, 10.0) == pytest.approx(1.0, rel=1e-5)  # below the limit: untouched
