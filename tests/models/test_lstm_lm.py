"""The LSTM language model: gradients, carried state, tied weights, checkpoints, generation."""

import json

import pytest
from hypothesis import given, strategies as st

from minillm.backend import xp
from minillm.checkpoint import load_safetensors
from minillm.models.lstm_lm import LSTMLM, LSTMConfig
from minillm.nn.gradcheck import assert_gradients_close, gradcheck

seeds = st.integers(0, 2**31 - 1)


# ---------------------------------------------------------------- the language model
def tiny_lm(seed=0, dtype="float64", **kw):
    cfg = LSTMConfig(**{**dict(vocab_size=7, n_embd=4, hidden_size=4, num_layers=2), **kw})
    model = LSTMLM(cfg, seed=seed, dtype=dtype)
    rng = xp.random.default_rng(seed + 1)
    for p in model.parameters():
        p.data = (rng.standard_normal(p.shape) * 0.5).astype(dtype)
    return model


@given(seeds, st.integers(1, 2), st.integers(1, 4), st.integers(1, 2), st.booleans(), st.booleans())
def test_whole_lm_gradients(seed, b, t, num_layers, tied, with_state):
    model = tiny_lm(seed, num_layers=num_layers, tie_weights=tied, hidden_size=4 if tied else 3)
    rng = xp.random.default_rng(seed)
    idx = rng.integers(0, 7, (b, t))
    state = tuple(rng.standard_normal((2, num_layers, b, model.config.hidden_size))) if with_state else None
    errors = gradcheck(lambda: model(idx, state), model.backward, (), list(model.named_parameters()))
    names = ["encoder.weight", "decoder.bias"] + [f"rnn.{n}" for n, _ in model.rnn.named_parameters()]
    assert_gradients_close(errors, names + ([] if tied else ["decoder.weight"]))
    assert ("decoder.weight" in errors) == (not tied)  # tied: one parameter, both gradients in encoder.weight


def test_lm_gradients_with_dropout_masks_held_fixed():
    model = tiny_lm(4, dropout=0.3)
    idx = xp.random.default_rng(0).integers(0, 7, (2, 5))

    def forward():
        model.dropout_rng.reseed(11)  # the same masks on every call, as within one training step
        return model(idx)

    assert float(abs(forward() - model.eval()(idx)).max()) > 1e-3
    model.train()
    assert_gradients_close(gradcheck(forward, model.backward, (), list(model.named_parameters())), ["encoder.weight"])


def test_lm_carries_state_between_batches():
    model = tiny_lm(2).eval()
    idx = xp.random.default_rng(5).integers(0, 7, (3, 8))
    whole = model(idx)
    first = model(idx[:, :5])
    second = model(idx[:, 5:], model.final_state)
    assert float(abs(xp.concatenate([first, second], axis=1) - whole).max()) < 1e-13
    fresh = model(idx[:, 5:])  # without the state the continuation is different
    assert float(abs(fresh - second).max()) > 1e-3


def test_tying_needs_equal_sizes_and_shares_one_parameter():
    with pytest.raises(ValueError, match="n_embd == hidden_size"):
        LSTMLM(LSTMConfig(vocab_size=5, n_embd=4, hidden_size=3, tie_weights=True))
    tied = LSTMLM(LSTMConfig(vocab_size=5, n_embd=4, hidden_size=4, num_layers=1, tie_weights=True))
    assert tied.decoder.weight is tied.encoder.weight
    assert sorted(tied.state_dict()) == ["decoder.bias", "encoder.weight", "rnn.bias_hh_l0", "rnn.bias_ih_l0",
                                         "rnn.weight_hh_l0", "rnn.weight_ih_l0"]


@pytest.mark.parametrize("tied", [False, True])
def test_save_and_load_pretrained(tmp_path, tied):
    model = tiny_lm(5, dtype="float32", tie_weights=tied, dropout=0.1)
    model.save_pretrained(tmp_path / "ckpt")
    config = json.loads((tmp_path / "ckpt" / "config.json").read_text())
    assert config["model_type"] == "lstm_lm" and config["tie_weights"] is tied and config["dropout"] == 0.1
    tensors = load_safetensors(tmp_path / "ckpt" / "model.safetensors")
    assert set(tensors) == set(model.state_dict()) | {"decoder.weight"}  # PyTorch's RNNModel names
    assert tensors["rnn.weight_ih_l1"].shape == (16, 4)
    again = LSTMLM.from_pretrained(tmp_path / "ckpt").eval()
    idx = xp.array([[1, 2, 3]])
    assert float(abs(again(idx) - model.eval()(idx)).max()) == 0.0
    assert (again.decoder.weight is again.encoder.weight) == tied


def test_loading_bad_checkpoints_names_the_file(tmp_path):
    from minillm.checkpoint import save_safetensors, write_json

    model = tiny_lm(1, dtype="float32", tie_weights=True)
    model.save_pretrained(tmp_path / "ok")
    state = load_safetensors(tmp_path / "ok" / "model.safetensors")
    state["decoder.weight"] = state["decoder.weight"] + 1.0
    save_safetensors(tmp_path / "ok" / "model.safetensors", state)
    with pytest.raises(ValueError, match="model.safetensors: decoder.weight differs"):
        LSTMLM.from_pretrained(tmp_path / "ok")
    write_json(tmp_path / "ok" / "config.json", {"model_type": "gpt2"})
    with pytest.raises(ValueError, match="config.json: model_type is 'gpt2'"):
        LSTMLM.from_pretrained(tmp_path / "ok")
    config = {k: v for k, v in model.config.to_dict().items() if k != "hidden_size"}
    write_json(tmp_path / "ok" / "config.json", {**config, "n_hid": 3})  # unknown keys are ignored, and the
    with pytest.raises(ValueError, match="ok/config.json: missing required key 'hidden_size'"):  # default is not used
        LSTMLM.from_pretrained(tmp_path / "ok")


def test_generate_shapes_greedy_determinism_and_state():
    model = tiny_lm(6).eval()
    prompt = xp.array([[1, 2], [3, 4]])
    out = model.generate(prompt, 10, temperature=0)
    assert out.shape == (2, 12) and (out[:, :2] == prompt).all()
    assert int(out.min()) >= 0 and int(out.max()) < 7
    assert (model.generate(prompt, 10, temperature=0) == out).all()
    # greedy generation is the argmax of a full forward pass over its own output, token by token
    logits = model(out[:, :-1])
    assert (logits[:, 1:].argmax(axis=-1) == out[:, 2:]).all()
    sampled = model.generate(prompt, 10, temperature=1.0, top_k=3, rng=xp.random.default_rng(0))
    assert sampled.shape == (2, 12)
    kept = model.final_state
    model.generate(prompt, 3)
    assert model.final_state is kept
