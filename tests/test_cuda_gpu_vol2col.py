"""Rung 3 for the 3-D column kernels, on a GPU: CuPy through kernels/vol2col.cu.

Every test is marked ``gpu`` (skipped, with the reason, where CuPy or a usable device is
missing). 3-D convolutions on CuPy in float16/32/64, forward and every gradient, against the
NumPy path run in float64 on the same values; the dispatch must take both kernels (vol2col in
the forward and the backward, col2vol for dx); the kernels alone against the NumPy columns and
sums bit for bit (float64: the same copies, the same additions in the same order); two
backward passes must give the same bits, and so must the unrolled and the run-time
instantiations; a chunked backward the single chunk's results.
"""

import numpy as np
import pytest

import fastconv.functional as F
from conftest import record_calls
from fastconv import _cuda, _gpu
from fastconv.im2col import col2im_into, im2col_into, window_geometry
from fastconv.workspace import workspace_limit
from test_cuda_gpu import DTYPES, _launcher, assert_close, bits, rand

# FP32 products whatever FASTCONV_TF32 says (the float32 tolerances are FP32's)
pytestmark = [pytest.mark.gpu, pytest.mark.usefixtures("fp32_products")]

CASES = {  # x shape, w shape, conv3d arguments
    "3x3x3/1 same (unrolled)": ((2, 4, 6, 7, 5), (6, 4, 3, 3, 3), dict(padding=1)),
    "3x3x3/2 asymmetric, groups (unrolled)": ((2, 4, 9, 8, 7), (4, 2, 3, 3, 3),
                                             dict(stride=2, padding=((1, 2), (0, 1), (2, 0)),
                                                  groups=2)),
    "3x2x1 strided dilated": ((3, 3, 7, 9, 6), (5, 3, 3, 2, 1),
                              dict(stride=(1, 3, 2), padding=(2, 0, 1), dilation=(2, 3, 1))),
    "1x1x1 strided": ((2, 3, 5, 6, 7), (4, 3, 1, 1, 1), dict(stride=2)),
}


def _operands(case, dtype):
    """x, w, b (NumPy) and the conv3d arguments of one case."""
    x_shape, w_shape, args = CASES[case]
    return rand(x_shape, dtype, 50), rand(w_shape, dtype, 51), rand(w_shape[:1], dtype, 52), args


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("case", CASES)
def test_conv3d_and_gradients_match_the_numpy_path(cp, monkeypatch, case, dtype):
    x, w, b, args = _operands(case, dtype)
    calls = record_calls(monkeypatch, gemm=(_gpu.gemm.GemmCall, "__call__"))
    out, cache = F.conv3d_forward(cp.asarray(x), cp.asarray(w), cp.asarray(b), **args)
    ref, ref_cache = F.conv3d_forward(*(a.astype(np.float64) for a in (x, w, b)), **args)
    assert_close(out, ref, dtype)
    assert calls == ["vol2col_kernel"], calls
    held = cache.columns is not None  # within the workspace limit: the backward reuses them
    dout = rand(ref.shape, dtype, 53)
    grads = F.conv3d_backward(cp.asarray(dout), cache)
    for got, want in zip(grads, F.conv3d_backward(dout.astype(np.float64), ref_cache)):
        assert_close(got, want, dtype)
    assert calls == ["vol2col_kernel"] * (2 - held) + ["col2vol_kernel"], calls


