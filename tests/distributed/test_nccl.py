"""NCCL's sums and gathers of device arrays: on one rank where CuPy sees a GPU, on two under mpirun where it
sees two; skipped with the reason elsewhere."""

import importlib.util

import pytest

from minillm import backend

from .test_mpi import run


def gpu_count():
    """GPUs CuPy sees here (0 without CuPy or CUDA)."""
    previous = backend.device()
    try:
        backend.use("gpu")
        return backend.xp.cuda.runtime.getDeviceCount()
    except backend.DeviceUnavailable:
        return 0
    finally:
        backend.use(previous)


GPUS = gpu_count()
needs_mpi = pytest.mark.skipif(importlib.util.find_spec("mpi4py") is None,
                               reason="MPI is an optional extra: pip install -r requirements-mpi.txt")


@needs_mpi
@pytest.mark.skipif(GPUS < 1, reason="NCCL needs CuPy and a GPU")
def test_nccl_sums_and_gathers_device_arrays_on_one_rank():
    from mpi4py import MPI

    from minillm.distributed.nccl import NcclRanks

    previous = backend.device()
    backend.use("gpu")
    try:
        ranks = NcclRanks(MPI)  # a world of one: the calls, pointers, types and stream are exercised
        a = backend.xp.arange(6, dtype="float32").reshape(2, 3)
        assert ranks.allreduce_sum(a) is a and backend.to_host(a).tolist() == [[0, 1, 2], [3, 4, 5]]
        gathered = ranks.allgather(a.astype("float64"))
        assert gathered.shape == (1, 2, 3) and backend.to_host(gathered)[0].tolist() == [[0, 1, 2], [3, 4, 5]]
        with pytest.raises(TypeError, match="int64"):
            ranks.allreduce_sum(backend.xp.arange(3))
    finally:
        backend.use(previous)


TWO_RANKS = """
from minillm import backend
from minillm.distributed.mpi import world
backend.use("gpu")
ranks = world()
a = backend.xp.full(4, ranks.rank + 1.0, dtype="float32")
ranks.allreduce_sum(a)
gathered = ranks.allgather(backend.xp.full(2, float(ranks.rank)))
print(type(ranks).__name__, backend.to_host(a).tolist(), backend.to_host(gathered).tolist(), flush=True)
"""


@needs_mpi
@pytest.mark.skipif(GPUS < 2, reason="NCCL with 2 ranks needs 2 GPUs (one a rank)")
def test_two_ranks_sum_and_gather_on_their_gpus():
    done = run(["-c", TWO_RANKS], ranks=2, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    expected = "NcclRanks [3.0, 3.0, 3.0, 3.0] [[0.0, 0.0], [1.0, 1.0]]"
    assert done.stdout.count(expected) == 2
