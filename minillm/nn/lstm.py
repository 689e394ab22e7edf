"""LSTM with backpropagation through time, in PyTorch's gate order and layout.

For each layer, at each time step t, with the previous state (h, c):

    i  = sigma(W_ii x_t + b_ii + W_hi h + b_hi)     input gate
    f  = sigma(W_if x_t + b_if + W_hf h + b_hf)     forget gate
    g  = tanh (W_ig x_t + b_ig + W_hg h + b_hg)     candidate cell
    o  = sigma(W_io x_t + b_io + W_ho h + b_ho)     output gate
    c' = f * c + i * g
    h' = o * tanh(c')

The four gates are stacked in one matrix per layer, in the order i, f, g, o:
`weight_ih_l{k}` (4H, I), `weight_hh_l{k}` (4H, H), `bias_ih_l{k}` and
`bias_hh_l{k}` (4H,), exactly torch.nn.LSTM's parameters.

Speed: x_t does not depend on the recurrence, so x W_ih^T for every time step
is one GEMM before the loop; likewise dW_ih and dW_hh are one GEMM each after
the backward loop. Only h W_hh^T (and its gradient) has to be a small GEMM
per step. The functions work time-major (T, B, .) so that each step reads a
contiguous (B, .) slice; the LSTM module takes and returns batch-first arrays.

Truncated BPTT: the final state (h_n, c_n) is returned as plain arrays. Fed
to the next batch as its initial state, it carries the memory forward while
the gradient stops at the batch boundary (the next backward returns dh0, dc0,
which the trainer simply drops).
"""

import math

from minillm.backend import xp
from minillm.nn.layers import Dropout, Module, ModuleList, Parameter, RandomSource


def sigmoid(x):
    """sigma(x) = 1 / (1 + e^-x), written as (1 + tanh(x/2)) / 2: no overflow for large |x|."""
    return 0.5 * (1.0 + xp.tanh(0.5 * x))


# ---------------------------------------------------------------- one time step
def lstm_cell_forward(xw, h_prev, c_prev, w_hh):
    """One step. xw = x_t W_ih^T + b_ih + b_hh (B, 4H), precomputed for all steps;
    h_prev, c_prev (B, H); w_hh (4H, H). Returns h (B, H), c (B, H), cache.

        a = xw + h_prev W_hh^T,  [a_i, a_f, a_g, a_o] = a
        i, f, o = sigma(a_i), sigma(a_f), sigma(a_o);  g = tanh(a_g)
        c = f * c_prev + i * g;  h = o * tanh(c)
    """
    H = h_prev.shape[1]
    a = xw + h_prev @ w_hh.T  # (B, 4H) pre-activations
    gates = sigmoid(a)  # i, f and o are sigmoids; g's quarter is replaced by tanh below
    gates[:, 2 * H:3 * H] = xp.tanh(a[:, 2 * H:3 * H])
    i, f, g, o = gates[:, :H], gates[:, H:2 * H], gates[:, 2 * H:3 * H], gates[:, 3 * H:]
    c = f * c_prev + i * g  # (B, H)
    tanh_c = xp.tanh(c)
    h = o * tanh_c  # (B, H)
    return h, c, (gates, c_prev, tanh_c, w_hh)


