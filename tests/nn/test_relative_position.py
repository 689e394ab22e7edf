"""The relative-position bias: buckets worked out by hand, the bias's backward against finite differences."""

from hypothesis import given, strategies as st

from minillm.backend import np, to_host, xp
from minillm.nn.gradcheck import assert_gradients_close, gradcheck
from minillm.nn.layers import Parameter
from minillm.nn.relative_position import (RelativePositionBias, relative_bias_backward, relative_bias_forward,
                                          relative_buckets, relative_position_bucket)

seeds = st.integers(0, 2**31 - 1)


def test_buckets_of_mpnet_worked_out_by_hand():
    """32 buckets, distance 128: n = |j - i| < 8 its own; then 8 + floor(log(n / 8) / log(16) * 8), at most 15
    (10 up to n = 22, 11 from 23: 8 * 2^1.5 = 22.6); keys after the query (j > i) add 16."""
    by_hand = {0: 0, -1: 1, -7: 7, -8: 8, -11: 8, -12: 9, -16: 10, -22: 10, -23: 11, -32: 12, -64: 14, -127: 15,
               -128: 15, -1000: 15, 1: 17, 7: 23, 8: 24, 16: 26, 64: 30, 127: 31, 128: 31, 1000: 31}
    offsets = np.array(list(by_hand))
    assert relative_position_bucket(offsets).tolist() == list(by_hand.values())


def test_a_smaller_table_by_hand():
    """8 buckets, distance 16: 2 exact offsets a side, then 2 + floor(log(n / 2) / log(8) * 2), at most 3."""
    by_hand = {0: 0, -1: 1, -2: 2, -5: 2, -8: 3, -15: 3, -16: 3, 1: 5, 3: 6, 8: 7, 40: 7}
    got = relative_position_bucket(np.array(list(by_hand)), num_buckets=8, max_distance=16)
    assert got.tolist() == list(by_hand.values())


def test_the_bucket_table_is_j_minus_i():
    b = to_host(relative_buckets(3, 4))
    assert b.tolist() == [[0, 17, 18, 19], [1, 0, 17, 18], [2, 1, 0, 17]]


def test_the_bias_is_the_table_read_by_bucket():
    table = xp.arange(8 * 2, dtype=xp.float64).reshape(8, 2)  # (N, H): row k holds 2k, 2k + 1
    buckets = relative_buckets(3, 3, num_buckets=8, max_distance=16)
    bias, _ = relative_bias_forward(table, buckets)
    assert bias.shape == (1, 2, 3, 3)
    assert to_host(bias[0, 1]).tolist() == [[1, 11, 13], [3, 1, 11], [5, 3, 1]]


@given(seeds, st.integers(1, 3), st.integers(1, 5), st.integers(1, 5), st.integers(1, 3))
def test_bias_backward_sums_over_batch_rows_and_layers(seed, heads, t_query, t_key, lead):
    """dW = the scores' gradient of every (layer, row, i, j), scatter-added into its bucket's row."""
    rng = xp.random.default_rng(seed)
    num_buckets = 8
    buckets = relative_buckets(t_query, t_key, num_buckets, max_distance=4)  # repeats: rows collect several
    table = rng.standard_normal((num_buckets, heads))
    state = {}

    def forward(w):  # the same bias in `lead` layers of `lead` + 1 rows each
        bias, state["cache"] = relative_bias_forward(w, buckets)
        return bias * xp.ones((lead, lead + 1, 1, 1, 1))

    errors = gradcheck(forward, lambda d: relative_bias_backward(d, state["cache"]), (table,))
    assert_gradients_close(errors, ["input0"])


@given(seeds, st.integers(1, 5))
def test_relative_position_bias_module(seed, t):
    rng = xp.random.default_rng(seed)
    bias = RelativePositionBias(8, 3, rng, std=1.0, max_distance=8, dtype="float64")
    errors = gradcheck(lambda: bias(t), bias.backward, (), list(bias.named_parameters()))
    assert_gradients_close(errors, ["weight"])


def test_a_frozen_table_gets_no_gradient():
    bias = RelativePositionBias(4, 2, xp.random.default_rng(0), dtype="float64")
    bias.weight.requires_grad = False
    out = bias(3)
    bias.backward(xp.ones_like(out))
    assert bias.weight.grad is None and isinstance(bias.weight, Parameter)
