"""The implicit-product convolution kernel (kernels/conv_gemm.cu), emulated on the CPU.

The kernel is the only one that tiles its work in ``__shared__`` memory between
``__syncthreads`` barriers, so the emulator runs each block's threads at once, one
std::thread each (tests/cuda_emu/cuda_emu.h, FC_EMU_COOPERATIVE). Every launch goes through
fastconv/_cuda.py's wrappers and the tile grid it computes, on outputs poisoned with NaN.
Hypothesis draws the window (kernel 1 to 5 per axis, stride 1 to 3, dilation 1 or 2,
asymmetric padding; half the time one with an unrolled instantiation), the batch and sizes
so that the columns (images x positions) cross the 128-column tiles, up to 70 filters (two
64-row tiles), the bias, the dtype, and grids capped at 1 or 2 blocks per axis, so that the
grid-stride loops over the tiles do the work.

Oracles:

- slab sums (whole strided views of the zero-padded input times one weight, added tap
  after tap in the kernel's (c, kh, kw) order in the accumulator dtype, then the bias,
  rounded once): bit for bit, for the forward and for the input gradient of a stride-1
  convolution (dout convolved with the flipped, transposed filters, its padding negative
  where the forward's is wider than the window: a crop);
- the CPU path's input gradient (im2col and BLAS products, another formulation), within
  the sum tolerance of tests/test_cuda_emulated.py, through conv2d_backward on the GPU
  backend, which must launch this kernel and no col2im for a stride-1 layer;
- on an unrolled window, the run-time instantiation's bits; a second launch's bits.
"""

import collections
import re

import numpy as np
import pytest
from hypothesis import given, note, settings
from hypothesis import strategies as st

import fastconv.functional as F
from conftest import gpu_dispatch
from cuda_emu.report import built_and_reported
from fastconv import _cuda
from fastconv._gpu.conv_steps import implicit_input_grad_fits
from fastconv.backend import accumulator_dtype
from fastconv.shapes import window_geometry
from test_cuda_emulated import (DTYPES, SETTINGS, assert_sum_close, bits, conv_windows,
                                cpu_references, launcher, normal)

CASES = collections.Counter()


build_and_report = built_and_reported(
    "Implicit-product convolution", "slab sums in the kernel's order, bit for bit", CASES)


def slab_conv(x, w, b, pads, stride, dilation, out_size):
    """The convolution the kernel computes, as whole-array adds in its order of summation:
    x (N, C, H, W) padded by ``pads`` (top, left; negative crops) and zeros after, each
    tap (c, kh, kw) in turn times w's weight (M, C, KH, KW), in the accumulator dtype, then
    the bias; rounded once to x's dtype."""
    acc = accumulator_dtype(x.dtype)
    (top, left), (sh, sw), (dh, dw), (oh, ow) = pads, stride, dilation, out_size
    kh_size, kw_size = w.shape[2:]
    reach = ((oh - 1) * sh + (kh_size - 1) * dh + 1, (ow - 1) * sw + (kw_size - 1) * dw + 1)
    padded = np.zeros(x.shape[:2] + tuple(max(r, n + max(p, 0)) for r, n, p in
                                           zip(reach, x.shape[2:], pads)), acc)
    cropped = x[:, :, max(-top, 0):, max(-left, 0):].astype(acc)
    padded[:, :, max(top, 0):max(top, 0) + cropped.shape[2],
           max(left, 0):max(left, 0) + cropped.shape[3]] = cropped
    weights = w.astype(acc)
    out = np.zeros((x.shape[0], w.shape[0], oh, ow), acc)
    for c in range(x.shape[1]):
        for kh in range(kh_size):
            for kw in range(kw_size):
                tap = padded[:, c, kh * dh:kh * dh + (oh - 1) * sh + 1:sh,
                             kw * dw:kw * dw + (ow - 1) * sw + 1:sw]
                out += weights[None, :, c, kh, kw, None, None] * tap[:, None]
    if b is not None:
        out += b.astype(acc)[None, :, None, None]
    return out.astype(x.dtype)


