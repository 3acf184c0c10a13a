"""Shared test fixtures: the torch oracle (the `gpu` skip rule is in the root conftest.py)."""

import contextlib
import os
import sys

import pytest


def require_torch():
    """Import torch, the test oracle; skip without it unless FASTCONV_REQUIRE_TORCH=1."""
    try:
        import torch
    except ImportError:
        if os.environ.get("FASTCONV_REQUIRE_TORCH") == "1":
            pytest.fail("FASTCONV_REQUIRE_TORCH=1 but torch is not installed: the oracle would vanish")
        pytest.skip("torch is not installed (the PyTorch oracle is optional outside CI)")
    torch.set_num_threads(1)
    return torch


@pytest.fixture
def torch():
    return require_torch()


def pytest_terminal_summary(terminalreporter):
    """Quote the PyTorch comparisons (case count, worst relative error per dtype) for closing notes."""
    oracle = sys.modules.get("torch_oracle")  # tests/torch_oracle.py, when a test used it
    for line in oracle.summary_lines() if oracle else ():
        terminalreporter.write_line(line)


# ------------------------------------------------------------- shared by the `gpu` tests
@pytest.fixture(scope="module")
def cp():
    """CuPy (imported only where a `gpu` test runs)."""
    import cupy
    return cupy


@pytest.fixture
def fp32_products():
    """FP32 products during the test whatever FASTCONV_TF32 says: float32 tolerances are FP32's."""
    import fastconv
    previous = fastconv.get_tf32()
    fastconv.set_tf32(False)
    yield
    fastconv.set_tf32(previous)


def record_calls(monkeypatch, **functions):
    """The names of the kernels launched (checked or prepared), in order, and ``label`` for
    each call of a function given as ``label=(owner, attribute name)``:
    ``gemm=(fastconv._gpu.gemm.GemmCall, "__call__")`` labels every cuBLAS product."""
    from fastconv._cuda_launcher import PreparedLaunch

    calls = []

    def recorded(label, function):
        def record(*args, **kwargs):
            calls.append(label if label is not None else args[0].kernel)
            return function(*args, **kwargs)
        return record

    monkeypatch.setattr(PreparedLaunch, "__call__", recorded(None, PreparedLaunch.__call__))
    for label, (owner, name) in functions.items():
        monkeypatch.setattr(owner, name, recorded(label, getattr(owner, name)))
    return calls


@contextlib.contextmanager
def gpu_dispatch(emu):
    """NumPy arrays through the GPU backend (:mod:`fastconv._gpu`), its kernels on the CPU
    emulator ``emu``, its products in the NumPy model of cuBLAS: yields the names of the
    kernels launched, in order, with "gemm" for each matrix product and "scatter" for each
    sort-based scatter."""
    from fastconv import _backends, _cuda, _gpu

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(_backends, "backend_for", lambda *arrays: _gpu)
        patch.setattr(_cuda, "default_launcher", lambda: emu)
        yield record_calls(patch, gemm=(_gpu.gemm.GemmCall, "__call__"),
                           scatter=(_gpu.unpool, "scatter_add"))


def gpu_milliseconds(cp, step, repeats=20):
    """The mean wall time of ``step()`` on the GPU, in ms, after one untimed call, the device
    synchronised before and after (for the `gpu` tests' timing reports, never asserted)."""
    import time

    step()
    cp.cuda.Device().synchronize()
    start = time.perf_counter()
    for _ in range(repeats):
        step()
    cp.cuda.Device().synchronize()
    return (time.perf_counter() - start) / repeats * 1e3
