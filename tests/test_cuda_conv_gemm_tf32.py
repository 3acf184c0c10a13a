"""The implicit product on the tensor cores in TF32 (kernels/conv_gemm.cu's
``conv_gemm_tf32_kernel``), emulated on the CPU.

The emulator runs each block's threads at once (tests/cuda_emu/cuda_emu.h,
FC_EMU_COOPERATIVE) and each warp's ``mma.sync`` as the PTX ISA lays its fragments out
over the lanes: a lane's registers are gathered from all 32 lanes' and each lane gets back
its own four sums. It refuses an operand that is not TF32 already, so the kernel must round
what it stages. Hypothesis draws the problems of tests/test_cuda_conv_gemm.py (windows,
columns across 128-column tiles, filters across 64-row tiles, capped grids) in float32.

Oracle: the convolution in float64 of the inputs rounded to TF32 (to nearest, ties away
from zero, in NumPy), which the kernel's float32 sums must meet within the sum tolerance of
a float32 reduction: a fragment taken from the wrong lane, register, row or k misses it by
the size of the terms. And the kernel's result must differ from the FP32 kernel's where TF32
rounding changes the inputs (it is rounded, not FP32 under another name).
"""

import numpy as np
import pytest
from hypothesis import given, note, settings
from hypothesis import strategies as st

import fastconv.functional as F
from conftest import gpu_dispatch
from fastconv import _cuda, _gpu
from fastconv.im2col import im2col_into
from fastconv.shapes import window_geometry
from test_cuda_conv_gemm import input_grad_oracle, problems, slab_conv
from test_cuda_emulated import SETTINGS, launcher, normal


def tf32(a):
    """float32 ``a`` rounded to TF32 as cvt.rna.tf32.f32 rounds: 13 low bits off, to nearest,
    ties away from zero (NaN and infinity untouched here: the cases are finite)."""
    bits = np.ascontiguousarray(a, np.float32).view(np.uint32)
    return ((bits + np.uint32(0x1000)) & np.uint32(0xFFFFE000)).view(np.float32)


def assert_tf32_sum(actual, exact, scale, terms):
    """``actual`` (float32) within a float32 sum's rounding of ``exact`` (float64 of the TF32
    inputs): ``terms`` + 2 roundings of 2**-24 times ``scale``, the sum of the terms'
    magnitudes, for each element."""
    assert actual.dtype == np.float32 and not np.isnan(actual).any()
    tolerance = (terms + 2) * 2.0**-24 * scale + 1e-30
    error = np.abs(actual.astype(np.float64) - exact)
    assert (error <= tolerance).all(), f"largest error {error.max()} (tolerance there " \
                                       f"{tolerance.ravel()[error.argmax()]})"


def forward_oracle(x, w, b, geometry):
    """(exact, scale): the convolution of the TF32-rounded x and w in float64, and the same
    over the terms' magnitudes."""
    pads = tuple(p for p, _ in geometry.pads)
    args = (pads, geometry.stride, geometry.dilation, geometry.out)
    x64, w64 = tf32(x).astype(np.float64), tf32(w).astype(np.float64)
    b64 = None if b is None else b.astype(np.float64)
    exact = slab_conv(x64, w64, b64, *args)
    scale = slab_conv(np.abs(x64), np.abs(w64), None if b is None else np.abs(b64), *args)
    return exact, scale


@settings(max_examples=40, **SETTINGS)
@given(problem=problems(), seed=st.integers(0, 2**16), max_blocks=st.sampled_from([1, 2, None]))
def test_forward_is_the_tf32_convolution(problem, seed, max_blocks):
    shape, filters, geometry, has_bias, _ = problem
    note(problem)
    emu = launcher(max_blocks=max_blocks)
    x = normal(seed, shape, np.float32)
    w = normal(seed + 1, (filters, shape[1]) + geometry.kernel, np.float32)
    b = normal(seed + 2, (filters,), np.float32) if has_bias else None
    out = emu.empty((shape[0], filters) + geometry.out, np.float32)
    _cuda.conv_gemm_into(x, w, b, geometry, out, emu, tf32=True)
    exact, scale = forward_oracle(x, w, b, geometry)
    assert_tf32_sum(out, exact, scale, shape[1] * np.prod(geometry.kernel))


