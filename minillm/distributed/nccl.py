"""NCCL on GPUs: MPI's ranks with the array collectives on device memory (CuPy's cupy.cuda.nccl).

MPI reads host memory, so on GPUs mpi.MPIRanks copies every array to the
host and back. NCCL sums and gathers device arrays where they are, over
NVLink or the network, queued on the CUDA stream after the kernels that made
them. MPI still does what it does well: it starts the ranks, hands rank 0's
NCCL id to the others, sums Python numbers, waits at barriers and aborts. So
NcclRanks is MPIRanks with allreduce_sum and allgather (the gradient's sum,
tensor parallelism's f and g, gathering shards) replaced; mpi.world() picks
it when the backend is CuPy. ZeRO's gather of slices of unequal length stays
on MPI (NCCL's allGather takes equal counts).

Each rank uses one GPU: its rank among the ranks on its machine, so the
ranks of a machine use its GPUs in turn.
"""

from minillm.backend import device_pointer, nccl, stream_pointer, use_gpu, xp
from minillm.distributed.mpi import MPIRanks


class NcclRanks(MPIRanks):
    """The ranks of MPI's world, summing and gathering device arrays with NCCL."""

    def __init__(self, mpi):
        super().__init__(mpi)
        use_gpu(self.comm.Split_type(mpi.COMM_TYPE_SHARED).Get_rank())  # this rank's GPU on its machine
        self.nccl = nccl()
        unique_id = self.nccl.get_unique_id() if self.rank == 0 else None
        self.communicator = self.nccl.NcclCommunicator(self.size, self.comm.bcast(unique_id, root=0), self.rank)
        self.types = {"float16": self.nccl.NCCL_FLOAT16, "float32": self.nccl.NCCL_FLOAT32,
                      "float64": self.nccl.NCCL_FLOAT64}

    def nccl_type(self, array):
        if array.dtype.name not in self.types:
            raise TypeError(f"NCCL collectives here take {', '.join(self.types)} arrays, not {array.dtype.name}")
        if not array.flags.c_contiguous:
            raise ValueError("NCCL reads contiguous arrays")
        return self.types[array.dtype.name]

    def allreduce_sum(self, array):
        """Sum over the ranks in place (ncclAllReduce, send and receive the same buffer)."""
        self.communicator.allReduce(device_pointer(array), device_pointer(array), array.size, self.nccl_type(array),
                                    self.nccl.NCCL_SUM, stream_pointer())
        return array

    def allgather(self, array):
        """(size, *array.shape): every rank's array in rank order (ncclAllGather)."""
        out = xp.empty((self.size, *array.shape), dtype=array.dtype)
        self.communicator.allGather(device_pointer(array), device_pointer(out), array.size, self.nccl_type(array),
                                    stream_pointer())
        return out