def input_grad_oracle(dout, w, geometry):
    """The input gradient of a stride-1 convolution, by slab_conv over the flipped filters."""
    pads = tuple(d * (k - 1) - before for (before, _), k, d in
                 zip(geometry.pads, geometry.kernel, geometry.dilation))
    flipped = w[:, :, ::-1, ::-1].transpose(1, 0, 2, 3)
    return slab_conv(dout, flipped, None, pads, (1, 1), geometry.dilation, geometry.size)


@st.composite
def problems(draw, stride_one=False):
    """x shape, filters, geometry, bias and dtype; columns across tiles, filters across
    64-row tiles some of the time."""
    shape, kernel, stride, pads, dilation = draw(conv_windows("conv_gemm.cu"))
    if stride_one:
        stride = (1, 1)
    n, c = draw(st.integers(1, 3)), draw(st.integers(1, 9))
    shape = (n, c) + tuple(s + draw(st.sampled_from([0, 0, 4])) for s in shape[2:])
    geometry = window_geometry(shape, kernel, stride, pads, dilation)
    filters = draw(st.sampled_from([1, 3, 16, 64, 65, 70]))
    return shape, filters, geometry, draw(st.booleans()), draw(st.sampled_from(DTYPES))


def check_forward(shape, filters, geometry, has_bias, dtype, seed, emu):
    """conv_gemm_into on ``emu`` against slab_conv, bit for bit; the run-time
    instantiation's bits on an unrolled window."""
    x = normal(seed, shape, dtype)
    w = normal(seed + 1, (filters, shape[1]) + geometry.kernel, dtype)
    b = normal(seed + 2, (filters,), dtype) if has_bias else None
    out = emu.empty((shape[0], filters) + geometry.out, dtype)
    _cuda.conv_gemm_into(x, w, b, geometry, out, emu)
    expected = slab_conv(x, w, b, tuple(p for p, _ in geometry.pads), geometry.stride,
                         geometry.dilation, geometry.out)
    np.testing.assert_array_equal(bits(out), bits(expected))
    window = _cuda.window_of("conv_gemm.cu", dtype, geometry.kernel, geometry.stride,
                             geometry.dilation)
    if window != _cuda.RUNTIME_WINDOW:
        again = emu.empty(out.shape, dtype)
        _cuda.conv_gemm_into(x, w, b, geometry, again, launcher(specialize=False))
        np.testing.assert_array_equal(bits(again), bits(out))
    CASES["forward", np.dtype(dtype).name, window] += 1


@settings(max_examples=60, **SETTINGS)
@given(problem=problems(), seed=st.integers(0, 2**16), max_blocks=st.sampled_from([1, 2, None]))
def test_forward_is_the_slab_sum_bit_for_bit(problem, seed, max_blocks):
    note(problem)
    check_forward(*problem, seed, launcher(max_blocks=max_blocks))


@settings(max_examples=60, **SETTINGS)
@given(problem=problems(stride_one=True), seed=st.integers(0, 2**16),
       max_blocks=st.sampled_from([1, 2, None]))