def lstm_cell_backward(dh, dc, cache):
    """Back through one step: dh, dc are dL/dh and dL/dc (B, H) of this step's output state.

    Returns (dxw, dh_prev, dc_prev), where dxw = dL/da (B, 4H) is also the
    gradient of the pre-activations, so the caller gets the parameter
    gradients from it: dW_hh = sum_t da_t^T h_{t-1}, dW_ih = sum_t da_t^T x_t,
    db_ih = db_hh = sum_t da_t (summed over all steps in one GEMM).

        dc_total = dc + dh * o * (1 - tanh(c)^2)      c reaches L directly and through h
        da_i = dc_total * g * i (1 - i)
        da_f = dc_total * c_prev * f (1 - f)
        da_g = dc_total * i * (1 - g^2)
        da_o = dh * tanh(c) * o (1 - o)
        dh_prev = da W_hh,  dc_prev = dc_total * f
    """
    gates, c_prev, tanh_c, w_hh = cache
    H = c_prev.shape[1]
    i, f, g, o = gates[:, :H], gates[:, H:2 * H], gates[:, 2 * H:3 * H], gates[:, 3 * H:]
    dc_total = dc + dh * o * (1.0 - tanh_c * tanh_c)
    da = xp.empty_like(gates)  # (B, 4H)
    da[:, :H] = dc_total * g * i * (1.0 - i)
    da[:, H:2 * H] = dc_total * c_prev * f * (1.0 - f)
    da[:, 2 * H:3 * H] = dc_total * i * (1.0 - g * g)
    da[:, 3 * H:] = dh * tanh_c * o * (1.0 - o)
    return da, da @ w_hh, dc_total * f


# ---------------------------------------------------------------- one layer, whole sequence
def lstm_layer_forward(x, h0, c0, w_ih, w_hh, b_ih, b_hh):
    """One LSTM layer over a sequence, time-major.

    x (T, B, I), h0 and c0 (B, H), w_ih (4H, I), w_hh (4H, H), b_ih and b_hh (4H,).
    Returns out (T, B, H) = h_1..h_T, the final state (h_T, c_T) and the cache.
    """
    T, B, n_in = x.shape
    H = h0.shape[1]
    xw = (x.reshape(T * B, n_in) @ w_ih.T + (b_ih + b_hh)).reshape(T, B, 4 * H)  # one GEMM for all steps
    hs = xp.empty((T + 1, B, H), dtype=xw.dtype)  # hs[t] is h_{t}; hs[0] = h0
    hs[0] = h0
    c = c0
    steps = []
    for t in range(T):
        hs[t + 1], c, step = lstm_cell_forward(xw[t], hs[t], c, w_hh)
        steps.append(step)
    return hs[1:], (hs[T].copy(), c), (x, hs, w_ih, steps)


def lstm_layer_backward(dout, dh_last, dc_last, cache):
    """Backpropagation through time for one layer.

    dout (T, B, H) is dL/dh_t from above (the outputs); dh_last, dc_last (B, H)
    are dL/d(h_T, c_T) from the final state (zeros when it feeds nothing).
    Returns dx (T, B, I), dh0, dc0 (B, H), dw_ih, dw_hh, db_ih, db_hh.
    """
    x, hs, w_ih, steps = cache
    T, B, n_in = x.shape
    H = hs.shape[2]
    da = xp.empty((T, B, 4 * H), dtype=dout.dtype)
    dh, dc = dh_last, dc_last
    for t in reversed(range(T)):
        # h_t feeds both the output (dout[t]) and the next step (dh)
        da[t], dh, dc = lstm_cell_backward(dout[t] + dh, dc, steps[t])
    da2 = da.reshape(T * B, 4 * H)
    dx = (da2 @ w_ih).reshape(T, B, n_in)
    dw_ih = da2.T @ x.reshape(T * B, n_in)  # (4H, I): all steps in one GEMM
    dw_hh = da2.T @ hs[:-1].reshape(T * B, H)  # (4H, H): pairs da_t with h_{t-1}
    db = da2.sum(axis=0)  # b_ih and b_hh enter identically, so they share this gradient
    return dx, dh, dc, dw_ih, dw_hh, db, db.copy()


