"""Data parallelism across the cores of one machine: each thread runs the model on a slice of the batch.

Why. A train step is matrix products, which BLAS spreads over the cores, and
element-wise work (GELU, LayerNorm, softmax, masking), which NumPy runs on
one core: at GPT's default size that is about half of the step, and the
other cores wait. Splitting the batch instead keeps every core busy for the
whole step. Thread k runs forward and backward on rows [B k / n, B (k + 1) / n)
with BLAS held to one thread; NumPy releases Python's lock inside each array
operation, so the slices really run at the same time.

How. Every layer keeps the cache of its last forward for its backward, and
adds into its parameters' `.grad`, so each thread needs its own copy of the
modules: the replicas. They read the model's own parameter arrays (re-bound
at every call, so a checkpoint loaded into the model reaches them) and keep
their own gradients, which backward then adds into the model's in a fixed
order.

The math is the model's: the logits are the slices' logits stacked, the
caller computes the loss over the whole batch, and since that loss's
gradient already carries the whole batch's 1 / N,

    d loss / d theta = sum_k (d loss / d theta)|slice k

Only rounding differs from one thread (sums taken in another order), and,
with dropout, the masks: each replica draws its own, from a generator seeded
by the model's. The same number of threads gives the same result every time.

Every array argument of forward must have the batch on axis 0 (token ids,
attention masks, BERT's mask of scored positions). The outputs are stacked
along axis 0 in slice order, whatever their rows are (a row per sequence, or
one per position a slice scored), and backward cuts each output's gradient
where its slices' rows met.
"""

import argparse
import copy
from concurrent.futures import ThreadPoolExecutor
from itertools import accumulate

from minillm.backend import blas_threads, cpu_threads, np, on_gpu, xp
from minillm.nn.layers import listening_for_gradients

_pool, _pool_size = None, 0  # worker threads, made (and grown) when first needed


def run_in_threads(fn, jobs):
    """[fn(job) for job in jobs], the first on this thread and the others at the same time on workers."""
    global _pool, _pool_size
    jobs = list(jobs)
    if not jobs:
        return []
    if len(jobs) - 1 > _pool_size:
        _pool, _pool_size = ThreadPoolExecutor(len(jobs) - 1, thread_name_prefix="minillm"), len(jobs) - 1
    futures = [_pool.submit(fn, job) for job in jobs[1:]]
    first = fn(jobs[0])
    return [first] + [f.result() for f in futures]


def _is_array(a):
    return isinstance(a, (np.ndarray, xp.ndarray))  # a host array, or one of the active device's


