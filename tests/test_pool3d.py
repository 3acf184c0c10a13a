"""max_pool3d, avg_pool3d and their layers: against PyTorch (hypothesis, forward, indices and
the gradient), the tie/NaN/padding rules, numerical gradients, the GPU backend on NumPy arrays
(its kernels emulated; tests/test_cuda_pool3d.py tests them in depth) against the CPU path, and
CuPy runs."""

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings

import fastconv.functional as F
import fastconv.nn as nn
import torch_oracle
from conftest import gpu_dispatch, require_torch
from cuda_emu.emu import require_kernel_tools
from fastconv import gradcheck
from op_paths import assert_gpu_matches_cpu, check_on_cupy, compare, normal, on_cpu, torch_run
from test_cuda_emulated import launcher
from torch_oracle import hypothesis_settings
from volume_cases import DTYPES, pool3d_cases, pool_input

GPU_SETTINGS = dict(deadline=None, derandomize=True, database=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture,
                                           HealthCheck.too_slow])


def _max_kw(case):
    return dict(case["kw"], dilation=case["dilation"])


def _avg_kw(case):
    return dict(case["kw"], count_include_pad=case["count_include_pad"],
                divisor_override=case["divisor_override"])


@hypothesis_settings(60)
@given(case=pool3d_cases())
def test_max_pool3d_matches_torch_with_indices(case):
    """Ties included (torch's CPU max_pool3d also keeps the first maximum)."""
    torch = require_torch()
    for dtype in DTYPES:
        x = pool_input(case, dtype)
        out, idx, cache = F.max_pool3d_forward(x, case["kernel"], return_indices=True,
                                               **_max_kw(case))
        # a window of padding only (dilation over the padding) is -inf with index -1 here;
        # torch's index there lies outside the input and its backward aborts the process
        assume((idx >= 0).all())
        indices = {}

        def run(t):
            out, indices["torch"] = torch.nn.functional.max_pool3d(
                t, case["kernel"], return_indices=True, **_max_kw(case))
            return out

        want = torch_run(torch, run, (x,), lambda s: normal(case["seed"], s, dtype))
        np.testing.assert_array_equal(idx, indices["torch"].numpy())
        compare("max_pool3d", dtype, (out, F.max_pool3d_backward(want[1], cache)),
                (want[0], want[2][0]), ("out", "dx"))
    torch_oracle.count_case("max_pool3d")


@hypothesis_settings(60)
@given(case=pool3d_cases())
def test_avg_pool3d_matches_torch(case):
    """On inputs at least the kernel's size: torch's avg_pool3d refuses smaller ones even when
    the padded input holds the window (see the test after this one)."""
    torch = require_torch()
    shape = case["x_shape"][:2] + tuple(max(n, k) for n, k in zip(case["x_shape"][2:],
                                                                   case["kernel"]))
    for dtype in DTYPES:
        x = normal(case["seed"], shape, dtype)
        want = torch_run(torch, lambda t: torch.nn.functional.avg_pool3d(t, case["kernel"],
                                                                          **_avg_kw(case)),
                         (x,), lambda s: normal(case["seed"] + 1, s, dtype))
        out, cache = F.avg_pool3d_forward(x, case["kernel"], **_avg_kw(case))
        compare("avg_pool3d", dtype, (out, F.avg_pool3d_backward(want[1], cache)),
                (want[0], want[2][0]), ("out", "dx"))
    torch_oracle.count_case("avg_pool3d")


def test_max_pool3d_ties_nan_and_padding_follow_the_2d_rules():
    """Ties go to the first maximum in (kd, kh, kw) order; the first NaN of a window wins and
    takes its gradient (PyTorch: the last NaN, the same output); -inf padding never wins."""
    x = np.full((1, 1, 2, 2, 2), 3.0)
    x[0, 0, 1, 0, 1] = np.nan
    x[0, 0, 1, 1, 0] = np.nan
    out, idx, cache = F.max_pool3d_forward(x, 2, return_indices=True)
    assert np.isnan(out).all() and idx.item() == 5  # (d, h, w) = (1, 0, 1): the first NaN
    dx = F.max_pool3d_backward(np.ones_like(out), cache)
    np.testing.assert_array_equal(dx.reshape(-1), [0, 0, 0, 0, 0, 1, 0, 0])
    ties = np.full((1, 1, 2, 2, 2), 3.0)
    out, idx, cache = F.max_pool3d_forward(ties, 2, stride=1, padding=1, return_indices=True)
    assert (out == 3.0).all()
    # each window's first input cell in (kd, kh, kw) order; window (2, 2, ow) reads depth and
    # height 1 and widths ow - 1 and ow
    np.testing.assert_array_equal(idx[0, 0, 0, 0], [0, 0, 1])
    np.testing.assert_array_equal(idx[0, 0, 2, 2], [6, 6, 7])
    minus_inf = np.full((1, 1, 1, 1, 1), -np.inf)
    out, idx, _ = F.max_pool3d_forward(minus_inf, 3, stride=1, padding=1, return_indices=True)
    assert out.item() == -np.inf and idx.item() == 0  # the input cell, not the padding
    out, idx, _ = F.max_pool3d_forward(np.zeros((1, 1, 1, 1, 1)), (1, 1, 2), padding=(0, 0, 1),
                                       dilation=(1, 1, 2), return_indices=True)
    assert out.item() == -np.inf and idx.item() == -1  # taps -1 and 1: padding only


