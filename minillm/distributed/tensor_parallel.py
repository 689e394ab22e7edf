"""Tensor parallelism's two communication operators and the layers they make (Megatron-LM, Shoeybi et al. 2019).

An MLP Y = gelu(X A) B splits across N ranks without sending activations
around: rank r keeps the columns A_r of A (its share of the hidden units) and
the matching rows B_r of B, so

    Y = sum_r gelu(X A_r) B_r            (GELU acts on each hidden unit alone)

A column-parallel layer (X A_r) needs the whole input X on every rank; a
row-parallel one (.. B_r) leaves a partial sum on each rank. Attention splits
the same way by heads: the q, k, v projections are column-parallel (each rank
computes its heads), the output projection row-parallel. Two operators join
the pieces, each an identity one way and a sum over the ranks the other:

    f (enter):  forward  x -> x                    backward  dx -> sum_r dx_r
    g (leave):  forward  y_r -> sum_r y_r          backward  dy -> dy

f sits where a sub-block (attention, MLP) reads the replicated input: each
rank's backward gives only its heads' or units' share of dL/dx, so the shares
are summed. g sits after the row-parallel product: the partial sums are
summed, and the gradient of a sum with respect to each term is the same dy.
A block then costs two sums forward and two backward, each the size of its
activations (B, T, C).

`comm` is any object with `allreduce_sum(array)` summing in place over the
ranks: distributed/mpi.MPIRanks, distributed/nccl.NcclRanks on GPUs, or a test's
ranks in threads.
"""

from minillm.backend import xp
from minillm.nn.layers import Module, Parameter


# ---------------------------------------------------------------- f and g
def enter_forward(x):
    """f: x -> x (every rank already holds the whole input)."""
    return x, None


def enter_backward(dx, comm):
    """f's backward: dL/dx = sum_r dL/dx|_r, each rank's share from its own heads or hidden units."""
    return comm.allreduce_sum(xp.ascontiguousarray(dx))


def leave_forward(y, comm):
    """g: y = sum_r y_r, the row-parallel product's partial sums added up on every rank."""
    return comm.allreduce_sum(xp.ascontiguousarray(y)), None


def leave_backward(dy):
    """g's backward: d(sum_r y_r)/dy_r = 1, so each rank's partial sum gets dy as it is."""
    return dy


# ---------------------------------------------------------------- the layers
def adopt(wrapper, module):
    """Make module's parameters and submodules the wrapper's own attributes, so they keep their names
    (a parameter is named where it is first met, and a module's own attributes come first)."""
    for name, value in vars(module).items():
        if isinstance(value, (Module, Parameter)):
            setattr(wrapper, name, value)


class EnterShards(Module):
    """A sub-block whose first layers are column-parallel, behind f: its forward reads the whole input,
    its backward sums the input's gradient over the ranks. Keeps the sub-block's parameter names."""

    def __init__(self, module, comm):
        adopt(self, module)
        self.module, self.comm = module, comm

    def forward(self, x, *args, **kwargs):
        x, _ = enter_forward(x)
        return self.module(x, *args, **kwargs)

    def backward(self, dy, **kwargs):
        """kwargs go to the sub-block's backward (input_grad=False: no input gradient, nothing to sum)."""
        dx = self.module.backward(dy, **kwargs)
        return None if dx is None else enter_backward(dx, self.comm)


class RowParallel(Module):
    """A Linear or Conv1D holding the rows of W for this rank's inputs: y = g(x_r W_r) + b.

    The bias is added once, after the sum (every rank holds all of it; its
    gradient, the sum of dy, is the same on every rank).
    """

    def __init__(self, layer, comm):
        self.weight, self.bias = layer.weight, layer.bias  # the layer's names
        layer.bias = None  # the product runs without it
        self.layer, self.comm = layer, comm

    def forward(self, x):  # (..., in / N) -> (..., out)
        y, _ = leave_forward(self.layer(x), self.comm)
        return y + self.bias.data

    def backward(self, dy):  # -> (..., in / N)
        if self.bias.requires_grad:
            self.bias.accumulate(dy.reshape(-1, dy.shape[-1]).sum(axis=0))
        return self.layer.backward(leave_backward(dy))
