"""Rung 3 for the unpooling kernels, on a GPU: CuPy through kernels/unpool.cu.

Every test is marked ``gpu`` (skipped, with the reason, where CuPy or a usable device is
missing). Max unpooling and the adaptive max pool's gradient on CuPy in float16/32/64 are
compared with the CPU path on the same values: the gathers must give its bits (both sum a
cell's values in the order of the input, in float64, rounded once; NaN only where it has
NaN, as the GPU does not keep NaN payloads), and the calls must take the check and the
gather kernels, or, for indices outside their windows, the check and the sort-based
scatter (float16 within its rounding there: CuPy's cast from float64). The unpooled
output's gradient is compared too. The adaptive forward must take its kernel alone and give
the CPU path's maxima, bit for bit (NaN payloads included: the kernel copies the winning
cell), and its indices, on ties, NaN and infinities, 1x1 outputs, None in output_size,
outputs larger than the input and grids of many blocks, into outputs poisoned with NaN.
Two runs must give the same bits, and so must the unrolled and the run-time
instantiations.
"""

import numpy as np
import pytest

import fastconv.functional as F
from conftest import gpu_milliseconds, record_calls
from cuda_emu.report import summary_lines
from fastconv import _cuda, _gpu
from test_cuda_gpu import DTYPES, _launcher, bits, rand

pytestmark = pytest.mark.gpu

UNPOOL = ["max_unpool_check_kernel", "max_unpool_gather_kernel"]
ADAPTIVE = ["adaptive_max_check_kernel", "adaptive_max_gather_kernel"]
FORWARD = ["adaptive_max_pool_forward_kernel"]

UNPOOL_CASES = {  # x shape, the max pool's window (and ceil_mode), the unpooling's window
    "2x2/2 (unrolled)": ((2, 4, 12, 10), dict(kernel_size=2, stride=2), {}),
    "3x3/2 padded, ceil_mode (unrolled)": ((2, 3, 11, 9), dict(kernel_size=3, stride=2,
                                                               padding=1), dict(ceil_mode=True)),
    "3x3/1 shared maxima (unrolled)": ((1, 5, 9, 9), dict(kernel_size=3, stride=1), {}),
    "4x2/(3, 1) padded": ((2, 2, 10, 7), dict(kernel_size=(4, 2), stride=(3, 1),
                                              padding=(2, 1)), {}),
    # the dilated windows' cells 2o + 2 lie outside the undilated windows [2o, 2o + 2)
    "dilated pool: the scatter": ((2, 3, 9, 7), dict(kernel_size=2, stride=2),
                                  dict(dilation=2)),
}
ADAPTIVE_CASES = {"down (7, 9) -> (3, 4)": ((2, 3, 7, 9), (3, 4)),
                  "up (5, 4) -> (8, 7)": ((2, 2, 5, 4), (8, 7)),
                  "global": ((3, 4, 6, 5), (1, 1))}
FORWARD_CASES = {"down (7, 9) -> (3, 4)": ((2, 3, 7, 9), (3, 4)),
                 "up (5, 4) -> (8, 7)": ((2, 2, 5, 4), (8, 7)),
                 "global": ((3, 4, 6, 5), 1),
                 "H kept (None, 3)": ((2, 3, 6, 8), (None, 3)),
                 "W kept (11, None)": ((1, 2, 4, 5), (11, None)),
                 "many blocks (37, 29) -> (12, 40)": ((4, 16, 37, 29), (12, 40))}


def shared_maxima(seed, shape, dtype):
    """Small integers: maxima that overlapping windows share, ties; a NaN, some -inf."""
    x = np.random.default_rng(seed).integers(-3, 3, shape).astype(dtype)
    x.reshape(-1)[seed % x.size] = np.nan
    x.reshape(-1)[::7] = -np.inf
    return x


def assert_cpu_bits(got, want):
    """The CPU path's bits, NaN where it has NaN (of any payload)."""
    got = got.get()
    assert got.dtype == want.dtype and got.shape == want.shape
    nan = np.isnan(want)
    np.testing.assert_array_equal(np.isnan(got), nan)
    np.testing.assert_array_equal(bits(got, np)[~nan], bits(want, np)[~nan])