# ---------------------------------------------------------------- the module
class LSTM(Module):
    """torch.nn.LSTM(input_size, hidden_size, num_layers, dropout=p, batch_first=True).

    forward(x (B, T, I), state=None) -> (out (B, T, H), (h_n, c_n)), with the
    state (h0, c0) each (L, B, H) or None for zeros. Dropout with probability p
    is applied to each layer's output that feeds another layer (not after the last).
    backward(dout, dstate_final=None) -> (dx, (dh0, dc0)); dstate_final = (dh_n, dc_n).
    Parameters are initialised U(-1/sqrt(H), 1/sqrt(H)), as PyTorch does.
    """

    def __init__(self, input_size, hidden_size, num_layers=1, dropout=0.0, rng=None, dropout_source=None,
                 dtype="float32"):
        rng = rng or xp.random.default_rng(0)
        dropout_source = dropout_source or RandomSource(0)  # a model passes its own, reseeded each step
        self.input_size, self.hidden_size, self.num_layers = input_size, hidden_size, num_layers
        bound = 1.0 / math.sqrt(hidden_size)
        for k in range(num_layers):
            n_in = input_size if k == 0 else hidden_size
            for name, shape in ((f"weight_ih_l{k}", (4 * hidden_size, n_in)),
                                (f"weight_hh_l{k}", (4 * hidden_size, hidden_size)),
                                (f"bias_ih_l{k}", (4 * hidden_size,)), (f"bias_hh_l{k}", (4 * hidden_size,))):
                data = (rng.random(shape, dtype="float64") * 2.0 - 1.0) * bound
                setattr(self, name, Parameter(data.astype(dtype)))
        self.inter_dropout = ModuleList([Dropout(dropout, dropout_source) for _ in range(num_layers - 1)])

    def layer_parameters(self, k):
        """Layer k's (weight_ih, weight_hh, bias_ih, bias_hh) Parameters."""
        return tuple(getattr(self, f"{name}_l{k}") for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"))

    def zero_state(self, batch_size, dtype=None):
        """(h0, c0) of zeros, each (L, B, H)."""
        dtype = dtype or self.weight_hh_l0.data.dtype
        shape = (self.num_layers, batch_size, self.hidden_size)
        return xp.zeros(shape, dtype=dtype), xp.zeros(shape, dtype=dtype)

    def forward(self, x, state=None):
        B, T, n_in = x.shape
        if n_in != self.input_size:
            raise ValueError(f"LSTM input has {n_in} features, expected input_size={self.input_size}")
        h0, c0 = state if state is not None else self.zero_state(B, x.dtype)
        expected = (self.num_layers, B, self.hidden_size)
        if tuple(h0.shape) != expected or tuple(c0.shape) != expected:
            raise ValueError(f"LSTM state shapes {tuple(h0.shape)}, {tuple(c0.shape)}: expected (L, B, H) = {expected}")
        h = xp.ascontiguousarray(x.transpose(1, 0, 2))  # (T, B, I) time-major
        h_n, c_n, self.caches = [], [], []
        for k in range(self.num_layers):
            if k > 0:
                h = self.inter_dropout[k - 1](h)
            w_ih, w_hh, b_ih, b_hh = (p.data for p in self.layer_parameters(k))
            h, (h_k, c_k), cache = lstm_layer_forward(h, h0[k], c0[k], w_ih, w_hh, b_ih, b_hh)
            h_n.append(h_k)
            c_n.append(c_k)
            self.caches.append(cache)
        return h.transpose(1, 0, 2), (xp.stack(h_n), xp.stack(c_n))  # (B, T, H), ((L, B, H), (L, B, H))

    def backward(self, dout, dstate_final=None):
        """dout (B, T, H) = dL/d(out); dstate_final = (dh_n, dc_n) or None (zeros). Returns dx, (dh0, dc0)."""
        dh = xp.ascontiguousarray(dout.transpose(1, 0, 2))  # (T, B, H)
        B = dh.shape[1]
        if dstate_final is None:  # the final state fed nothing (or, in truncated BPTT, only the next batch)
            dstate_final = self.zero_state(B, dout.dtype)
        dh0, dc0 = [None] * self.num_layers, [None] * self.num_layers
        for k in reversed(range(self.num_layers)):
            dh, dh0[k], dc0[k], *dparams = lstm_layer_backward(dh, dstate_final[0][k], dstate_final[1][k],
                                                             self.caches[k])
            for p, g in zip(self.layer_parameters(k), dparams):
                p.accumulate(g)
            if k > 0:
                dh = self.inter_dropout[k - 1].backward(dh)
        return dh.transpose(1, 0, 2), (xp.stack(dh0), xp.stack(dc0))
