"""The GPU backend's share of max unpooling, adaptive max pooling and divisor_override, run on
NumPy arrays against the CPU path.

The dispatch (``fastconv._backends.backend_for``) is routed to ``fastconv._gpu``: its
scatter-add (a sort and passes over distinct positions, array code) runs on NumPy as it
would on CuPy, and the CUDA kernels (unpooling's gathers, the adaptive max pool's forward,
average pooling's) run on the CPU emulator (tests/cuda_emu). Max unpooling of a max pool's
indices and the adaptive max-pool gradient take the gather kernels, not the scatter
(tests/test_cuda_unpool.py tests them further). Sums must be close to the CPU's (both add a position's values in the same order,
in float64), float64 ones bitwise equal.
Interpolation, layer and group norm and mse_loss have no backend code: the same array code
runs on both devices.
"""

import doctest

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import fastconv.functional as F
from cuda_emu.emu import emu_launcher, require_kernel_tools
from fastconv import _backends, _cpu, _cuda, _gpu
from test_pool import _distinct, _pool_axes, adaptive_cases, avg_pool_cases

SETTINGS = dict(deadline=None, derandomize=True, database=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture,
                                       HealthCheck.too_slow])
DTYPES = [np.float64, np.float32]


@pytest.fixture
def gpu_backend(monkeypatch):
    """Route NumPy arrays through ``fastconv._gpu`` (kernels emulated); count scatter calls."""
    require_kernel_tools("g++")
    emu = emu_launcher()
    scatters = []
    original = _gpu.scatter.scatter_add

    def recording(values, index, size):
        scatters.append(values.shape)
        return original(values, index, size)

    monkeypatch.setattr(_gpu.scatter, "scatter_add", recording)
    monkeypatch.setattr(_gpu.unpool, "scatter_add", recording)  # the gathers' fallback
    monkeypatch.setattr(_backends, "backend_for", lambda *arrays: _gpu)
    monkeypatch.setattr(_cuda, "default_launcher", lambda: emu)
    return scatters


def on_cpu(fn, *args, **kwargs):
    """``fn`` on the NumPy backend, whatever the dispatch is patched to."""
    with pytest.MonkeyPatch.context() as m:
        m.setattr(_backends, "backend_for", lambda *arrays: _cpu)
        return fn(*args, **kwargs)


def assert_same_sums(got, want):
    assert got.dtype == want.dtype and got.shape == want.shape
    if got.dtype == np.float64:
        np.testing.assert_array_equal(got.view(np.uint64), want.view(np.uint64))
    else:
        np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6 * np.abs(want).max(initial=0))


@st.composite
def overlapping_pools(draw):
    """Max pools with stride 1 or 2 under kernels of 2 to 4: windows share maxima."""
    kernel, stride, padding, _, _, size, ceil_mode = _pool_axes(draw, dilated=False)
    kernel = (max(kernel[0], 2), max(kernel[1], 2))
    stride = (draw(st.integers(1, 2)), draw(st.integers(1, 2)))
    return dict(x_shape=(draw(st.integers(1, 3)), draw(st.integers(1, 3)),
                         max(size[0], kernel[0]), max(size[1], kernel[1])),
                seed=draw(st.integers(0, 2**32 - 1)),
                pool=dict(kernel_size=kernel, stride=stride, padding=padding,
                          ceil_mode=ceil_mode))


@settings(max_examples=30, **SETTINGS)
@given(case=overlapping_pools(), dtype=st.sampled_from(DTYPES))
def test_max_unpool_through_the_gpu_backend(gpu_backend, case, dtype):
    source = _distinct(case["x_shape"], case["seed"], dtype)
    x, indices, _ = on_cpu(F.max_pool2d_forward, source, return_indices=True, **case["pool"])
    kw = dict(kernel_size=case["pool"]["kernel_size"], stride=case["pool"]["stride"],
              padding=case["pool"]["padding"], output_size=source.shape[2:])
    out_cpu, cache_cpu = on_cpu(F.max_unpool2d_forward, x, indices, **kw)
    gpu_backend.clear()
    out, cache = F.max_unpool2d_forward(x, indices, **kw)
    assert gpu_backend == []  # the gather kernels, every index being in its window
    assert_same_sums(out, out_cpu)
    dout = np.random.default_rng(case["seed"]).standard_normal(out.shape).astype(dtype)
    np.testing.assert_array_equal(F.max_unpool2d_backward(dout, cache),
                                  on_cpu(F.max_unpool2d_backward, dout, cache_cpu))


@settings(max_examples=25, **SETTINGS)
@given(case=adaptive_cases(), dtype=st.sampled_from(DTYPES), nan=st.booleans())
def test_adaptive_max_pool_through_the_gpu_backend(gpu_backend, case, dtype, nan):
    x = _distinct(case["x_shape"], case["seed"], dtype)
    if nan:
        x.reshape(-1)[case["seed"] % x.size] = np.nan
    out_cpu, idx_cpu, cache_cpu = on_cpu(F.adaptive_max_pool2d_forward, x, case["output_size"],
                                         return_indices=True)
    out, idx, cache = F.adaptive_max_pool2d_forward(x, case["output_size"], return_indices=True)
    np.testing.assert_array_equal(out, out_cpu)
    np.testing.assert_array_equal(idx, idx_cpu)
    dout = np.random.default_rng(case["seed"]).standard_normal(out.shape).astype(dtype)
    gpu_backend.clear()
    dx = F.adaptive_max_pool2d_backward(dout, cache)
    assert gpu_backend == []  # the gather kernels
    assert_same_sums(dx, on_cpu(F.adaptive_max_pool2d_backward, dout, cache_cpu))


@settings(max_examples=20, **SETTINGS)
@given(case=avg_pool_cases(), divisor=st.sampled_from([1, 3, -2]),
       dtype=st.sampled_from(DTYPES))
def test_divisor_override_through_the_emulated_kernels(gpu_backend, case, divisor, dtype):
    kw = dict(case["kw"], divisor_override=divisor)
    x = np.random.default_rng(case["seed"]).standard_normal(case["x_shape"]).astype(dtype)
    out_cpu, cache_cpu = on_cpu(F.avg_pool2d_forward, x, **kw)
    out, cache = F.avg_pool2d_forward(x, **kw)
    rtol = 1e-12 if dtype == np.float64 else 1e-5
    np.testing.assert_allclose(out, out_cpu, rtol=rtol, atol=rtol * np.abs(x).max())
    dout = np.random.default_rng(case["seed"] + 1).standard_normal(out.shape).astype(dtype)
    np.testing.assert_allclose(F.avg_pool2d_backward(dout, cache),
                               on_cpu(F.avg_pool2d_backward, dout, cache_cpu),
                               rtol=rtol, atol=rtol * np.abs(dout).max())


def test_scatter_with_many_values_per_position_keeps_their_order(gpu_backend):
    """Every value of a plane at one index: as many passes as values, summed in plane order."""
    values = np.random.default_rng(0).standard_normal((3, 50)) * 10.0 ** np.arange(-25, 25)
    index = np.zeros((3, 50), np.int64)
    index[1] = np.arange(50) % 2
    index[2, ::3] = -1
    got = _gpu.scatter.scatter_add(values, index, 2)
    want = _cpu.scatter.scatter_add(values, index, 2)
    np.testing.assert_array_equal(got.view(np.uint64), want.view(np.uint64))
    total = 0.0
    for v in values[0]:
        total += v
    assert got[0, 0] == total and got[0, 1] == 0


def test_docstring_examples_run():
    for module in (_cpu.scatter, _gpu.scatter):
        assert doctest.testmod(module).failed == 0, module.__name__
