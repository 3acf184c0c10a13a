"""The depthwise kernels (kernels/depthwise.cu), emulated on the CPU, through the conv2d dispatch.

Every case runs ``fastconv.functional.conv2d_forward`` and ``conv2d_backward`` with
groups == C on NumPy arrays routed to the GPU backend (fastconv/_gpu/depthwise.py), the
kernels on the CPU emulator (tests/cuda_emu) with output buffers poisoned with NaN, launched
through fastconv/_cuda.py's wrappers with the grids it computes. Hypothesis draws the
geometry (kernel 1 to 5 per axis, stride 1 to 3, dilation 1 or 2, asymmetric padding; half
the time a window with an unrolled instantiation), the batch, the channels and the
multiplier M = F/C (1 to 3), the bias, whether dx is wanted, the dtype, the chunking of the
batch and the launch shape (blocks of 32 to 1024 threads, grids capped at 1 or 2 blocks per
axis so the grid-stride loops do the work, threads first-to-last or last-to-first).

Oracles:

- the CPU path (im2col and BLAS products, another formulation): float32 and float64 within
  1e-6 and 1e-12 of the sum of the magnitudes of the terms; float16 against the float64
  result, within half an ulp plus the float32 accumulation error;
- slab sums (whole strided views of the zero-padded input added tap after tap, the
  positions and images of dw summed in loops) in the order the kernels add: bit for bit, in
  float16 too (summed in float32, rounded once), for every chunking but dw and db's over
  several chunks (a chunk's images add into the slots of the first chunk's);
- on an unrolled window, the run-time instantiation's bits.
"""

import collections

import numpy as np
import pytest
from hypothesis import given, note, settings
from hypothesis import strategies as st

import fastconv.functional as F
from conftest import gpu_dispatch
from cuda_emu.report import built_and_reported
from fastconv import _cuda, _cuda_launcher
from fastconv.backend import accumulator_dtype
from fastconv.workspace import workspace_limit
from test_cuda_emulated import (DTYPES, SETTINGS, assert_sum_close, bits, conv_windows,
                                cpu_references, launch_shapes, launcher, normal)

CASES = collections.Counter()
KERNELS = {name for name, (file, _) in _cuda.KERNELS.items() if file == "depthwise.cu"}


build_and_report = built_and_reported(
    "Depthwise", "the CPU path and the kernels' order, bit for bit", CASES)


def run_conv(x, w, b, args, dout, needs_dx):
    """(out, dx, dw, db) of conv2d_forward and conv2d_backward."""
    out, cache = F.conv2d_forward(x, w, b, **args)
    return (out,) + F.conv2d_backward(dout, cache, needs_input_grad=needs_dx)


# The slab oracle: the kernels' sums written as whole-array adds, term after term in the
# order each kernel adds them (taps row-major, the M filters of a channel in order, the
# positions of dw row-major, then the images), in the accumulator dtype.

def _padded(a, geometry, dtype):
    """``a`` (N, C, H, W) as ``dtype``, zero-padded to the extent the windows reach."""
    (top, _), (left, _) = geometry.pads
    (h, w), extent = geometry.size, geometry.padded
    padded = np.zeros(a.shape[:2] + extent, dtype)
    padded[:, :, top:top + h, left:left + w] = a
    return padded


def _tap(padded, geometry, kh, kw):
    """The view of ``padded`` that tap (kh, kw) reads at every output position."""
    (sh, sw), (dh, dw), (oh, ow) = geometry.stride, geometry.dilation, geometry.out
    return padded[:, :, kh * dh:kh * dh + (oh - 1) * sh + 1:sh,
                  kw * dw:kw * dw + (ow - 1) * sw + 1:sw]


def _in_order(terms):
    """(N, F, OH, OW) summed over the positions of each image in row-major order, then over
    the images in order."""
    per_image = np.zeros(terms.shape[:2], terms.dtype)
    for oh in range(terms.shape[2]):
        for ow in range(terms.shape[3]):
            per_image += terms[:, :, oh, ow]
    total = np.zeros(terms.shape[1], terms.dtype)
    for image in per_image:
        total += image
    return total


