"""conv1d, max_pool1d and avg_pool1d (the 2-D ops over a unit height) and their layers: against
PyTorch (hypothesis), the GPU backend on emulated kernels, numerical gradients, and errors."""

import re

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import fastconv.functional as F
import fastconv.nn as nn
import torch_oracle
from conftest import require_torch
from fastconv import gradcheck
from op_paths import (assert_gpu_matches_cpu, case_arrays, check_on_cupy, compare,  # noqa: F401
                      emulated_kernels, normal, on_cpu, torch_run)
from test_cuda_emulated import kernels_for_numpy  # noqa: F401 (a fixture)
from torch_oracle import hypothesis_settings

DTYPES = [np.float64, np.float32]
GPU_SETTINGS = dict(deadline=None, derandomize=True, database=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture,
                                           HealthCheck.too_slow])


@st.composite
def conv1d_cases(draw):
    """A 1-D convolution: groups, int/1-tuple/'same'/'valid' padding, every padding mode,
    stride above the kernel, lengths down to the dilated kernel (or, filled, its limit)."""
    groups = draw(st.sampled_from([1, 1, 2, 3]))
    cin, fout = groups * draw(st.integers(1, 3)), groups * draw(st.integers(1, 3))
    kernel, dilation = draw(st.integers(1, 5)), draw(st.sampled_from([1, 1, 2, 3]))
    mode = draw(st.sampled_from(["zeros", "zeros", "reflect", "replicate", "circular"]))
    form = draw(st.sampled_from(["int", "tuple", "valid", "same"]))
    stride = 1 if form == "same" else draw(st.integers(1, 5))
    if form == "same":
        padding, pads = "same", (dilation * (kernel - 1) // 2, -(-dilation * (kernel - 1) // 2))
    elif form == "valid":
        padding, pads = "valid", (0, 0)
    else:
        p = draw(st.integers(0, 3))
        padding, pads = (p if form == "int" else (p,)), (p, p)
    length = max(1, dilation * (kernel - 1) + 1 - sum(pads)) + draw(st.sampled_from([0, 0, 1, 3]))
    if mode == "reflect":
        length = max(length, max(pads) + 1)
    elif mode == "circular":
        length = max(length, max(pads))
    return dict(x_shape=(draw(st.integers(1, 3)), cin, length),
                w_shape=(fout, cin // groups, kernel), b_size=draw(st.sampled_from([fout, None])),
                seed=draw(st.integers(0, 2**32 - 1)),
                kw=dict(stride=stride, padding=padding, dilation=dilation, groups=groups,
                        padding_mode=mode))


def _torch_conv1d(torch, kw, dtype):
    """torch.nn.Conv1d's forward (its padding modes live in the module), as a function."""
    def run(x, w, b):
        module = torch.nn.Conv1d(x.shape[1], w.shape[0], w.shape[2], bias=b is not None,
                                 dtype=getattr(torch, np.dtype(dtype).name), **kw)
        return module._conv_forward(x, w, b)
    return run


@hypothesis_settings(80)
@given(case=conv1d_cases())
def test_conv1d_matches_torch(case):
    torch = require_torch()
    for dtype in DTYPES:
        rng, x, w, b = case_arrays(case, dtype)
        want = torch_run(torch, _torch_conv1d(torch, case["kw"], dtype), (x, w, b),
                         lambda s: rng.standard_normal(s).astype(dtype))
        out, cache = F.conv1d_forward(x, w, b, **case["kw"])
        assert out.flags.c_contiguous
        compare("conv1d", dtype, (out, *F.conv1d_backward(want[1], cache)), (want[0], *want[2]))
    torch_oracle.count_case("conv1d")


@st.composite
def pool1d_cases(draw):
    """A 1-D pool's x and window (PyTorch's rules: padding at most half the kernel)."""
    kernel = draw(st.integers(1, 4))
    stride = draw(st.sampled_from([None, 1, 2, 3, 5]))
    padding, dilation = draw(st.integers(0, kernel // 2)), draw(st.sampled_from([1, 1, 2]))
    ceil_mode = draw(st.booleans())
    length = max(1, dilation * (kernel - 1) + 1 - 2 * padding) + draw(st.sampled_from([0, 1, 4]))
    return dict(x_shape=(draw(st.integers(1, 2)), draw(st.integers(1, 3)), length),
                seed=draw(st.integers(0, 2**32 - 1)), kernel=kernel,
                kw=dict(stride=stride, padding=padding, ceil_mode=ceil_mode), dilation=dilation,
                count_include_pad=draw(st.booleans()))


def _distinct(seed, shape, dtype):
    """Values pairwise apart (no ties: torch and fastconv may break them differently in 1-D)."""
    return (np.random.default_rng(seed).permutation(int(np.prod(shape))) * 0.25 - 3.1).reshape(
        shape).astype(dtype)


@hypothesis_settings(60)
@given(case=pool1d_cases())
def test_max_pool1d_matches_torch_with_indices(case):
    torch = require_torch()
    kw = dict(case["kw"], dilation=case["dilation"])
    for dtype in DTYPES:
        x = _distinct(case["seed"], case["x_shape"], dtype)
        indices = {}

        def run(t):
            out, indices["torch"] = torch.nn.functional.max_pool1d(
                t, case["kernel"], return_indices=True, **kw)
            return out

        want = torch_run(torch, run, (x,), lambda s: normal(case["seed"], s, dtype))
        out, idx, cache = F.max_pool1d_forward(x, case["kernel"], return_indices=True, **kw)
        np.testing.assert_array_equal(idx, indices["torch"].numpy())
        compare("max_pool1d", dtype, (out, F.max_pool1d_backward(want[1], cache)),
                (want[0], want[2][0]), ("out", "dx"))
    torch_oracle.count_case("max_pool1d")


@hypothesis_settings(60)
@given(case=pool1d_cases())
def test_avg_pool1d_matches_torch(case):
    torch = require_torch()
    kw = dict(case["kw"], count_include_pad=case["count_include_pad"])
    for dtype in DTYPES:
        x = normal(case["seed"], case["x_shape"], dtype)
        want = torch_run(torch, lambda t: torch.nn.functional.avg_pool1d(t, case["kernel"], **kw),
                         (x,), lambda s: normal(case["seed"] + 1, s, dtype))
        out, cache = F.avg_pool1d_forward(x, case["kernel"], **kw)
        compare("avg_pool1d", dtype, (out, F.avg_pool1d_backward(want[1], cache)),
                (want[0], want[2][0]), ("out", "dx"))
    torch_oracle.count_case("avg_pool1d")


def test_max_pool1d_ties_go_to_the_first_and_padding_only_windows_index_minus_one():
    x = np.array([[[2.0, 2.0, -np.inf, 1.0]]])
    out, idx, cache = F.max_pool1d_forward(x, 2, stride=1, return_indices=True)
    np.testing.assert_array_equal(idx, [[[0, 1, 3]]])
    np.testing.assert_array_equal(F.max_pool1d_backward(np.ones((1, 1, 3)), cache),
                                  [[[1.0, 1.0, 0.0, 1.0]]])
    out, idx, _ = F.max_pool1d_forward(np.zeros((1, 1, 1)), 2, padding=1, dilation=2,
                                       return_indices=True)  # taps -1 and 1: padding only
    np.testing.assert_array_equal(out, [[[-np.inf]]])
    np.testing.assert_array_equal(idx, [[[-1]]])


def test_conv1d_without_the_input_gradient():
    x, w, b = normal(0, (2, 3, 9), np.float64), normal(1, (4, 3, 3), np.float64), np.ones(4)
    out, cache = F.conv1d_forward(x, w, b, padding=1)
    _, dw, db = F.conv1d_backward(np.ones_like(out), cache)
    dx, dw_only, db_only = F.conv1d_backward(np.ones_like(out), cache, needs_input_grad=False)
    assert dx is None
    np.testing.assert_array_equal(dw_only, dw)
    np.testing.assert_array_equal(db_only, db)


# ------------------------------------------------------------------------------- layers
def _copy_weights(torch, layer, ref):
    with torch.no_grad():
        ref.weight.copy_(torch.from_numpy(layer.params["W"]))
        if "b" in layer.params:
            layer.params["b"][...] = normal(5, layer.params["b"].shape, layer.params["b"].dtype)
            ref.bias.copy_(torch.from_numpy(layer.params["b"]))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("kw", [dict(stride=2, padding=1), dict(padding="same", dilation=2),
                                dict(groups=2, bias=False, padding=2, padding_mode="circular")])
def test_conv1d_layer_matches_torch(torch, dtype, kw):
    layer = nn.Conv1d(4, 6, 3, dtype=dtype, seed=1, **kw)
    ref = torch.nn.Conv1d(4, 6, 3, dtype=getattr(torch, np.dtype(dtype).name), **kw)
    _copy_weights(torch, layer, ref)
    x = normal(2, (3, 4, 11), dtype)
    out = layer.forward(x)
    want = torch_run(torch, ref, (x,), lambda s: normal(3, s, dtype))
    compare("Conv1d", dtype, (out, layer.backward(want[1]), layer.grads["W"],
                              layer.grads.get("b")),
            (want[0], want[2][0], ref.weight.grad.numpy(),
             None if ref.bias is None else ref.bias.grad.numpy()))


@pytest.mark.parametrize("make, shape", [
    (lambda: nn.Conv1d(3, 4, 3, stride=2, padding=1, dtype=np.float64, seed=0), (2, 3, 8)),
    (lambda: nn.Conv1d(4, 4, 2, dilation=2, groups=2, padding="same", padding_mode="reflect",
                       dtype=np.float64, seed=0), (2, 4, 7)),
    (lambda: nn.MaxPool1d(3, stride=2, padding=1, dilation=1, ceil_mode=True), (2, 2, 8)),
    (lambda: nn.AvgPool1d(3, stride=2, padding=1, count_include_pad=False), (2, 2, 7)),
])
def test_layer_gradients_match_numerical(make, shape):
    x = _distinct(1, shape, np.float64) + 0.037  # distinct, none near a kink
    assert gradcheck.check_layer(make(), x) < 1e-7


@pytest.mark.parametrize("layer, ref_name, kw", [
    (nn.MaxPool1d, "MaxPool1d", dict(kernel_size=3, stride=2, padding=1, ceil_mode=True)),
    (nn.AvgPool1d, "AvgPool1d", dict(kernel_size=2, padding=1, count_include_pad=False)),
])
def test_pool1d_layers_match_torch_and_share_its_options(torch, layer, ref_name, kw):
    ours, ref = layer(**kw), getattr(torch.nn, ref_name)(**kw)
    x = _distinct(0, (2, 3, 9), np.float64)
    want = torch_run(torch, ref, (x,), lambda s: normal(4, s, np.float64))
    out = ours.forward(x)
    compare(ref_name, np.float64, (out, ours.backward(want[1])), (want[0], want[2][0]),
            ("out", "dx"))


def test_max_pool1d_layer_returns_indices_as_torch(torch):
    """torch.nn.MaxPool1d takes return_indices; the layer refused it as an unknown argument."""
    kw = dict(kernel_size=3, stride=2, padding=1, ceil_mode=True, return_indices=True)
    ours = nn.MaxPool1d(**kw)
    x = _distinct(2, (2, 3, 9), np.float64)
    out, idx = ours.forward(x)
    want_out, want_idx = torch.nn.MaxPool1d(**kw)(torch.from_numpy(x))
    np.testing.assert_array_equal(out, want_out.numpy())
    np.testing.assert_array_equal(idx, want_idx.numpy())
    assert "return_indices=True" in repr(ours)
    assert ours.backward(np.ones_like(out)).sum() == out.size


def test_conv1d_layer_initialisation_and_repr():
    w = nn.Conv1d(64, 32, 5, seed=0).params["W"]
    assert w.shape == (32, 64, 5) and w.std() == pytest.approx((2 / (64 * 5)) ** 0.5, rel=0.03)
    assert "padding_mode='replicate'" in repr(nn.Conv1d(2, 2, 3, padding_mode="replicate"))
    layer = nn.Conv1d(2, 3, 3, needs_input_grad=False, dtype=np.float64)
    assert layer.backward(np.ones_like(layer.forward(np.ones((1, 2, 5))))) is None


# ------------------------------------------------------------------------ the GPU backend
@settings(max_examples=20, **GPU_SETTINGS)
@given(case=conv1d_cases(), dtype=st.sampled_from(DTYPES))
def test_gpu_backend_conv1d_on_emulated_kernels_matches_the_cpu(emulated_kernels,
                                                                kernels_for_numpy, case, dtype):
    _, x, w, b = case_arrays(case, dtype)
    out, cache = on_cpu(F.conv1d_forward, x, w, b, **case["kw"])
    dout = normal(case["seed"], out.shape, dtype)
    want = (out, *on_cpu(F.conv1d_backward, dout, cache))
    out, cache = F.conv1d_forward(x, w, b, **case["kw"])
    assert_gpu_matches_cpu((out, *F.conv1d_backward(dout, cache)), want)


@settings(max_examples=20, **GPU_SETTINGS)
@given(case=pool1d_cases())
def test_gpu_backend_pool1d_on_emulated_kernels_matches_the_cpu(emulated_kernels,
                                                                kernels_for_numpy, case):
    kernels_for_numpy.clear()
    x = normal(case["seed"], case["x_shape"], np.float64)
    kw = dict(case["kw"], dilation=case["dilation"])
    out, idx, cache = on_cpu(F.max_pool1d_forward, x, case["kernel"], return_indices=True, **kw)
    got_out, got_idx, got_cache = F.max_pool1d_forward(x, case["kernel"], return_indices=True,
                                                       **kw)
    np.testing.assert_array_equal(got_out, out)
    np.testing.assert_array_equal(got_idx, idx)
    dout = normal(case["seed"] + 1, out.shape, np.float64)
    assert_gpu_matches_cpu((F.max_pool1d_backward(dout, got_cache),),
                           (on_cpu(F.max_pool1d_backward, dout, cache),))
    kw = dict(case["kw"], count_include_pad=case["count_include_pad"])
    out, cache = on_cpu(F.avg_pool1d_forward, x, case["kernel"], **kw)
    got_out, got_cache = F.avg_pool1d_forward(x, case["kernel"], **kw)
    dout = normal(case["seed"] + 2, out.shape, np.float64)
    assert_gpu_matches_cpu((got_out, F.avg_pool1d_backward(dout, got_cache)),
                           (out, on_cpu(F.avg_pool1d_backward, dout, cache)))
    assert {"max_pool_forward_kernel", "avg_pool_backward_kernel"} <= {
        name for name, _ in kernels_for_numpy}


@pytest.mark.gpu
@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
def test_1d_ops_on_the_gpu(dtype):
    x, w, b = normal(0, (2, 4, 11), dtype), normal(1, (6, 2, 3), dtype), normal(2, 6, dtype)
    check_on_cupy(F.conv1d_forward, F.conv1d_backward, (x, w, b),
                  dict(padding="same", dilation=2, groups=2, padding_mode="reflect"), dtype)
    check_on_cupy(F.max_pool1d_forward, F.max_pool1d_backward, (x,),
                  dict(kernel_size=3, padding=1), dtype)
    check_on_cupy(F.avg_pool1d_forward, F.avg_pool1d_backward, (x,),
                  dict(kernel_size=3, stride=2), dtype)


# -------------------------------------------------------------------------------- errors
def _raises(exc, *fragments):
    return pytest.raises(exc, match="".join(f"(?=.*{re.escape(f)})" for f in fragments))


@pytest.mark.parametrize("op", [
    lambda x: F.conv1d_forward(x, np.zeros((2, 3, 2))),
    lambda x: F.max_pool1d_forward(x, 2),
    lambda x: F.avg_pool1d_forward(x, 2),
])
def test_error_x_not_3d(op):
    with _raises(ValueError, "x must be 3-D (N, C, L)", "(1, 3, 4, 4)"):
        op(np.zeros((1, 3, 4, 4)))


def test_error_conv1d_w_not_3d():
    with _raises(ValueError, "w must be 3-D (F, C/groups, K)", "(2, 3, 1, 2)"):
        F.conv1d_forward(np.zeros((1, 3, 5)), np.zeros((2, 3, 1, 2)))


def test_error_conv1d_channels_named_with_the_1d_shapes():
    with _raises(ValueError, "w expects 2 input channels per group", "(1, 3, 5)", "(2, 2, 2)"):
        F.conv1d_forward(np.zeros((1, 3, 5)), np.zeros((2, 2, 2)))


@pytest.mark.parametrize("name, value", [("stride", (1, 2)), ("dilation", 1.5)])
def test_error_conv1d_stride_or_dilation_not_one_int(name, value):
    with _raises(TypeError, f"{name} must be an int or a 1-tuple"):
        F.conv1d_forward(np.zeros((1, 3, 5)), np.zeros((2, 3, 2)), **{name: value})


def test_error_conv1d_padding_negative():
    with _raises(ValueError, "padding must be >= 0"):
        F.conv1d_forward(np.zeros((1, 3, 5)), np.zeros((2, 3, 2)), padding=-1)


def test_error_conv1d_padding_string_lists_the_1d_forms():
    """1-D takes an int or a 1-tuple (no pair, no (before, after)), as PyTorch's conv1d."""
    message = "padding must be an int, a 1-tuple of ints, 'valid' or 'same', got 'full'"
    with _raises(ValueError, message):
        F.conv1d_forward(np.zeros((1, 3, 5)), np.zeros((2, 3, 2)), padding="full")
    with _raises(ValueError, message):
        nn.Conv1d(3, 2, 2, padding="full")
    with _raises(TypeError, "padding must be an int or a 1-tuple"):
        F.conv1d_forward(np.zeros((1, 3, 5)), np.zeros((2, 3, 2)), padding=((1, 2),))


@pytest.mark.parametrize("call", [
    lambda: F.max_pool1d_forward(np.zeros((1, 3, 4)), 5),
    lambda: F.avg_pool1d_forward(np.zeros((1, 3, 4)), 5),
    lambda: F.max_pool1d_forward(np.zeros((1, 3, 4)), 3, dilation=2),
    lambda: nn.MaxPool1d(5).forward(np.zeros((1, 3, 4))),
    lambda: F.conv1d_forward(np.zeros((1, 3, 4)), np.zeros((2, 3, 5))),
], ids=["max", "avg", "max-dilated", "layer", "conv1d"])
def test_error_1d_window_longer_than_the_input_names_the_length(call):
    with _raises(ValueError, "dilated kernel length 5 is larger than the padded input length 4 "
                             "(L=4, padding=0)"):
        call()


def test_error_1d_empty_input_names_the_length():
    with _raises(ValueError, "the input's length must be >= 1, got x shape (1, 3, 0)"):
        F.max_pool1d_forward(np.zeros((1, 3, 0)), 1)
    with _raises(ValueError, "the input's length must be >= 1, got x shape (1, 3, 0)"):
        F.conv1d_forward(np.zeros((1, 3, 0)), np.zeros((2, 3, 1)))


def test_error_conv1d_same_with_a_stride():
    with _raises(ValueError, "padding='same' needs stride 1, got stride=2"):
        F.conv1d_forward(np.zeros((1, 3, 5)), np.zeros((2, 3, 2)), stride=2, padding="same")


def test_error_conv1d_reflect_padding_not_below_the_length():
    with _raises(ValueError, "padding_mode='reflect'", "smaller than the input", "(1, 3, 2)"):
        F.conv1d_forward(np.zeros((1, 3, 2)), np.zeros((2, 3, 2)), padding=2,
                         padding_mode="reflect")


def test_error_pool1d_padding_above_half_the_kernel():
    with _raises(ValueError, "padding 2 must be at most half of kernel_size 3"):
        F.avg_pool1d_forward(np.zeros((1, 3, 5)), 3, padding=2)


def test_error_pool1d_kernel_size_zero():
    with _raises(ValueError, "kernel_size must be >= 1"):
        F.max_pool1d_forward(np.zeros((1, 3, 5)), 0)


def test_error_pool1d_stride_a_pair():
    with _raises(TypeError, "stride must be an int or a 1-tuple"):
        F.max_pool1d_forward(np.zeros((1, 3, 5)), 2, stride=(1, 1))


def test_error_max_pool1d_return_indices_not_a_bool():
    with _raises(TypeError, "return_indices must be a bool"):
        F.max_pool1d_forward(np.zeros((1, 3, 5)), 2, return_indices="yes")


def test_error_dout_unlike_the_output():
    _, cache = F.avg_pool1d_forward(np.zeros((1, 3, 6)), 2)
    with _raises(ValueError, "dout has shape (1, 3, 2)", "(1, 3, 3)"):
        F.avg_pool1d_backward(np.zeros((1, 3, 2)), cache)


@pytest.mark.parametrize("backward, origin", [
    (F.conv1d_backward, "avg_pool1d_forward"), (F.max_pool1d_backward, "avg_pool1d_forward")])
def test_error_cache_of_another_op(backward, origin):
    out, cache = F.avg_pool1d_forward(np.zeros((1, 3, 6)), 2)
    with _raises(TypeError, f"cache comes from {origin}"):
        backward(out, cache)


def test_error_conv2d_cache_to_conv1d_backward():
    out, cache = F.conv2d_forward(np.zeros((1, 3, 4, 4)), np.zeros((2, 3, 2, 2)))
    with _raises(TypeError, "cache comes from conv2d_forward, not conv1d_forward"):
        F.conv1d_backward(out[:, :, 0], cache)


def test_error_conv1d_layer_arguments():
    with _raises(ValueError, "Conv1d(in_channels=3)", "(N, 3, L)", "(2, 3, 4, 4)"):
        nn.Conv1d(3, 2, 3).forward(np.zeros((2, 3, 4, 4), np.float32))
    with _raises(TypeError, "Conv1d: stride must be an int or a 1-tuple"):
        nn.Conv1d(3, 2, 3, stride=(2, 2))
    with _raises(ValueError, "padding='same' needs stride 1"):
        nn.Conv1d(3, 2, 3, stride=2, padding="same")
    with _raises(ValueError, "padding_mode must be one of"):
        nn.Conv1d(3, 2, 3, padding_mode="mirror")
