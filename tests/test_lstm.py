"""LSTM: BPTT against finite differences (float64), carried state, the LM, checkpoints, generation."""

import json

import pytest
from hypothesis import given, strategies as st

from minillm.backend import xp
from minillm.checkpoint import load_safetensors
from minillm.models.lstm_lm import LSTMLM, LSTMConfig
from minillm.nn.gradcheck import gradcheck
from minillm.nn.layers import RandomSource
from minillm.nn.lstm import LSTM, sigmoid

TOL = 1e-6
seeds = st.integers(0, 2**31 - 1)


def assert_small(errors, expected_names):
    assert set(expected_names) <= set(errors), f"unchecked: {set(expected_names) - set(errors)}"
    bad = {k: v for k, v in errors.items() if not v <= TOL}
    assert not bad, f"relative errors above {TOL}: {bad}"


def lstm_names(num_layers):
    return [f"{w}_l{k}" for k in range(num_layers) for w in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")]


@given(seeds, st.integers(1, 2), st.integers(1, 3), st.integers(1, 4), st.integers(1, 3), st.integers(1, 3),
       st.booleans())
def test_lstm_gradients_of_input_state_and_every_parameter(seed, num_layers, b, t, n_in, hidden, with_dstate):
    """d(out, h_n, c_n) against finite differences, w.r.t. x, h0, c0 and all weights."""
    rng = xp.random.default_rng(seed)
    lstm = LSTM(n_in, hidden, num_layers, rng=rng, dtype="float64")
    for p in lstm.parameters():  # larger than the default init, so the gates are not all near 0.5
        p.data = rng.standard_normal(p.shape)
    x = rng.standard_normal((b, t, n_in))
    h0, c0 = rng.standard_normal((2, num_layers, b, hidden))

    def forward(x, h0, c0):  # every output the backward takes a gradient for, flattened together
        out, (h_n, c_n) = lstm(x, (h0, c0))
        parts = [out.ravel()] + ([h_n.ravel(), c_n.ravel()] if with_dstate else [])
        return xp.concatenate(parts)

    def backward(dflat):
        n_out = b * t * hidden
        dout = dflat[:n_out].reshape(b, t, hidden)
        dstate = None
        if with_dstate:
            dstate = tuple(d.reshape(num_layers, b, hidden) for d in xp.split(dflat[n_out:], 2))
        dx, (dh0, dc0) = lstm.backward(dout, dstate)
        return dx, dh0, dc0

    errors = gradcheck(forward, backward, (x, h0, c0), list(lstm.named_parameters()))
    assert_small(errors, ["input0", "input1", "input2"] + lstm_names(num_layers))


def test_one_step_by_hand():
    """One layer, one step, against the gate equations written out with PyTorch's i, f, g, o order."""
    rng = xp.random.default_rng(3)
    lstm = LSTM(2, 3, rng=rng, dtype="float64")
    x, h0, c0 = rng.standard_normal((1, 1, 2)), rng.standard_normal((1, 1, 3)), rng.standard_normal((1, 1, 3))
    a = x[0, 0] @ lstm.weight_ih_l0.data.T + lstm.bias_ih_l0.data + h0[0, 0] @ lstm.weight_hh_l0.data.T \
        + lstm.bias_hh_l0.data
    i, f, g, o = sigmoid(a[0:3]), sigmoid(a[3:6]), xp.tanh(a[6:9]), sigmoid(a[9:12])
    c = f * c0[0, 0] + i * g
    out, (h_n, c_n) = lstm(x, (h0, c0))
    assert float(abs(c_n[0, 0] - c).max()) < 1e-14
    assert float(abs(out[0, 0] - o * xp.tanh(c)).max()) < 1e-14
    assert float(abs(h_n - out[:, -1]).max()) == 0.0


def test_parameter_names_and_layouts_are_pytorchs():
    lstm = LSTM(5, 3, num_layers=2)
    shapes = {k: tuple(v.shape) for k, v in lstm.state_dict().items()}
    assert shapes == {"weight_ih_l0": (12, 5), "weight_hh_l0": (12, 3), "bias_ih_l0": (12,), "bias_hh_l0": (12,),
                      "weight_ih_l1": (12, 3), "weight_hh_l1": (12, 3), "bias_ih_l1": (12,), "bias_hh_l1": (12,)}
    assert all(float(abs(v).max()) <= 1 / 3 ** 0.5 for v in lstm.state_dict().values())  # U(-1/sqrt(H), 1/sqrt(H))


def test_carried_state_splits_a_sequence_exactly():
    """Truncated BPTT: two half-sequence calls, the second from the first's final state, equal one call."""
    rng = xp.random.default_rng(1)
    lstm = LSTM(3, 4, num_layers=2, rng=rng, dtype="float64")
    x = rng.standard_normal((2, 6, 3))
    whole, (h_n, c_n) = lstm(x)
    first, state = lstm(x[:, :3])
    second, (h2, c2) = lstm(x[:, 3:], state)
    assert float(abs(xp.concatenate([first, second], axis=1) - whole).max()) < 1e-14
    assert float(abs(h2 - h_n).max()) < 1e-14 and float(abs(c2 - c_n).max()) < 1e-14


def test_dropout_acts_between_layers_only():
    source = RandomSource(0)
    rng = xp.random.default_rng(2)
    lstm = LSTM(3, 4, num_layers=2, dropout=0.5, rng=rng, dropout_source=source, dtype="float64")
    x = rng.standard_normal((2, 5, 3))
    source.reseed(7)
    dropped, _ = lstm(x)
    source.reseed(7)
    assert float(abs(lstm(x)[0] - dropped).max()) == 0.0  # same seed, same masks
    lstm.eval()
    clean, _ = lstm(x)
    assert float(abs(clean - dropped).max()) > 1e-3
    one = LSTM(3, 4, num_layers=1, dropout=0.5, rng=xp.random.default_rng(2), dropout_source=source)
    assert float(abs(one(x.astype("float32"))[0] - one.eval()(x.astype("float32"))[0]).max()) == 0.0


def test_bad_shapes_are_clear_errors():
    lstm = LSTM(3, 4, num_layers=2)
    with pytest.raises(ValueError, match="expected input_size=3"):
        lstm(xp.zeros((1, 2, 5), dtype="float32"))
    with pytest.raises(ValueError, match=r"expected \(L, B, H\) = \(2, 1, 4\)"):
        lstm(xp.zeros((1, 2, 3), dtype="float32"), lstm.zero_state(3))


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
    names = ["encoder.weight", "decoder.bias"] + [f"rnn.{n}" for n in lstm_names(num_layers)]
    assert_small(errors, names + ([] if tied else ["decoder.weight"]))
    assert ("decoder.weight" in errors) == (not tied)  # tied: one parameter, both gradients in encoder.weight


def test_lm_gradients_with_dropout_masks_held_fixed():
    model = tiny_lm(4, dropout=0.3)
    idx = xp.random.default_rng(0).integers(0, 7, (2, 5))

    def forward():
        model.dropout_rng.reseed(11)  # the same masks on every call, as within one training step
        return model(idx)

    assert float(abs(forward() - model.eval()(idx)).max()) > 1e-3
    model.train()
    assert_small(gradcheck(forward, model.backward, (), list(model.named_parameters())), ["encoder.weight"])


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
    write_json(tmp_path / "ok" / "config.json", {"model_type": "lstm_lm", "n_hid": 3})
    with pytest.raises(ValueError, match="config.json: unknown fields n_hid"):
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


def test_benchmark_runs_on_a_tiny_model():
    from minillm.tools.lstm_bench import measure

    seconds, tokens_per_s = measure(LSTMConfig(vocab_size=5, n_embd=3, hidden_size=3, num_layers=2), 2, 4, 1, 2)
    assert seconds > 0 and abs(tokens_per_s * seconds - 8) < 1e-6
