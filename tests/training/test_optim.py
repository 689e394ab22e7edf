"""AdamW, the schedule and clipping, against their equations computed by hand."""

import math

import pytest
from hypothesis import given, strategies as st

from minillm.backend import to_float, to_host, xp
from minillm.models.gpt import GPT, GPTConfig
from minillm.nn.layers import Module, Parameter
from minillm.training import optim
from minillm.training.optim import AdamW, cosine_lr, weight_decay_groups


class TwoParams(Module):
    def __init__(self, w, b):
        self.weight, self.bias = Parameter(w), Parameter(b)


@given(st.integers(0, 1000), st.floats(1e-4, 1e-1), st.floats(0.0, 0.5), st.integers(1, 4),
       st.sampled_from([0.0, 0.5, 1e3]), st.integers(1, 3))
def test_adamw_matches_its_equations(seed, lr, wd, steps, max_norm, threads):
    rng = xp.random.default_rng(seed)
    w0, b0 = rng.standard_normal((3, 2)), rng.standard_normal(2)
    model = TwoParams(w0.copy(), b0.copy())
    opt = AdamW(model, lr, (0.9, 0.99), eps=1e-8, weight_decay=wd, threads=threads)
    w, b = w0.copy(), b0.copy()
    mw, vw, mb, vb = 0 * w, 0 * w, 0 * b, 0 * b
    for t in range(1, steps + 1):
        gw, gb = rng.standard_normal((3, 2)), rng.standard_normal(2)
        model.weight.grad, model.bias.grad = gw.copy(), gb.copy()
        norm = math.sqrt(to_float((gw**2).sum() + (gb**2).sum()))
        assert opt.step(max_grad_norm=max_norm) == pytest.approx(norm, rel=1e-12)
        if max_norm and norm > max_norm:  # clipped to the global norm max_norm
            gw, gb = gw * max_norm / (norm + 1e-6), gb * max_norm / (norm + 1e-6)
        w = w - lr * wd * w  # decoupled decay: matrices only, never the bias
        mw, vw = 0.9 * mw + 0.1 * gw, 0.99 * vw + 0.01 * gw**2
        mb, vb = 0.9 * mb + 0.1 * gb, 0.99 * vb + 0.01 * gb**2
        w = w - lr * (mw / (1 - 0.9**t)) / (xp.sqrt(vw / (1 - 0.99**t)) + 1e-8)
        b = b - lr * (mb / (1 - 0.9**t)) / (xp.sqrt(vb / (1 - 0.99**t)) + 1e-8)
    assert to_float(abs(model.weight.data - w).max()) < 1e-12
    assert to_float(abs(model.bias.data - b).max()) < 1e-12


def test_adamw_threads_and_pieces_split_the_update_not_its_result(monkeypatch):
    """Each element's update is the same arithmetic whichever thread or piece does it: equal to the bit."""
    results = []
    for threads, piece in ((1, optim.UPDATE_PIECE), (2, optim.UPDATE_PIECE), (3, 7), (1, 1)):
        monkeypatch.setattr(optim, "UPDATE_PIECE", piece)
        model = GPT(GPTConfig(vocab_size=7, n_positions=4, n_embd=6, n_layer=2, n_head=2), seed=0)
        opt = AdamW(model, 1e-2, (0.9, 0.99), weight_decay=0.1, threads=threads)
        rng = xp.random.default_rng(1)
        for _ in range(3):
            for p in model.parameters():
                p.grad = rng.standard_normal(p.shape).astype(p.data.dtype)
            opt.step()
        results.append([p.data.copy() for p in model.parameters()])
    for other in results[1:]:
        assert all(to_host((a == b).all()) for a, b in zip(results[0], other))


def test_adamw_leaves_parameters_without_gradient_and_adopts_replaced_arrays():
    model = TwoParams(xp.ones((2, 2)), xp.ones(2))
    opt = AdamW(model, 0.1, weight_decay=0.5, threads=2)
    model.weight.data = xp.full((2, 2), 3.0)  # e.g. a checkpoint loaded after the optimizer was made
    model.bias.grad = xp.ones(2)
    opt.step()
    assert to_float(abs(model.weight.data - 3.0).max()) == 0.0  # no gradient: no decay, no update
    assert to_float(abs(opt.m["weight"]).max()) == 0.0 and to_float(abs(opt.m["bias"] - 0.1).max()) < 1e-15
    model.weight.grad = xp.ones((2, 2))
    opt.step()
    assert to_float(model.weight.data[0, 0]) < 3.0 * (1 - 0.1 * 0.5)  # the new array took the update
    model.weight.data = xp.ones((3, 2))
    with pytest.raises(ValueError, match=r"parameter weight became float64 \(3, 2\)"):
        opt.step()


def test_adamw_changes_nothing_on_a_non_finite_gradient():
    model = TwoParams(xp.ones((2, 2)), xp.ones(2))
    opt = AdamW(model, 0.1)
    model.weight.grad, model.bias.grad = xp.ones((2, 2)), xp.array([1.0, float("nan")])
    assert math.isnan(opt.step(max_grad_norm=1.0))
    assert opt.t == 0 and to_float(abs(model.weight.data - 1.0).max()) == 0.0 and to_float(abs(opt.v["weight"]).max()) == 0.0


