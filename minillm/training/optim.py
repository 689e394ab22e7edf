"""Optimisation: AdamW, the learning-rate schedule, gradient clipping.

Gradient accumulation needs no code here: every backward adds into `.grad`,
so k micro-batches whose losses are scaled by 1/k leave the gradient of
their mean, and the optimizer steps once.
"""

import contextlib
import math
from bisect import bisect_right
from itertools import accumulate

from minillm.backend import on_gpu, to_float, xp
from minillm.nn.layers import Embedding, LayerNorm, Parameter
from minillm.nn.parallel import run_in_threads
from minillm.training.buckets import DEFAULT_BUCKET_MB, GradientBuckets
from minillm.training.ranks import OneProcess, slice_of


def weight_decay_groups(model):
    """(decayed, not decayed) names of the trainable parameters (frozen ones are in neither).

    Matrices that multiply activations decay; biases, LayerNorm gains and
    embedding tables do not (shrinking them toward 0 only hurts).
    """
    exempt = set()
    for name, module in model.named_modules():
        if isinstance(module, (Embedding, LayerNorm)):
            exempt.update(id(p) for p in vars(module).values() if isinstance(p, Parameter))
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        (no_decay if id(p) in exempt or p.data.ndim < 2 else decay).append(name)
    return decay, no_decay


# The update makes a dozen passes over its arrays: done a piece of this many elements at a time, the
# passes find the piece in cache (measured in docs/DESIGN_NOTES.md).
UPDATE_PIECE = 1 << 17


