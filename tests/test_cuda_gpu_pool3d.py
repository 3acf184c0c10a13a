"""Rung 3 for the 3-D pooling kernels, on a GPU: CuPy through kernels/pool3d.cu.

Every test is marked ``gpu`` (skipped, with the reason, where CuPy or a usable device is
missing). 3-D max and average pooling on CuPy in float16/32/64, forward and backward, are
compared with the CPU path on the same values: max pooling's values, argmax and indices
exactly (ties, -inf, +inf and NaN in the data), every sum bit for bit but for the sign of a
zero (the kernels add the CPU path's terms in its order; float16 gradients against the CPU
path in float32 rounded once, as the kernels sum them) and within the dtype's tolerance of
the float64 result. The dispatch must launch the 3-D pooling kernels and nothing else; two
runs must give the same bits, and so must the unrolled and the run-time instantiations.
"""

import numpy as np
import pytest

import fastconv.functional as F
from conftest import gpu_milliseconds, record_calls
from cuda_emu.report import summary_lines
from fastconv import _cuda
from fastconv.functional.pool3d import AvgPool3dCache, MaxPool3dCache
from test_cuda_emulated import with_ties_and_specials
from test_cuda_gpu import DTYPES, _launcher, assert_close, bits, rand

pytestmark = pytest.mark.gpu

CASES = {  # x shape, max_pool3d arguments (avg_pool3d takes them but the dilation)
    "2x2x2/2 (unrolled)": ((2, 3, 8, 9, 7), dict(kernel_size=2)),
    "3x3x3/2 padded ceil (unrolled)": ((2, 4, 7, 9, 10), dict(kernel_size=3, stride=2,
                                                              padding=1, ceil_mode=True)),
    "3x2x1 strided": ((3, 2, 9, 6, 5), dict(kernel_size=(3, 2, 1), stride=(1, 2, 3),
                                            padding=(1, 1, 0))),
    "2x3x2 dilated ceil": ((1, 3, 7, 8, 9), dict(kernel_size=(2, 3, 2), stride=(2, 1, 2),
                                                 padding=(1, 1, 0), dilation=(2, 1, 3),
                                                 ceil_mode=True)),
}
MAX_KERNELS = {"max_pool3d_forward_kernel", "max_pool3d_backward_kernel"}
AVG_KERNELS = {"avg_pool3d_forward_kernel", "avg_pool3d_backward_kernel"}


def _same_bits(cp, got, want):
    """A CuPy result against a NumPy one, bit for bit but for the sign of a zero; NaN
    where the CPU path has NaN."""
    got = got.get()
    assert got.dtype == want.dtype and got.shape == want.shape
    nan = np.isnan(want)
    np.testing.assert_array_equal(np.isnan(got), nan)
    np.testing.assert_array_equal(bits(got[~nan] + 0, np), bits(want[~nan] + 0, np))


def _rounded_once(backward, dout, cache, cache_type, per_window):
    """The CPU average-pool gradient of a float16 dout summed in float32 and rounded once
    (the kernels' order and precision); other dtypes' as they are."""
    if dout.dtype != np.float16:
        return backward(dout, cache)
    wide = cache_type(cache.x_shape, np.dtype(np.float32), cache.geometry, per_window)
    return backward(dout.astype(np.float32), wide).astype(np.float16)


def _avg_args(case):
    return {k: v for k, v in CASES[case][1].items() if k != "dilation"}


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("case", CASES)
def test_max_pool3d_and_gradient_match_the_cpu_path(cp, monkeypatch, case, dtype):
    shape, args = CASES[case]
    x = with_ties_and_specials(50, shape, dtype)
    calls = record_calls(monkeypatch)
    out, indices, cache = F.max_pool3d_forward(cp.asarray(x), **args, return_indices=True)
    want, want_indices, want_cache = F.max_pool3d_forward(x, **args, return_indices=True)
    np.testing.assert_array_equal(out.get(), want)
    assert cache.argmax.dtype == cp.int32 and indices.dtype == cp.int64
    np.testing.assert_array_equal(cache.argmax.get(), want_cache.argmax)
    np.testing.assert_array_equal(cp.asnumpy(indices), want_indices)
    dout = rand(want.shape, dtype, 51)
    dx = F.max_pool3d_backward(cp.asarray(dout), cache)
    _same_bits(cp, dx, F.max_pool3d_backward(dout, want_cache))  # both in float64, window order
    wide = MaxPool3dCache(x.shape, np.dtype(np.float64), want_cache.geometry, want_cache.argmax)
    assert_close(dx, F.max_pool3d_backward(dout.astype(np.float64), wide), dtype)
    assert set(calls) == MAX_KERNELS, calls


