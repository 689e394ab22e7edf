"""Modules: parameters bound to the functions of `functional.py`.

A `Module` keeps the cache of its last forward; `backward(dout)` adds into
each parameter's `.grad` and returns the gradient of the module's input.
Submodules are plain attributes, and an attribute path is the parameter's
name: `transformer.h.0.attn.c_attn.weight` is reached exactly that way, which
is how checkpoints keep Hugging Face's names.
"""

import contextlib
import math
import threading

from minillm.backend import default_rng, to_host, xp
from minillm.nn import functional as F


class Parameter:
    """An array and the gradient accumulated into it.

    A frozen parameter (requires_grad False, as in PyTorch) gets no gradient:
    the layers that own it skip the products that would compute it, and the
    optimizer keeps no moments for it (training/optim.py). Parameter-efficient
    fine-tuning (minillm/peft/) freezes the backbone this way. A `mask` (1 where
    an entry learns, 0 where it is held) zeroes its gradient's held entries:
    AdamW then never moves them (no gradient, no moments, and weight decay
    keeps a zero at zero), which is how a pruned weight stays pruned while the
    rest is fine-tuned (efficiency/prune.py hold_zeros).
    """

    def __init__(self, data, requires_grad=True):
        self.data = data
        self.grad = None
        self.requires_grad = requires_grad
        self.mask = None

    @property
    def shape(self):
        return self.data.shape

    def accumulate(self, g):
        """grad += g (the first contribution is taken as it is, without a copy of zeros); a frozen
        parameter keeps None (layers check requires_grad first, so as not to compute g at all)."""
        if not self.requires_grad:
            return
        if self.mask is not None:
            g = g * self.mask  # (a new array: kept as it is below)
        if self.grad is None:
            self.grad = g.copy() if g.base is not None or not g.flags.c_contiguous else g
        else:
            self.grad += g


class Module:
    """Base of every layer and model: parameter discovery, modes, dtype."""

    training = True

    def __call__(self, *args, **kwargs):
        return self.forward(*args, **kwargs)

    def children(self):
        """(name, module) for each direct submodule, in the order they were assigned."""
        for name, value in vars(self).items():
            if isinstance(value, Module):
                yield name, value

    def named_modules(self, prefix=""):
        """(dotted name, module) for this module and every submodule, depth first."""
        yield prefix.rstrip("."), self
        for name, child in self.children():
            yield from child.named_modules(f"{prefix}{name}.")

    def named_parameters(self, prefix=""):
        """(dotted name, Parameter), each parameter once even when shared (tied)."""
        seen = set()
        for name, p in self._walk_parameters(prefix):
            if id(p) not in seen:
                seen.add(id(p))
                yield name, p

    def _walk_parameters(self, prefix):
        for name, value in vars(self).items():
            if isinstance(value, Parameter):
                yield prefix + name, value
        for name, child in self.children():
            yield from child._walk_parameters(f"{prefix}{name}.")

    def parameters(self):
        return [p for _, p in self.named_parameters()]

    def num_parameters(self, trainable_only=False):
        return sum(int(p.data.size) for p in self.parameters() if p.requires_grad or not trainable_only)

    def requires_grad_(self, flag=True):
        """Freeze (False) or unfreeze every parameter of this module and its submodules."""
        for p in self.parameters():
            p.requires_grad = flag
            p.grad = None
        return self

    def zero_grad(self):
        for p in self.parameters():
            p.grad = None

    def train(self, mode=True):
        self.training = mode
        for _, child in self.children():
            child.train(mode)
        return self

    def eval(self):
        return self.train(False)

    def astype(self, dtype):
        """Cast every parameter in place (float64 for gradient checks)."""
        for p in self.parameters():
            p.data = p.data.astype(dtype)
            p.grad = None
        return self

    def state_dict(self):
        return {name: p.data for name, p in self.named_parameters()}

    def load_state_dict(self, state, strict=True):
        """Copy arrays into the parameters; unexpected or misshapen names are an error.

        Missing names are an error too when strict; otherwise those parameters
        keep their fresh initialisation and their sorted names are returned
        (a checkpoint without the pretraining heads, as Hugging Face allows).
        """
        own = dict(self.named_parameters())
        missing = sorted(set(own) - set(state))
        unexpected = sorted(set(state) - set(own))
        wrong = sorted(n for n in set(own) & set(state) if tuple(own[n].shape) != tuple(state[n].shape))
        if (missing and strict) or unexpected or wrong:
            lines = []
            if missing and strict:
                lines.append(f"missing: {', '.join(missing)}")
            if unexpected:
                lines.append(f"unexpected: {', '.join(unexpected)}")
            for n in wrong:
                lines.append(f"shape of {n}: checkpoint {tuple(state[n].shape)}, model {tuple(own[n].shape)}")
            raise ValueError("state does not fit the model; " + "; ".join(lines))
        for name, p in own.items():
            if name in state:
                p.data = xp.asarray(state[name], dtype=p.data.dtype).copy()
        return missing

    def random_source(self):
        """The RandomSource this module's dropout draws from, found among its and its submodules'
        attributes (a model gives one to all its layers); None when nothing draws from one."""
        sources = {id(v): v for _, m in self.named_modules() for v in vars(m).values() if isinstance(v, RandomSource)}
        if len(sources) > 1:
            raise ValueError(f"{type(self).__name__} draws dropout from {len(sources)} RandomSources; expected one")
        return next(iter(sources.values()), None)

    def reseed_dropout(self, seed):
        """Restart the dropout masks from `seed`. The trainer calls this before every step with a seed
        made of (run seed, step), so a resumed run draws the masks of an uninterrupted one."""
        source = self.random_source()
        if source is not None:
            source.reseed(seed)

    def dropout_seeds(self, n):
        """n seeds drawn from this module's dropout generator, for copies of it that need masks of their
        own (nn/parallel.py's replicas); [] without dropout."""
        source = self.random_source()
        return [] if source is None else to_host(source.rng.integers(0, 2 ** 63, n)).tolist()  # one transfer