def _unpool(case, dtype):
    """(values to unpool, the max pool's indices, unpooling arguments) of one case."""
    shape, window, pool_only = UNPOOL_CASES[case]
    pooled, indices, _ = F.max_pool2d_forward(shared_maxima(1, shape, dtype),
                                              return_indices=True, **window, **pool_only)
    return rand(pooled.shape, dtype, 2), indices, dict(window, output_size=shape[2:])


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("case", UNPOOL_CASES)
def test_max_unpool_and_its_gradient_match_the_cpu_path(cp, monkeypatch, case, dtype):
    x, indices, args = _unpool(case, dtype)
    x[0, 0, 0, 0] = np.nan
    calls = record_calls(monkeypatch, scatter=(_gpu.unpool, "scatter_add"))
    out, cache = F.max_unpool2d_forward(cp.asarray(x), cp.asarray(indices), **args)
    want, want_cache = F.max_unpool2d_forward(x, indices, **args)
    gathers = "dilation" not in UNPOOL_CASES[case][2]
    assert calls == (UNPOOL if gathers else UNPOOL[:1] + ["scatter"]), calls
    if gathers or dtype != np.float16:
        assert_cpu_bits(out, want)
    else:
        np.testing.assert_allclose(out.get(), want, rtol=2**-11, atol=2**-24)
    dout = rand(want.shape, dtype, 3)
    np.testing.assert_array_equal(F.max_unpool2d_backward(cp.asarray(dout), cache).get(),
                                  F.max_unpool2d_backward(dout, want_cache))


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("case", ADAPTIVE_CASES)
def test_adaptive_max_pool_and_its_gradient_match_the_cpu_path(cp, monkeypatch, case, dtype):
    shape, output_size = ADAPTIVE_CASES[case]
    x = shared_maxima(4, shape, dtype)
    out, indices, cache = F.adaptive_max_pool2d_forward(cp.asarray(x), output_size,
                                                        return_indices=True)
    want, want_indices, want_cache = F.adaptive_max_pool2d_forward(x, output_size,
                                                                   return_indices=True)
    assert_cpu_bits(out, want)
    np.testing.assert_array_equal(indices.get(), want_indices)
    dout = rand(want.shape, dtype, 5)
    calls = record_calls(monkeypatch, scatter=(_gpu.unpool, "scatter_add"))
    dx = F.adaptive_max_pool2d_backward(cp.asarray(dout), cache)
    assert calls == ADAPTIVE, calls
    assert_cpu_bits(dx, F.adaptive_max_pool2d_backward(dout, want_cache))


def test_adaptive_indices_moved_out_of_their_window_take_the_scatter(cp, monkeypatch):
    x = shared_maxima(6, (2, 2, 7, 6), np.float32)
    _, cache = F.adaptive_max_pool2d_forward(cp.asarray(x), (3, 4))
    want_out, want_cache = F.adaptive_max_pool2d_forward(x, (3, 4))
    for c in (cache, want_cache):
        c.indices[0, 1, 0, 0] = 41  # row 6: not among window 0's rows
    dout = rand(want_out.shape, np.float32, 7)
    calls = record_calls(monkeypatch, scatter=(_gpu.unpool, "scatter_add"))
    dx = F.adaptive_max_pool2d_backward(cp.asarray(dout), cache)
    assert calls == ADAPTIVE[:1] + ["scatter"]
    assert_cpu_bits(dx, F.adaptive_max_pool2d_backward(dout, want_cache))


