"""A GPT or BERT cut into shards by attention heads and MLP hidden units (tensor parallelism), and put back.

shard_model(model, comm) turns a whole model, built or loaded the same way on
every rank, into rank r's shard, in place. In every Transformer layer:

    attention   q, k, v projections: the columns of heads [r H/N, (r+1) H/N)    column-parallel, f before
                output projection:   the matching rows                           row-parallel, g after
    MLP         first layer:         the columns of hidden units r I/N ...       column-parallel, f before
                second layer:        the matching rows                           row-parallel, g after

(tensor_parallel.py has f, g and why this split needs no other communication.)
Embeddings, LayerNorms, biases added after g, the pooler and every head stay
whole on every rank, and, since the activations between the sub-blocks are
the same on every rank, so do their gradients: every rank updates its copy the
same way.

What was cut is recorded as a plan, {parameter name: (axis, groups)}: a
fused q, k, v matrix is three groups, each cut alike. whole_state puts the
cut tensors (weights, or AdamW's moments of them) back together from every
rank, so a tensor-parallel checkpoint is an ordinary model directory, and
own_state cuts a whole one again to resume. TensorParallelRanks is how the
trainer sees these ranks (training/ranks.py).

Dropout on the attention weights draws masks for this rank's heads only, so
a run with attn_pdrop > 0 is a valid run but not the one-process one draw for
draw; without it, the shards compute the one-process model to rounding.
"""

import dataclasses
from functools import reduce

from minillm.backend import to_device, to_float, xp
from minillm.distributed.tensor_parallel import EnterShards, RowParallel
from minillm.models.bert import BertLayer
from minillm.models.gpt import Block
from minillm.nn.layers import Conv1D
from minillm.training.ranks import OneProcess


@dataclasses.dataclass(frozen=True)
class Split:
    """One sub-block of a layer, split: f at `enter`'s input; the layers in `columns` cut by output features
    (path -> the number of equal groups their outputs hold, 3 for a fused q, k, v); `row` cut by input
    features, g after it; `heads`, the attention module whose n_head falls to its share."""

    enter: str
    columns: dict
    row: str
    heads: str = None


SPLITS = {
    Block: (Split("attn", {"attn.c_attn": 3}, "attn.c_proj", heads="attn"),  # GPT-2
            Split("mlp", {"mlp.c_fc": 1}, "mlp.c_proj")),
    BertLayer: (Split("attention.self", {"attention.self.query": 1, "attention.self.key": 1,
                                         "attention.self.value": 1}, "attention.output.dense", heads="attention.self"),
                Split("intermediate", {"intermediate.dense": 1}, "output.dense")),
}


def part(a, axis, groups, rank, size):
    """Rank's part of `a` along `axis`: `a` is `groups` equal groups, each cut into `size` pieces; rank r keeps
    piece r of each group."""
    pieces = [xp.split(group, size, axis=axis)[rank] for group in xp.split(a, groups, axis=axis)]
    return xp.ascontiguousarray(xp.concatenate(pieces, axis=axis))


def join(parts, axis, groups):
    """The whole array from every rank's part, in rank order: part's inverse."""
    pieces = [xp.split(p, groups, axis=axis) for p in parts]  # [rank][group]
    return xp.concatenate([pieces[r][g] for g in range(groups) for r in range(len(parts))], axis=axis)


def out_axis(layer):
    """The axis of a layer's weight that indexes its outputs: Conv1D stores W (in, out), Linear (out, in)."""
    return 1 if isinstance(layer, Conv1D) else 0


def find(module, path):
    return reduce(getattr, path.split("."), module)


def replace(module, path, new):
    parent, _, name = path.rpartition(".")
    setattr(find(module, parent) if parent else module, name, new)