_listener = threading.local()  # this thread's listener to gradients_ready (None: nobody listens)


def gradients_ready(module):
    """Models call this in backward right after a block's (or a head's) own backward: the gradients of
    `module`'s parameters are complete for this pass. Data parallelism listens (training/buckets.py): it
    starts summing those gradients over the ranks while backward goes on below. Nothing listens by default."""
    listener = getattr(_listener, "fn", None)
    if listener is not None:
        listener(module)


@contextlib.contextmanager
def listening_for_gradients(fn):
    """Within the block, on this thread, every gradients_ready(module) calls fn(module) (None: nobody)."""
    previous = getattr(_listener, "fn", None)
    _listener.fn = fn
    try:
        yield
    finally:
        _listener.fn = previous


class ModuleList(Module):
    """Numbered submodules: `h.0`, `h.1`, ... as in Hugging Face names."""

    def __init__(self, modules):
        for i, m in enumerate(modules):
            setattr(self, str(i), m)
        self._n = len(modules)

    def __len__(self):
        return self._n

    def __getitem__(self, i):
        return getattr(self, str(range(self._n)[i]))

    def __iter__(self):
        return (self[i] for i in range(self._n))


def normal_init(shape, std, rng, dtype):
    return (rng.standard_normal(shape, dtype="float64") * std).astype(dtype)


class Conv1D(Module):
    """GPT-2's linear layer: y = x W + b with W stored (in, out), as Hugging Face's Conv1D."""

    def __init__(self, n_in, n_out, rng, std=0.02, bias=True, dtype="float32"):
        self.weight = Parameter(normal_init((n_in, n_out), std, rng, dtype))
        self.bias = Parameter(xp.zeros(n_out, dtype=dtype)) if bias else None

    def forward(self, x):  # (..., in) -> (..., out)
        y, self.cache = F.linear_forward(x, self.weight.data, None if self.bias is None else self.bias.data)
        return y

    def backward(self, dy, input_grad=True):
        """Returns dx (None without input_grad)."""
        bias_grad = self.bias is not None and self.bias.requires_grad
        dx, dw, db = F.linear_backward(dy, self.cache, self.weight.requires_grad, bias_grad, input_grad)
        self.weight.accumulate(dw)
        if bias_grad:
            self.bias.accumulate(db)
        return dx


