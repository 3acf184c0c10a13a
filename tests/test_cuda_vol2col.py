"""The 3-D column kernels (kernels/vol2col.cu), emulated on the CPU, alone and through conv3d.

Kernel level: ``vol2col_into`` and ``col2vol_into`` (fastconv/_cuda_vol2col.py) on the CPU
emulator (tests/cuda_emu), output buffers poisoned with NaN, against a slicing oracle (the
zero-padded input cut tap after tap; col2vol's adjoint adds the taps in ascending (kd, kh,
kw) order in the accumulator dtype and rounds once): bit for bit in every dtype.

Through the dispatch: ``fastconv.functional.conv3d_forward`` and ``conv3d_backward`` on NumPy
arrays routed to the GPU backend (fastconv/_gpu/conv.py), the kernels emulated, the
products in the NumPy model of cuBLAS; against the CPU path (another formulation: within
1e-6 and 1e-12 of the sum of the magnitudes of the terms in float32 and float64, float16
against the float64 result, to half an ulp, or two roundings where the GPU path stores a
float16 intermediate: the product before the bias, the column gradient before col2vol) and,
bit for bit, against the same GPU path with the two kernels replaced by the slicing oracle
(the same terms in the same order).

Hypothesis draws the geometry (kernel 1 to 3, stride 1 to 3, dilation 1 or 2 per axis,
asymmetric padding; half the time a window with an unrolled instantiation), batch, groups
and channels, the bias, whether dx is wanted, the dtype, the chunking of the batch and the
launch shape (blocks of 32 to 1024 threads, grids capped at 1 or 2 blocks per axis so the
grid-stride loops do the work, threads first-to-last or last-to-first). An unrolled window
must also give the run-time instantiation's bits.
"""

import collections
import dataclasses
import math
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from hypothesis import assume, given, note, settings
from hypothesis import strategies as st

import fastconv.functional as F
from conftest import gpu_dispatch
from cuda_emu.emu import build_library, kernels_under_test, require_kernel_tools, sanitizing
from cuda_emu.report import report_cases
from fastconv import _cuda, _cuda_launcher, _cuda_registry, _gpu
from fastconv.backend import accumulator_dtype
from fastconv.im2col import col2im_into, im2col_into, window_geometry
from fastconv.workspace import workspace_limit
from test_cuda_emulated import (DTYPES, SETTINGS, assert_sum_close, bits, cpu_references,
                                launch_shapes, launcher, normal)

FILE = "vol2col.cu"
CASES = collections.Counter()
UNROLLED = collections.Counter()  # of those, cases also run on the run-time instantiation


@pytest.fixture(scope="module", autouse=True)
def build_and_report(request):
    """Build this file's emulated kernels up front, two g++ at a time; print the case counts."""
    require_kernel_tools("g++")
    directory = kernels_under_test()
    options = _cuda.compile_options(directory)
    jobs = [(_cuda.kernel_source(FILE, directory), options,
             tuple(_cuda.name_expressions(FILE, dtype)), sanitizing()) for dtype in _cuda.CTYPES]
    with ThreadPoolExecutor(2) as pool:
        list(pool.map(lambda job: build_library(*job), jobs))
    yield
    report_cases(request.config, "vol2col", "the slicing oracle and the CPU path", CASES, UNROLLED)


@st.composite
def volume_windows(draw):
    """(D, H, W), kernel, stride, ((front, back), (top, bottom), (left, right)), dilation;
    the dilated kernel fits the padded input; half the time an unrolled window."""
    if draw(st.booleans()):
        k, s = draw(st.sampled_from(_cuda.WINDOWS[FILE]))
        kernel, stride, dilation = (k,) * 3, (s,) * 3, (1,) * 3
    else:
        kernel, stride, dilation = (tuple(draw(st.integers(1, high)) for _ in range(3))
                                    for high in (3, 3, 2))
    pads = tuple((draw(st.integers(0, 2)), draw(st.integers(0, 2))) for _ in range(3))
    size = tuple(draw(st.integers(1, 6)) for _ in range(3))
    for n, k, d, (a, b) in zip(size, kernel, dilation, pads):
        assume(d * (k - 1) + 1 <= n + a + b)
    return size, kernel, stride, pads, dilation


