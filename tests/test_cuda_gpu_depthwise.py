"""Rung 3 for the depthwise kernels, on a GPU: CuPy through kernels/depthwise.cu.

Every test is marked ``gpu`` (skipped, with the reason, where CuPy or a usable device
is missing). Depthwise convolutions (groups == C) on CuPy in float16/32/64 are compared,
forward and every gradient, with the NumPy path run in float64 on the same values; the
dispatch must take the depthwise kernels and no matrix product; two backward passes must
give the same bits, and so must the unrolled and the run-time instantiations.
"""

import numpy as np
import pytest

import fastconv.functional as F
from conftest import gpu_milliseconds, record_calls
from cuda_emu.report import summary_lines
from fastconv import _cuda, _gpu
from fastconv.workspace import workspace_limit
from test_cuda_gpu import DTYPES, _launcher, assert_close, bits, rand

# FP32 products whatever FASTCONV_TF32 says (the float32 tolerances are FP32's)
pytestmark = [pytest.mark.gpu, pytest.mark.usefixtures("fp32_products")]

CASES = {  # x shape, filters per channel, kernel, conv2d arguments
    "3x3/1 (unrolled)": ((2, 8, 12, 11), 1, (3, 3), dict(padding=1)),
    "5x5/2 x2 asymmetric (unrolled)": ((2, 4, 13, 9), 2, (5, 5),
                                       dict(stride=2, padding=((2, 3), (1, 2)))),
    "3x2 dilated x3": ((3, 3, 10, 12), 3, (3, 2), dict(stride=(1, 3), padding=(2, 0),
                                                        dilation=(2, 3))),
    "1x1": ((2, 5, 6, 7), 1, (1, 1), {}),
    "7x7 same": ((1, 6, 9, 9), 1, (7, 7), dict(padding="same")),
}


def _operands(case, dtype):
    """x, w, b (NumPy) and the conv2d arguments of one case."""
    shape, multiplier, kernel, args = CASES[case]
    filters = shape[1] * multiplier
    x, w = rand(shape, dtype, 40), rand((filters, 1) + kernel, dtype, 41)
    return x, w, rand((filters,), dtype, 42), dict(args, groups=shape[1])


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("case", CASES)
def test_depthwise_conv_and_gradients_match_the_numpy_path(cp, monkeypatch, case, dtype):
    x, w, b, args = _operands(case, dtype)
    calls = record_calls(monkeypatch, gemm=(_gpu.gemm.GemmCall, "__call__"))
    out, cache = F.conv2d_forward(cp.asarray(x), cp.asarray(w), cp.asarray(b), **args)
    ref, ref_cache = F.conv2d_forward(*(a.astype(np.float64) for a in (x, w, b)), **args)
    assert_close(out, ref, dtype)
    dout = rand(ref.shape, dtype, 43)
    grads = F.conv2d_backward(cp.asarray(dout), cache)
    for got, want in zip(grads, F.conv2d_backward(dout.astype(np.float64), ref_cache)):
        assert_close(got, want, dtype)
    assert set(calls) == {name for name, (file, _) in _cuda.KERNELS.items()
                          if file == "depthwise.cu"}, calls


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
def test_depthwise_passes_are_bitwise_deterministic(cp, dtype):
    *arrays, args = _operands("5x5/2 x2 asymmetric (unrolled)", dtype)
    x, w, b = (cp.asarray(a) for a in arrays)
    first, cache = F.conv2d_forward(x, w, b, **args)
    second = F.conv2d_forward(x, w, b, **args)[0]
    assert cp.array_equal(bits(first, cp), bits(second, cp))
    dout = cp.asarray(rand(first.shape, dtype, 44))
    runs = [F.conv2d_backward(dout, cache) for _ in range(2)]
    for a, b_ in zip(*runs):
        assert cp.array_equal(bits(a, cp), bits(b_, cp))