class Linear(Module):
    """PyTorch's linear layer: y = x W^T + b with W stored (out, in), as BERT's checkpoints."""

    def __init__(self, n_in, n_out, rng, std=0.02, bias=True, dtype="float32"):
        self.weight = Parameter(normal_init((n_out, n_in), std, rng, dtype))
        self.bias = Parameter(xp.zeros(n_out, dtype=dtype)) if bias else None

    def forward(self, x):  # (..., in) -> (..., out)
        b = None if self.bias is None else self.bias.data
        y, self.cache = F.linear_forward(x, self.weight.data.T, b)
        return y

    def backward(self, dy, input_grad=True):
        """Returns dx (None without input_grad)."""
        bias_grad = self.bias is not None and self.bias.requires_grad
        dx, dw, db = F.linear_backward(dy, self.cache, self.weight.requires_grad, bias_grad, input_grad)
        if dw is not None:
            self.weight.accumulate(dw.T)
        if bias_grad:
            self.bias.accumulate(db)
        return dx


class Embedding(Module):
    """A lookup table: out[b, t] = W[idx[b, t]], W (V, C)."""

    def __init__(self, n_rows, dim, rng, std=0.02, dtype="float32"):
        self.weight = Parameter(normal_init((n_rows, dim), std, rng, dtype))

    def forward(self, idx):  # (B, T) -> (B, T, C)
        out, self.cache = F.embedding_forward(idx, self.weight.data)
        return out

    def logits_forward(self, h, bias=None):
        """(h W^T + b, cache for F.linear_backward): the table read as a tied output layer (GPT's head,
        BERT's MLM decoder, XLNet's)."""
        return F.linear_forward(h, self.weight.data.T, bias)  # (..., C) -> (..., V)

    def backward(self, dout):
        """Scatter-adds into W's gradient (none when frozen); the input (indices) has no gradient."""
        if self.weight.requires_grad:
            self.weight.accumulate(F.embedding_backward(dout, self.cache))


class LayerNorm(Module):
    def __init__(self, dim, eps=1e-5, dtype="float32"):
        self.weight = Parameter(xp.ones(dim, dtype=dtype))
        self.bias = Parameter(xp.zeros(dim, dtype=dtype))
        self.eps = eps

    def forward(self, x):  # (..., C) -> (..., C)
        y, self.cache = F.layernorm_forward(x, self.weight.data, self.bias.data, self.eps)
        return y

    def backward(self, dy):
        dx, dw, db = F.layernorm_backward(dy, self.cache, self.weight.requires_grad, self.bias.requires_grad)
        self.weight.accumulate(dw)
        self.bias.accumulate(db)
        return dx


class GELU(Module):
    """GELU: "tanh" is GPT-2's approximation (gelu_new), "erf" the exact form BERT uses."""

    def __init__(self, approximate="tanh"):
        pair = {"tanh": (F.gelu_forward, F.gelu_backward), "erf": (F.gelu_erf_forward, F.gelu_erf_backward)}
        if approximate not in pair:
            raise ValueError(f"GELU approximate must be 'tanh' or 'erf', got {approximate!r}")
        self._forward, self._backward = pair[approximate]

    def forward(self, x):
        y, self.cache = self._forward(x)
        return y

    def backward(self, dy):
        return self._backward(dy, self.cache)


class RandomSource:
    """One generator shared by a model's dropout layers.

    The trainer reseeds it from (seed, step) before every step, through
    Module.reseed_dropout, so a resumed run draws exactly the masks an
    uninterrupted run would, with no generator state to save.
    """

    def __init__(self, seed=0):
        self.reseed(seed)

    def reseed(self, seed):
        self.rng = default_rng(seed)


class Dropout(Module):
    def __init__(self, p, source):
        if not 0.0 <= p < 1.0:
            raise ValueError(f"dropout probability must be in [0, 1), got {p}")
        self.p = p
        self.source = source

    def forward(self, x):
        y, self.mask = F.dropout_forward(x, self.p, self.source.rng, self.training)
        return y

    def backward(self, dy):
        return F.dropout_backward(dy, self.mask)


def init_std(base_std, n_residual_layers):
    """GPT-2 scales the init of projections into the residual stream by 1/sqrt(2 n_layer)."""
    return base_std / math.sqrt(2 * n_residual_layers)
