"""Rung 3 for the resizing kernels, on a GPU: CuPy through kernels/interpolate.cu.

Every test is marked ``gpu`` (skipped, with the reason, where CuPy or a usable device
is missing). Resizes on CuPy in float16/32/64, 'nearest' and 'bilinear' (align_corners
False and True), upsampling, downsampling, sizes of 1 and axes that keep their size, are
compared, forward and backward, with the CPU path on the same values bit for bit: the
kernels do its operations in its order, each product and sum rounded on its own (no fused
multiply-add). Both kernels must run, and no other; two passes must give the same bits;
a poisoned launcher must leave no element unwritten.
"""

import time

import numpy as np
import pytest

import fastconv.functional as F
from conftest import record_calls
from cuda_emu.report import summary_lines
from fastconv import _cuda
from test_cuda_gpu import DTYPES, _launcher, bits, rand

pytestmark = pytest.mark.gpu

CASES = {  # x shape, interpolate arguments
    "nearest x2": ((2, 3, 7, 5), dict(scale_factor=2)),
    "nearest down to 3x2": ((2, 3, 11, 9), dict(size=(3, 2))),
    "nearest 1.7 x 0.6": ((1, 4, 6, 10), dict(scale_factor=(1.7, 0.6))),
    "bilinear 13x17": ((2, 3, 6, 5), dict(size=(13, 17), mode="bilinear")),
    "bilinear down x0.4": ((2, 2, 19, 23), dict(scale_factor=0.4, mode="bilinear")),
    "bilinear aligned 9x1": ((1, 3, 5, 4), dict(size=(9, 1), mode="bilinear",
                                                align_corners=True)),
    "bilinear aligned x2.5": ((2, 2, 4, 6), dict(scale_factor=2.5, mode="bilinear",
                                                 align_corners=True)),
    "bilinear from 1x1": ((2, 2, 1, 1), dict(size=(4, 3), mode="bilinear")),
    "bilinear keeping H": ((1, 3, 6, 5), dict(size=(6, 12), mode="bilinear")),
    "nearest keeping W": ((1, 3, 6, 5), dict(size=(14, 5))),
    "nearest keeping both": ((2, 2, 3, 4), dict(scale_factor=1)),
}
KERNELS = {"interpolate_forward_kernel", "interpolate_backward_kernel"}


def _assert_same_bits(cp, got, want):
    assert isinstance(got, cp.ndarray) and got.flags.c_contiguous
    assert got.dtype == want.dtype and got.shape == want.shape
    assert cp.array_equal(bits(got, cp), cp.asarray(bits(want, np)))


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("case", CASES)
def test_interpolate_and_gradient_match_the_cpu_path_bit_for_bit(cp, monkeypatch, case, dtype):
    shape, kw = CASES[case]
    x = rand(shape, dtype, 60)
    want, cache = F.interpolate_forward(x, **kw)
    dout = rand(want.shape, dtype, 61)
    calls = record_calls(monkeypatch)
    out, gpu_cache = F.interpolate_forward(cp.asarray(x), **kw)
    _assert_same_bits(cp, out, want)
    dx = F.interpolate_backward(cp.asarray(dout), gpu_cache)
    _assert_same_bits(cp, dx, F.interpolate_backward(dout, cache))
    assert calls == ["interpolate_forward_kernel", "interpolate_backward_kernel"], calls


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
def test_every_element_is_written_and_two_runs_give_the_same_bits(cp, monkeypatch, dtype):
    """On a launcher that poisons its outputs with NaN, with a grid of two blocks per axis
    (the grid-stride loops do the rest), and again: the same bits, the CPU path's."""
    poisoned = _launcher(cp, poison=True, block=64, max_blocks=2)
    monkeypatch.setattr(_cuda, "default_launcher", lambda: poisoned)
    x = rand((3, 5, 17, 13), dtype, 62)
    kw = dict(size=(29, 7), mode="bilinear")
    want, cache = F.interpolate_forward(x, **kw)
    dout = rand(want.shape, dtype, 63)
    want_dx = F.interpolate_backward(dout, cache)
    for _ in range(2):
        out, gpu_cache = F.interpolate_forward(cp.asarray(x), **kw)
        _assert_same_bits(cp, out, want)
        _assert_same_bits(cp, F.interpolate_backward(cp.asarray(dout), gpu_cache), want_dx)


def test_strided_operands_on_the_gpu(cp):
    """Transposed CuPy x and dout give the CPU path's results on their values."""
    x = rand((2, 3, 9, 6), np.float32, 64)
    kw = dict(size=(4, 15), mode="bilinear", align_corners=True)
    gx = cp.asarray(x.transpose(0, 1, 3, 2).copy()).transpose(0, 1, 3, 2)
    want, cache = F.interpolate_forward(x, **kw)
    out, gpu_cache = F.interpolate_forward(gx, **kw)
    _assert_same_bits(cp, out, want)
    dout = rand(want.shape, np.float32, 65)
    gdout = cp.asarray(dout.transpose(0, 1, 3, 2).copy()).transpose(0, 1, 3, 2)
    _assert_same_bits(cp, F.interpolate_backward(gdout, gpu_cache),
                      F.interpolate_backward(dout, cache))


def test_interpolate_kernels_time(cp, request):
    """Reports (no assertion on times) a 2x bilinear upsampling of (32, 64, 56, 56) float32,
    forward and backward."""
    x = cp.asarray(rand((32, 64, 56, 56), np.float32, 66))

    def step():
        out, cache = F.interpolate_forward(x, scale_factor=2, mode="bilinear")
        F.interpolate_backward(cp.ones_like(out), cache)

    step()
    cp.cuda.Device().synchronize()
    start = time.perf_counter()
    for _ in range(10):
        step()
    cp.cuda.Device().synchronize()
    summary_lines(request.config).append(
        f"GPU bilinear x2 interpolate (32, 64, 56, 56) forward+backward, float32: "
        f"{(time.perf_counter() - start) / 10 * 1e3:.2f} ms")
    assert {key[2] for key in _cuda.default_launcher()._functions} >= KERNELS