def test_input_grad_is_the_slab_sum_over_the_flipped_filters_bit_for_bit(problem, seed,
                                                                         max_blocks):
    shape, filters, geometry, _, dtype = problem
    note(problem)
    emu = launcher(max_blocks=max_blocks)
    dout = normal(seed, (shape[0], filters) + geometry.out, dtype)
    w = normal(seed + 1, (filters, shape[1]) + geometry.kernel, dtype)
    dx = emu.empty(shape, dtype)
    _cuda.conv_input_grad_into(dout, w, geometry, dx, emu)
    np.testing.assert_array_equal(bits(dx), bits(input_grad_oracle(dout, w, geometry)))
    CASES["input grad", np.dtype(dtype).name] += 1


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("window", _cuda.WINDOWS["conv_gemm.cu"])
@pytest.mark.parametrize("filters", [5, 64, 70])
def test_every_unrolled_window_on_tiles_of_several_images(window, filters, dtype):
    """Hypothesis may draw them rarely: each unrolled window, padded as the layers pad it,
    over 3 images of 10 x 9 (270 columns: three column tiles, the last partly outside and
    the first two crossing from one image into the next), grids of one block per axis."""
    k, s = window
    shape = (3, 4, 10, 9)
    geometry = window_geometry(shape, k, s, k // 2, 1)
    check_forward(shape, filters, geometry, True, dtype, 7, launcher(max_blocks=1))


def test_two_launches_give_the_same_bits():
    """The block's threads run concurrently in another order each time; every output is
    one thread's, summed in k order after barriers, so the bits cannot change."""
    geometry = window_geometry((2, 5, 9, 9), 3, 1, 1, 1)
    x, w = normal(1, (2, 5, 9, 9), np.float32), normal(2, (70, 5, 3, 3), np.float32)
    emu = launcher(max_blocks=2)
    first, second = emu.empty((2, 70, 9, 9), np.float32), emu.empty((2, 70, 9, 9), np.float32)
    _cuda.conv_gemm_into(x, w, None, geometry, first, emu)
    _cuda.conv_gemm_into(x, w, None, geometry, second, emu)
    np.testing.assert_array_equal(bits(first), bits(second))


def run_conv(x, w, b, args, dout, needs_dx):
    """(out, dx, dw, db) of conv2d_forward and conv2d_backward."""
    out, cache = F.conv2d_forward(x, w, b, **args)
    return (out,) + F.conv2d_backward(dout, cache, needs_input_grad=needs_dx)


@pytest.mark.parametrize("args", [dict(padding=1), dict(padding=(2, 0), dilation=2),
                                  dict(padding=3)], ids=["3x3", "dilated", "cropped"])
def test_a_stride_one_backward_takes_dx_from_the_kernel_not_col2im(args):
    """Through conv2d_backward on the GPU backend, float32: dx from conv_gemm_kernel, no
    col2im and one product fewer, against the CPU path; dw and db as before."""
    dtype = np.float32
    x, w, b = normal(0, (2, 3, 7, 8), dtype), normal(1, (6, 3, 3, 3), dtype), normal(2, (6,), dtype)
    out_shape = F.conv2d_forward(x, w, b, **args)[0].shape
    dout = normal(3, out_shape, dtype)
    same, exact, scale = cpu_references(run_conv, x, w, b, args, dout)
    with gpu_dispatch(launcher()) as launched:
        got = run_conv(x, w, b, args, dout, True)
    backward = launched[launched.index("conv_gemm_kernel") - 1:]
    assert "col2im_kernel" not in launched and backward.count("gemm") == 1, launched
    # the backward's results (the forward is unchanged: im2col and a product)
    for actual, expected, wide, magnitude in zip(got[1:], same[1:], exact[1:], scale[1:]):
        assert_sum_close(actual, expected, wide, magnitude)


@pytest.mark.parametrize("args", [dict(stride=2, padding=1), dict(padding=1, groups=2)],
                         ids=["strided", "grouped"])
def test_strided_and_grouped_backwards_keep_col2im(args):
    """A strided window's input gradient is no stride-1 convolution of dout, and groups
    (other than depthwise) would need a launch per group: both still take the column
    gradient and col2im."""
    assert_col2im_backward(np.float32, args)


@pytest.mark.parametrize("dtype", [np.float16, np.float64])
def test_tensor_core_products_keep_col2im(dtype):
    """float16 and float64 keep the products, which cuBLAS runs on tensor cores where the
    GPU has them for those dtypes, and col2im (float32 with TF32 allowed takes the TF32
    kernel: tests/test_cuda_conv_gemm_tf32.py)."""
    assert_col2im_backward(dtype, dict(padding=1))


def assert_col2im_backward(dtype, args):
    """conv2d's backward on the GPU backend launches col2im and not conv_gemm_kernel."""
    x, w = normal(0, (2, 4, 7, 8), dtype), normal(1, (6, 4 // args.get("groups", 1), 3, 3),
                                                   dtype)
    dout = normal(3, F.conv2d_forward(x, w, None, **args)[0].shape, dtype)
    with gpu_dispatch(launcher()) as launched:
        run_conv(x, w, None, args, dout, True)
    assert "col2im_kernel" in launched and "conv_gemm_kernel" not in launched, launched


def test_the_registry_states_the_kernels_tile():
    """The launch's block and grid come from TILES; the kernel's loops from its constants."""
    source = _cuda.kernel_source("conv_gemm.cu")
    constants = [int(re.search(rf"constexpr int FC_TILE_{name} = (\d+);", source).group(1))
                 for name in ("M", "N", "K", "THREADS")]
    assert tuple(constants) == _cuda.TILES["conv_gemm_kernel"]


def test_refusals_come_before_any_launch():
    emu = launcher()
    geometry = window_geometry((1, 2, 5, 5), 3, 2, 1, 1)
    x, w = normal(0, (1, 2, 5, 5), np.float32), normal(1, (4, 2, 3, 3), np.float32)
    with pytest.raises(ValueError, match="stride-1"):
        _cuda.conv_input_grad_into(normal(2, (1, 4, 3, 3), np.float32), w, geometry,
                                   emu.empty(x.shape, np.float32), emu)
    out = np.zeros((1, 2, 5, 5), np.float32)
    with pytest.raises(ValueError, match="overlaps"):
        _cuda.conv_input_grad_into(out, normal(1, (2, 2, 3, 3), np.float32),
                                   window_geometry((1, 2, 5, 5), 3, 1, 1, 1), out, emu)
    # a plane of 2**29 rows: the kernel's marker for the padding would be within reach
    tall = window_geometry((1, 1, 2**29, 1), (3, 1), 1, (1, 0), 1)
    assert not _cuda.conv_gemm_fits((1, 1, 3, 1), tall)
    assert not _cuda.conv_gemm_fits((1, 1, 3, 1), tall, True)
    with pytest.raises(ValueError, match=r"2\*\*29"):
        _cuda.conv_gemm_into(x, w, None, tall, out, emu)
    assert _cuda.conv_gemm_fits((64, 64, 3, 3), window_geometry((32, 64, 32, 32), 3, 1, 1, 1), True)
    assert not implicit_input_grad_fits(w.shape, w.dtype, tall, 1)
    # 2**31 filter entries (broadcast: no memory), which the kernel indexes in 32 bits
    wide = np.broadcast_to(np.float32(1), (2**16, 2**15, 1, 1))
    geometry = window_geometry((1, 2**15, 1, 1), 1, 1, 1, 1)
    assert _cuda.conv_gemm_fits((2**16, 2**15 - 1, 1, 1), geometry, True)
    assert not _cuda.conv_gemm_fits(wide.shape, geometry)
    assert not _cuda.conv_gemm_fits(wide.shape, geometry, True)
    assert not implicit_input_grad_fits(wide.shape, wide.dtype, geometry, 1)
    x, dx = np.zeros((1, 2**15, 1, 1), np.float32), np.zeros((1, 2**15, 1, 1), np.float32)
    with pytest.raises(ValueError, match=r"filters \(65536, 32768, 1, 1\).*2\*\*31"):
        _cuda.conv_input_grad_into(np.zeros((1, 2**16, 3, 3), np.float32), wide, geometry,
                                   dx, emu)
    with pytest.raises(ValueError, match=r"filters \(65536, 32768, 1, 1\)"):
        _cuda.conv_gemm_into(x, wide, None, geometry,
                             np.zeros((1, 2**16, 3, 3), np.float32), emu)