def runtime_window(geometry, dtype):
    """The unrolled instantiation ``geometry`` runs on for ``dtype``, or None."""
    window = _cuda.window_of(FILE, dtype, geometry.kernel, geometry.stride, geometry.dilation)
    return None if window == _cuda.RUNTIME_WINDOW else window


# ------------------------------------------------------------------------ the slicing oracle

def _tap_slices(geometry, tap):
    """The (N, C, *out) view of the padded input that kernel offset ``tap`` reads."""
    return (slice(None),) * 2 + tuple(slice(k * d, k * d + (o - 1) * s + 1, s) for k, s, d, o in
                                      zip(tap, geometry.stride, geometry.dilation, geometry.out))


def _padded_zeros(shape, geometry, dtype):
    return np.zeros(tuple(shape[:2]) + geometry.padded, dtype)


def _interior(geometry):
    return (slice(None),) * 2 + geometry.interior


def sliced_columns(x, geometry):
    """The columns (N, C, *kernel, *out): x zero-padded, then cut once per kernel offset."""
    padded = _padded_zeros(x.shape, geometry, x.dtype)
    padded[_interior(geometry)] = x
    cols = np.empty(x.shape[:2] + geometry.kernel + geometry.out, x.dtype)
    for tap in geometry.kernel_offsets():
        cols[(slice(None),) * 2 + tap] = padded[_tap_slices(geometry, tap)]
    return cols


def sliced_sums(cols, geometry, x_shape):
    """col2vol's adjoint: each kernel offset's slab added onto a zero-padded input in
    ascending (kd, kh, kw), in the accumulator dtype, cropped and rounded once."""
    acc = accumulator_dtype(cols.dtype)
    padded = _padded_zeros(x_shape, geometry, acc)
    for tap in geometry.kernel_offsets():
        padded[_tap_slices(geometry, tap)] += cols[(slice(None),) * 2 + tap].astype(acc)
    return padded[_interior(geometry)].astype(cols.dtype)


def check_kernels(shape, geometry, dtype, seed, emu):
    """vol2col and col2vol, bit for bit against the slicing oracle, the CPU path's im2col
    and (but in float16, which it sums in float16) col2im, and on an unrolled window the
    run-time instantiation."""
    col_shape = shape[:2] + geometry.kernel + geometry.out
    x = normal(seed, shape, dtype)
    cols = _cuda.vol2col_into(x, geometry, emu.empty(col_shape, dtype), emu)
    np.testing.assert_array_equal(bits(cols), bits(sliced_columns(x, geometry)))
    np.testing.assert_array_equal(bits(cols), bits(im2col_into(x, geometry,
                                                               np.empty(col_shape, dtype))))
    dcols = normal(seed + 1, col_shape, dtype)
    dx = _cuda.col2vol_into(dcols, geometry, emu.empty(shape, dtype), emu)
    np.testing.assert_array_equal(bits(dx), bits(sliced_sums(dcols, geometry, shape)))
    if dtype != np.float16:
        np.testing.assert_array_equal(bits(dx), bits(col2im_into(dcols, geometry,
                                                                 np.empty(shape, dtype))))
    if window := runtime_window(geometry, dtype):
        twin = launcher(specialize=False)
        np.testing.assert_array_equal(
            bits(_cuda.vol2col_into(x, geometry, twin.empty(col_shape, dtype), twin)), bits(cols))
        np.testing.assert_array_equal(
            bits(_cuda.col2vol_into(dcols, geometry, twin.empty(shape, dtype), twin)), bits(dx))
        UNROLLED[f"kernels {window[0]}^3/{window[1]}"] += 1
    CASES["kernels"] += 1


@settings(max_examples=150, **SETTINGS)
@given(volume_windows(), st.integers(1, 2), st.integers(1, 3), st.sampled_from(DTYPES),
       st.integers(0, 2**32 - 1), launch_shapes)
def test_vol2col_and_col2vol_match_the_slicing_oracle(window, images, channels, dtype, seed,
                                                       emu):
    size, kernel, stride, pads, dilation = window
    shape = (images, channels) + size
    geometry = window_geometry(shape, kernel, stride, pads, dilation)
    note(f"{geometry} block={emu.block} max_blocks={emu.max_blocks}")
    check_kernels(shape, geometry, dtype, seed, emu)


