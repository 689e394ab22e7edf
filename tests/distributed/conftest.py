"""Ranks as threads of one process: tensor parallelism's arithmetic tested without MPI, in milliseconds."""

import threading

from minillm.backend import xp
from minillm.nn.parallel import run_in_threads
from minillm.training.ranks import OneProcess


class ThreadRanks(OneProcess):
    """Rank `rank` of `group`: collectives meet at the group's barrier; sums are taken in rank order, so every
    rank gets the same bits, as MPI gives them."""

    def __init__(self, rank, group):
        self.rank, self.size, self.group = rank, group.size, group

    def exchange(self, value):
        """Every rank's value, in rank order."""
        self.group.slots[self.rank] = value
        self.group.barrier.wait()
        values = list(self.group.slots)
        self.group.barrier.wait()  # nobody writes the next value before all have read this one
        return values

    def allreduce_sum(self, array):
        first, *others = self.exchange(array.copy())
        total = first.copy()
        for other in others:
            total += other
        array[...] = total
        return array

    def allgather(self, array):
        return xp.stack(self.exchange(array.copy()))

    def sum(self, value):
        return sum(self.exchange(value))

    def barrier(self):
        self.exchange(None)


class ThreadGroup:
    """`size` ranks in threads; a rank that raises breaks the barrier (after its timeout) instead of a hang."""

    def __init__(self, size):
        self.size, self.slots, self.barrier = size, [None] * size, threading.Barrier(size, timeout=60)
        self.ranks = [ThreadRanks(r, self) for r in range(size)]

    def run(self, fn):
        """[fn(rank's ThreadRanks) for each rank], the ranks at the same time in threads."""
        return run_in_threads(fn, self.ranks)
