"""The 3-D pooling kernels (kernels/pool3d.cu), emulated on the CPU, through the pool3d dispatch.

Every case runs ``fastconv.functional.max_pool3d_forward`` / ``avg_pool3d_forward`` and their
backward on NumPy arrays routed to the GPU backend (fastconv/_gpu/pool3d.py), the kernels on
the CPU emulator (tests/cuda_emu) with output buffers poisoned with NaN (argmax with INT_MIN),
launched through fastconv/_cuda.py's wrappers with the grids fastconv/_cuda.py
computes. Hypothesis draws the geometry (kernel 1 to 3 per axis, stride 1 to 3, dilation 1 or
2 for max pooling, padding up to half the kernel, ``ceil_mode``; half the time a window with
an unrolled instantiation), the batch and channels, the dtype, the data (max pooling: small
integers with many ties, -0.0, -inf in some cases most cells, +inf and NaN; average pooling:
normal values or the same specials), ``count_include_pad`` and ``divisor_override``, and the
launch shape (blocks of 32 to 1024 threads, grids capped at 1 or 2 blocks per axis so the
grid-stride loops do the work, threads first-to-last or last-to-first).

Oracle: the CPU path (fastconv/_cpu/pool.py: kernel-offset slabs of the padded input, another
formulation), bit for bit: max pooling's values, argmax and indices are exact, and every sum
adds the same terms in the same order (ascending kernel offset) in the same accumulator
dtype; NaN must be where the CPU path has NaN, with any payload (which NaN a sum of several
returns is not fixed by IEEE 754). Two more exceptions, both of the CPU path's formulation:
float16 gradients, which the CPU path rounds
to float16 after every slab and the kernels once from a float32 sum, are checked against the
CPU path run in float32 and rounded once; and the sign of a zero, as the CPU path assigns
``dout * 0`` (-0.0 for a negative dout) where a cell lost a window that does not overlap the
next. On an unrolled window the run-time instantiation must give the same bits.
"""

import collections

import numpy as np
import pytest
from hypothesis import assume, given, note, settings
from hypothesis import strategies as st

import fastconv.functional as F
from conftest import gpu_dispatch
from cuda_emu.report import built_and_reported
from fastconv import _cuda, _cuda_launcher
from fastconv.backend import accumulator_dtype
from fastconv.functional.pool3d import AvgPool3dCache, MaxPool3dCache
from fastconv.shapes import conv_output_size
from test_cuda_emulated import (DTYPES, SETTINGS, SUBNORMAL_SUM_TERMS, bits, has_subnormals,
                                launch_shapes, launcher, normal, require_flushing,
                                with_ties_and_specials)

CASES = collections.Counter()
UNROLLED = collections.Counter()  # of those, cases also run on the run-time instantiation
FILE = "pool3d.cu"
MAX_KERNELS = ["max_pool3d_forward_kernel", "max_pool3d_backward_kernel"]
AVG_KERNELS = ["avg_pool3d_forward_kernel", "avg_pool3d_backward_kernel"]


build_and_report = built_and_reported("3-D pooling", "the CPU path, bit for bit", CASES,
                                      UNROLLED)