def test_adamw_refuses_mixed_dtypes():
    with pytest.raises(ValueError, match="one array"):
        AdamW(TwoParams(xp.ones((2, 2)), xp.ones(2, dtype=xp.float32)))


def test_no_decay_for_biases_layernorm_and_embeddings():
    model = GPT(GPTConfig(vocab_size=5, n_positions=4, n_embd=4, n_layer=1, n_head=1))
    decay, no_decay = weight_decay_groups(model)
    assert decay == ["transformer.h.0.attn.c_attn.weight", "transformer.h.0.attn.c_proj.weight",
                     "transformer.h.0.mlp.c_fc.weight", "transformer.h.0.mlp.c_proj.weight"]
    assert "transformer.wte.weight" in no_decay and "transformer.ln_f.weight" in no_decay


class Interleaved(Module):
    def __init__(self):
        self.a, self.w = Parameter(xp.ones(3)), Parameter(xp.ones((2, 2)))
        self.b, self.v = Parameter(xp.ones(3)), Parameter(xp.ones((1, 2)))


@pytest.mark.parametrize("threads, piece", [(1, 1 << 17), (2, 3)])
def test_decay_reaches_the_matrices_wherever_they_sit_in_the_model_order(monkeypatch, threads, piece):
    monkeypatch.setattr(optim, "UPDATE_PIECE", piece)  # (pieces of 3 start and end inside decayed runs)
    model = Interleaved()
    opt = AdamW(model, lr=0.1, weight_decay=0.5, threads=threads)
    assert opt.names == ["a", "w", "b", "v"]  # the flat array holds them in the model's order
    for p in model.parameters():
        p.grad = xp.zeros(p.shape)
    opt.step()  # zero gradients: Adam moves nothing, so only the decay acts, on the matrices alone
    assert (model.w.data == 0.95).all() and (model.v.data == 0.95).all()
    assert (model.a.data == 1.0).all() and (model.b.data == 1.0).all()


def test_adamw_keeps_state_for_the_trainable_parameters_only():
    """Frozen parameters: no moments, no flat copy, no update; the state is the size of what trains."""
    model = GPT(GPTConfig(vocab_size=5, n_positions=4, n_embd=4, n_layer=1, n_head=1))
    model.requires_grad_(False)
    model.transformer.ln_f.bias.requires_grad = True
    frozen = model.transformer.wte.weight.data
    opt = AdamW(model, 0.1, weight_decay=0.5)
    assert opt.names == ["transformer.ln_f.bias"] and opt.flat.size == opt.flat_m.size == 4
    assert sum(int(m.size) for m in opt.state_dict().values()) == 2 * model.num_parameters(trainable_only=True)
    model.transformer.ln_f.bias.grad = xp.ones(4, dtype=xp.float32)
    opt.step()
    assert model.transformer.wte.weight.data is frozen and to_float(model.transformer.ln_f.bias.data[0]) < 0
    with pytest.raises(ValueError, match="no trainable parameters"):
        AdamW(model.requires_grad_(False))


def test_optimizer_state_round_trip_and_errors():
    model = TwoParams(xp.ones((2, 2)), xp.ones(2))
    opt = AdamW(model, 0.1)
    model.weight.grad, model.bias.grad = xp.ones((2, 2)), xp.ones(2)
    opt.step()
    other = AdamW(model, 0.1)
    other.load_state_dict(opt.state_dict(), opt.t)
    assert other.t == 1 and to_float(abs(other.m["weight"] - opt.m["weight"]).max()) == 0.0
    with pytest.raises(ValueError, match="missing"):
        other.load_state_dict({}, 1)
    wrong = {**opt.state_dict(), "exp_avg_sq.bias": xp.ones(3)}
    with pytest.raises(ValueError, match=r"exp_avg_sq.bias has shape \(3,\)"):
        other.load_state_dict(wrong, 1)


def test_cosine_schedule():
    lr = [cosine_lr(t, 1e-3, 1e-4, 100, 2000) for t in range(2100)]
    assert lr[0] == pytest.approx(1e-3 / 101) and lr[99] == pytest.approx(1e-3 * 100 / 101)
    assert lr[100] == pytest.approx(1e-3)
    assert lr[1050] == pytest.approx(1e-4 + 0.5 * 0.9e-3)  # halfway: cos(pi/2) = 0
    assert lr[2000] == lr[2099] == 1e-4
    assert all(a >= b for a, b in zip(lr[100:], lr[101:]))


def test_adamw_divides_a_loss_scale_out_before_clipping_and_the_update():
    plain, scaled = (TwoParams(xp.ones((2, 2)), xp.zeros(2)) for _ in range(2))
    opts = AdamW(plain, 0.1), AdamW(scaled, 0.1)
    for step in range(3):
        grad_w, grad_b = xp.full((2, 2), 0.5 + step), xp.array([3.0, -4.0])
        plain.weight.grad, plain.bias.grad = grad_w, grad_b
        scaled.weight.grad, scaled.bias.grad = grad_w * 1024.0, grad_b * 1024.0
        norms = opts[0].step(max_grad_norm=1.0), opts[1].step(max_grad_norm=1.0, grad_scale=1024.0)
        assert norms[1] == pytest.approx(norms[0], rel=1e-12) and norms[0] > 1.0  # the true norm, clipped
    for name in ("weight", "bias"):
        assert to_float(abs(getattr(plain, name).data - getattr(scaled, name).data).max()) < 1e-12