@pytest.mark.parametrize("dtype", _cuda.UNROLLED_DTYPES, ids=lambda d: d.name)
@pytest.mark.parametrize("window", _cuda.WINDOWS[FILE], ids=str)
def test_every_unrolled_window_at_every_kind_of_edge(window, dtype):
    """Each unrolled instantiation with asymmetric padding and a partial last window on every
    axis, threads last to first on a grid of two blocks per axis."""
    k, s = window
    shape = (2, 3, 7, 8, 6)
    pads = ((k // 2, k - 1), (k - 1, 0), (0, 1))
    geometry = window_geometry(shape, k, s, pads, 1)
    assert runtime_window(geometry, dtype) == window
    check_kernels(shape, geometry, dtype, k * 10 + s,
                  launcher(block=64, max_blocks=2, reversed_order=True))


# ------------------------------------------------------------------------ through conv3d

def run_conv3d(x, w, b, args, dout, needs_dx):
    """(out, dx, dw, db) of conv3d_forward and conv3d_backward."""
    out, cache = F.conv3d_forward(x, w, b, **args)
    return (out,) + F.conv3d_backward(dout, cache, needs_input_grad=needs_dx)


def _numpy_vol2col(x, geometry, out, launcher=None):
    """The slicing oracle's columns, in vol2col_into's place."""
    out[...] = sliced_columns(x, geometry)
    return out


def _numpy_col2vol(cols, geometry, out, launcher=None):
    """col2vol_into's sums by the slicing oracle (its order, its accumulator)."""
    out[...] = sliced_sums(cols, geometry, out.shape)
    return out


def check_conv3d(shape, filters, kernel, args, has_bias, needs_dx, dtype, seed, emu,
                 images_per_chunk=None):
    """One conv3d through the GPU dispatch on ``emu``: against the CPU path, bit for bit
    against the NumPy column code in the kernels' place, and on an unrolled window against
    the run-time instantiation."""
    groups = args["groups"]
    x = normal(seed, shape, dtype)
    w = normal(seed + 1, (filters, shape[1] // groups) + kernel, dtype)
    b = normal(seed + 2, (filters,), dtype) if has_bias else None
    out, cache = F.conv3d_forward(x, w, b, **args)
    geometry = cache.geometry
    dout = normal(seed + 3, out.shape, dtype)
    limit = 2**28
    if images_per_chunk:  # the backward's workspace for that many images
        # the plan of a backward that computes its columns (the CPU forward's held ones aside)
        plan = _gpu.conv3d.backward(dout, dataclasses.replace(cache, columns=None), needs_dx).plan
        limit = sum(buffer.nbytes * (images_per_chunk if buffer.per_image else 1)
                    for buffer in plan)
    with gpu_dispatch(emu) as calls, workspace_limit(limit):
        gpu_out, gpu_cache = F.conv3d_forward(x, w, b, **args)
        forward = [name for name in calls if name != "gemm"]
        held = gpu_cache.columns is not None  # a forward in one chunk, within the limit
        calls.clear()
        got = (gpu_out,) + F.conv3d_backward(dout, gpu_cache, needs_input_grad=needs_dx)
    backward = [name for name in calls if name != "gemm"]
    # the backward ends with dw and db summed over the images (tests/test_cuda_weight_sum.py)
    assert backward[-1:] == ["weight_sum_kernel"], backward
    backward = backward[:-1]
    if geometry.is_identity:  # the input is its own column matrix
        assert forward == backward == [], (forward, backward)
    else:  # each chunk's columns (unless held), and in the backward each chunk's dx
        assert forward and forward == ["vol2col_kernel"] * len(forward), forward
        assert not held or len(forward) == 1, forward
        if held:  # no columns again: dx per chunk of the backward's own (smaller) plan
            assert backward == ["col2vol_kernel"] * len(backward), backward
            assert bool(backward) == needs_dx, backward
        else:
            per_chunk = ["vol2col_kernel"] + ["col2vol_kernel"] * needs_dx
            chunks = len(backward) // len(per_chunk)
            assert backward == per_chunk * chunks, backward
            assert chunks == -(-shape[0] // (images_per_chunk or shape[0])), backward
    same, exact, scale = cpu_references(run_conv3d, x, w, b, args, dout)
    with pytest.MonkeyPatch.context() as patch, workspace_limit(limit):
        patch.setattr(_cuda, "vol2col_into", _numpy_vol2col)
        patch.setattr(_cuda, "col2vol_into", _numpy_col2vol)
        with gpu_dispatch(emu):
            in_order = run_conv3d(x, w, b, args, dout, needs_dx)
    for name, value, want, wide, magnitude, oracle in zip(("out", "dx", "dw", "db"), got, same,
                                                          exact, scale, in_order):
        if value is None:
            assert (name == "dx" and not needs_dx) or (name == "db" and b is None), name
            continue
        if value.dtype == np.float16 and (name == "dx" or (name == "out" and b is not None)):
            # a second rounding: the product is rounded to float16 before the bias is added,
            # the column gradient before col2vol sums it
            error = np.abs(value.astype(np.float64) - wide)
            assert (error <= 2.0**-11 * (np.abs(wide) + magnitude) + 2.0**-24).all()
        else:
            assert_sum_close(value, want, wide, magnitude)
        np.testing.assert_array_equal(bits(value), bits(oracle), err_msg=name)
    if window := runtime_window(geometry, dtype):
        with gpu_dispatch(launcher(specialize=False)), workspace_limit(limit):
            twin = run_conv3d(x, w, b, args, dout, needs_dx)
        for value, other in zip(got, twin):
            assert (value is None) == (other is None)
            if value is not None:
                np.testing.assert_array_equal(bits(other), bits(value))
        UNROLLED[f"conv3d {window[0]}^3/{window[1]}"] += 1
    CASES[f"conv3d {np.dtype(dtype).name}"] += 1


@pytest.mark.filterwarnings("ignore:the column buffer of a single image")
@settings(max_examples=150, **SETTINGS)
@given(volume_windows(), st.integers(1, 3), st.sampled_from([1, 1, 2, 3]), st.integers(1, 2),
       st.integers(1, 2), st.booleans(), st.booleans(), st.sampled_from(DTYPES),
       st.integers(0, 2**32 - 1), st.sampled_from([None, None, 1, 2]), launch_shapes)
def test_conv3d_matches_the_cpu_path_and_the_kernels_order(
        window, images, groups, channels, filters, has_bias, needs_dx, dtype, seed,
        images_per_chunk, emu):
    size, kernel, stride, pads, dilation = window
    note(f"block={emu.block} max_blocks={emu.max_blocks}")
    args = dict(stride=stride, padding=pads, dilation=dilation, groups=groups)
    check_conv3d((images, groups * channels) + size, groups * filters, kernel, args, has_bias,
                 needs_dx, dtype, seed, emu, images_per_chunk)


@pytest.mark.filterwarnings("ignore:the column buffer of a single image")
@pytest.mark.parametrize("dtype", _cuda.UNROLLED_DTYPES, ids=lambda d: d.name)
@pytest.mark.parametrize("window", _cuda.WINDOWS[FILE], ids=str)
def test_every_unrolled_window_through_conv3d(window, dtype):
    """Each unrolled window in a chunked conv3d with groups, a bias and dx."""
    k, s = window
    args = dict(stride=s, padding=((k - 1, 0), (1, 1), (0, k - 1)), groups=2)
    check_conv3d((3, 4, 6, 7, 5), 4, (k, k, k), args, True, True, dtype, k * 10 + s,
                 launcher(block=32, max_blocks=2), images_per_chunk=2)


def test_a_pointwise_conv3d_launches_no_kernel_and_a_strided_one_does():
    """1x1x1 with stride 1 and no padding: x is the column matrix; the same window with a
    stride runs the kernels."""
    check_conv3d((2, 3, 4, 3, 5), 2, (1, 1, 1), dict(groups=1), True, True, np.float64, 5,
                 launcher())
    check_conv3d((2, 3, 4, 3, 5), 2, (1, 1, 1), dict(stride=2, groups=1), True, True,
                 np.float64, 6, launcher())


# ------------------------------------------------------------------------ the wrappers

class _Refusing:
    """A launcher that fails on any allocation or launch: sizes must be refused first."""

    xp = np

    def empty(self, shape, dtype):
        raise AssertionError("allocated before refusing the size")

    def launch(self, *args):
        raise AssertionError("launched before refusing the size")


def test_volumes_beyond_the_32_bit_in_volume_arithmetic_are_refused(monkeypatch):
    """A volume, an output, a padded extent or a window at the limit (lowered to 1000 here)
    is refused before any allocation or launch; just below, it runs."""
    x = normal(0, (1, 1, 9, 10, 11), np.float64)  # 990 elements
    small = window_geometry(x.shape, 3, 1, 0, 1)
    cols = np.empty(x.shape[:2] + small.kernel + small.out)
    monkeypatch.setattr(_cuda_launcher, "PLANE_LIMIT", 1000)
    _cuda.vol2col_into(x, small, cols, launcher())
    for geometry in (window_geometry(x.shape, 1, 1, ((0, 0), (0, 0), (0, 1)), 1),  # padded 1080
                     window_geometry(x.shape, 1, 1, ((1, 0), (0, 0), (0, 0)), 1),  # out 1100
                     # taps reaching 1 + 990 + 10 = 1001 into the front padding
                     window_geometry((1, 1, 1, 1, 1), (10, 1, 1), 1, ((990, 0), (0, 0), (0, 0)),
                                     1)):
        for wrapper, source in ((_cuda.vol2col_into, x), (_cuda.col2vol_into, cols)):
            with pytest.raises(ValueError, match=r"too large for the CUDA kernels: volumes "
                                                 r"\(D\*H\*W, OD\*OH\*OW\)"):
                wrapper(source, geometry, np.empty((1, 1)), _Refusing())


def test_strided_operands_an_overlapping_output_and_the_registry():
    """A strided input and output go through contiguous copies; an output over the input is
    refused; the registry finds the 3-D window's scalars and picks the unrolled
    instantiation for a cube with one stride only."""
    emu = launcher()
    x = normal(1, (2, 3, 6, 5, 4), np.float32).transpose(0, 1, 2, 4, 3)  # (2, 3, 6, 4, 5)
    geometry = window_geometry(x.shape, (2, 3, 2), (1, 2, 1), 1, (2, 1, 1))
    col_shape = x.shape[:2] + geometry.kernel + geometry.out
    out = np.full(col_shape[::-1], np.nan, np.float32).T  # Fortran order
    _cuda.vol2col_into(x, geometry, out, emu)
    np.testing.assert_array_equal(out, sliced_columns(np.ascontiguousarray(x), geometry))
    dx = np.full(x.shape[::-1], np.nan, np.float32).T
    _cuda.col2vol_into(out, geometry, dx, emu)
    np.testing.assert_array_equal(dx, sliced_sums(np.ascontiguousarray(out), geometry, x.shape))
    shared = np.zeros(2 * x.size + math.prod(col_shape), np.float32)
    with pytest.raises(ValueError, match="vol2col_kernel: the output overlaps the input"):
        _cuda.vol2col_into(shared[:x.size].reshape(x.shape), geometry,
                           shared[7:7 + math.prod(col_shape)].reshape(col_shape), emu)
    f32, f16 = np.dtype(np.float32), np.dtype(np.float16)
    assert _cuda.window_of(FILE, f16, (3, 3, 3), (2, 2, 2), (1, 1, 1)) == (3, 2)
    for kernel, stride, dilation, dtype in (((3, 3, 2), (1, 1, 1), (1, 1, 1), f32),
                                            ((3, 3, 3), (1, 2, 1), (1, 1, 1), f32),
                                            ((3, 3, 3), (1, 1, 1), (1, 1, 2), f32),
                                            ((3, 3, 3), (1, 1, 1), (1, 1, 1), np.float64)):
        assert _cuda.window_of(FILE, dtype, kernel, stride, dilation) == _cuda.RUNTIME_WINDOW
    scalars = [2, 3] + [8] * 6 + [3, 3, 3] + [1] * 9  # N C, D H W OD OH OW, KD KH KW, ...
    assert _cuda_registry.launch_window("vol2col_kernel", f32, [None] * 2 + scalars) == (3, 1)
    scalars[-2] = 2  # DH
    assert _cuda_registry.launch_window("col2vol_kernel", f32, [None] * 2 + scalars) == (0, 0)
