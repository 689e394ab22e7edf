"""Gradient buckets: the gradient summed over the ranks in pieces, each started while backward still runs.

Data parallelism sums every gradient over the ranks before the step. One
Allreduce of the whole flat gradient after backward makes the two take
turns: the ranks compute, then they talk. But backward finishes the last
layer first, and the optimizer lays the parameters out in the model's order,
so the end of the flat gradient is final long before its start (the
embeddings). Cut it into buckets of consecutive parameters, and the sum of a
bucket can start, non-blocking (MPI Iallreduce), as soon as its parameters
are done, while backward goes on below them (PyTorch DDP's design, Li et al.
2020). The step then waits only for what is still on its way. (That hides
the sums where something other than the computing cores carries them, a
network card or a GPU's copy engines; two ranks on one machine's shared
memory add with their own cores, so the work moves into backward instead:
docs/RESULTS.md, "Gradient buckets summed during backward".)

Models say when parameters are done: their backward calls
nn.layers.gradients_ready(module) after each block and head. Done means done
for the step: every task here runs one backward a micro-batch (SetFit's
pairs go through the encoder as one batch); one that ran a model's backward
twice would have to keep the first run from reporting. A bucket starts
once every parameter in it has been reported, and the buckets start in one
fixed order, last first, on every rank: MPI matches collectives by their
order, so a rank never sends bucket 3 while another sends bucket 2. A
parameter nothing reports (the embeddings, a model without the calls, or any
model split over threads, nn/parallel.py, whose gradients are complete only
once the threads' are added up) holds its bucket, and the ones after it,
until the step, which starts whatever is left: without reports this is the
blocking path, the same code with every bucket started at the end.

The size. Each bucket costs one message, alpha + n beta in the cost model
(docs/DESIGN_NOTES.md, "Parallelism on paper"): too small and the latencies
add up, too large and the first bucket starts late. PyTorch's 25 MB fits
models of hundreds of MB; minillm's train.py GPT has 3.2 MB of gradient in
all, 0.8 MB a block. The default, 1 MB, is about one such block, and the size
at which this machine's Allreduce nears its bandwidth (4 GB/s at 1 MB, 5.6
at 4 MB, 0.6 at 4 KB: docs/RESULTS.md). A parameter larger than a bucket is
a bucket alone.
"""

import contextlib
import time

from minillm.nn.layers import listening_for_gradients

DEFAULT_BUCKET_MB = 1.0


def partition(sizes, limit):
    """Consecutive parameters, given their sizes in the flat array's order, grouped from the last into
    buckets of at most `limit` elements (a larger parameter alone; limit 0: one bucket of all):
    [(first, end)] index ranges, the last parameters' bucket first, as backward completes them."""
    buckets, end, held = [], len(sizes), 0
    for i in reversed(range(len(sizes))):
        if limit and held and held + sizes[i] > limit:
            buckets.append((i + 1, end))
            end, held = i + 1, 0
        held += sizes[i]
    if end:
        buckets.append((0, end))
    return buckets


class GradientBuckets:
    """The buckets of `params` (the optimizer's, in its flat order) and the sums in flight.

    start(first, end) copies parameters [first, end)'s gradients into the flat
    gradient and starts their sum over the ranks, returning what ranks.start_sum
    returns (an object with wait() and test()).
    """

    def __init__(self, params, limit, start):
        self.bounds = partition([p.data.size for p in params], limit)
        self.bucket_of = {id(p): b for b, (first, end) in enumerate(self.bounds) for p in params[first:end]}
        self.start = start
        self.started, self.in_flight = 0, []
        self.unreported, self.reported = None, set()
        self.wait_seconds = 0.0  # time finish() spent: what the step waited for the sums, over the whole run

    @contextlib.contextmanager
    def overlapping(self):
        """Within the block (the backward of a step's last micro-batch), start each bucket as its parameters are
        reported done."""
        self.unreported = [end - first for first, end in self.bounds]
        self.reported = set()
        with listening_for_gradients(self.ready):
            yield

    def ready(self, module):
        """gradients_ready's listener: `module`'s parameters are done; start every bucket now complete, in order."""
        for p in module.parameters():
            b = self.bucket_of.get(id(p))
            if b is not None and id(p) not in self.reported:
                self.reported.add(id(p))
                self.unreported[b] -= 1
        while self.started < len(self.bounds) and self.unreported[self.started] == 0:
            self.start_next()
        for sent in self.in_flight:  # MPI moves a non-blocking sum on only inside MPI calls: let it
            sent.test()

    def start_next(self):
        self.in_flight.append(self.start(*self.bounds[self.started]))
        self.started += 1

    def finish(self):
        """Start every bucket not started yet, in order, and wait for all the sums; the next step starts anew."""
        begin = time.perf_counter()
        while self.started < len(self.bounds):
            self.start_next()
        for sent in self.in_flight:
            sent.wait()
        self.started, self.in_flight, self.unreported = 0, [], None
        self.wait_seconds += time.perf_counter() - begin