def slab_sums(x, w, b, geometry, dout):
    """(out, dx, dw, db) in the kernels' order of summation, rounded once to x's dtype."""
    acc, dtype = accumulator_dtype(x.dtype), x.dtype
    taps = [(kh, kw) for kh in range(w.shape[2]) for kw in range(w.shape[3])]
    m = w.shape[0] // x.shape[1]
    inputs = np.repeat(_padded(x, geometry, acc), m, axis=1)  # filter f reads channel f // M
    weights, grads = w[:, 0].astype(acc), dout.astype(acc)
    out = np.zeros(inputs.shape[:2] + geometry.out, acc)
    for kh, kw in taps:
        out += _tap(inputs, geometry, kh, kw) * weights[:, kh, kw, None, None]
    if b is not None:
        out += b.astype(acc)[:, None, None]
    dx = np.zeros(x.shape[:2] + geometry.padded, acc)
    for j in range(m):  # filter c*M + j of channel c
        for kh, kw in taps:
            _tap(dx, geometry, kh, kw)[...] += grads[:, j::m] * weights[j::m, kh, kw, None, None]
    (top, _), (left, _) = geometry.pads
    dx = dx[:, :, top:top + x.shape[2], left:left + x.shape[3]]
    dw = np.stack([_in_order(_tap(inputs, geometry, kh, kw) * grads) for kh, kw in taps], 1)
    return (out.astype(dtype), dx.astype(dtype), dw.reshape(w.shape).astype(dtype),
            _in_order(grads).astype(dtype))


