"""Rung 3 for the implicit-product convolution kernel, on a GPU: CuPy through kernels/conv_gemm.cu.

Every test is marked ``gpu`` (skipped, with the reason, where CuPy or a usable device is
missing). The kernel's forward and stride-1 input gradient on CuPy in float16/32/64 are
compared with the NumPy path in float64 on the same values (on the GPU the products fuse
into FMAs, so not bit for bit), and through conv2d_backward, which must take it for a
float32 stride-1 layer; two launches and the unrolled against the run-time instantiation must give
the same bits; S3's backward is timed on it and on the column-gradient product and col2im
it replaces (reported, never asserted). Its TF32 kernel, on a GPU of compute capability
8.0 or newer, against the float64 convolution of the TF32-rounded inputs, through conv2d
with TF32 allowed, and S3's forward and backward timed with it against the explicit TF32
products.
"""

import numpy as np
import pytest

import fastconv.functional as F
from conftest import gpu_milliseconds, record_calls
from cuda_emu.report import summary_lines
from fastconv import _cuda, _gpu
from fastconv.bench.tf32 import fastconv_tf32
from fastconv.shapes import window_geometry
from test_cuda_conv_gemm_tf32 import (assert_tf32_sum, assert_weight_grad_partials,
                                      float64_conv, tf32)
from test_cuda_gpu import DTYPES, _launcher, assert_close, bits, rand

# FP32 products whatever FASTCONV_TF32 says (the float32 tolerances are FP32's)
pytestmark = [pytest.mark.gpu, pytest.mark.usefixtures("fp32_products")]

CASES = {  # x shape, filters, kernel, conv2d arguments (stride 1: the input gradient too)
    "3x3 (unrolled), tiles across images": ((3, 5, 10, 9), 70, (3, 3), dict(padding=1)),
    "5x5 (unrolled), cropped": ((2, 4, 9, 12), 8, (5, 5), dict(padding=(5, 1))),
    "3x2 dilated asymmetric": ((2, 3, 11, 7), 65, (3, 2),
                               dict(padding=((1, 2), (0, 1)), dilation=(2, 1))),
    "3x3/2": ((2, 6, 13, 11), 16, (3, 3), dict(stride=2, padding=1)),
}


def _operands(case, dtype):
    shape, filters, kernel, args = CASES[case]
    x, w = rand(shape, dtype, 60), rand((filters, shape[1]) + kernel, dtype, 61)
    return x, w, rand((filters,), dtype, 62), args


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("case", CASES)
def test_the_kernel_computes_the_numpy_paths_conv_and_input_grad(cp, case, dtype):
    x, w, b, args = _operands(case, dtype)
    geometry = window_geometry(x.shape, w.shape[2:], args.get("stride", 1), args["padding"],
                               args.get("dilation", 1))
    ref, ref_cache = F.conv2d_forward(*(a.astype(np.float64) for a in (x, w, b)), **args)
    out = cp.empty(ref.shape, dtype)
    _cuda.conv_gemm_into(cp.asarray(x), cp.asarray(w), cp.asarray(b), geometry, out,
                         _cuda.default_launcher())
    assert_close(out, ref, dtype)
    if geometry.stride == (1, 1):
        dout = rand(ref.shape, dtype, 63)
        dx = cp.empty(x.shape, dtype)
        _cuda.conv_input_grad_into(cp.asarray(dout), cp.asarray(w), geometry, dx,
                                   _cuda.default_launcher())
        assert_close(dx, F.conv2d_backward(dout.astype(np.float64), ref_cache)[0], dtype)


def test_a_float32_stride_one_backward_takes_the_kernel_and_repeats_its_bits(cp, monkeypatch):
    """float32 in FP32 (the fixture): dx from the kernel, against the NumPy path, the same
    bits twice (float16, float64 and TF32 keep the tensor-core products and col2im)."""
    dtype = np.float32
    x, w, b, args = _operands("3x3 (unrolled), tiles across images", dtype)
    calls = record_calls(monkeypatch, gemm=(_gpu.gemm.GemmCall, "__call__"))
    out, cache = F.conv2d_forward(cp.asarray(x), cp.asarray(w), cp.asarray(b), **args)
    dout = cp.asarray(rand(out.shape, dtype, 64))
    runs = [F.conv2d_backward(dout, cache) for _ in range(2)]
    assert "conv_gemm_kernel" in calls and "col2im_kernel" not in calls, calls
    ref, ref_cache = F.conv2d_forward(*(a.astype(np.float64) for a in (x, w, b)), **args)
    for got, want in zip(runs[0], F.conv2d_backward(dout.get().astype(np.float64), ref_cache)):
        assert_close(got, want, dtype)
    for a, b_ in zip(*runs):
        assert cp.array_equal(bits(a, cp), bits(b_, cp))


