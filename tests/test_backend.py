"""The backend is the one door to numpy/cupy."""

import pathlib
import re

import pytest
from hypothesis import given, strategies as st

from minillm import backend
from minillm.backend import xp

PACKAGE = pathlib.Path(__file__).resolve().parent.parent / "minillm"
IMPORT = re.compile(r"^\s*(import (numpy|cupy)\b|from (numpy|cupy)[ .])", re.MULTILINE)


def test_only_backend_imports_numpy_or_cupy():
    offenders = [str(p.relative_to(PACKAGE)) for p in PACKAGE.rglob("*.py")
                 if p.name != "backend.py" and IMPORT.search(p.read_text())]
    assert offenders == []


def test_scatter_add_accumulates_repeated_indices():
    target = xp.zeros(4)
    backend.scatter_add(target, xp.array([0, 2, 2, 2]), xp.array([1.0, 1.0, 2.0, 3.0]))
    assert backend.to_host(target).tolist() == [1.0, 0.0, 6.0, 0.0]


@given(st.integers(0, 1000), st.integers(0, 12), st.integers(1, 5))
def test_scatter_add_rows_match_a_loop(seed, n, rows):
    rng = xp.random.default_rng(seed)
    target, indices, values = rng.standard_normal((rows, 3)), rng.integers(0, rows, n), rng.standard_normal((n, 3))
    expected = target.copy()
    for k, i in enumerate(indices.tolist()):
        expected[i] += values[k]  # one at a time: every repeat counts, added to what was there
    backend.scatter_add(target, indices, values)
    assert backend.to_float(abs(target - expected).max()) < 1e-12


def test_unknown_device_is_a_clear_error():
    with pytest.raises(ValueError, match="expected 'cpu', 'gpu' or 'strict'"):
        backend.use("tpu")


def test_gpu_without_cupy_names_what_to_install(monkeypatch):
    if backend.on_gpu():
        pytest.skip("running on the GPU")
    import builtins

    real_import = builtins.__import__

    def no_cupy(name, *args, **kwargs):
        if name == "cupy":
            raise ImportError("No module named 'cupy'")
        return real_import(name, *args, **kwargs)

    before = backend.device()
    monkeypatch.setattr(builtins, "__import__", no_cupy)
    with pytest.raises(RuntimeError, match="pip install cupy-cuda12x"):
        backend.use("gpu")
    assert backend.device() == before  # the failed switch changed nothing


def test_host_round_trip():
    a = backend.to_device([1.5, 2.5], dtype="float32")
    assert backend.to_host(a).dtype == "float32" and backend.to_host(a).tolist() == [1.5, 2.5]


def test_freed_memory_is_kept_for_reuse_on_glibc():
    import platform

    expected = platform.system() == "Linux" and platform.libc_ver()[0] == "glibc"
    assert backend.reuse_freed_memory() is expected


def test_cpu_threads_reads_the_usual_variables_in_order(monkeypatch):
    for name in ("MINILLM_THREADS", "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("OPENBLAS_NUM_THREADS", "4")
    assert backend.cpu_threads() == 4
    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    assert backend.cpu_threads() == 3
    monkeypatch.setenv("MINILLM_THREADS", "not a number")  # ignored
    assert backend.cpu_threads() == 3
    monkeypatch.setenv("MINILLM_THREADS", "2")
    assert backend.cpu_threads() == 2