def check_depthwise(shape, multiplier, kernel, args, has_bias, needs_dx, dtype, seed, emu,
                    images_per_chunk=None):
    """One depthwise conv through the dispatch on ``emu``, against the CPU path, the slab
    sums and (on an unrolled window) the run-time instantiation."""
    n, c = shape[:2]
    x = normal(seed, shape, dtype)
    w = normal(seed + 1, (c * multiplier, 1) + kernel, dtype)
    b = normal(seed + 2, (c * multiplier,), dtype) if has_bias else None
    args = dict(args, groups=c)
    out, cache = F.conv2d_forward(x, w, b, **args)
    dout = normal(seed + 3, out.shape, dtype)
    same, exact, scale = cpu_references(run_conv, x, w, b, args, dout)
    limit = 2**28
    if images_per_chunk:  # the backward's workspace: one image's partials (F, KH*KW + 1)
        limit = (images_per_chunk * w.shape[0] * (kernel[0] * kernel[1] + 1)
                 * accumulator_dtype(dtype).itemsize)
    with gpu_dispatch(emu) as calls, workspace_limit(limit):
        got = run_conv(x, w, b, args, dout, needs_dx)
    chunks = -(-n // (images_per_chunk or n))
    per_chunk = ["depthwise_weight_partials_kernel"] + ["depthwise_backward_data_kernel"] * needs_dx
    assert calls == (["depthwise_forward_kernel"] + per_chunk * chunks
                     + ["weight_sum_kernel"]), calls
    slabs = slab_sums(x, w, b, cache.geometry, dout)
    for name, value, want, wide, magnitude, slab in zip(("out", "dx", "dw", "db"), got, same,
                                                        exact, scale, slabs):
        if value is None:
            assert (name == "dx" and not needs_dx) or (name == "db" and b is None), name
            continue
        assert_sum_close(value, want, wide, magnitude)
        if name in ("out", "dx") or chunks == 1:
            np.testing.assert_array_equal(bits(value), bits(slab), err_msg=name)
    window = _cuda.window_of("depthwise.cu", dtype, kernel, cache.geometry.stride,
                             cache.geometry.dilation)
    if window != _cuda.RUNTIME_WINDOW:
        with gpu_dispatch(launcher(specialize=False)), workspace_limit(limit):
            twin = run_conv(x, w, b, args, dout, needs_dx)
        for value, other in zip(got, twin):
            assert (value is None) == (other is None)
            if value is not None:
                np.testing.assert_array_equal(bits(other), bits(value))
        CASES[f"unrolled {window[0]}x{window[0]}/{window[1]}"] += 1
    CASES[np.dtype(dtype).name] += 1


@settings(max_examples=150, **SETTINGS)
@given(conv_windows("depthwise.cu"), st.integers(1, 3), st.integers(1, 3), st.booleans(),
       st.booleans(), st.sampled_from(DTYPES), st.integers(0, 2**32 - 1),
       st.sampled_from([None, None, 1, 2]), launch_shapes)
def test_depthwise_conv_matches_the_cpu_path_and_the_kernels_order(
        window, images, multiplier, has_bias, needs_dx, dtype, seed, images_per_chunk, emu):
    shape, kernel, stride, pads, dilation = window
    shape = (images,) + shape[1:]
    note(f"block={emu.block} max_blocks={emu.max_blocks}")
    check_depthwise(shape, multiplier, kernel, dict(stride=stride, padding=pads,
                                                    dilation=dilation),
                    has_bias, needs_dx, dtype, seed, emu, images_per_chunk)


@pytest.mark.parametrize("images_per_chunk", [None, 2])
@pytest.mark.parametrize("dtype", _cuda.UNROLLED_DTYPES, ids=lambda d: d.name)
@pytest.mark.parametrize("window", _cuda.WINDOWS["depthwise.cu"], ids=str)
def test_every_unrolled_depthwise_window(window, dtype, images_per_chunk):
    """Each unrolled instantiation on an input with every kind of edge (asymmetric padding, a
    partial last window), two filters per channel, a bias, threads last to first on a grid of
    two blocks per axis, one chunk or two; hypothesis may draw some windows rarely."""
    k, s = window
    args = dict(stride=s, padding=((k // 2, k - 1), (k - 1, 0)))
    check_depthwise((3, 3, 11, 10), 2, (k, k), args, True, True, dtype, k * 10 + s,
                    launcher(block=64, max_blocks=2, reversed_order=True), images_per_chunk)


def test_many_filters_per_channel_go_through_the_generic_path_beyond_the_kernels_limit(
        monkeypatch):
    """F*(KH*KW + 1) at or past the kernels' 32-bit in-plane limit (here lowered to 100, the
    planes themselves staying below it) leaves the convolution to im2col and the products,
    with the same results."""
    x, w = normal(0, (2, 2, 4, 4), np.float64), normal(1, (64, 1, 3, 3), np.float64)
    b, args = normal(2, (64,), np.float64), dict(padding=1, groups=2)
    dout = normal(3, (2, 64, 4, 4), np.float64)
    expected = run_conv(x, w, b, args, dout, True)
    monkeypatch.setattr(_cuda_launcher, "PLANE_LIMIT", 100)
    with gpu_dispatch(launcher()) as calls:
        got = run_conv(x, w, b, args, dout, True)
    assert "im2col_kernel" in calls and "gemm" in calls
    assert not KERNELS & set(calls)
    for value, want in zip(got, expected):
        np.testing.assert_allclose(value, want, rtol=1e-12, atol=1e-12)
    geometry = F.conv2d_forward(x, w, b, **args)[1].geometry
    with pytest.raises(ValueError, match=r"64 filters of \(3, 3\) are too many for the "
                                         r"depthwise kernels: F\*\(KH\*KW \+ 1\)"):
        _cuda.depthwise_forward(x, w, b, geometry, launcher())


def test_non_contiguous_operands_and_an_overlapping_output():
    """Strided x, w and dout go through contiguous copies; dx written over dout is refused."""
    emu = launcher()
    x = normal(4, (2, 3, 9, 7), np.float64).transpose(0, 1, 3, 2)  # (2, 3, 7, 9), strided
    w = normal(5, (3, 1, 3, 2), np.float64).transpose(0, 1, 3, 2)
    args = dict(stride=(1, 2), padding=1, dilation=(2, 1), groups=3)
    out, cache = F.conv2d_forward(x, w, None, **args)
    dout = normal(6, out.shape[:2] + out.shape[:1:-1], np.float64).transpose(0, 1, 3, 2)
    expected = run_conv(x, w, None, args, dout, True)
    with gpu_dispatch(emu):
        got = run_conv(x, w, None, args, dout, True)
    for value, want in zip(got[:3], expected[:3]):
        np.testing.assert_allclose(value, want, rtol=1e-12, atol=1e-12)
    assert got[3] is None
    shared = np.zeros(dout.size + x.size)
    dout_view, dx_view = shared[:dout.size].reshape(dout.shape), shared[5:5 + x.size]
    with pytest.raises(ValueError, match="depthwise_backward_data_kernel: the output overlaps "
                                         "the input"):
        _cuda.depthwise_backward_data_into(dout_view, np.ascontiguousarray(w), cache.geometry,
                                           dx_view.reshape(x.shape), emu)