@pytest.mark.parametrize("case", CASES)
def test_vol2col_and_col2vol_give_the_numpy_paths_bits(cp, case):
    """float64, where the NumPy path copies the same elements and adds the same column
    entries in the same (kernel-offset) order."""
    x_shape, w_shape, args = CASES[case]
    geometry = F.conv3d_forward(np.zeros(x_shape), np.zeros(w_shape), **args)[1].geometry
    x = rand(x_shape, np.float64, 54)
    col_shape = x_shape[:2] + geometry.kernel + geometry.out
    launcher = _cuda.default_launcher()
    cols = _cuda.vol2col_into(cp.asarray(x), geometry, cp.full(col_shape, cp.nan), launcher)
    want = im2col_into(x, geometry, np.empty(col_shape))
    np.testing.assert_array_equal(bits(cols.get(), np), bits(want, np))
    dcols = rand(col_shape, np.float64, 55)
    dx = _cuda.col2vol_into(cp.asarray(dcols), geometry, cp.full(x_shape, cp.nan), launcher)
    want = col2im_into(dcols, geometry, np.empty(x_shape))
    np.testing.assert_array_equal(bits(dx.get(), np), bits(want, np))


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
def test_conv3d_passes_are_bitwise_deterministic(cp, dtype):
    *arrays, args = _operands("3x3x3/2 asymmetric, groups (unrolled)", dtype)
    x, w, b = (cp.asarray(a) for a in arrays)
    first, cache = F.conv3d_forward(x, w, b, **args)
    second = F.conv3d_forward(x, w, b, **args)[0]
    assert cp.array_equal(bits(first, cp), bits(second, cp))
    dout = cp.asarray(rand(first.shape, dtype, 56))
    runs = [F.conv3d_backward(dout, cache) for _ in range(2)]
    for a, b_ in zip(*runs):
        assert cp.array_equal(bits(a, cp), bits(b_, cp))


@pytest.mark.parametrize("dtype", _cuda.UNROLLED_DTYPES, ids=lambda d: d.name)
def test_unrolled_windows_give_the_run_time_instantiations_bits(cp, dtype):
    """Every unrolled vol2col window against the run-time instantiation, bit for bit, both
    kernels, at asymmetric padding and partial last windows."""
    unrolled, runtime = _launcher(cp), _launcher(cp, specialize=False)
    shape = (2, 3, 7, 8, 6)
    x = cp.asarray(rand(shape, dtype, 57))
    for k, s in _cuda.unrolled_windows("vol2col.cu", dtype):
        geometry = window_geometry(shape, k, s, ((k // 2, k - 1), (k - 1, 0), (0, 1)), 1)
        col_shape = shape[:2] + geometry.kernel + geometry.out
        dcols = cp.asarray(rand(col_shape, dtype, k * s))
        results = []
        for launcher in (unrolled, runtime):
            cols = _cuda.vol2col_into(x, geometry, cp.empty(col_shape, dtype), launcher)
            dx = _cuda.col2vol_into(dcols, geometry, cp.empty(shape, dtype), launcher)
            results.append((cols, dx))
        assert {key[2:] for key in unrolled._functions} >= {
            ("vol2col_kernel", (k, s)), ("col2vol_kernel", (k, s))}
        for a, b_ in zip(*results):
            assert cp.array_equal(bits(a, cp), bits(b_, cp)), (k, s)


def test_chunked_and_non_contiguous_conv3d_backward(cp):
    """A workspace of two images' backward buffers (chunks of 2, 2 and 1 images) and strided
    operands give the single chunk's results."""
    x, w, b, args = _operands("3x2x1 strided dilated", np.float64)
    x = np.concatenate([x, x[:2] * 0.5])  # 5 images
    xg = cp.asarray(x.transpose(0, 1, 2, 4, 3).copy()).transpose(0, 1, 2, 4, 3)  # strided
    out, cache = F.conv3d_forward(xg, cp.asarray(w), cp.asarray(b), **args)
    dout = cp.asarray(rand(out.shape, np.float64, 58))
    whole = F.conv3d_backward(dout, cache)
    plan = _gpu.conv3d.backward(dout, cache).plan
    with workspace_limit(sum(buffer.nbytes * (2 if buffer.per_image else 1) for buffer in plan)):
        chunked = F.conv3d_backward(dout, cache)
    ref, ref_cache = F.conv3d_forward(x, w, b, **args)
    assert_close(out, ref, np.float64)
    for a, b_, want in zip(whole, chunked, F.conv3d_backward(dout.get(), ref_cache)):
        assert_close(a, want, np.float64)
        assert_close(b_, want, np.float64)