@settings(max_examples=30, **SETTINGS)
@given(problem=problems(stride_one=True), seed=st.integers(0, 2**16),
       max_blocks=st.sampled_from([1, 2, None]))
def test_input_grad_is_the_tf32_convolution_over_the_flipped_filters(problem, seed,
                                                                     max_blocks):
    shape, filters, geometry, _, _ = problem
    note(problem)
    emu = launcher(max_blocks=max_blocks)
    dout = normal(seed, (shape[0], filters) + geometry.out, np.float32)
    w = normal(seed + 1, (filters, shape[1]) + geometry.kernel, np.float32)
    dx = emu.empty(shape, np.float32)
    _cuda.conv_input_grad_into(dout, w, geometry, dx, emu, tf32=True)
    d64, w64 = tf32(dout).astype(np.float64), tf32(w).astype(np.float64)
    exact = input_grad_oracle(d64, w64, geometry)
    scale = input_grad_oracle(np.abs(d64), np.abs(w64), geometry)
    assert_tf32_sum(dx, exact, scale, filters * np.prod(geometry.kernel))


@pytest.mark.parametrize("window", _cuda.WINDOWS["conv_gemm.cu"])
def test_unrolled_windows_match_the_oracle_and_differ_from_fp32(window):
    """Each unrolled window over three column tiles and two row tiles: the TF32 oracle met,
    and not the FP32 kernel's bits (the inputs' low bits are dropped)."""
    k, s = window
    shape, filters = (3, 4, 10, 9), 70
    geometry = window_geometry(shape, k, s, k // 2, 1)
    x, w, b = normal(5, shape, np.float32), normal(6, (filters, 4, k, k), np.float32), \
        normal(7, (filters,), np.float32)
    emu = launcher(max_blocks=1)
    out, fp32 = (emu.empty((3, filters) + geometry.out, np.float32) for _ in range(2))
    _cuda.conv_gemm_into(x, w, b, geometry, out, emu, tf32=True)
    _cuda.conv_gemm_into(x, w, b, geometry, fp32, emu)
    assert_tf32_sum(out, *forward_oracle(x, w, b, geometry), 4 * k * k)
    assert (out != fp32).mean() > 0.5


def test_tf32_inputs_give_the_fp32_kernels_sums_closely():
    """Inputs that are TF32 already lose nothing to the rounding: both kernels then sum the
    same exact products, in float32, within a float32 sum's rounding of each other."""
    geometry = window_geometry((2, 3, 8, 8), 3, 1, 1, 1)
    x, w = tf32(normal(1, (2, 3, 8, 8), np.float32)), tf32(normal(2, (16, 3, 3, 3), np.float32))
    emu = launcher()
    out, fp32 = (emu.empty((2, 16, 8, 8), np.float32) for _ in range(2))
    _cuda.conv_gemm_into(x, w, None, geometry, out, emu, tf32=True)
    _cuda.conv_gemm_into(x, w, None, geometry, fp32, emu)
    exact, scale = forward_oracle(x, w, None, geometry)
    assert_tf32_sum(out, exact, scale, 27)
    assert_tf32_sum(fp32, exact, scale, 27)


def test_the_tf32_kernel_is_refused_where_it_cannot_run():
    """float32 only, and a GPU of compute capability 8.0 or newer: refused before any launch
    on a 7.5 (whose mma and cvt.rna.tf32 would trap)."""
    geometry = window_geometry((1, 2, 5, 5), 3, 1, 1, 1)
    x, w = normal(0, (1, 2, 5, 5), np.float64), normal(1, (4, 2, 3, 3), np.float64)
    with pytest.raises(TypeError, match="conv_gemm_tf32_kernel runs on float32 arrays only"):
        _cuda.conv_gemm_into(x, w, None, geometry, np.zeros((1, 4, 5, 5)), launcher(),
                             tf32=True)
    from cuda_emu.emu import emu_launcher

    turing = emu_launcher(capability=75)
    assert not turing.runs("conv_gemm_tf32_kernel") and turing.runs("conv_gemm_kernel")
    out = np.full((1, 4, 5, 5), np.nan, np.float32)
    with pytest.raises(ValueError, match=r"compute capability 8\.0 or newer.*has 7\.5"):
        _cuda.conv_gemm_into(x.astype(np.float32), w.astype(np.float32), None, geometry, out,
                             turing, tf32=True)
    assert np.isnan(out).all()


def conv_through_the_gpu_backend(emu, x, w, b, dout, **args):
    """(launched kernel names, out, dx, dw, db) of conv2d forward and backward on the GPU
    backend with TF32 allowed, its kernels on ``emu``."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(_gpu.conv, "get_tf32", lambda: True)
        with gpu_dispatch(emu) as launched:
            out, cache = F.conv2d_forward(x, w, b, **args)
            grads = F.conv2d_backward(dout, cache)
    return (list(launched), out) + grads


@pytest.mark.parametrize("args", [dict(padding=1), dict(padding=(2, 0), dilation=2),
                                  dict(stride=2, padding=1)],
                         ids=["3x3", "dilated", "strided"])
def test_tf32_layers_run_on_the_tensor_cores(args):
    """With TF32 allowed on a GPU with tensor cores, conv2d's forward is one launch of the
    TF32 kernel (no im2col, no product, the bias in it; no columns), and the backward
    writes no columns either: dW and db from the TF32 weight-gradient kernel and the weight
    sum, a stride-1 dx from the TF32 kernel (a strided one from the column-gradient product
    and col2im). out, dw, db and a stride-1 dx meet the float64 convolution of the
    TF32-rounded inputs, a strided dx the float64 one within float32 sums."""
    x, w, b = normal(0, (2, 3, 7, 8), np.float32), normal(1, (6, 3, 3, 3), np.float32), \
        normal(2, (6,), np.float32)
    out_shape = F.conv2d_forward(x, w, b, **args)[0].shape
    dout = normal(3, out_shape, np.float32)
    launched, out, dx, dw, db = conv_through_the_gpu_backend(launcher(), x, w, b, dout, **args)
    stride_one = args.get("stride", 1) == 1
    dx_steps = ["conv_gemm_tf32_kernel"] if stride_one else ["gemm", "col2im_kernel"]
    assert launched == (["conv_gemm_tf32_kernel"] + (dx_steps if not stride_one else [])
                        + (dx_steps if stride_one else [])
                        + ["conv_weight_grad_tf32_kernel", "weight_sum_kernel"]), launched
    # (value, magnitude) of the float64 CPU path, on the TF32-rounded inputs (what the TF32
    # kernels multiply) and on the inputs themselves (what the FP32 products multiply)
    rounded = [float64_conv(tf32(x), tf32(w), b, tf32(dout), m, **args) for m in (False, True)]
    exact = [float64_conv(x, w, b, dout, m, **args) for m in (False, True)]
    assert_tf32_sum(out, rounded[0][0], rounded[1][0], 3 * 9)
    dx_oracle = rounded if stride_one else exact
    assert_tf32_sum(dx, dx_oracle[0][1], dx_oracle[1][1], 6 * 9)
    positions = int(np.prod(out_shape[2:])) * out_shape[0]
    for got, at in ((dw, 2), (db, 3)):
        assert_tf32_sum(got, rounded[0][at], rounded[1][at], positions)


def float64_conv(x, w, b, dout, magnitude, **args):
    """(out, dx, dw, db) of conv2d on the CPU path in float64, of the inputs' magnitudes
    where ``magnitude``."""
    x, w, b, dout = (np.abs(a.astype(np.float64)) if magnitude else a.astype(np.float64)
                     for a in (x, w, b, dout))
    out, cache = F.conv2d_forward(x, w, b, **args)
    return (out,) + F.conv2d_backward(dout, cache)


def test_tf32_on_a_gpu_without_tensor_cores_keeps_the_fp32_paths():
    """On a GPU of compute capability 7.5, TF32 allowed changes nothing: the forward is
    im2col and a product, and a stride-1 dx comes from the CUDA cores' kernel."""
    from cuda_emu.emu import emu_launcher

    x, w = normal(0, (2, 3, 7, 8), np.float32), normal(1, (6, 3, 3, 3), np.float32)
    dout = normal(3, (2, 6, 7, 8), np.float32)
    launched, *_ = conv_through_the_gpu_backend(emu_launcher(capability=75), x, w, None,
                                                dout, padding=1)
    assert launched[:2] == ["im2col_kernel", "gemm"] and "conv_gemm_kernel" in launched, \
        launched
    assert "conv_gemm_tf32_kernel" not in launched, launched


def columns_of(x, geometry):
    """im2col's columns of float64 ``x`` as one (C*KH*KW, N*OH*OW) matrix, the CPU path's."""
    cols = np.empty(x.shape[:2] + geometry.kernel + geometry.out, np.float64)
    im2col_into(x, geometry, cols)
    n, rows = x.shape[0], int(np.prod(cols.shape[1:4]))
    return cols.reshape(n, rows, -1).transpose(1, 0, 2).reshape(rows, -1)


@settings(max_examples=30, **SETTINGS)
@given(problem=problems(), seed=st.integers(0, 2**16), max_blocks=st.sampled_from([1, 2, None]))
def test_weight_grad_partials_are_the_tf32_products_of_each_split(problem, seed, max_blocks):
    """Each split's partials are dout times the TF32-rounded columns over its columns, and
    the bias slot dout's sum there (or, without a bias, never written: NaN poison)."""
    note(problem)
    check_weight_grad(*problem[:4], seed, launcher(max_blocks=max_blocks))


@pytest.mark.parametrize("has_bias", [False, True])
@pytest.mark.parametrize("window", [(3, 1, 1), (5, 2, 2), (1, 2, 0)])
def test_weight_grad_over_several_splits_and_tiles(window, has_bias):
    """1,200-odd columns in 3 splits, 70 filters over two row tiles, 15 channels' 135 kernel
    offsets (and the bias's) over two column tiles; grids of 1 block per axis, so the
    grid-stride loop walks the (split, tile) pairs."""
    k, s, p = window
    shape = (3, 15, 20, 21)
    geometry = window_geometry(shape, k, s, p, 1)
    check_weight_grad(shape, 70, geometry, has_bias, 11, launcher(max_blocks=1))


def check_weight_grad(shape, filters, geometry, has_bias, seed, emu):
    """conv_weight_grad_into on ``emu`` against each split's float64 products of the
    TF32-rounded dout and columns; without a bias the last slot is never written."""
    x = normal(seed, shape, np.float32)
    dout = normal(seed + 1, (shape[0], filters) + geometry.out, np.float32)
    splits, _ = _cuda.weight_grad_splits(dout.size // filters)
    partials = emu.empty((splits, filters, int(np.prod(shape[1:2] + geometry.kernel)) + 1),
                         np.float32)
    _cuda.conv_weight_grad_into(x, dout, geometry, partials, has_bias, emu)
    assert_weight_grad_partials(partials, x, dout, geometry, has_bias, 1)
    assert np.isnan(partials[..., -1]).all() != has_bias


def assert_weight_grad_partials(partials, x, dout, geometry, has_bias, slack):
    """Each split's ``partials`` within ``slack`` times a float32 sum's rounding of the
    float64 products of the TF32-rounded dout and columns (and of dout's sums, the bias
    slot, where ``has_bias``)."""
    columns = columns_of(tf32(x).astype(np.float64), geometry)
    filters = dout.shape[1]
    d = tf32(dout).astype(np.float64).transpose(1, 0, 2, 3).reshape(filters, -1)
    splits, split = _cuda.weight_grad_splits(d.shape[1])
    assert partials.shape == (splits, filters, columns.shape[0] + 1)
    used = columns.shape[0] + has_bias
    for s in range(splits):
        part = slice(s * split, (s + 1) * split)
        rows = np.vstack([columns[:, part], np.ones((1, d[:, part].shape[1]))])[:used]
        assert_tf32_sum(partials[s][:, :used], d[:, part] @ rows.T,
                        np.abs(d[:, part]) @ np.abs(rows).T, slack * split)


def test_weight_grad_splits_cover_the_columns_once():
    """Every column in exactly one split, each a multiple of 8 columns but the last, none
    empty, at most 64; S3's 32,768 in 64 of 512."""
    for columns in (1, 7, 8, 100, 511, 513, 4096, 32768, 10**6):
        splits, split = _cuda.weight_grad_splits(columns)
        assert split % 8 == 0 and 1 <= splits <= 64
        assert (splits - 1) * split < columns <= splits * split, columns
    assert _cuda.weight_grad_splits(32768) == (64, 512)
