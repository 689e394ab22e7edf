"""The array backend: NumPy on the CPU, CuPy on the GPU.

This is the only module in minillm that imports numpy or cupy. Everything else
writes `from minillm.backend import xp` and reads like NumPy:

    h = xp.tanh(x @ w)

`xp` is a thin proxy that forwards every attribute to the active module, so
`use("gpu")` switches the whole library at any time, even after import.

The few calls that differ between NumPy and CuPy live here as named helpers:
scatter-add (the embedding backward), moving arrays to and from the host,
random generators; so do the CPU's settings: how many threads, how many of
them BLAS may use, and malloc's reuse of freed memory. `np` is always host
NumPy, for work that stays on the CPU whatever the device (tokenizers, data
loading, counting n-grams). A third device, "strict" (strict.py),
computes with NumPy on the CPU but refuses, as CuPy does, every implicit copy
of a device array to the host, so the GPU path's mistakes fail without a GPU.
"""

import contextlib
import ctypes
import os
import platform

import numpy

np = numpy  # host arrays, whatever the device

_active = numpy
_device = "cpu"


class _ArrayModule:
    """Forwards `xp.name` to the active array module (numpy or cupy)."""

    def __getattr__(self, name):
        return getattr(_active, name)

    def __repr__(self):
        return f"<minillm array module: {_active.__name__} on {_device}>"


xp = _ArrayModule()


class DeviceUnavailable(RuntimeError):
    """--device gpu on a machine that cannot run it (no CuPy, no driver, no GPU)."""


def _import_cupy():
    try:
        import cupy
    except ImportError as err:
        raise DeviceUnavailable(
            "device 'gpu' needs CuPy, which is not installed: "
            "`pip install cupy-cuda12x` (CUDA 12) or `pip install cupy-cuda11x` (CUDA 11)"
        ) from err
    try:
        count = cupy.cuda.runtime.getDeviceCount()
    except Exception as err:  # CuPy raises its own CUDARuntimeError types
        raise DeviceUnavailable(f"device 'gpu' needs a working CUDA driver and GPU: {err}") from err
    if count == 0:
        raise DeviceUnavailable("device 'gpu' asked for, but CUDA sees no GPU on this machine")
    return cupy


def _strict():
    """The strict device's module (minillm/strict.py), imported when first used: it is built on this one."""
    from minillm import strict

    return strict


def use(device):
    """Switch the active backend: "cpu" (NumPy), "gpu" (CuPy) or "strict" (NumPy behind CuPy's rules)."""
    global _active, _device
    if device == "cpu":
        _active = numpy
    elif device == "gpu":
        _active = _import_cupy()
    elif device == "strict":
        _active = _strict().xp
    else:
        raise ValueError(f"unknown device {device!r}: expected 'cpu', 'gpu' or 'strict'")
    _device = device


def device():
    """The active device name, "cpu" or "gpu"."""
    return _device


def on_gpu():
    return _device == "gpu"


def host_arrays():
    """Whether xp's arrays are host memory (NumPy on the CPU), so that reading a value costs no transfer."""
    return _device == "cpu"


def to_host(a):
    """Any array (numpy, cupy or strict) as a host numpy array: the one explicit way off the device."""
    if _device == "strict":
        return _strict().to_host(a)
    if _device == "gpu" and not isinstance(a, numpy.ndarray) and hasattr(a, "get"):
        return a.get()
    return numpy.asarray(a)


def to_float(a):
    """A device scalar (a loss, a norm) as a Python float, through to_host."""
    return float(to_host(a))


def to_device(a, dtype=None):
    """A host array (or list) as an array of the active backend."""
    if _device == "strict":
        return _strict().to_device(a, dtype)
    return _active.asarray(a, dtype=dtype)


def scatter_add(target, indices, values):
    """target[indices] += values, accumulating repeated indices (in place).

    Plain `target[indices] += values` keeps only one write per repeated index;
    an embedding row used twice in a batch must receive both gradients.
    """
    if _device == "gpu":
        import cupyx

        cupyx.scatter_add(target, indices, values)
    elif _device == "strict":
        strict = _strict()
        scatter_add_host(strict.unwrap(target), strict.unwrap(indices), strict.unwrap(values))
    else:
        scatter_add_host(target, indices, values)


def scatter_add_host(target, indices, values):
    """scatter_add on NumPy arrays."""
    if len(indices):
        # Sort, then sum each run of equal indices: 3-4x faster than numpy.add.at for embedding rows
        order = numpy.argsort(indices, kind="stable")
        ordered = indices[order]
        starts = numpy.flatnonzero(numpy.r_[True, ordered[1:] != ordered[:-1]])  # where each run begins
        target[ordered[starts]] += numpy.add.reduceat(values[order], starts, axis=0)


