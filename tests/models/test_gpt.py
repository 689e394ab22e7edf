"""GPT: whole-model gradient check, Hugging Face names and layouts, checkpoints, KV cache."""

import json
import os

import pytest
from hypothesis import given, strategies as st

from minillm.backend import xp
from minillm.checkpoint import load_safetensors
from minillm.models.gpt import GPT, GPTConfig
from minillm.nn.gradcheck import gradcheck
from minillm.nn.loss import cross_entropy_backward, cross_entropy_forward


def tiny(seed=0, dtype="float64", **kw):
    cfg = GPTConfig(**{**dict(vocab_size=7, n_positions=8, n_embd=4, n_layer=2, n_head=2), **kw})
    model = GPT(cfg, seed=seed, dtype=dtype)
    rng = xp.random.default_rng(seed + 1)
    for p in model.parameters():  # larger than GPT-2's init so every path matters
        p.data = (rng.standard_normal(p.shape) * 0.5).astype(dtype)
    return model


@given(st.integers(0, 2**31 - 1), st.integers(1, 2), st.integers(1, 5), st.booleans())
def test_whole_gpt_gradients(seed, b, t, padded):
    model = tiny(seed)
    rng = xp.random.default_rng(seed)
    idx = rng.integers(0, 7, (b, t))
    padding = None
    if padded:
        padding = (rng.random((b, t)) < 0.7).astype(xp.int64)
        padding[:, 0] = 1
    errors = gradcheck(lambda: model(idx, attention_mask=padding), model.backward, (),
                       list(model.named_parameters()))
    assert len(errors) == len(model.parameters()) == 4 + 12 * 2
    bad = {k: v for k, v in errors.items() if not v <= 1e-6}
    assert not bad, bad


def test_loss_gradient_through_the_model():
    """The AR loss and the model's backward together, against finite differences."""
    model = tiny(3)
    idx = xp.random.default_rng(0).integers(0, 7, (2, 6))
    targets = idx[:, 1:].reshape(-1)

    def loss():
        logits = model(idx[:, :-1])
        value, model.loss_cache = cross_entropy_forward(logits.reshape(-1, 7), targets)
        return xp.asarray(value).reshape(1)

    def backward(dloss):
        model.backward(cross_entropy_backward(dloss[0], model.loss_cache).reshape(2, 5, 7))

    errors = gradcheck(loss, backward, (), list(model.named_parameters()))
    assert max(errors.values()) <= 1e-6, errors


def test_hugging_face_names_and_layouts():
    model = GPT(GPTConfig(vocab_size=11, n_positions=9, n_embd=6, n_layer=1, n_head=3))
    shapes = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    assert shapes == {
        "transformer.wte.weight": (11, 6), "transformer.wpe.weight": (9, 6),
        "transformer.h.0.ln_1.weight": (6,), "transformer.h.0.ln_1.bias": (6,),
        "transformer.h.0.attn.c_attn.weight": (6, 18), "transformer.h.0.attn.c_attn.bias": (18,),
        "transformer.h.0.attn.c_proj.weight": (6, 6), "transformer.h.0.attn.c_proj.bias": (6,),
        "transformer.h.0.ln_2.weight": (6,), "transformer.h.0.ln_2.bias": (6,),
        "transformer.h.0.mlp.c_fc.weight": (6, 24), "transformer.h.0.mlp.c_fc.bias": (24,),
        "transformer.h.0.mlp.c_proj.weight": (24, 6), "transformer.h.0.mlp.c_proj.bias": (6,),
        "transformer.ln_f.weight": (6,), "transformer.ln_f.bias": (6,),
    }


def test_save_and_load_pretrained(tmp_path):
    model = tiny(5, dtype="float32")
    model.save_pretrained(tmp_path / "ckpt")
    config = json.loads((tmp_path / "ckpt" / "config.json").read_text())
    assert config["model_type"] == "gpt2" and config["n_embd"] == 4 and config["activation_function"] == "gelu_new"
    assert set(load_safetensors(tmp_path / "ckpt" / "model.safetensors")) == set(model.state_dict())
    again = GPT.from_pretrained(tmp_path / "ckpt")
    idx = xp.array([[1, 2, 3]])
    assert float(abs(again(idx) - model(idx)).max()) == 0.0
    assert not [n for n in os.listdir(tmp_path) if n.startswith(".tmp")]


def test_loads_checkpoints_saved_without_prefix_and_with_buffers(tmp_path):
    from minillm.checkpoint import save_safetensors, write_json

    model = tiny(2, dtype="float32")
    state = {k.removeprefix("transformer."): v for k, v in model.state_dict().items()}
    state["h.0.attn.bias"] = xp.ones((1, 1, 8, 8), dtype="float32")  # old causal-mask buffer
    state["lm_head.weight"] = state["wte.weight"]
    (tmp_path / "hf").mkdir()
    save_safetensors(tmp_path / "hf" / "model.safetensors", state)
    write_json(tmp_path / "hf" / "config.json", model.config.to_dict())
    loaded = GPT.from_pretrained(tmp_path / "hf")
    assert float(abs(loaded(xp.array([[3, 4]])) - model(xp.array([[3, 4]]))).max()) == 0.0
    state["h.0.ln_1.weight"] = xp.ones(5, dtype="float32")
    save_safetensors(tmp_path / "hf" / "model.safetensors", state)
    with pytest.raises(ValueError, match="shape of transformer.h.0.ln_1.weight"):
        GPT.from_pretrained(tmp_path / "hf")


def test_kv_cache_gives_the_same_logits_as_a_full_pass():
    model = tiny(4).eval()
    idx = xp.random.default_rng(1).integers(0, 7, (2, 7))
    full = model(idx)
    logits, past = model(idx[:, :3], use_cache=True)
    steps = [logits]
    for t in range(3, 7):
        logits, past = model(idx[:, t:t + 1], past_key_values=past, use_cache=True)
        steps.append(logits)
    assert float(abs(xp.concatenate(steps, axis=1) - full).max()) < 1e-12


def test_generate_past_the_context_window_and_greedy_is_deterministic():
    model = tiny(6).eval()
    out = model.generate(xp.array([[1, 2]]), 20, temperature=0)
    assert out.shape == (1, 22) and int(out.min()) >= 0 and int(out.max()) < 7
    assert (model.generate(xp.array([[1, 2]]), 20, temperature=0) == out).all()
    with pytest.raises(ValueError, match="longer than n_positions"):
        model(xp.zeros((1, 9), dtype=xp.int64))