@pytest.mark.parametrize("extremes", [False, True], ids=["shared maxima", "mostly extremes"])
@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("case", FORWARD_CASES)
def test_adaptive_forward_kernel_gives_the_cpu_paths_bits(cp, monkeypatch, case, dtype,
                                                          extremes):
    shape, output_size = FORWARD_CASES[case]
    x = shared_maxima(10, shape, dtype)
    if extremes:  # windows of -inf only and of NaN only, ties of inf, NaN of both signs
        choice = np.random.default_rng(11).random(shape)
        x[choice < 0.3], x[(choice >= 0.3) & (choice < 0.5)] = -np.inf, np.inf
        x[(choice >= 0.5) & (choice < 0.6)] = -np.nan
    poisoned = _launcher(cp, poison=True)
    monkeypatch.setattr(_cuda, "default_launcher", lambda: poisoned)
    calls = record_calls(monkeypatch, scatter=(_gpu.unpool, "scatter_add"))
    out, indices, cache = F.adaptive_max_pool2d_forward(cp.asarray(x), output_size,
                                                        return_indices=True)
    assert calls == FORWARD, calls
    want, want_indices, _ = F.adaptive_max_pool2d_forward(x, output_size, return_indices=True)
    assert out.dtype == want.dtype and out.shape == want.shape
    np.testing.assert_array_equal(bits(out.get(), np), bits(want, np))
    assert indices.dtype == np.int64
    np.testing.assert_array_equal(indices.get(), want_indices)
    np.testing.assert_array_equal(cache.indices.get(), want_indices)


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
def test_unpool_passes_are_bitwise_deterministic(cp, dtype):
    x, indices, args = _unpool("3x3/1 shared maxima (unrolled)", dtype)
    x, indices = cp.asarray(x), cp.asarray(indices)
    first, second = (F.max_unpool2d_forward(x, indices, **args)[0] for _ in range(2))
    assert cp.array_equal(bits(first, cp), bits(second, cp))
    x = cp.asarray(shared_maxima(8, (2, 3, 7, 9), dtype))
    first, second = (F.adaptive_max_pool2d_forward(x, (4, 5), return_indices=True)[:2]
                     for _ in range(2))
    assert cp.array_equal(bits(first[0], cp), bits(second[0], cp))
    assert cp.array_equal(first[1], second[1])
    _, cache = F.adaptive_max_pool2d_forward(x, (4, 5))
    dout = cp.asarray(rand((2, 3, 4, 5), dtype, 9))
    first, second = (F.adaptive_max_pool2d_backward(dout, cache) for _ in range(2))
    assert cp.array_equal(bits(first, cp), bits(second, cp))


@pytest.mark.parametrize("dtype", _cuda.UNROLLED_DTYPES, ids=lambda d: d.name)
def test_unrolled_unpool_windows_give_the_run_time_instantiations_bits(cp, monkeypatch, dtype):
    """Every unrolled unpooling window against the run-time instantiation, bit for bit."""
    unrolled, runtime = _launcher(cp), _launcher(cp, specialize=False)
    for k, s in _cuda.unrolled_windows("unpool.cu", dtype):
        shape = (2, 3, 11, 10)
        pooled, indices, _ = F.max_pool2d_forward(shared_maxima(k, shape, dtype), k, s, k // 2,
                                                  ceil_mode=True, return_indices=True)
        x, indices = cp.asarray(rand(pooled.shape, dtype, s)), cp.asarray(indices)
        results = []
        for launcher in (unrolled, runtime):
            monkeypatch.setattr(_cuda, "default_launcher", lambda launcher=launcher: launcher)
            results.append(F.max_unpool2d_forward(x, indices, k, s, k // 2,
                                                  output_size=shape[2:])[0])
        assert {key[2:] for key in unrolled._functions} >= {
            ("max_unpool_check_kernel", (k, s)), ("max_unpool_gather_kernel", (k, s))}
        assert cp.array_equal(bits(results[0], cp), bits(results[1], cp)), (k, s)


def test_gather_kernels_against_the_sort_based_scatter_time(cp, monkeypatch, request):
    """Reports (no assertion on times) a SegNet-sized 2x2/2 unpooling, float32, on the check
    and gather kernels and on the sort-based scatter (the kernels' check forced to fail)."""
    x = cp.asarray(rand((16, 64, 112, 112), np.float32, 10))
    _, indices, _ = F.max_pool2d_forward(x, 2, return_indices=True)
    pooled = cp.asarray(rand(indices.shape, np.float32, 11))

    def step():
        F.max_unpool2d_forward(pooled, indices, 2)

    gathers = gpu_milliseconds(cp, step)
    monkeypatch.setattr(_cuda, "max_unpool2d_outside", lambda *args: True)
    scatter = gpu_milliseconds(cp, step, repeats=3)
    summary_lines(request.config).append(
        f"GPU max_unpool2d 2x2/2 (16, 64, 56, 56) -> 112x112, float32: check + gather "
        f"{gathers:.2f} ms, sort-based scatter {scatter:.2f} ms")