def erfc(x):
    """The complementary error function 1 - erf(x), elementwise (SciPy on the CPU, cupyx's on the GPU)."""
    if _device == "gpu":
        import cupyx.scipy.special

        return cupyx.scipy.special.erfc(x)
    import scipy.special

    if _device == "strict":  # the GPU runs cupyx's erfc on the device: no transfer
        strict = _strict()
        return strict.wrap(scipy.special.erfc(strict.unwrap(x)))
    return scipy.special.erfc(x)


def default_rng(seed):
    """A random generator on the active device, seeded for repeatable runs."""
    return _active.random.default_rng(seed)


def host_rng(seed):
    """A host random generator: data sampling that must not depend on the device."""
    return numpy.random.default_rng(seed)


def cpu_threads():
    """Threads for CPU work: $MINILLM_THREADS, else the usual $OMP_NUM_THREADS or
    $OPENBLAS_NUM_THREADS (set to run jobs side by side), else the cores this process may use:
    its share when an MPI launcher started several ranks on this machine."""
    for name in ("MINILLM_THREADS", "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        value = os.environ.get(name, "")
        if value.isdigit() and int(value) > 0:
            return int(value)
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    local_ranks = next((int(os.environ[name]) for name in ("OMPI_COMM_WORLD_LOCAL_SIZE", "MPI_LOCALNRANKS")
                        if os.environ.get(name, "").isdigit()), 1)
    return max(1, cores // local_ranks)


_blas = None  # threadpoolctl's handle on the BLAS libraries loaded with NumPy


def limit_blas_threads(n):
    """Hold BLAS to n threads from now on (blas_threads blocks inside still narrow it for a while)."""
    global _blas
    if _device == "gpu":
        return
    if _blas is None:
        import threadpoolctl

        _blas = threadpoolctl.ThreadpoolController()
    _blas.limit(limits=n, user_api="blas")


@contextlib.contextmanager
def blas_threads(n):
    """Hold BLAS (NumPy's matrix products) to n threads inside the block; nothing on the GPU."""
    global _blas
    if _device == "gpu":
        yield
        return
    if _blas is None:
        import threadpoolctl

        _blas = threadpoolctl.ThreadpoolController()
    with _blas.limit(limits=n, user_api="blas"):
        yield


def reuse_freed_memory():
    """Ask glibc's malloc to keep freed blocks for the next allocation instead of returning them to the OS.

    A train step allocates and frees the same activation-sized arrays every
    time. By default glibc gives blocks over 128 KB back to the OS (mmap and
    munmap, or trimming the heap), so each new array is first zeroed page by
    page by the kernel: at GPT's default size that is over a thousand page
    faults a step, and a LayerNorm of 6 x 64 x 128 floats took about 0.8 ms
    instead of 0.15-0.2. Blocks up to 32 MB (glibc's largest threshold) are now
    reused.
    Returns whether the setting took (glibc only; elsewhere nothing changes).
    """
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return False
    libc = ctypes.CDLL(None)
    m_trim_threshold, m_mmap_threshold = -1, -3  # mallopt's parameter numbers, from malloc.h
    return bool(libc.mallopt(m_mmap_threshold, 32 * 2**20)) and bool(libc.mallopt(m_trim_threshold, 2**30))


def synchronize():
    """Wait for queued GPU work (for honest timings); a no-op on the CPU."""
    if _device == "gpu":
        _active.cuda.Stream.null.synchronize()


def nccl():
    """CuPy's NCCL bindings (cupy.cuda.nccl), for distributed/nccl.py: collectives on device memory."""
    if _device != "gpu":
        raise DeviceUnavailable("NCCL sums device arrays: it needs --device gpu")
    try:
        from cupy.cuda import nccl as bindings
    except ImportError as err:
        raise DeviceUnavailable(f"CuPy cannot load NCCL ({err}): pip install nvidia-nccl-cu12 (CUDA 12)") from err
    return bindings


def use_gpu(index):
    """Run this process's device work on GPU `index` (modulo the GPUs there are): one GPU a rank."""
    _active.cuda.Device(index % _active.cuda.runtime.getDeviceCount()).use()


def device_pointer(a):
    """The address of a device array's first element (what NCCL's calls take)."""
    return a.data.ptr


def stream_pointer():
    """The current CUDA stream's handle: NCCL's work is queued on it, after the kernels before it."""
    return _active.cuda.get_current_stream().ptr


def peak_memory_bytes():
    """Bytes held by CuPy's memory pool (its high-water mark for a steady loop); 0 on the CPU."""
    if _device == "gpu":
        return _active.get_default_memory_pool().total_bytes()
    return 0


use(os.environ.get("MINILLM_DEVICE", "cpu"))