@pytest.mark.parametrize("count_include_pad", [True, False])
@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("case", CASES)
def test_avg_pool3d_and_gradient_match_the_cpu_path(cp, monkeypatch, case, dtype,
                                                    count_include_pad):
    shape, args = CASES[case][0], dict(_avg_args(case), count_include_pad=count_include_pad)
    x = rand(shape, dtype, 52)
    calls = record_calls(monkeypatch)
    out, cache = F.avg_pool3d_forward(cp.asarray(x), **args)
    want, want_cache = F.avg_pool3d_forward(x, **args)
    _same_bits(cp, out, want)
    exact, exact_cache = F.avg_pool3d_forward(x.astype(np.float64), **args)
    assert_close(out, exact, dtype)
    dout = rand(want.shape, dtype, 53)
    dx = F.avg_pool3d_backward(cp.asarray(dout), cache)
    _same_bits(cp, dx, _rounded_once(F.avg_pool3d_backward, dout, want_cache, AvgPool3dCache,
                                     want_cache.divisor))
    assert_close(dx, F.avg_pool3d_backward(dout.astype(np.float64), exact_cache), dtype)
    assert set(calls) == AVG_KERNELS, calls


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
def test_avg_pool3d_divisor_override_and_float16_windows_beyond_2048(cp, dtype):
    """A divisor override, and a 13x13x13 window (2197 cells, no float16 integer) of ones:
    the sums and divisors stay in the accumulator dtype."""
    x = rand((1, 2, 6, 7, 8), dtype, 54)
    out, cache = F.avg_pool3d_forward(cp.asarray(x), 3, 2, 1, divisor_override=-5)
    want, want_cache = F.avg_pool3d_forward(x, 3, 2, 1, divisor_override=-5)
    _same_bits(cp, out, want)
    dout = rand(want.shape, dtype, 55)
    _same_bits(cp, F.avg_pool3d_backward(cp.asarray(dout), cache),
               _rounded_once(F.avg_pool3d_backward, dout, want_cache, AvgPool3dCache,
                             want_cache.divisor))
    mean = F.avg_pool3d_forward(cp.ones((1, 1, 13, 13, 13), dtype), 13)[0]
    np.testing.assert_array_equal(mean.get(), np.ones((1, 1, 1, 1, 1), dtype))


def test_float32_max_pool3d_orders_subnormals_as_the_cpu_does(cp):
    """Under -ftz=true a float compare sees subnormals as zero; the kernels compare integer
    keys, so 1e-40 beats 0 and -1e-41 loses to -1e-42, as on the CPU."""
    x = np.zeros((1, 1, 2, 2, 2), np.float32)
    x[0, 0, 1, 1, 1] = 1e-40
    y = np.full((1, 1, 2, 2, 2), -1e-41, np.float32)
    y[0, 0, 1, 0, 1] = -1e-42
    for volume in (x, y):
        out, indices, _ = F.max_pool3d_forward(cp.asarray(volume), 2, return_indices=True)
        want, want_indices, _ = F.max_pool3d_forward(volume, 2, return_indices=True)
        np.testing.assert_array_equal(bits(out.get(), np), bits(want, np))
        np.testing.assert_array_equal(cp.asnumpy(indices), want_indices)


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
def test_pool3d_passes_are_bitwise_deterministic(cp, dtype):
    shape, args = CASES["3x3x3/2 padded ceil (unrolled)"]
    x = cp.asarray(rand(shape, dtype, 56))
    for forward, backward in ((F.max_pool3d_forward, F.max_pool3d_backward),
                              (F.avg_pool3d_forward, F.avg_pool3d_backward)):
        runs = []
        for _ in range(2):
            out, cache = forward(x, **args)
            runs.append((out, backward(cp.asarray(rand(out.shape, dtype, 57)), cache)))
        for a, b in zip(*runs):
            assert cp.array_equal(bits(a, cp), bits(b, cp))


@pytest.mark.parametrize("dtype", _cuda.UNROLLED_DTYPES, ids=lambda d: d.name)
def test_pool3d_unrolled_windows_give_the_run_time_instantiations_bits(cp, monkeypatch, dtype):
    """Every unrolled 3-D pooling window against the run-time instantiation, bit for bit,
    both pools forward and backward, with ties and specials in the max pool's data."""
    unrolled, runtime = _launcher(cp), _launcher(cp, specialize=False)
    for k, s in _cuda.unrolled_windows("pool3d.cu", dtype):
        args = dict(kernel_size=k, stride=s, padding=k // 2, ceil_mode=True)
        x = cp.asarray(with_ties_and_specials(k * s, (2, 3, 9, 8, 7), dtype))
        results = []
        for launcher in (unrolled, runtime):
            monkeypatch.setattr(_cuda, "default_launcher", lambda launcher=launcher: launcher)
            out, indices, cache = F.max_pool3d_forward(x, **args, return_indices=True)
            dout = cp.asarray(rand(out.shape, dtype, k + s))
            avg, avg_cache = F.avg_pool3d_forward(cp.nan_to_num(x), **args)
            results.append((out, indices, F.max_pool3d_backward(dout, cache), avg,
                            F.avg_pool3d_backward(dout, avg_cache)))
        assert {key[2:] for key in unrolled._functions} >= {
            (name, (k, s)) for name in MAX_KERNELS | AVG_KERNELS}
        for a, b in zip(*results):
            if a.dtype.kind == "f":
                a, b = bits(a, cp), bits(b, cp)
            assert cp.array_equal(a, b), (k, s)


def test_pool3d_kernels_time(cp, request):
    """Reports (no assertion on times) a 3-D CNN's pools' forward+backward on the kernels."""
    x = cp.asarray(rand((8, 64, 16, 56, 56), np.float32, 58))
    times = {}
    for name, forward, backward in (("max", F.max_pool3d_forward, F.max_pool3d_backward),
                                    ("avg", F.avg_pool3d_forward, F.avg_pool3d_backward)):
        def step(forward=forward, backward=backward):
            out, cache = forward(x, 2)
            backward(cp.ones_like(out), cache)
        times[name] = gpu_milliseconds(cp, step)
    summary_lines(request.config).append(
        f"GPU 3-D pools 2x2x2/2 on (8, 64, 16, 56, 56) forward+backward, float32: max "
        f"{times['max']:.2f} ms, avg {times['avg']:.2f} ms")
