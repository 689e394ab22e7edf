"""The LSTM layer: backpropagation through time against finite differences, PyTorch's layout, carried state, dropout."""

import pytest
from hypothesis import given, strategies as st

from minillm.backend import to_float, xp
from minillm.nn.gradcheck import assert_gradients_close, gradcheck
from minillm.nn.layers import RandomSource
from minillm.nn.lstm import LSTM, sigmoid

seeds = st.integers(0, 2**31 - 1)


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
    state = rng.standard_normal((2, num_layers, b, hidden))
    h0, c0 = state[0], state[1]

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
    assert_gradients_close(errors, ["input0", "input1", "input2"] + lstm_names(num_layers))


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
    assert to_float(abs(c_n[0, 0] - c).max()) < 1e-14
    assert to_float(abs(out[0, 0] - o * xp.tanh(c)).max()) < 1e-14
    assert to_float(abs(h_n - out[:, -1]).max()) == 0.0


def test_parameter_names_and_layouts_are_pytorchs():
    lstm = LSTM(5, 3, num_layers=2)
    shapes = {k: tuple(v.shape) for k, v in lstm.state_dict().items()}
    assert shapes == {"weight_ih_l0": (12, 5), "weight_hh_l0": (12, 3), "bias_ih_l0": (12,), "bias_hh_l0": (12,),
                      "weight_ih_l1": (12, 3), "weight_hh_l1": (12, 3), "bias_ih_l1": (12,), "bias_hh_l1": (12,)}
    assert all(to_float(abs(v).max()) <= 1 / 3 ** 0.5 for v in lstm.state_dict().values())  # U(-1/sqrt(H), 1/sqrt(H))


def test_carried_state_splits_a_sequence_exactly():
    """Truncated BPTT: two half-sequence calls, the second from the first's final state, equal one call."""
    rng = xp.random.default_rng(1)
    lstm = LSTM(3, 4, num_layers=2, rng=rng, dtype="float64")
    x = rng.standard_normal((2, 6, 3))
    whole, (h_n, c_n) = lstm(x)
    first, state = lstm(x[:, :3])
    second, (h2, c2) = lstm(x[:, 3:], state)
    assert to_float(abs(xp.concatenate([first, second], axis=1) - whole).max()) < 1e-14
    assert to_float(abs(h2 - h_n).max()) < 1e-14 and to_float(abs(c2 - c_n).max()) < 1e-14


def test_dropout_acts_between_layers_only():
    source = RandomSource(0)
    rng = xp.random.default_rng(2)
    lstm = LSTM(3, 4, num_layers=2, dropout=0.5, rng=rng, dropout_source=source, dtype="float64")
    x = rng.standard_normal((2, 5, 3))
    source.reseed(7)
    dropped, _ = lstm(x)
    source.reseed(7)
    assert to_float(abs(lstm(x)[0] - dropped).max()) == 0.0  # same seed, same masks
    lstm.eval()
    clean, _ = lstm(x)
    assert to_float(abs(clean - dropped).max()) > 1e-3
    one = LSTM(3, 4, num_layers=1, dropout=0.5, rng=xp.random.default_rng(2), dropout_source=source)
    assert to_float(abs(one(x.astype("float32"))[0] - one.eval()(x.astype("float32"))[0]).max()) == 0.0


def test_bad_shapes_are_clear_errors():
    lstm = LSTM(3, 4, num_layers=2)
    with pytest.raises(ValueError, match="expected input_size=3"):
        lstm(xp.zeros((1, 2, 5), dtype="float32"))
    with pytest.raises(ValueError, match=r"expected \(L, B, H\) = \(2, 1, 4\)"):
        lstm(xp.zeros((1, 2, 3), dtype="float32"), lstm.zero_state(3))