@pytest.mark.parametrize("dtype", _cuda.UNROLLED_DTYPES, ids=lambda d: d.name)
def test_unrolled_windows_give_the_run_time_instantiations_bits(cp, dtype):
    """The same terms in the same order, FMAs included."""
    unrolled, runtime = _launcher(cp), _launcher(cp, specialize=False)
    x = cp.asarray(rand((2, 3, 11, 10), dtype, 65))
    for k, s in _cuda.unrolled_windows("conv_gemm.cu", dtype):
        geometry = window_geometry(x.shape, k, s, k // 2, 1)
        w = cp.asarray(rand((66, 3, k, k), dtype, k))
        results = []
        for launcher in (unrolled, runtime):
            out = cp.empty((2, 66) + geometry.out, dtype)
            results.append(_cuda.conv_gemm_into(x, w, None, geometry, out, launcher))
        assert cp.array_equal(bits(results[0], cp), bits(results[1], cp)), (k, s)


def test_s3_backward_on_the_kernel_against_col2im_time(cp, monkeypatch, request):
    """Reports (no assertion on times) S3's (32, 64, 32, 32) 3x3 backward with dx from the
    kernel and, with it off, from the column-gradient product and col2im; and the kernel's
    rate in TFLOP/s."""
    x = cp.asarray(rand((32, 64, 32, 32), np.float32, 66))
    w, b = cp.asarray(rand((64, 64, 3, 3), np.float32, 67)), cp.zeros(64, cp.float32)
    out, cache = F.conv2d_forward(x, w, b, padding=1)
    dout = cp.ones_like(out)
    geometry = window_geometry(x.shape, 3, 1, 1, 1)
    dx = cp.empty_like(x)
    kernel = gpu_milliseconds(cp, lambda: _cuda.conv_input_grad_into(
        dout, w, geometry, dx, _cuda.default_launcher()))
    with_kernel = gpu_milliseconds(cp, lambda: F.conv2d_backward(dout, cache))
    without_kernel(monkeypatch)
    with_col2im = gpu_milliseconds(cp, lambda: F.conv2d_backward(dout, cache))
    tflops = 2 * 32 * 1024 * 64 * 576 / (kernel * 1e-3) / 1e12
    summary_lines(request.config).append(
        f"S3 float32 backward: {with_kernel:.3f} ms with dx from conv_gemm_kernel "
        f"({kernel:.3f} ms, {tflops:.1f} TFLOP/s), {with_col2im:.3f} ms with the column "
        f"gradient and col2im")


def without_kernel(monkeypatch, tf32=False):
    """The layers' steps prepared again without the implicit product for dx (and, where
    ``tf32``, for the forward and dW): the column-gradient product and col2im, and the
    explicit products."""
    steps = _gpu.conv_steps
    monkeypatch.setattr(steps, "implicit_input_grad_fits", lambda *args: False)
    if tf32:
        monkeypatch.setattr(_gpu.conv, "implicit_tf32_fits", lambda *args: False)
    for memo in (steps.forward_plan, steps.forward_steps, steps.backward_plan,
                 steps.backward_steps):
        memo.cache_clear()


@pytest.fixture
def tensor_cores(cp):
    """The current GPU's TF32 tensor cores (compute capability 8.0+), else a skip."""
    if not _cuda.default_launcher().runs("conv_gemm_tf32_kernel"):
        pytest.skip("the GPU has no TF32 tensor cores (compute capability below 8.0)")


@pytest.mark.parametrize("case", CASES)
def test_the_tf32_kernel_meets_the_tf32_convolution(cp, tensor_cores, case):
    """Forward and stride-1 input gradient on the tensor cores against the float64
    convolution of the TF32-rounded inputs, within twice a float32 sum's rounding (the
    tensor cores may truncate their adds); the same bits twice."""
    x, w, b, args = _operands(case, np.float32)
    geometry = window_geometry(x.shape, w.shape[2:], args.get("stride", 1), args["padding"],
                               args.get("dilation", 1))
    dout = rand(F.conv2d_forward(x, w, b, **args)[0].shape, np.float32, 68)
    rounded = [float64_conv(tf32(x), tf32(w), b, tf32(dout), m, **args) for m in (False, True)]
    runs = []
    for _ in range(2):
        out = cp.empty(rounded[0][0].shape, np.float32)
        _cuda.conv_gemm_into(cp.asarray(x), cp.asarray(w), cp.asarray(b), geometry, out,
                             tf32=True)
        runs.append(out)
        assert_tf32_sum(out.get(), rounded[0][0], rounded[1][0], 2 * int(np.prod(w.shape[1:])))
    assert cp.array_equal(bits(runs[0], cp), bits(runs[1], cp))
    if geometry.stride == (1, 1):
        dx = cp.empty(x.shape, np.float32)
        _cuda.conv_input_grad_into(cp.asarray(dout), cp.asarray(w), geometry, dx, tf32=True)
        assert_tf32_sum(dx.get(), rounded[0][1], rounded[1][1],
                        2 * w.shape[0] * int(np.prod(w.shape[2:])))


@pytest.mark.parametrize("has_bias", [False, True])
@pytest.mark.parametrize("case", CASES)
def test_the_tf32_weight_grad_meets_the_tf32_products(cp, tensor_cores, case, has_bias):
    """Each split's partials against the float64 products of the TF32-rounded dout and
    columns (twice a float32 sum's rounding), the bias slot dout's sums."""
    x, w, _, args = _operands(case, np.float32)
    geometry = window_geometry(x.shape, w.shape[2:], args.get("stride", 1), args["padding"],
                               args.get("dilation", 1))
    dout = rand((x.shape[0], w.shape[0]) + geometry.out, np.float32, 72)
    splits, _ = _cuda.weight_grad_splits(dout.size // w.shape[0])
    partials = cp.zeros((splits, w.shape[0], int(np.prod(w.shape[1:])) + 1), np.float32)
    _cuda.conv_weight_grad_into(cp.asarray(x), cp.asarray(dout), geometry, partials, has_bias)
    assert_weight_grad_partials(partials.get(), x, dout, geometry, has_bias, 2)


def test_tf32_layers_take_the_tf32_kernels(cp, tensor_cores, monkeypatch):
    """conv2d with TF32 allowed: the forward, dW and db, and a stride-1 dx from the TF32
    kernels, no im2col, no col2im; every result within TF32's documented error of the
    float64 one."""
    x, w, b, args = _operands("3x3 (unrolled), tiles across images", np.float32)
    calls = record_calls(monkeypatch, gemm=(_gpu.gemm.GemmCall, "__call__"))
    with fastconv_tf32(True):
        out, cache = F.conv2d_forward(cp.asarray(x), cp.asarray(w), cp.asarray(b), **args)
        dout = rand(out.shape, np.float32, 69)
        dx, dw, db = F.conv2d_backward(cp.asarray(dout), cache)
    assert calls[0] == "conv_gemm_tf32_kernel" and calls.count("conv_gemm_tf32_kernel") == 2
    assert "conv_weight_grad_tf32_kernel" in calls, calls
    assert "col2im_kernel" not in calls and "im2col_kernel" not in calls, calls
    exact = float64_conv(x, w, b, dout, False, **args)
    for got, want in zip((out, dx, dw, db), exact):
        error = np.abs(got.get() - want).max() / np.abs(want).max()
        assert error <= 4e-3, error  # inputs rounded to 10 mantissa bits


def test_s3_with_tf32_on_the_kernel_against_the_explicit_products_time(cp, tensor_cores,
                                                                       monkeypatch, request):
    """Reports (no assertion on times) S3's float32 forward and backward with TF32 allowed,
    on the TF32 kernels and on the explicit TF32 products, im2col and col2im; and the
    forward kernel's rate in TFLOP/s."""
    x = cp.asarray(rand((32, 64, 32, 32), np.float32, 70))
    w, b = cp.asarray(rand((64, 64, 3, 3), np.float32, 71)), cp.zeros(64, cp.float32)
    out = cp.empty((32, 64, 32, 32), np.float32)
    geometry = window_geometry(x.shape, 3, 1, 1, 1)

    def step():
        y, cache = F.conv2d_forward(x, w, b, padding=1)
        F.conv2d_backward(cp.ones_like(y), cache)

    with fastconv_tf32(True):
        kernel = gpu_milliseconds(cp, lambda: _cuda.conv_gemm_into(x, w, b, geometry, out,
                                                                   tf32=True))
        implicit = gpu_milliseconds(cp, step)
        without_kernel(monkeypatch, tf32=True)
        explicit = gpu_milliseconds(cp, step)
    tflops = 2 * 32 * 1024 * 64 * 576 / (kernel * 1e-3) / 1e12
    summary_lines(request.config).append(
        f"S3 float32 forward+backward, TF32: {implicit:.3f} ms on the TF32 kernels "
        f"(forward {kernel:.3f} ms, {tflops:.1f} TFLOP/s), {explicit:.3f} ms on the explicit "
        f"TF32 products, im2col and col2im")