def shard_split(block, split, comm):
    """Cut one sub-block (Split) of `block` to comm.rank's share, in place; its plan, with names under block."""
    cuts = {}  # name -> (Parameter, axis, groups)
    for path, groups in split.columns.items():
        layer = find(block, path)
        cuts[f"{path}.weight"] = (layer.weight, out_axis(layer), groups)
        cuts[f"{path}.bias"] = (layer.bias, 0, groups)
    row = find(block, split.row)
    cuts[f"{split.row}.weight"] = (row.weight, 1 - out_axis(row), 1)  # its inputs are the columns' outputs
    for name, (p, axis, groups) in cuts.items():
        if p.shape[axis] % (groups * comm.size):
            raise ValueError(f"{name}: {p.shape[axis]} features do not split into {groups} x {comm.size} ranks")
        p.data = part(p.data, axis, groups, comm.rank, comm.size)
    if split.heads:
        attention = find(block, split.heads)
        if attention.n_head % comm.size:
            raise ValueError(f"{split.heads}: {attention.n_head} heads do not split across {comm.size} ranks")
        attention.n_head //= comm.size
    replace(block, split.row, RowParallel(row, comm))
    replace(block, split.enter, EnterShards(find(block, split.enter), comm))
    return {name: (axis, groups) for name, (_, axis, groups) in cuts.items()}


def shard_model(model, comm):
    """Turn `model` (a GPT or BERT with any head, whole) into comm.rank's shard of comm.size, in place;
    returns the plan {parameter name: (axis, groups)} of every tensor that was cut."""
    blocks = [(name, m) for name, m in model.named_modules() if type(m) in SPLITS]
    if not blocks:
        raise ValueError(f"{type(model).__name__} has no GPT or BERT layers to split across ranks")
    plan = {}
    for name, block in blocks:
        for split in SPLITS[type(block)]:
            plan.update({f"{name}.{n}": cut for n, cut in shard_split(block, split, comm).items()})
    return plan


class TensorParallelRanks(OneProcess):
    """The trainer's view of ranks that hold one model in shards.

    To the data they are one process: every rank runs every micro-batch, whole,
    so to the trainer's batching and sums this is rank 0 of 1. But only the
    world's rank 0 writes, a checkpoint gathers the cut tensors (whole_state),
    a resume cuts them again (own_state), and the gradient norm adds the
    squares of every rank's part of the cut tensors (model_squares).
    """

    def __init__(self, world, model, plan):
        self.world, self.model, self.plan = world, model, plan

    @property
    def is_writer(self):
        return self.world.is_writer

    def barrier(self):
        self.world.barrier()

    def split_of(self, key):
        """(axis, groups) of a cut parameter's name or of its moment's (`exp_avg.<name>`); None when whole."""
        return self.plan.get(key) or self.plan.get(key.partition(".")[2])

    def whole_state(self, state):
        """Every cut tensor gathered from the ranks and joined (a collective, in the state's order)."""
        return {key: a if self.split_of(key) is None else join(self.parts(a), *self.split_of(key))
                for key, a in state.items()}

    def parts(self, a):
        """Every rank's `a`, in rank order."""
        gathered = self.world.allgather(a)
        return [gathered[r] for r in range(self.world.size)]

    def own_state(self, state):
        return {key: a if self.split_of(key) is None
                else part(to_device(a), *self.split_of(key), self.world.rank, self.world.size)
                for key, a in state.items()}

    def model_squares(self, squares):
        """sum |g|^2 over the whole model: the whole tensors' once (the same on every rank), the cut ones'
        parts summed over the ranks."""
        cut = [p.grad for name, p in self.model.named_parameters() if name in self.plan and p.grad is not None]
        mine = to_float(sum((xp.vdot(g.ravel(), g.ravel()) for g in cut), xp.zeros(())))
        return to_float(squares) - mine + self.world.sum(mine)


def split_model(model, world):
    """Shard `model` across the world's ranks (shard_model) and return the trainer's view of them."""
    return TensorParallelRanks(world, model, shard_model(model, world))