class AdamW:
    """Adam with decoupled weight decay (Loshchilov & Hutter), as torch.optim.AdamW:

        p <- p - lr * wd * p                          (decay, decayed parameters only)
        m <- b1 m + (1 - b1) g,   v <- b2 v + (1 - b2) g^2
        p <- p - lr * (m / (1 - b1^t)) / (sqrt(v / (1 - b2^t)) + eps)

    The update is element-wise, so it is done on one flat array: the optimizer
    moves every parameter into one (each `.data` becomes a view of its part,
    in the model's order) and keeps the moments the same way. A step is then
    a dozen array operations over the whole model instead of a dozen per
    parameter, and `threads` threads each take a part. A parameter whose array
    was replaced (a checkpoint loaded into the model) is moved in again at the
    next step; one without a gradient is left alone, moments included. The
    price: two more arrays the size of the model, the gathered gradients and
    a work array. Frozen parameters (requires_grad False) are not moved in:
    every one of those arrays is the size of the trainable parameters only,
    which is what parameter-efficient fine-tuning saves. With several `ranks`
    (data parallelism) the gathered gradients are summed over them before the
    norm is read, in buckets of about `bucket_mb` MB started during backward
    (training/buckets.py; 0: one Allreduce of the whole array at the step);
    with `shard` (ZeRO-1) the moments and the update cover only this rank's
    slice [lo, hi) of the flat array, and the slices are then gathered by
    every rank. ZeRO-1 sums the same buckets whole, then updates its slice.
    """

    def __init__(self, model, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0, threads=1, ranks=None,
                 shard=False, bucket_mb=DEFAULT_BUCKET_MB):
        decay = set(weight_decay_groups(model)[0])
        trainable = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
        self.names = [n for n, _ in trainable]
        self.params = [p for _, p in trainable]
        if not self.params:
            raise ValueError("AdamW: the model has no trainable parameters (all are frozen)")
        dtypes = {p.data.dtype for p in self.params}
        if len(dtypes) != 1:
            raise ValueError(f"AdamW keeps all parameters in one array; they have dtypes {sorted(map(str, dtypes))}")
        self.lr, self.betas, self.eps, self.weight_decay = lr, betas, eps, weight_decay
        self.threads = 1 if on_gpu() else threads
        self.t = 0
        self.offsets = list(accumulate((p.data.size for p in self.params), initial=0))
        self.decayed = self.runs(i for i, name in enumerate(self.names) if name in decay)
        self.decayed_ends = [hi for _, hi in self.decayed]
        size, dtype = self.offsets[-1], dtypes.pop()
        self.flat = xp.empty(size, dtype)  # the parameters
        self.flat_grad = xp.zeros(size, dtype)  # (zeros: a data-parallel sum reads it whole)
        self.ranks = ranks or OneProcess()
        self.shard = shard and self.ranks.size > 1
        self.lo, self.hi = slice_of(size, self.ranks.rank, self.ranks.size) if self.shard else (0, size)
        self.flat_m, self.flat_v = xp.zeros(self.hi - self.lo, dtype), xp.zeros(self.hi - self.lo, dtype)
        self.work = xp.empty(self.hi - self.lo, dtype)
        self.views = [self.part(self.flat, i) for i in range(len(self.params))]
        for p, view in zip(self.params, self.views):
            view[...] = p.data
            p.data = view
        limit = int(bucket_mb * 2 ** 20) // self.flat.itemsize
        self.buckets = GradientBuckets(self.params, limit, self.start_sum) if self.ranks.size > 1 else None

    def overlapped(self):
        """A context for the backward that completes this step's gradients (the last micro-batch's): with several
        ranks, each bucket's sum over them starts as soon as backward is done with it."""
        return self.buckets.overlapping() if self.buckets else contextlib.nullcontext()

    @property
    def m(self):
        """The first moments by parameter name (views; gathered from every rank when sharded)."""
        return {n: self.part(self.moments()[0], i) for i, n in enumerate(self.names)}

    @property
    def v(self):
        """The second moments by parameter name, as m."""
        return {n: self.part(self.moments()[1], i) for i, n in enumerate(self.names)}

    def moments(self):
        """(m, v) over the whole flat array: the optimizer's own, or a sharded one's slices gathered from every
        rank (a collective: every rank calls it)."""
        if not self.shard:
            return self.flat_m, self.flat_v
        out = []
        for mine in (self.flat_m, self.flat_v):
            whole = xp.zeros(self.flat.size, self.flat.dtype)
            whole[self.lo:self.hi] = mine
            out.append(self.ranks.allgather_slices(whole))
        return tuple(out)

    def part(self, flat, i):
        """Parameter i's part of a flat array, in the parameter's shape."""
        return flat[self.offsets[i]:self.offsets[i + 1]].reshape(self.params[i].shape)

    def step(self, lr=None, max_grad_norm=0.0, grad_scale=1.0):
        """Update every parameter that has a gradient; returns the gradients' global L2 norm.

        The gradients hold grad_scale times the true ones (mixed precision's loss
        scaling); with max_grad_norm they are also clipped: scaled by
        s = max_grad_norm / norm when the true norm is larger. Both scales are folded into
        the moment updates, (1 - b1) s g and (1 - b2) s^2 g^2, so they cost no pass
        of their own. When the norm is not finite nothing changes, so the caller can
        stop on the last good parameters, or skip the step.
        """
        lr = self.lr if lr is None else lr
        jobs = self.thread_spans()
        if self.ranks.size > 1:  # every rank holds its micro-batches' gradients: sum them, then square
            squares = self.sum_over_ranks(jobs)
        else:
            squares = sum(run_in_threads(self.gather, jobs))
        squares = self.ranks.model_squares(squares)  # (a model split across ranks: every rank's part)
        norm = math.sqrt(to_float(squares)) / grad_scale  # the one read back a step
        if not math.isfinite(norm):
            return norm
        clip = max_grad_norm / (norm + 1e-6) if max_grad_norm and norm > max_grad_norm else 1.0
        scale = clip / grad_scale
        b1, b2 = self.betas
        self.t += 1
        # m_hat / (sqrt(v_hat) + eps) = (sqrt(1 - b2^t) / (1 - b1^t)) m / (sqrt(v) + eps sqrt(1 - b2^t)):
        # the bias corrections become two scalars (as in Adam's paper), sparing a pass over v
        root_bias2 = math.sqrt(1 - b2 ** self.t)
        step_size = lr * root_bias2 / (1 - b1 ** self.t)
        eps = self.eps * root_bias2
        decay = 1 - lr * self.weight_decay

        def update(spans):
            pieces = ((at, min(at + UPDATE_PIECE, hi)) for lo, hi in spans for at in range(lo, hi, UPDATE_PIECE))
            for lo, hi in pieces:
                p, g = self.flat[lo:hi], self.flat_grad[lo:hi]
                m, v, tmp = (a[lo - self.lo:hi - self.lo] for a in (self.flat_m, self.flat_v, self.work))
                if self.weight_decay:
                    self.decay_in_place(p, lo, hi, decay)
                m *= b1
                m += xp.multiply(g, (1 - b1) * scale, out=tmp)
                v *= b2
                xp.multiply(g, g, out=tmp)
                tmp *= (1 - b2) * scale * scale
                v += tmp
                xp.sqrt(v, out=tmp)
                tmp += eps
                xp.divide(m, tmp, out=tmp)
                tmp *= step_size
                p -= tmp

        run_in_threads(update, self.own_spans(jobs))  # sharded: this rank's slice only...
        if self.shard:
            self.ranks.allgather_slices(self.flat)  # ...then every rank's updated slice to every rank
        return norm

    def decay_in_place(self, p, lo, hi, factor):
        """p = flat[lo:hi]: multiplied by factor where it holds decayed parameters (their runs may start and
        end anywhere in [lo, hi))."""
        k = bisect_right(self.decayed_ends, lo)  # the first decayed run that ends after lo
        while k < len(self.decayed) and self.decayed[k][0] < hi:
            start, end = self.decayed[k]
            p[max(start, lo) - lo:min(end, hi) - lo] *= factor
            k += 1

    def thread_spans(self):
        """Each thread's spans of the flat arrays: a part of each run of parameters that have a gradient.
        A parameter whose array was replaced since the last step is moved in first."""
        for i, (p, view) in enumerate(zip(self.params, self.views)):
            if p.data is not view:
                if p.data.shape != view.shape or p.data.dtype != view.dtype:
                    raise ValueError(f"parameter {self.names[i]} became {p.data.dtype} {tuple(p.data.shape)}; "
                                     f"the optimizer holds {view.dtype} {tuple(view.shape)}")
                view[...] = p.data
                p.data = view
        return self.split(self.grad_spans(0, len(self.params)))

    def grad_spans(self, first, end):
        """The runs [lo, hi) of the flat arrays held by parameters first..end - 1 that have a gradient."""
        return self.runs(i for i in range(first, end) if self.params[i].grad is not None)

    def runs(self, indices):
        """The parts [lo, hi) of the flat arrays held by the parameters of these increasing indices, joined
        where they meet."""
        spans = []
        for i in indices:
            lo, hi = self.offsets[i], self.offsets[i + 1]
            if spans and spans[-1][1] == lo:
                spans[-1][1] = hi
            else:
                spans.append([lo, hi])
        return spans

    def split(self, spans):
        """Each thread's part of every span."""
        n = self.threads
        return [[(lo + (hi - lo) * k // n, lo + (hi - lo) * (k + 1) // n) for lo, hi in spans] for k in range(n)]

    def gather(self, spans):
        """Copy the gradients of these spans into flat_grad; returns their sum of squares."""
        total = 0.0
        for lo, hi in spans:
            i = bisect_right(self.offsets, lo) - 1  # the parameter holding flat index lo
            at = lo
            while at < hi:
                start, end = self.offsets[i], min(hi, self.offsets[i + 1])
                if end > at:  # (an empty parameter has nothing, not even a gradient, to copy)
                    piece = self.flat_grad[at:end]
                    piece[...] = self.params[i].grad.reshape(-1)[at - start:end - start]
                    total = total + xp.vdot(piece, piece)  # while the piece is in cache; on the device
                at, i = end, i + 1
        return total

    def own_spans(self, jobs):
        """The spans this optimizer updates: all of them, or, sharded, their parts inside [lo, hi)."""
        if not self.shard:
            return jobs
        return [[(max(lo, self.lo), min(hi, self.hi)) for lo, hi in spans if lo < self.hi and hi > self.lo]
                for spans in jobs]

    def start_sum(self, first, end):
        """Parameters first..end - 1's gradients copied into flat_grad, and their sum over the ranks started
        (one bucket, training/buckets.py)."""
        run_in_threads(self.gather, self.split(self.grad_spans(first, end)))
        return self.ranks.start_sum(self.flat_grad[self.offsets[first]:self.offsets[end]])

    def sum_over_ranks(self, jobs):
        """flat_grad summed over the ranks in place (every bucket not started during backward started now, and
        all waited for); its sum of squares."""
        self.buckets.finish()
        return sum(xp.vdot(self.flat_grad[lo:hi], self.flat_grad[lo:hi]) for spans in jobs for lo, hi in spans)

    def zero_grad(self):
        for p in self.params:
            p.grad = None

    def state_dict(self):
        """Moments under `exp_avg.<name>` / `exp_avg_sq.<name>`, as PyTorch names them (whole, also when
        sharded: a checkpoint resumes with any number of ranks)."""
        m, v = self.moments()
        out = {f"exp_avg.{n}": self.part(m, i) for i, n in enumerate(self.names)}
        out.update({f"exp_avg_sq.{n}": self.part(v, i) for i, n in enumerate(self.names)})
        return out

    def load_state_dict(self, state, t):
        expected = set(self.state_dict())
        if set(state) != expected:
            missing, extra = sorted(expected - set(state)), sorted(set(state) - expected)
            raise ValueError(f"optimizer state does not fit the model: missing {missing}, unexpected {extra}")
        whole = {"exp_avg": xp.zeros(self.flat.size, self.flat.dtype), "exp_avg_sq": xp.zeros(self.flat.size,
                                                                                                self.flat.dtype)}
        for i, name in enumerate(self.names):
            for kind, moments in whole.items():
                key, moment = f"{kind}.{name}", self.part(moments, i)
                if tuple(state[key].shape) != moment.shape:
                    raise ValueError(f"optimizer state {key} has shape {tuple(state[key].shape)}; "
                                     f"the parameter has {moment.shape}")
                moment[...] = xp.asarray(state[key])
        self.flat_m[...] = whole["exp_avg"][self.lo:self.hi]  # a sharded optimizer keeps its slice
        self.flat_v[...] = whole["exp_avg_sq"][self.lo:self.hi]
        self.t = t


def cosine_lr(it, max_lr, min_lr, warmup_iters, decay_iters):
    """Linear warmup to max_lr over warmup_iters, cosine decay to min_lr at decay_iters, then flat.

        lr(t) = max_lr (t + 1) / (warmup + 1)                        t < warmup
        lr(t) = min_lr + (max_lr - min_lr) (1 + cos(pi r)) / 2,      r = (t - warmup) / (decay - warmup)
    """
    if it < warmup_iters:
        return max_lr * (it + 1) / (warmup_iters + 1)
    if it >= decay_iters:
        return min_lr
    ratio = (it - warmup_iters) / max(decay_iters - warmup_iters, 1)
    return min_lr + 0.5 * (1.0 + math.cos(math.pi * ratio)) * (max_lr - min_lr)


def linear_lr(it, max_lr, min_lr, warmup_iters, decay_iters):
    """Linear warmup to max_lr, then a straight line down to min_lr at decay_iters (BERT's schedule)."""
    if it < warmup_iters:
        return max_lr * (it + 1) / (warmup_iters + 1)
    if it >= decay_iters:
        return min_lr
    return max_lr - (max_lr - min_lr) * (it - warmup_iters) / max(decay_iters - warmup_iters, 1)
