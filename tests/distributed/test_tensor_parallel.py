"""f and g, and the column- then row-parallel pair they join, on 2 ranks in threads, against finite differences
and against the unsplit layers (float64)."""

from hypothesis import given, strategies as st

from minillm.backend import xp
from minillm.distributed.tensor_parallel import EnterShards, RowParallel, enter_backward, enter_forward, \
    leave_backward, leave_forward
from minillm.nn.gradcheck import assert_gradients_close, gradcheck
from minillm.nn.layers import GELU, Conv1D, Linear, Module

from .conftest import ThreadGroup

seeds = st.integers(0, 2**31 - 1)
dims = st.integers(1, 3)


@given(seeds, dims, dims, dims)
def test_f_then_g_around_each_ranks_product_has_the_gradient_of_the_whole_product(seed, n, d_in, d_part):
    """y = g(f(x) A_r) = x [A_0 A_1 ...] summed: f's backward must sum dx over the ranks, g's pass dy as it is."""
    rng = xp.random.default_rng(seed)
    x = rng.standard_normal((n, d_in))
    a = [rng.standard_normal((d_in, d_part)) for _ in range(2)]  # rank r's matrix
    group = ThreadGroup(2)

    def forward(x):
        def rank(comm):
            h, _ = enter_forward(x)
            y, _ = leave_forward(h @ a[comm.rank] @ a[comm.rank].T, comm)
            return y
        outs = group.run(rank)
        assert (outs[0] == outs[1]).all()  # the same bits on every rank
        return outs[0]

    def backward(dy):
        dxs = group.run(lambda comm: enter_backward(leave_backward(dy) @ a[comm.rank] @ a[comm.rank].T, comm))
        assert (dxs[0] == dxs[1]).all()
        return dxs[0]

    assert_gradients_close(gradcheck(forward, backward, (x,)), ["input0"])
    # and the value: the sum of the ranks' products
    whole = sum(x @ m @ m.T for m in a)
    assert float(abs(forward(x) - whole).max()) < 1e-12


class TwoLayers(Module):
    def __init__(self, first, second):
        self.first, self.act, self.second = first, GELU("tanh"), second

    def forward(self, x):
        return self.second(self.act(self.first(x)))

    def backward(self, dy):
        return self.first.backward(self.act.backward(self.second.backward(dy)))


@given(seeds, st.sampled_from([Conv1D, Linear]))
def test_a_column_then_row_parallel_pair_on_two_ranks_is_the_whole_pair(seed, kind):
    rng = xp.random.default_rng(seed)
    whole = TwoLayers(kind(3, 4, rng, dtype="float64"), kind(4, 3, rng, dtype="float64"))
    for layer in (whole.first, whole.second):
        layer.bias.data = rng.standard_normal(layer.bias.shape)
    x, dy = rng.standard_normal((2, 5, 3)), rng.standard_normal((2, 5, 3))
    y = whole(x)
    dx = whole.backward(dy)
    out_axis = 1 if kind is Conv1D else 0

    def rank(comm):
        lo, hi = 2 * comm.rank, 2 * comm.rank + 2  # this rank's two of the four hidden units
        first, second = kind(3, 2, rng, dtype="float64"), kind(2, 3, rng, dtype="float64")
        cut = [slice(None), slice(None)]
        cut[out_axis] = slice(lo, hi)
        first.weight.data, first.bias.data = whole.first.weight.data[tuple(cut)], whole.first.bias.data[lo:hi]
        cut = [slice(None), slice(None)]
        cut[1 - out_axis] = slice(lo, hi)
        second.weight.data, second.bias.data = whole.second.weight.data[tuple(cut)], whole.second.bias.data
        shard = EnterShards(TwoLayers(first, RowParallel(second, comm)), comm)
        assert [n for n, _ in shard.named_parameters()] == ["first.weight", "first.bias", "second.weight",
                                                            "second.bias"]
        return shard(x), shard.backward(dy), shard.second.bias.grad, shard.first.bias.grad

    for r, (y_r, dx_r, dbias, dfirst_bias) in enumerate(ThreadGroup(2).run(rank)):
        assert float(abs(y_r - y).max()) < 1e-12 and float(abs(dx_r - dx).max()) < 1e-12
        assert float(abs(dbias - whole.second.bias.grad).max()) < 1e-12  # the bias added once, after g
        assert float(abs(dfirst_bias - whole.first.bias.grad[2 * r:2 * r + 2]).max()) < 1e-12