class BatchParallel:
    """`model` run on `threads` slices of each batch at once; otherwise it behaves as the model.

    Attribute reads (`train()`, `eval()`, `parameters()`, `config`, ...) go to the model.
    On the GPU there is one slice: CuPy already spreads every operation over the device.
    """

    def __init__(self, model, threads):
        if threads < 1:
            raise ValueError(f"threads must be at least 1, got {threads}")
        self.model, self.threads = model, 1 if on_gpu() else threads
        # deepcopy's memo maps each parameter array to itself: the replicas share them from the start
        shared = {id(p.data): p.data for p in model.parameters()}
        self.replicas = [copy.deepcopy(model, dict(shared)) for _ in range(self.threads - 1)]
        # each parameter with its copy in every replica, listed once (walking the modules costs 0.2 ms)
        self.copies = list(zip(model.parameters(), *(r.parameters() for r in self.replicas)))
        self.shares = {n: deal_by_size(self.copies, n) for n in range(2, self.threads + 1)}  # for adding up
        self.cuts = None  # where the batch was cut: rows [cuts[k], cuts[k + 1]) went to slice k
        self.output_cuts = None  # the same for each output's rows, for backward

    def __getattr__(self, name):
        return getattr(self.model, name)

    def __call__(self, *args, **kwargs):
        return self.forward(*args, **kwargs)

    def _run(self, fn, jobs):
        """fn(module, job) for the model and each replica with its job, at once; results in order."""
        with blas_threads(1):
            return run_in_threads(lambda pair: fn(*pair), zip([self.model, *self.replicas], jobs))

    def forward(self, *args, **kwargs):
        batch = next((a.shape[0] for a in (*args, *kwargs.values()) if _is_array(a)), 0)
        n = min(self.threads, batch)
        if n <= 1:
            self.output_cuts = None
            return self.model(*args, **kwargs)
        self.cuts = [batch * k // n for k in range(n + 1)]
        self._sync_replicas(n)
        jobs = [([self._slice(a, k, f"argument {i}") for i, a in enumerate(args)],
                 {name: self._slice(a, k, name) for name, a in kwargs.items()}) for k in range(n)]
        outs = self._run(lambda m, job: m(*job[0], **job[1]), jobs)
        single = not isinstance(outs[0], tuple)
        per_output = list(zip(*([(o,) for o in outs] if single else outs)))  # [output][slice]
        self.output_cuts = [list(accumulate((part.shape[0] for part in parts), initial=0)) for parts in per_output]
        stacked = [xp.concatenate(parts) for parts in per_output]
        return stacked[0] if single else tuple(stacked)

    def backward(self, *douts):
        """Each slice's share of the output gradients back through its replica; gradients summed into the model's."""
        if self.output_cuts is None:
            return self.model.backward(*douts)
        for i, (d, cuts) in enumerate(zip(douts, self.output_cuts)):
            if d is not None and d.shape[0] != cuts[-1]:
                raise ValueError(f"gradient {i} has {d.shape[0]} rows; output {i} had {cuts[-1]}")
        n = len(self.cuts) - 1
        jobs = [[None if d is None else d[cuts[k]:cuts[k + 1]] for d, cuts in zip(douts, self.output_cuts)]
                for k in range(n)]
        with listening_for_gradients(None):  # a block's gradients are complete only once added up, below
            self._run(lambda m, job: m.backward(*job), jobs)

        def add_up(share):  # each parameter's copies are added by one thread, in replica order
            for p, *copies in share:
                for q in copies[:n - 1]:
                    if q.grad is not None:
                        p.accumulate(q.grad)
                        q.grad = None

        run_in_threads(add_up, self.shares[n])

    def _slice(self, a, k, name):
        if not _is_array(a):
            return a
        if a.ndim == 0 or a.shape[0] != self.cuts[-1]:
            raise ValueError(f"BatchParallel splits arrays along the batch (axis 0, size {self.cuts[-1]}); "
                             f"{name} has shape {tuple(a.shape)}")
        return a[self.cuts[k]:self.cuts[k + 1]]

    def _sync_replicas(self, n):
        """Replicas read the model's current arrays, in its mode, with dropout seeded from its generator."""
        for p, *copies in self.copies:
            for q in copies[:n - 1]:
                q.data = p.data
        for replica in self.replicas[:n - 1]:
            replica.train(self.model.training)
        if self.model.training:
            for replica, seed in zip(self.replicas, self.model.dropout_seeds(n - 1)):
                replica.reseed_dropout(seed)


def deal_by_size(copies, n):
    """(parameter, copies...) tuples dealt into n shares of about equal size: the largest first, each
    to the share that holds the fewest elements so far (round-robin put every weight matrix in one
    share and every bias in the other)."""
    shares, sizes = [[] for _ in range(n)], [0] * n
    for entry in sorted(copies, key=lambda entry: -entry[0].data.size):
        k = sizes.index(min(sizes))
        shares[k].append(entry)
        sizes[k] += entry[0].data.size
    return shares


def add_threads_argument(parser):
    """The `--threads` flag of the commands that train or time a model split this way."""

    def at_least_one(text):
        n = int(text)
        if n < 1:
            raise argparse.ArgumentTypeError(f"must be at least 1, got {n}")
        return n

    parser.add_argument("--threads", type=at_least_one, default=cpu_threads(),
                        help="on the CPU: threads that each run a slice of the batch (minillm/nn/parallel.py; "
                             "default: $MINILLM_THREADS, $OMP_NUM_THREADS, $OPENBLAS_NUM_THREADS or the cores)")