def test_pool3d_of_a_single_cell_and_of_the_whole_volume(torch):
    """1x1x1 inputs, and a window exactly the (padded) input, against torch."""
    for shape, kernel, padding in [((2, 3, 1, 1, 1), 1, 0), ((1, 2, 1, 1, 1), 3, 1),
                                   ((1, 2, 3, 4, 5), (3, 4, 5), 0), ((1, 1, 2, 2, 2), 4, 2)]:
        x = normal(0, shape, np.float64)
        out, _ = F.max_pool3d_forward(x, kernel, padding=padding)
        want = torch.nn.functional.max_pool3d(torch.from_numpy(x), kernel, padding=padding)
        np.testing.assert_array_equal(out, want.numpy())
        if padding == 0:
            out, _ = F.avg_pool3d_forward(x, kernel)
            want = torch.nn.functional.avg_pool3d(torch.from_numpy(x), kernel)
            np.testing.assert_allclose(out, want.numpy(), rtol=1e-12)


@pytest.mark.parametrize("shape, kernel, padding", [
    ((1, 2, 1, 1, 1), 3, 1), ((2, 1, 2, 3, 1), (3, 2, 3), (1, 1, 1)), ((1, 1, 2, 2, 2), 4, 2)])
def test_avg_pool3d_of_an_input_smaller_than_the_kernel(torch, shape, kernel, padding):
    """Accepted when the padded input holds the window, as avg_pool2d and max_pool3d (torch's
    avg_pool3d refuses it): counting the padding, it is torch's average of the zero-padded
    input; without, a constant input averages to itself."""
    x = normal(0, shape, np.float64)
    pads = padding if isinstance(padding, tuple) else (padding,) * 3
    padded = torch.nn.functional.pad(torch.from_numpy(x), sum(((p, p) for p in pads[::-1]), ()))
    out, cache = F.avg_pool3d_forward(x, kernel, stride=1, padding=padding)
    want = torch.nn.functional.avg_pool3d(padded, kernel, stride=1)
    np.testing.assert_allclose(out, want.numpy(), rtol=1e-12)
    out, _ = F.avg_pool3d_forward(np.full(shape, 2.5), kernel, stride=1, padding=padding,
                                  count_include_pad=False)
    np.testing.assert_allclose(out, 2.5, rtol=1e-15)


# ------------------------------------------------------------------------------ layers
@pytest.mark.parametrize("layer, ref_name, kw", [
    (nn.MaxPool3d, "MaxPool3d", dict(kernel_size=3, stride=2, padding=1, ceil_mode=True)),
    (nn.MaxPool3d, "MaxPool3d", dict(kernel_size=(1, 2, 3), dilation=(1, 2, 1))),
    (nn.AvgPool3d, "AvgPool3d", dict(kernel_size=2, padding=1, count_include_pad=False)),
    (nn.AvgPool3d, "AvgPool3d", dict(kernel_size=(3, 1, 2), stride=1, divisor_override=5)),
])
def test_pool3d_layers_match_torch_and_share_its_options(torch, layer, ref_name, kw):
    ours, ref = layer(**kw), getattr(torch.nn, ref_name)(**kw)
    x = pool_input(dict(x_shape=(2, 3, 5, 6, 7), seed=0, ties=False), np.float64)
    want = torch_run(torch, ref, (x,), lambda s: normal(4, s, np.float64))
    out = ours.forward(x)
    compare(ref_name, np.float64, (out, ours.backward(want[1])), (want[0], want[2][0]),
            ("out", "dx"))


def test_max_pool3d_layer_returns_indices_as_torch(torch):
    ours = nn.MaxPool3d(2, return_indices=True)
    x = pool_input(dict(x_shape=(1, 2, 4, 4, 6), seed=1, ties=False), np.float64)
    out, idx = ours.forward(x)
    want_out, want_idx = torch.nn.MaxPool3d(2, return_indices=True)(torch.from_numpy(x))
    np.testing.assert_array_equal(out, want_out.numpy())
    np.testing.assert_array_equal(idx, want_idx.numpy())
    assert ours.backward(np.ones_like(out)).sum() == out.size


