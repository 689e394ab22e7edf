"""A strict stand-in for CuPy that runs on the CPU: `MINILLM_DEVICE=strict`.

CuPy computes like NumPy but keeps its arrays on the GPU, and refuses what
would silently copy them to the host: `np.asarray(device_array)` is a
TypeError there. Without a GPU that path is never exercised, so a host-only
call on a device array would only break (or crawl, one copy per layer) on the
day one is lent. This module makes the same mistakes fail on the CPU.

A StrictArray wraps a NumPy array and computes with NumPy through the array
protocols (`__array_ufunc__`, `__array_function__`), but

    np.asarray(x), x.__array__()    TypeError, as in CuPy
    float(x), int(x), bool(x), iter(x)    TypeError: a hidden device-to-host copy
    x + host_array (ndim > 0)       TypeError, as in CuPy: a host array mixed into device work

The explicit transfers, `backend.to_host`, `backend.to_device` and the array
methods `.get()`, `.item()` and `.tolist()`, work and are counted in
TRANSFERS, so tests can assert how many a training step makes.

The rules bind the library. Code in a READERS directory (the test suite adds
its own, so assertions can compare device values with expected ones) may read
device values directly; such reads are not counted.
"""

import collections
import copy
import functools
import operator
import sys
import types

from minillm.backend import np

TRANSFERS = collections.Counter()  # "to_host" / "to_device": explicit copies made so far
READERS = []  # directories whose code may read device values without asking: the tests' assertions
PASSING_ON = ("numpy", "_pytest", "pytest")  # modules that only pass a read on from their caller
PLAIN = {int, float, bool, str, type(None), slice}  # never a host array: checked first, as most arguments are


class ImplicitTransfer(TypeError):
    """A device array reached host-only code without an explicit transfer."""


def unwrap(x):
    """The NumPy array inside a StrictArray (lists and tuples walked); anything else as it is."""
    kind = type(x)
    if kind is StrictArray:
        return x._a
    if kind is tuple or kind is list:
        return kind(unwrap(v) for v in x)
    return x


def wrap(x):
    """NumPy arrays and scalars (and tuples or lists of them) as StrictArrays, as CuPy returns 0-d arrays
    where NumPy returns scalars; the rest as it is."""
    if isinstance(x, np.ndarray):
        return StrictArray(x)
    if isinstance(x, np.generic):
        return StrictArray(np.asarray(x))
    if isinstance(x, tuple):  # named tuples too (linalg.svd's), as plain ones
        return tuple(wrap(v) for v in x)
    if isinstance(x, list):
        return [wrap(v) for v in x]
    return x


def call_on_device(func, args, kwargs):
    """func run on the NumPy arrays inside args and kwargs, its array results put back on the device."""
    refuse_host_arrays(args)
    if kwargs:
        kwargs = {k: unwrap(v) for k, v in kwargs.items()}
    return wrap(func(*[unwrap(v) for v in args], **kwargs))


def on_device(func):
    """func as a function of device arrays (see call_on_device); made for every method call, so kept plain."""
    def run(*args, **kwargs):
        return call_on_device(func, args, kwargs)
    return run


def reader_asking():
    """Whether the code asking for an implicit copy lives in a READERS directory (the frames of NumPy, pytest
    and this file, which only pass the request on, skipped)."""
    frame = sys._getframe(1)
    while frame is not None and (frame.f_code.co_filename == __file__
                                 or frame.f_globals.get("__name__", "").partition(".")[0] in PASSING_ON):
        frame = frame.f_back
    return frame is not None and frame.f_code.co_filename.startswith(tuple(READERS))


def refuse_host_arrays(values):
    """CuPy's rule: a host array with elements mixed into device work is an error."""
    for v in values:
        if type(v) in PLAIN:
            continue
        if isinstance(v, np.ndarray) and v.ndim > 0 and not reader_asking():
            raise ImplicitTransfer(f"a host numpy array {v.shape} mixed with device arrays: move it with "
                                   "backend.to_device first")
        if isinstance(v, (list, tuple)):
            refuse_host_arrays(v)


def implicit(what, read):
    """The special method for `what`: a READERS caller gets read(host array, *args), others an error."""
    def refuse(self, *args, **kwargs):
        if reader_asking():
            return read(self._a, *args, **kwargs)
        raise ImplicitTransfer(f"{what} of a device array copies it to the host; use backend.to_host "
                               "(or .item(), .tolist()) explicitly")
    return refuse


def host_view(a, dtype=None, copy=None):
    return a if dtype is None else a.astype(dtype)