@pytest.mark.parametrize("dtype", _cuda.UNROLLED_DTYPES, ids=lambda d: d.name)
def test_depthwise_unrolled_windows_give_the_run_time_instantiations_bits(cp, monkeypatch,
                                                                          dtype):
    """Every unrolled depthwise window against the run-time instantiation, bit for bit, the
    whole conv forward and backward (the same terms in the same order)."""
    unrolled, runtime = _launcher(cp), _launcher(cp, specialize=False)
    x = cp.asarray(rand((2, 3, 11, 10), dtype, 45))
    for k, s in _cuda.unrolled_windows("depthwise.cu", dtype):
        w, b = cp.asarray(rand((6, 1, k, k), dtype, k)), cp.asarray(rand((6,), dtype, s))
        args = dict(stride=s, padding=((k // 2, k - 1), (k - 1, 0)), groups=3)
        results = []
        for launcher in (unrolled, runtime):
            monkeypatch.setattr(_cuda, "default_launcher", lambda launcher=launcher: launcher)
            out, cache = F.conv2d_forward(x, w, b, **args)
            dout = cp.asarray(rand(out.shape, dtype, k * s))
            results.append((out,) + F.conv2d_backward(dout, cache))
        assert {key[2:] for key in unrolled._functions} >= {
            ("depthwise_forward_kernel", (k, s)), ("depthwise_backward_data_kernel", (k, s))}
        for a, b_ in zip(*results):
            assert cp.array_equal(bits(a, cp), bits(b_, cp)), (k, s)


def test_float16_depthwise_weight_partials_above_65504_stay_finite(cp):
    """Each image's dW partial is 255 * 1024 = 261120 (inf in float16); the images cancel
    to 127.5 where one dout is -0.5: the partials and their sum stay float32."""
    x = np.full((2, 2, 32, 32), 255, np.float16)
    dout = np.ones((2, 2, 32, 32), np.float16)
    dout[1], dout[1, :, 0, 0] = -1, -0.5
    w = np.ones((2, 1, 3, 3), np.float16)
    cache = F.conv2d_forward(cp.asarray(x), cp.asarray(w), None, padding=1, groups=2)[1]
    dw = F.conv2d_backward(cp.asarray(dout), cache)[1].get()
    exact_cache = F.conv2d_forward(x.astype(np.float64), w.astype(np.float64), None, padding=1,
                                   groups=2)[1]
    exact = F.conv2d_backward(dout.astype(np.float64), exact_cache)[1]
    np.testing.assert_array_equal(dw, exact.astype(np.float16))
    assert float(dw[0, 0, 1, 1]) == 127.5


def test_chunked_and_non_contiguous_depthwise_backward(cp):
    """A workspace of two images' partials (three chunks of five images) and strided operands
    give the single chunk's results."""
    x, w, b, args = _operands("3x2 dilated x3", np.float64)
    x = np.concatenate([x, x[:2] * 0.5])  # 5 images
    xg = cp.asarray(x.transpose(0, 1, 3, 2).copy()).transpose(0, 1, 3, 2)  # strided
    out, cache = F.conv2d_forward(xg, cp.asarray(w), cp.asarray(b), **args)
    dout = cp.asarray(rand(out.shape, np.float64, 46))
    whole = F.conv2d_backward(dout, cache)
    with workspace_limit(2 * w.shape[0] * (w[0].size + 1) * 8):
        chunked = F.conv2d_backward(dout, cache)
    ref, ref_cache = F.conv2d_forward(x, w, b, **args)
    assert_close(out, ref, np.float64)
    for a, b_, want in zip(whole, chunked, F.conv2d_backward(dout.get(), ref_cache)):
        assert_close(a, want, np.float64)
        assert_close(b_, want, np.float64)


def test_depthwise_kernels_against_the_generic_path_time(cp, monkeypatch, request):
    """Reports (no assertion on times) a MobileNet-sized depthwise layer's forward+backward
    on the depthwise kernels and, with their dispatch off, through im2col and cuBLAS."""
    x = cp.asarray(rand((32, 128, 56, 56), np.float32, 47))
    w, b = cp.asarray(rand((128, 1, 3, 3), np.float32, 48)), cp.zeros(128, cp.float32)

    def step():
        out, cache = F.conv2d_forward(x, w, b, padding=1, groups=128)
        F.conv2d_backward(cp.ones_like(out), cache)

    depthwise = gpu_milliseconds(cp, step)
    monkeypatch.setattr(_gpu.conv, "runs_depthwise", lambda *args: False)
    generic = gpu_milliseconds(cp, step)
    summary_lines(request.config).append(
        f"GPU depthwise 3x3 conv (32, 128, 56, 56) forward+backward, float32: depthwise "
        f"kernels {depthwise:.2f} ms, im2col + cuBLAS {generic:.2f} ms")