@pytest.mark.parametrize("make", [
    lambda: nn.MaxPool3d(3, stride=2, padding=1, ceil_mode=True),
    lambda: nn.MaxPool3d((2, 1, 2), dilation=(1, 1, 2)),
    lambda: nn.AvgPool3d(3, stride=2, padding=1, count_include_pad=False, ceil_mode=True),
    lambda: nn.AvgPool3d(2, divisor_override=3),
])
def test_pool3d_layer_gradients_match_numerical(make):
    x = pool_input(dict(x_shape=(2, 2, 5, 4, 6), seed=2, ties=False), np.float64) / 50 + 0.037
    assert gradcheck.check_layer(make(), x) < 1e-7


# ------------------------------------------------------------------------ the GPU backend
@settings(max_examples=30, **GPU_SETTINGS)
@given(case=pool3d_cases())
def test_gpu_kernels_match_the_cpu(case):
    """The GPU backend's 3-D pools (kernels/pool3d.cu on the CPU emulator) against the CPU
    path: the same maxima and indices bit for bit, the gradients and averages within
    rounding."""
    require_kernel_tools("g++")
    for dtype in DTYPES:
        x = pool_input(case, dtype)
        want = on_cpu(F.max_pool3d_forward, x, case["kernel"], return_indices=True,
                      **_max_kw(case))
        out, cache = on_cpu(F.avg_pool3d_forward, x, case["kernel"], **_avg_kw(case))
        max_dout = normal(case["seed"], want[0].shape, dtype)
        avg_dout = normal(case["seed"] + 1, out.shape, dtype)
        with gpu_dispatch(launcher()) as calls:
            got = F.max_pool3d_forward(x, case["kernel"], return_indices=True, **_max_kw(case))
            got_dx = F.max_pool3d_backward(max_dout, got[2])
            got_out, got_cache = F.avg_pool3d_forward(x, case["kernel"], **_avg_kw(case))
            got_avg_dx = F.avg_pool3d_backward(avg_dout, got_cache)
        assert calls == ["max_pool3d_forward_kernel", "max_pool3d_backward_kernel",
                         "avg_pool3d_forward_kernel", "avg_pool3d_backward_kernel"], calls
        np.testing.assert_array_equal(got[0], want[0])
        np.testing.assert_array_equal(got[1], want[1])
        assert_gpu_matches_cpu((got_dx,), (on_cpu(F.max_pool3d_backward, max_dout, want[2]),))
        assert_gpu_matches_cpu((got_out, got_avg_dx),
                               (out, on_cpu(F.avg_pool3d_backward, avg_dout, cache)))


def test_gpu_kernels_keep_the_nan_rule():
    require_kernel_tools("g++")
    x = np.full((1, 1, 2, 2, 2), 3.0)
    x[0, 0, 1, 0, 1] = x[0, 0, 1, 1, 0] = np.nan
    with gpu_dispatch(launcher()):
        out, idx, cache = F.max_pool3d_forward(x, 2, return_indices=True)
        dx = F.max_pool3d_backward(np.ones_like(out), cache)
    assert np.isnan(out).all() and idx.item() == 5
    np.testing.assert_array_equal(dx.reshape(-1), [0, 0, 0, 0, 0, 1, 0, 0])


@pytest.mark.gpu
@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
def test_pool3d_on_the_gpu(dtype):
    x = normal(0, (2, 3, 5, 6, 7), dtype)
    check_on_cupy(F.max_pool3d_forward, F.max_pool3d_backward, (x,),
                  dict(kernel_size=3, stride=2, padding=1, ceil_mode=True), dtype)
    check_on_cupy(F.max_pool3d_forward, F.max_pool3d_backward, (x,),
                  dict(kernel_size=(1, 2, 2), dilation=(1, 2, 1)), dtype)
    check_on_cupy(F.avg_pool3d_forward, F.avg_pool3d_backward, (x,),
                  dict(kernel_size=3, stride=(1, 2, 2), padding=1, count_include_pad=False),
                  dtype)
    check_on_cupy(F.avg_pool3d_forward, F.avg_pool3d_backward, (x,),
                  dict(kernel_size=2, divisor_override=3), dtype)


@pytest.mark.gpu
def test_pool3d_indices_on_the_gpu_match_numpy():
    import cupy

    x = pool_input(dict(x_shape=(2, 3, 5, 6, 7), seed=3, ties=True), np.float32)
    want = F.max_pool3d_forward(x, 3, 2, 1, return_indices=True)
    got = F.max_pool3d_forward(cupy.asarray(x), 3, 2, 1, return_indices=True)
    np.testing.assert_array_equal(cupy.asnumpy(got[0]), want[0])
    np.testing.assert_array_equal(cupy.asnumpy(got[1]), want[1])
