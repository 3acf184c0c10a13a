"""conv_transpose2d and ConvTranspose2d: against PyTorch (hypothesis), both CPU col2im paths, the
GPU backend on emulated kernels, numerical gradients, and the errors of every argument."""

import re

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import fastconv
import fastconv.functional as F
import fastconv.nn as nn
import torch_oracle
from conftest import require_torch
from fastconv import gradcheck
from fastconv.functional.conv_transpose import transposed_geometry
from op_paths import (assert_gpu_matches_cpu, case_arrays, check_on_cupy, compare,  # noqa: F401
                      emulated_kernels, normal, on_cpu, torch_run)
from test_cuda_emulated import kernels_for_numpy  # noqa: F401 (a fixture)
from torch_oracle import hypothesis_settings

DTYPES = [np.float64, np.float32]


@st.composite
def transpose_cases(draw):
    """A transposed convolution: groups, stride above the kernel, dilation, output_padding (up
    to below the stride or the dilation), inputs down to the smallest giving an output."""
    groups = draw(st.sampled_from([1, 1, 2, 3]))
    cin, fout = groups * draw(st.integers(1, 3)), groups * draw(st.integers(1, 3))
    kernel = (draw(st.integers(1, 4)), draw(st.integers(1, 4)))
    stride = (draw(st.integers(1, 4)), draw(st.integers(1, 4)))
    dilation = (draw(st.sampled_from([1, 1, 2, 3])), draw(st.sampled_from([1, 1, 2, 3])))
    pads = (draw(st.integers(0, 3)), draw(st.integers(0, 3)))
    extra = tuple(draw(st.integers(0, max(s, d) - 1)) for s, d in zip(stride, dilation))
    # the smallest input with an output row: (H - 1)*s >= 2p - d(k - 1) - output_padding
    size = [1 + max(0, -(-(2 * p - d * (k - 1) - e) // s)) + draw(st.sampled_from([0, 0, 1, 2, 4]))
            for k, s, d, p, e in zip(kernel, stride, dilation, pads, extra)]
    as_int = pads[0] == pads[1] and extra[0] == extra[1] and draw(st.booleans())
    return dict(x_shape=(draw(st.integers(1, 3)), cin, *size),
                w_shape=(cin, fout // groups, *kernel),
                b_size=draw(st.sampled_from([fout, None])),
                seed=draw(st.integers(0, 2**32 - 1)),
                kw=dict(stride=stride, padding=pads[0] if as_int else pads,
                        output_padding=extra[0] if as_int else extra, groups=groups,
                        dilation=dilation))


def _compare_with_torch(case):
    torch = require_torch()
    for dtype in DTYPES:
        rng, x, w, b = case_arrays(case, dtype)
        want = torch_run(torch, lambda *t: torch.nn.functional.conv_transpose2d(*t, **case["kw"]),
                         (x, w, b), lambda s: rng.standard_normal(s).astype(dtype))
        out, cache = F.conv_transpose2d_forward(x, w, b, **case["kw"])
        grads = F.conv_transpose2d_backward(want[1], cache)
        compare("conv_transpose2d", dtype, (out, *grads), (want[0], *want[2]))
    torch_oracle.count_case("conv_transpose2d")


@hypothesis_settings(150)
@given(case=transpose_cases())
def test_conv_transpose2d_matches_torch(case):
    _compare_with_torch(case)


@pytest.mark.filterwarnings("ignore:the column buffer:UserWarning")
@hypothesis_settings(30)
@given(case=transpose_cases(), images=st.sampled_from([0.5, 1, 2, 3]))
def test_conv_transpose2d_matches_torch_under_any_workspace_limit(case, images):
    """A limit of a few images' column buffers chunks the batch in both passes."""
    _, cin, h, w = case["x_shape"]
    rows = case["w_shape"][1] * case["kw"]["groups"] * case["w_shape"][2] * case["w_shape"][3]
    with fastconv.workspace_limit(max(1, int(images * rows * h * w * 4))):
        _compare_with_torch(case)


@pytest.mark.parametrize("x_shape, w_shape, kw", [
    ((2, 2, 1, 3), (2, 3, 1, 2), dict(stride=3, padding=(1, 0), output_padding=(2, 0))),
    ((1, 1, 1, 1), (1, 2, 1, 1), dict(stride=(4, 3), padding=1, output_padding=(3, 2))),
])
def test_an_output_no_window_reaches_holds_the_bias_like_torch(torch, x_shape, w_shape, kw):
    """Past the padding, output_padding rows get nothing but the bias; here every row does."""
    assert transposed_geometry(x_shape, w_shape[2:], **kw)[1] is None
    x, w, b = normal(0, x_shape, np.float64), normal(1, w_shape, np.float64), normal(2, 3, float)
    b = b[:w_shape[1]]
    want = torch_run(torch, lambda *t: torch.nn.functional.conv_transpose2d(*t, **kw), (x, w, b),
                     lambda s: normal(3, s, np.float64))
    out, cache = F.conv_transpose2d_forward(x, w, b, **kw)
    compare("conv_transpose2d", np.float64, (out, *F.conv_transpose2d_backward(want[1], cache)),
            (want[0], *want[2]))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("x_shape, w_shape, kw", [
    ((2, 2, 4, 5), (2, 4, 3, 3), dict(stride=2, padding=1, output_padding=1)),  # planes
    ((2, 3, 5, 4), (3, 2, 2, 3), dict(stride=(1, 2), dilation=(2, 1), groups=3)),  # planes
    ((2, 8, 4, 4), (8, 1, 2, 2), dict(stride=2)),  # F*KH*KW <= C: slab adds
    ((1, 9, 3, 3), (9, 1, 3, 3), dict(padding=1, groups=1)),  # slab adds, padding cropped
])
def test_both_col2im_paths_and_a_nan_weight_match_torch(torch, dtype, x_shape, w_shape, kw):
    """The forward sums stride-phase planes or slabs; a NaN weight takes the slab adds and
    poisons only the outputs its tap reaches, as in torch. (dx, a convolution of dout, is
    NaN where the tap meets dout's zero padding too, as torch's float64 path; its float32
    path skips those products.)"""
    for poison in (False, True):
        x, w, b = normal(4, x_shape, dtype), normal(5, w_shape, dtype), None
        if poison:
            w[0, 0, 0, 0] = np.nan
        want = torch_run(torch, lambda *t: torch.nn.functional.conv_transpose2d(*t, **kw),
                         (x, w, b), lambda s: normal(6, s, dtype))
        out, cache = F.conv_transpose2d_forward(x, w, b, **kw)
        got = (out, *F.conv_transpose2d_backward(want[1], cache))
        if poison:
            np.testing.assert_array_equal(np.isnan(got[0]), np.isnan(want[0]))
            assert np.isnan(got[0]).any() and not np.isnan(got[2]).any()
            continue
        compare("conv_transpose2d", dtype, got, (want[0], *want[2]))


def test_noncontiguous_inputs_and_a_second_backward_give_the_same_results():
    rng = np.random.default_rng(7)
    x = rng.standard_normal((5, 2, 4, 6)).transpose(0, 1, 3, 2)[:, :, ::2]  # (5, 2, 3, 4)
    w = rng.standard_normal((3, 2, 2, 4)).transpose(1, 0, 3, 2)  # (2, 3, 4, 2)
    kw = dict(stride=2, padding=(1, 0), output_padding=1)
    out, cache = F.conv_transpose2d_forward(x, w, None, **kw)
    c_out, c_cache = F.conv_transpose2d_forward(np.ascontiguousarray(x), np.ascontiguousarray(w),
                                                None, **kw)
    dout = rng.standard_normal(out.shape * np.array([1, 1, 1, 2]))[..., ::2]
    first = F.conv_transpose2d_backward(dout, cache)
    np.testing.assert_array_equal(out, c_out)
    assert out.flags.c_contiguous
    for g1, g2, g3 in zip(first, F.conv_transpose2d_backward(dout, cache),
                          F.conv_transpose2d_backward(np.ascontiguousarray(dout), c_cache)):
        if g1 is not None:
            np.testing.assert_array_equal(g1, g2)
            np.testing.assert_allclose(g1, g3, rtol=1e-13, atol=0)


def test_float16_matches_float64_and_sums_db_in_float32():
    x, w = np.ones((3000, 2, 2, 2), np.float16), np.ones((2, 2, 2, 2), np.float16)
    out, cache = F.conv_transpose2d_forward(x, w, np.zeros(2, np.float16), stride=2)
    dx, dw, db = F.conv_transpose2d_backward(np.ones_like(out), cache)
    assert out.dtype == dx.dtype == dw.dtype == db.dtype == np.float16
    np.testing.assert_array_equal(db, np.full(2, 3000 * 16, np.float32).astype(np.float16))
    np.testing.assert_array_equal(dw, np.full(w.shape, 3000 * 4, np.float16))


@pytest.mark.parametrize("channels", [1, 4])
def test_float16_output_sums_the_windows_in_float32(torch, channels):
    """The output adds the windows overlapping each cell: a float16 running sum of 4e4 + 4e4
    overflows to inf before -4e4 - 4e4 cancels it, where torch's sum (in float32, rounded
    once, as the GPU's col2im) is 0. One input channel sums stride-phase planes, four (three
    of them zero) slabs."""
    x = np.zeros((1, channels, 1, 4), np.float16)
    x[0, 0, 0] = [4e4, 4e4, -4e4, -4e4]
    w = np.zeros((channels, 1, 1, 4), np.float16)
    w[0] = 1
    want = torch_run(torch, torch.nn.functional.conv_transpose2d,
                     (x.astype(np.float32), w.astype(np.float32)),
                     lambda s: np.zeros(s, np.float32))
    out, _ = F.conv_transpose2d_forward(x, w)
    assert out.dtype == np.float16
    np.testing.assert_array_equal(out, want[0].astype(np.float16))


def test_an_empty_batch_gives_empty_results(torch):
    x, w, b = np.zeros((0, 2, 3, 3)), normal(0, (2, 3, 3, 3), np.float64), np.zeros(3)
    want = torch_run(torch, lambda *t: torch.nn.functional.conv_transpose2d(*t, stride=2),
                     (x, w, b), np.zeros)
    out, cache = F.conv_transpose2d_forward(x, w, b, stride=2)
    got = (out, *F.conv_transpose2d_backward(want[1], cache))
    for g, t in zip(got, (want[0], *want[2])):
        assert g.shape == t.shape
        np.testing.assert_array_equal(g, t)


# ------------------------------------------------------------------------------- the layer
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("kw", [dict(stride=2, padding=1, output_padding=1),
                                dict(groups=2, dilation=2, bias=False),
                                dict(stride=(2, 1), padding=(0, 1), output_padding=(1, 0))])
def test_layer_matches_torch(torch, dtype, kw):
    layer = nn.ConvTranspose2d(4, 6, (3, 2), dtype=dtype, seed=1, **kw)
    ref = torch.nn.ConvTranspose2d(4, 6, (3, 2), dtype=getattr(torch, np.dtype(dtype).name), **kw)
    assert tuple(ref.weight.shape) == layer.params["W"].shape
    with torch.no_grad():
        ref.weight.copy_(torch.from_numpy(layer.params["W"]))
        if "b" in layer.params:
            layer.params["b"][...] = normal(5, 6, dtype)
            ref.bias.copy_(torch.from_numpy(layer.params["b"]))
    x = normal(2, (3, 4, 5, 4), dtype)
    out = layer.forward(x)
    want = torch_run(torch, ref, (x,), lambda s: normal(3, s, dtype))
    dx = layer.backward(want[1])
    compare("ConvTranspose2d", dtype, (out, dx, layer.grads["W"], layer.grads.get("b")),
            (want[0], want[2][0], ref.weight.grad.numpy(),
             None if ref.bias is None else ref.bias.grad.numpy()))


@pytest.mark.parametrize("make, shape", [
    (lambda: nn.ConvTranspose2d(3, 4, 3, stride=2, padding=1, output_padding=1,
                                dtype=np.float64, seed=0), (2, 3, 3, 4)),
    (lambda: nn.ConvTranspose2d(4, 2, 2, groups=2, dilation=2, dtype=np.float64, seed=0),
     (2, 4, 3, 3)),
    (lambda: nn.ConvTranspose2d(2, 3, 1, stride=3, padding=1, output_padding=2,
                                dtype=np.float64, seed=0), (1, 2, 1, 3)),  # bias-only rows
])
def test_layer_gradients_match_numerical(make, shape):
    assert gradcheck.check_layer(make(), normal(1, shape, np.float64)) < 1e-7


def test_layer_initialisation_follows_torch_fans():
    """fan_in = out_channels/groups * KH * KW (PyTorch's weight.size(1) rule), He by default."""
    w = nn.ConvTranspose2d(64, 96, 3, groups=2, seed=0).params["W"]
    assert w.shape == (64, 48, 3, 3) and w.dtype == np.float32
    assert w.std() == pytest.approx((2 / (48 * 9)) ** 0.5, rel=0.03)
    xavier = nn.ConvTranspose2d(64, 96, 3, groups=2, init="xavier", seed=0).params["W"]
    assert xavier.std() == pytest.approx((2 / (48 * 9 + 64 * 9)) ** 0.5, rel=0.03)
    assert "output_padding=0" in repr(nn.ConvTranspose2d(2, 2, 2))


# ------------------------------------------------------------------------ the GPU backend
@settings(max_examples=30, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(case=transpose_cases(), dtype=st.sampled_from(DTYPES), limit=st.sampled_from([None, 600]))
@pytest.mark.filterwarnings("ignore:the column buffer:UserWarning")
def test_gpu_backend_on_emulated_kernels_matches_the_cpu(emulated_kernels, kernels_for_numpy,
                                                         case, dtype, limit):
    """The CuPy code on NumPy arrays (kernels emulated, products in the NumPy model of
    cuBLAS), chunked or not."""
    _, x, w, b = case_arrays(case, dtype)
    out_cpu, cache_cpu = on_cpu(F.conv_transpose2d_forward, x, w, b, **case["kw"])
    dout = normal(case["seed"] + 1, out_cpu.shape, dtype)
    want = (out_cpu, *on_cpu(F.conv_transpose2d_backward, dout, cache_cpu))
    kernels_for_numpy.clear()
    with fastconv.workspace_limit(limit or 2**28):
        out, cache = F.conv_transpose2d_forward(x, w, b, **case["kw"])
        assert_gpu_matches_cpu((out, *F.conv_transpose2d_backward(dout, cache)), want)
    if cache.geometry is not None:
        assert {"col2im_kernel", "im2col_kernel"} <= {name for name, _ in kernels_for_numpy}


def test_gpu_backend_float16_sums_in_float32(emulated_kernels, kernels_for_numpy):
    x, w = np.ones((600, 2, 2, 2), np.float16), np.ones((2, 2, 2, 2), np.float16)
    out, cache = F.conv_transpose2d_forward(x, w, None, stride=2)
    dx, dw, db = F.conv_transpose2d_backward(np.ones_like(out), cache)
    assert dw.dtype == np.float16 and db is None
    np.testing.assert_array_equal(dw, np.full(w.shape, 2400, np.float16))
    np.testing.assert_array_equal(dx, np.full(x.shape, 8, np.float16))


@pytest.mark.gpu
@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
def test_conv_transpose2d_on_the_gpu(dtype):
    kw = dict(stride=2, padding=1, output_padding=1, groups=2, dilation=(1, 2))
    arrays = normal(0, (2, 4, 5, 6), dtype), normal(1, (4, 3, 3, 3), dtype), normal(2, 6, dtype)
    check_on_cupy(F.conv_transpose2d_forward, F.conv_transpose2d_backward, arrays, kw, dtype)


# -------------------------------------------------------------------------------- errors
def _raises(exc, *fragments):
    return pytest.raises(exc, match="".join(f"(?=.*{re.escape(f)})" for f in fragments))


def _forward(x_shape=(1, 2, 3, 3), w_shape=(2, 3, 2, 2), b_shape=None, **kw):
    b = None if b_shape is None else np.zeros(b_shape)
    return F.conv_transpose2d_forward(np.zeros(x_shape), np.zeros(w_shape), b, **kw)


def test_error_output_padding_not_below_stride_or_dilation():
    with _raises(ValueError, "output_padding must be smaller than either stride or dilation",
                 "output_padding=(0, 2)", "stride=(1, 2)", "dilation=(1, 1)"):
        _forward(stride=(1, 2), output_padding=(0, 2))


def test_error_output_padding_negative():
    with _raises(ValueError, "output_padding must be >= 0"):
        _forward(output_padding=-1)


def test_error_output_padding_not_an_int():
    with _raises(TypeError, "output_padding must be an int or a pair"):
        _forward(stride=2, output_padding=0.5)


def test_error_padding_negative():
    with _raises(ValueError, "padding must be >= 0"):
        _forward(padding=(0, -1))


def test_error_padding_as_a_string():
    with _raises(TypeError, "padding must be an int or a pair", "'same'"):
        _forward(padding="same")


def test_error_padding_mode_other_than_zeros():
    with _raises(ValueError, "zeros only", "'reflect'"):
        _forward(padding_mode="reflect")


def test_error_padding_mode_not_a_string():
    with _raises(TypeError, "padding_mode must be a string"):
        _forward(padding_mode=0)


def test_error_output_smaller_than_one():
    with _raises(ValueError, "the output would be -2x-2", "x shape (1, 2, 3, 3)"):
        _forward(padding=3)


def test_error_empty_image():
    with _raises(ValueError, "height and width must be >= 1", "(1, 2, 0, 3)"):
        _forward(x_shape=(1, 2, 0, 3))


def test_error_w_input_channels_unlike_x():
    with _raises(ValueError, "w has 3 input channels", "x has 2", "(1, 2, 3, 3)", "(3, 3, 2, 2)"):
        _forward(w_shape=(3, 3, 2, 2))


def test_error_w_without_output_channels():
    with _raises(ValueError, "w has no output channels", "(2, 0, 2, 2)"):
        _forward(w_shape=(2, 0, 2, 2))


def test_error_groups_not_dividing_the_channels():
    with _raises(ValueError, "x has 3 channels, which is not divisible by groups=2"):
        _forward(x_shape=(1, 3, 3, 3), w_shape=(3, 1, 2, 2), groups=2)


def test_error_bias_shape():
    with _raises(ValueError, "b must have shape (6,)", "got (3,)"):
        _forward(x_shape=(1, 4, 3, 3), w_shape=(4, 3, 2, 2), b_shape=3, groups=2)


def test_error_x_not_4d():
    with _raises(ValueError, "x must be 4-D (N, C, H, W)"):
        _forward(x_shape=(2, 3, 3))


def test_error_w_not_4d():
    with _raises(ValueError, "w must be 4-D (C, F/groups, KH, KW)"):
        _forward(w_shape=(2, 3, 2))


def test_error_dtypes_differ():
    with _raises(TypeError, "x is float32 but w is float64"):
        F.conv_transpose2d_forward(np.zeros((1, 2, 3, 3), np.float32), np.zeros((2, 3, 2, 2)))


def test_error_dout_unlike_the_output():
    _, cache = _forward()
    with _raises(ValueError, "dout has shape (1, 3, 4, 3)", "(1, 3, 4, 4)"):
        F.conv_transpose2d_backward(np.zeros((1, 3, 4, 3)), cache)


def test_error_cache_of_another_op():
    _, cache = F.conv2d_forward(np.zeros((1, 2, 3, 3)), np.zeros((3, 2, 2, 2)))
    with _raises(TypeError, "cache comes from conv2d_forward, not conv_transpose2d_forward"):
        F.conv_transpose2d_backward(np.zeros((1, 3, 2, 2)), cache)


def test_error_layer_arguments():
    with _raises(ValueError, "ConvTranspose2d: in_channels (3) and out_channels (4)", "groups (2)"):
        nn.ConvTranspose2d(3, 4, 2, groups=2)
    with _raises(ValueError, "output_padding must be smaller"):
        nn.ConvTranspose2d(2, 2, 3, output_padding=1)
    with _raises(ValueError, "padding_mode must be one of ('zeros',)"):
        nn.ConvTranspose2d(2, 2, 3, padding_mode="circular")
    with _raises(ValueError, "ConvTranspose2d(in_channels=2)", "(N, 2, H, W)", "(1, 3, 4, 4)"):
        nn.ConvTranspose2d(2, 2, 3).forward(np.zeros((1, 3, 4, 4), np.float32))
