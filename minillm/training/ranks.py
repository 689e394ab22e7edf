"""The processes a training run spans, as the Trainer sees them: one by default.

Data parallelism (minillm/distributed/mpi.py) runs the same Trainer in every
rank. All it needs from the ranks is this: its own number, their count, sums
across them, and a way to let one rank (the writer, rank 0) prepare files the
others then read. OneProcess is that interface for a single process, where
each of these is a no-op.
"""

import contextlib


def slice_of(n, rank, size):
    """(lo, hi): rank's part of n items split into `size` parts as evenly as they go."""
    return n * rank // size, n * (rank + 1) // size


class Done:
    """A sum already complete: what start_sum returns where sums do not run in the background."""

    def wait(self):
        """Return once the sum is in the array (here: at once)."""

    def test(self):
        """Whether the sum is complete (and, under MPI, a chance for it to move on)."""
        return True


class OneProcess:
    """A run of one process: rank 0 of 1, and sums over ranks are the values themselves."""

    rank, size = 0, 1

    @property
    def is_writer(self):
        """The rank that writes checkpoints, metrics and progress."""
        return self.rank == 0

    def allreduce_sum(self, array):
        """Sum `array` over the ranks, in place."""
        return array

    def start_sum(self, array):
        """Start allreduce_sum(array) and return at once with a handle to it (wait(), test()), so that work
        goes on while it runs (training/buckets.py); `array` must not be touched until wait() returns.
        Here, and wherever sums cannot run in the background, the sum is done before returning."""
        self.allreduce_sum(array)
        return Done()

    def sum(self, value):
        """A Python number summed over the ranks."""
        return value

    def allgather_slices(self, array):
        """In place: every rank's slice_of(len(array)) of `array` copied to every rank."""
        return array

    def allgather(self, array):
        """(size, *array.shape): every rank's `array`, in rank order, on every rank."""
        return array[None]

    # A model split across the ranks (tensor parallelism, distributed/model_shards.py) holds a part of some
    # tensors on each rank; the three methods below are where the trainer meets that. Whole here.
    def whole_state(self, state):
        """A state dict (parameters, or optimizer moments `exp_avg.<name>`) with every tensor whole: on
        every rank, since gathering parts is a collective."""
        return state

    def own_state(self, state):
        """This rank's part of a whole state dict (what whole_state gathered)."""
        return state

    def model_squares(self, squares):
        """The gradient's sum of squares over the whole model, given this rank's."""
        return squares

    def barrier(self):
        """Wait until every rank gets here."""

    @contextlib.contextmanager
    def writer_first(self):
        """Run the block in the writer, then in the others: files it caches are written once, then read."""
        if not self.is_writer:
            self.barrier()
        yield
        if self.is_writer:
            self.barrier()