class StrictArray(np.lib.mixins.NDArrayOperatorsMixin):
    """A NumPy array that will not leave the (pretend) device unless asked to."""

    __slots__ = ("_a",)

    def __init__(self, a):
        self._a = a

    # ------------------------------------------------------------ computing with NumPy
    def __array_ufunc__(self, ufunc, method, *inputs, **kwargs):
        refuse_host_arrays(inputs)
        out = kwargs.get("out")
        if out is not None:
            kwargs["out"] = tuple(unwrap(o) for o in out)
        result = getattr(ufunc, method)(*[unwrap(v) for v in inputs], **kwargs)
        return out[0] if out is not None and len(out) == 1 else wrap(result)

    def __array_function__(self, func, types_, args, kwargs):
        return call_on_device(func, args, kwargs)

    def __getitem__(self, index):
        return wrap(self._a[unwrap(index)])

    def __setitem__(self, index, value):
        refuse_host_arrays([value])
        self._a[unwrap(index)] = unwrap(value)

    def __getattr__(self, name):
        if name.startswith("__"):  # copy and pickle probe for hooks before _a is set
            raise AttributeError(name)
        value = getattr(self._a, name)
        return on_device(value) if callable(value) else wrap(value)

    def __len__(self):
        return len(self._a)

    def __deepcopy__(self, memo):
        return StrictArray(copy.deepcopy(self._a, memo))

    def __repr__(self):
        return f"StrictArray({self._a!r})"

    # ------------------------------------------------------------ explicit transfers, counted
    def get(self):
        TRANSFERS["to_host"] += 1
        return self._a.copy()

    def item(self, *args):
        TRANSFERS["to_host"] += 1
        return self._a.item(*args)

    def tolist(self):
        TRANSFERS["to_host"] += 1
        return self._a.tolist()

    # ------------------------------------------------------------ implicit transfers, refused
    __array__ = implicit("np.asarray", host_view)
    __float__ = implicit("float()", float)
    __int__ = implicit("int()", int)
    __index__ = implicit("using as an index", operator.index)
    __bool__ = implicit("bool() (an `if` or `and` on an array)", bool)
    __iter__ = implicit("iterating in Python", lambda a: (wrap(row) for row in a))
    __complex__ = implicit("complex()", complex)


def to_host(a):
    """The explicit copy to the host, counted."""
    if isinstance(a, StrictArray):
        return a.get()
    return np.asarray(a)


def to_device(a, dtype=None):
    """The explicit copy to the (pretend) device, counted."""
    if isinstance(a, StrictArray):
        return a if dtype is None else a.astype(dtype)
    TRANSFERS["to_device"] += 1
    return StrictArray(np.asarray(a, dtype=dtype))


class _Generator:
    """np.random.Generator whose draws are device arrays."""

    def __init__(self, generator):
        self._g = generator

    def __deepcopy__(self, memo):
        return _Generator(copy.deepcopy(self._g, memo))

    def __getattr__(self, name):
        if name.startswith("__"):
            raise AttributeError(name)
        return on_device(getattr(self._g, name))


# what CuPy takes from NumPy as it is: questions about types and shapes, answered on the host
HOST_NAMES = {"dtype", "finfo", "iinfo", "issubdtype", "result_type", "can_cast", "promote_types",
              "isscalar", "ndim"}


class _Module(types.ModuleType):
    """`xp` on the strict device: NumPy's names, with arrays made on the device."""

    ndarray = StrictArray

    def __init__(self):
        super().__init__("minillm.strict.xp")
        self.random = types.SimpleNamespace(default_rng=lambda seed=None: _Generator(np.random.default_rng(seed)))

    def __getattr__(self, name):
        value = getattr(np, name)
        if name in ("asarray", "array", "ascontiguousarray"):
            value = _array(value)
        elif name not in HOST_NAMES and (
                isinstance(value, (types.FunctionType, types.BuiltinFunctionType, np.ufunc)) or (
                callable(value) and type(value).__name__ == "_ArrayFunctionDispatcher")):
            value = functools.wraps(value)(on_device(value))
        setattr(self, name, value)  # found once: later lookups do not reach __getattr__
        return value


def _array(func):
    """xp.asarray / xp.array: a device array from a device array, or from host data (a counted copy)."""
    @functools.wraps(func)
    def make(a, *args, **kwargs):
        if isinstance(a, StrictArray):
            return wrap(func(a._a, *args, **kwargs))
        TRANSFERS["to_device"] += 1
        return wrap(func(unwrap(a), *args, **kwargs))
    return make


xp = _Module()