@st.composite
def volume_windows(draw, dilation=True):
    """(x shape, kernel, stride, padding, dilation, ceil_mode) valid under PyTorch's rules;
    half the time one of the unrolled K x K x K windows."""
    if draw(st.booleans()):
        k, s = draw(st.sampled_from(_cuda.WINDOWS[FILE]))
        kernel, stride, dil = (k,) * 3, (s,) * 3, (1,) * 3
    else:
        kernel = tuple(draw(st.integers(1, 3)) for _ in range(3))
        stride = tuple(draw(st.integers(1, 3)) for _ in range(3))
        dil = tuple(draw(st.integers(1, 2)) if dilation else 1 for _ in range(3))
    pad = tuple(draw(st.integers(0, k // 2)) for k in kernel)
    size = tuple(draw(st.integers(1, 6)) for _ in range(3))
    ceil_mode = draw(st.booleans())  # may keep a window that overhangs the padded input
    for n, k, s, d, p in zip(size, kernel, stride, dil, pad):
        assume(conv_output_size(n, k, s, p, d, ceil_mode) >= 1)
    shape = (draw(st.integers(1, 2)), draw(st.integers(1, 3))) + size
    return shape, kernel, stride, pad, dil, ceil_mode


def specials(seed, shape, dtype):
    """Ties, -inf, +inf and NaN (tests/test_cuda_emulated.py's), and half the zeros -0.0."""
    x = with_ties_and_specials(seed, shape, dtype)
    x[(x == 0) & (np.random.default_rng(seed + 7).random(shape) < 0.5)] = -0.0
    return x


def assert_same_bits(actual, expected, what):
    """Bit for bit but for the sign of a zero (see the module's docstring) and NaN payloads:
    NaN exactly where the CPU path has NaN, so every element is written (no NaN poison where
    the CPU path has a number). Which NaN a sum of several returns (NaN inputs, inf - inf)
    is not fixed by IEEE 754: x86 returns one operand's, in an order the compiler may swap,
    a GPU a canonical NaN; and the kernels write float16 NaNs canonical. Which cell's NaN
    the max pool takes is checked by the argmax."""
    assert actual.dtype == expected.dtype and actual.shape == expected.shape, what
    nan = np.isnan(expected)
    np.testing.assert_array_equal(np.isnan(actual), nan, err_msg=f"{what}: NaN positions")
    actual, expected = actual[~nan], expected[~nan]
    np.testing.assert_array_equal(bits(actual + 0), bits(expected + 0), err_msg=what)


def rounded_once(backward, dout, cache, cache_type, per_window):
    """The CPU average-pool gradient of a float16 ``dout`` as the kernels form it: summed in
    float32 (the CPU path in float32, same order), rounded once; other dtypes' as they are."""
    if dout.dtype != np.float16:
        return backward(dout, cache)
    wide = cache_type(cache.x_shape, np.dtype(np.float32), cache.geometry, per_window)
    return backward(dout.astype(np.float32), wide).astype(np.float16)


def twin_of(geometry, dtype):
    """The run-time instantiation's launcher when ``geometry`` has an unrolled one."""
    window = _cuda.window_of(FILE, dtype, geometry.kernel, geometry.stride, geometry.dilation)
    if window == _cuda.RUNTIME_WINDOW:
        return None
    UNROLLED[f"{window[0]}x{window[0]}x{window[0]}/{window[1]}"] += 1
    return launcher(specialize=False)


def run_max(x, args, dout, emu):
    """(out, indices, argmax, dx) of max pooling through the GPU dispatch on ``emu``."""
    with gpu_dispatch(emu) as calls:
        out, indices, cache = F.max_pool3d_forward(x, **args, return_indices=True)
        dx = F.max_pool3d_backward(dout, cache)
    assert calls == MAX_KERNELS, calls
    return out, indices, cache.argmax, dx


def check_max_pool3d(window, dtype, seed, emu):
    """Max pooling's values, argmax, indices and gradient against the CPU path, bit for bit;
    on an unrolled window also against the run-time instantiation."""
    shape, kernel, stride, pad, dilation, ceil_mode = window
    x = specials(seed, shape, dtype)
    args = dict(kernel_size=kernel, stride=stride, padding=pad, dilation=dilation,
                ceil_mode=ceil_mode)
    want, want_indices, cache = F.max_pool3d_forward(x, **args, return_indices=True)
    dout = normal(seed + 1, want.shape, dtype)
    want_dx = F.max_pool3d_backward(dout, cache)  # in float64 and window order, as the kernel
    got = run_max(x, args, dout, emu)
    out, indices, argmax, dx = got
    assert_same_bits(out, want, "out")
    assert argmax.dtype == np.int32 and indices.dtype == np.int64
    np.testing.assert_array_equal(argmax, cache.argmax, err_msg="argmax")
    np.testing.assert_array_equal(indices, want_indices, err_msg="indices")
    assert_same_bits(dx, want_dx, "dx")
    if twin := twin_of(cache.geometry, dtype):
        for value, other in zip(got, run_max(x, args, dout, twin)):
            np.testing.assert_array_equal(bits(other) if other.dtype.kind == "f" else other,
                                          bits(value) if value.dtype.kind == "f" else value)
    CASES[f"max {np.dtype(dtype).name}"] += 1


def run_avg(x, args, dout, emu):
    """(out, dx) of average pooling through the GPU dispatch on ``emu``."""
    with gpu_dispatch(emu) as calls:
        out, cache = F.avg_pool3d_forward(x, **args)
        dx = F.avg_pool3d_backward(dout, cache)
    assert calls == AVG_KERNELS, calls
    return out, dx


def check_avg_pool3d(window, count_include_pad, divisor_override, with_specials, dtype, seed,
                     emu):
    """Average pooling and its gradient against the CPU path, bit for bit; on an unrolled
    window also against the run-time instantiation."""
    shape, kernel, stride, pad, _, ceil_mode = window
    x = specials(seed, shape, dtype) if with_specials else normal(seed, shape, dtype)
    args = dict(kernel_size=kernel, stride=stride, padding=pad, ceil_mode=ceil_mode,
                count_include_pad=count_include_pad, divisor_override=divisor_override)
    want, cache = F.avg_pool3d_forward(x, **args)
    assert cache.divisor.dtype == accumulator_dtype(dtype)
    dout = normal(seed + 1, want.shape, dtype)
    want_dx = rounded_once(F.avg_pool3d_backward, dout, cache, AvgPool3dCache, cache.divisor)
    out, dx = run_avg(x, args, dout, emu)
    assert_same_bits(out, want, "out")
    assert_same_bits(dx, want_dx, "dx")
    if twin := twin_of(cache.geometry, dtype):
        for value, other in zip((out, dx), run_avg(x, args, dout, twin)):
            np.testing.assert_array_equal(bits(other), bits(value))
    CASES[f"avg {np.dtype(dtype).name}"] += 1


@settings(max_examples=100, **SETTINGS)
@given(volume_windows(), st.sampled_from(DTYPES), st.integers(0, 2**32 - 1), launch_shapes)
def test_max_pool3d_matches_the_cpu_path(window, dtype, seed, emu):
    note(f"block={emu.block} max_blocks={emu.max_blocks}")
    check_max_pool3d(window, dtype, seed, emu)


@pytest.mark.filterwarnings("ignore:invalid value encountered")  # the CPU path's inf - inf
@settings(max_examples=80, **SETTINGS)
@given(volume_windows(dilation=False), st.booleans(), st.sampled_from([None, None, 3, -2]),
       st.booleans(), st.sampled_from(DTYPES), st.integers(0, 2**32 - 1), launch_shapes)
def test_avg_pool3d_matches_the_cpu_path(window, count_include_pad, divisor_override,
                                         with_specials, dtype, seed, emu):
    note(f"block={emu.block} max_blocks={emu.max_blocks}")
    check_avg_pool3d(window, count_include_pad, divisor_override, with_specials, dtype, seed,
                     emu)


@pytest.mark.parametrize("ceil_mode", [False, True])
@pytest.mark.parametrize("dtype", _cuda.UNROLLED_DTYPES, ids=lambda d: d.name)
@pytest.mark.parametrize("window", _cuda.WINDOWS[FILE], ids=str)
def test_every_unrolled_pool3d_window(window, dtype, ceil_mode):
    """Each unrolled instantiation on a volume with every kind of edge (padding, a partial
    last window), threads last to first on a grid of two blocks per axis; hypothesis may
    draw some windows rarely."""
    k, s = window
    args = ((2, 3, 7, 6, 5), (k,) * 3, (s,) * 3, (k // 2,) * 3, (1,) * 3, ceil_mode)
    emu = launcher(block=64, max_blocks=2, reversed_order=True)
    check_max_pool3d(args, dtype, k * 10 + s, emu)
    for count_include_pad in (False, True):
        check_avg_pool3d(args, count_include_pad, None, False, dtype, k * 10 + s, emu)


def test_minus_infinity_ties_the_padding_and_windows_of_padding_only():
    """-inf inputs tie with the -inf padding: the maximum is the window's first input cell.
    A dilated window that falls on padding only gives -inf, offset 0, index -1 and no
    gradient, as on the CPU path."""
    x = np.full((2, 2, 3, 4, 5), -np.inf)
    x[0, 0, 2, 3, 3], x[1, 1, 0, 1, 4], x[1, 0, 1, 2, 2] = 1.0, -2.0, np.nan
    check_max_pool3d((x.shape, (3, 3, 2), (1, 2, 1), (1, 1, 1), (1, 1, 1), True), np.float64,
                     0, launcher())
    args = dict(kernel_size=(2, 1, 1), padding=(1, 0, 0), dilation=(2, 1, 1))
    x = np.arange(9.0).reshape(1, 1, 1, 3, 3)
    dout = np.ones((1, 1, 1, 3, 3))
    out, indices, argmax, dx = run_max(x, args, dout, launcher())
    assert np.all(out == -np.inf) and np.all(argmax == 0) and np.all(indices == -1)
    np.testing.assert_array_equal(dx, np.zeros_like(x))


def test_float32_gradient_sums_keep_subnormals_under_flush_to_zero():
    """The gradient's double sums of float32 terms, rounded once, keep the subnormals that a
    cast flushes under -ftz=true (here the CPU's flush modes): subnormal terms, and sums of
    normal ones below 2**-126, on ties that send several windows' gradients to one cell."""
    emu = launcher()
    require_flushing(emu, FILE, "max_pool3d_backward_kernel<float, 0, 0>")
    rng = np.random.default_rng(7)
    x = rng.integers(0, 2, (1, 2, 5, 6, 5)).astype(np.float32)
    args = dict(kernel_size=3, stride=1, padding=1)
    _, cache = F.max_pool3d_forward(x, **args)
    dout = rng.choice(SUBNORMAL_SUM_TERMS, cache.argmax.shape)
    want = F.max_pool3d_backward(dout, cache)
    assert has_subnormals(want)
    np.testing.assert_array_equal(bits(run_max(x, args, dout, emu)[3]), bits(want))


def test_non_contiguous_operands_go_through_copies():
    """A strided x and dout give the results of their contiguous copies."""
    x = normal(4, (2, 3, 6, 5, 7), np.float64).transpose(0, 1, 4, 3, 2)
    args = dict(kernel_size=(3, 2, 2), stride=(2, 1, 2), padding=1)
    want, cache = F.avg_pool3d_forward(x, **args)
    dout = normal(5, want.shape[::-1], np.float64).T
    out, dx = run_avg(x, args, dout, launcher())
    assert_same_bits(out, want, "out")
    assert_same_bits(dx, F.avg_pool3d_backward(dout, cache), "dx")
    want, _, cache = F.max_pool3d_forward(x, **args, return_indices=True)
    out, _, argmax, dx = run_max(x, args, dout, launcher())
    assert_same_bits(out, want, "out")
    assert_same_bits(dx, F.max_pool3d_backward(dout, cache), "dx")


def test_volumes_too_large_for_the_kernels_are_refused_before_allocating(monkeypatch):
    """A volume at the kernels' 32-bit in-volume limit (here lowered to 64) is refused by
    every wrapper before it allocates anything; one element fewer runs."""
    emu = launcher()
    allocated = []
    empty = emu.empty
    monkeypatch.setattr(emu, "empty", lambda *args: allocated.append(args) or empty(*args))
    monkeypatch.setattr(_cuda_launcher, "PLANE_LIMIT", 64)
    for shape, fits in (((1, 1, 4, 4, 4), False), ((1, 1, 3, 3, 7), True)):
        x = np.zeros(shape)
        geometry = F.max_pool3d_forward(x, 1)[1].geometry  # the CPU path: no limit
        divisor, dout = np.ones(geometry.out), np.zeros(shape)
        calls = [lambda: _cuda.max_pool3d_forward(x, geometry, emu),
                 lambda: _cuda.max_pool3d_backward(dout, np.zeros(shape, np.int32), shape,
                                                   geometry, emu),
                 lambda: _cuda.avg_pool3d_forward(x, geometry, divisor, emu),
                 lambda: _cuda.avg_pool3d_backward(dout, divisor, shape, geometry, emu)]
        for call in calls:
            if fits:
                call()
                continue
            with pytest.raises(ValueError, match="too large for the CUDA kernels"):
                call()
        assert bool(allocated) == fits
