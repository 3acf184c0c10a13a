"""padding_mode ('reflect', 'replicate', 'circular') on conv2d and Conv2d: against PyTorch
(hypothesis), the fill and its fold (the adjoint), PyTorch's limits, the GPU backend on emulated
kernels, numerical gradients, and the errors."""

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
from fastconv.functional.padding import fill, fold
from op_paths import (assert_gpu_matches_cpu, case_arrays, check_on_cupy, compare,  # noqa: F401
                      emulated_kernels, normal, on_cpu, torch_run)
from test_cuda_emulated import kernels_for_numpy  # noqa: F401 (a fixture)
from torch_oracle import hypothesis_settings

DTYPES = [np.float64, np.float32]
MODES = ["reflect", "replicate", "circular"]


@st.composite
def padded_conv_cases(draw):
    """A conv2d with a filling padding mode: int, pair, per-side or 'same' padding within the
    mode's limits, groups, dilation, stride above the kernel, inputs down to the limits."""
    mode = draw(st.sampled_from(MODES))
    groups = draw(st.sampled_from([1, 1, 2]))
    cin, fout = groups * draw(st.integers(1, 3)), groups * draw(st.integers(1, 2))
    kernel = (draw(st.integers(1, 4)), draw(st.integers(1, 4)))
    dilation = (draw(st.sampled_from([1, 1, 2])), draw(st.sampled_from([1, 1, 2])))
    form = draw(st.sampled_from(["int", "pair", "sides", "same"]))
    stride = (1, 1) if form == "same" else (draw(st.integers(1, 4)), draw(st.integers(1, 4)))
    if form == "same":
        totals = [d * (k - 1) for k, d in zip(kernel, dilation)]
        padding, pads = "same", [(t // 2, t - t // 2) for t in totals]
    elif form == "sides":
        pads = [(draw(st.integers(0, 3)), draw(st.integers(0, 3))) for _ in range(2)]
        padding = tuple(pads)
    else:
        pair = (draw(st.integers(0, 3)), draw(st.integers(0, 3)))
        padding = pair[0] if form == "int" else pair
        pads = [(pair[0], pair[0]), (pair[1], pair[1])] if form == "pair" else [(pair[0],) * 2] * 2
    size = []
    for k, d, (before, after) in zip(kernel, dilation, pads):
        smallest = max(1, d * (k - 1) + 1 - before - after)
        smallest = max(smallest, {"reflect": max(before, after) + 1,
                                  "circular": max(before, after)}.get(mode, 1))
        size.append(smallest + draw(st.sampled_from([0, 0, 1, 3])))
    return dict(x_shape=(draw(st.integers(1, 2)), cin, *size),
                w_shape=(fout, cin // groups, *kernel), b_size=draw(st.sampled_from([fout, None])),
                seed=draw(st.integers(0, 2**32 - 1)),
                kw=dict(stride=stride, padding=padding, dilation=dilation, groups=groups,
                        padding_mode=mode))


def _torch_conv2d(torch, case, dtype):
    """torch's padded convolution: nn.Conv2d's own forward, or (per-side padding, which
    nn.Conv2d does not take) its two steps, F.pad and a convolution without padding."""
    kw = case["kw"]

    def run(x, w, b):
        if isinstance(kw["padding"], tuple) and isinstance(kw["padding"][0], tuple):
            (top, bottom), (left, right) = kw["padding"]
            padded = torch.nn.functional.pad(x, (left, right, top, bottom), mode=kw["padding_mode"])
            return torch.nn.functional.conv2d(padded, w, b, kw["stride"], 0, kw["dilation"],
                                              kw["groups"])
        module = torch.nn.Conv2d(x.shape[1], w.shape[0], w.shape[2:], bias=b is not None,
                                 dtype=getattr(torch, np.dtype(dtype).name), **kw)
        return module._conv_forward(x, w, b)
    return run


@hypothesis_settings(80)
@given(case=padded_conv_cases())
def test_conv2d_padding_modes_match_torch(case):
    torch = require_torch()
    for dtype in DTYPES:
        rng, x, w, b = case_arrays(case, dtype)
        want = torch_run(torch, _torch_conv2d(torch, case, dtype), (x, w, b),
                         lambda s: rng.standard_normal(s).astype(dtype))
        out, cache = F.conv2d_forward(x, w, b, **case["kw"])
        compare("conv2d padding_mode", dtype, (out, *F.conv2d_backward(want[1], cache)),
                (want[0], *want[2]))
    torch_oracle.count_case("conv2d padding_mode")


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("shape, pads", [
    ((2, 3, 4, 5), ((1, 3), (2, 0))),
    ((1, 1, 1, 4), ((0, 0), (3, 3))),  # at the reflect limit along W
    ((2, 2, 3, 3), ((3, 3), (3, 3))),  # the whole input wrapped (circular's limit)
])
def test_fill_is_torch_pad_and_fold_its_adjoint(torch, mode, shape, pads):
    if mode == "reflect" and max(map(max, pads)) >= min(shape[2:]):
        pads = tuple((min(a, n - 1), min(b, n - 1)) for (a, b), n in zip(pads, shape[2:]))
    x = normal(0, shape, np.float64)
    padded = fill(x, pads, mode)
    (top, bottom), (left, right) = pads
    want = torch.nn.functional.pad(torch.from_numpy(x), (left, right, top, bottom), mode=mode)
    np.testing.assert_array_equal(padded, want.numpy())
    y = normal(1, padded.shape, np.float64)
    folded = fold(y.copy(), pads, mode)
    assert folded.shape == x.shape and folded.flags.c_contiguous
    assert np.vdot(padded, y) == pytest.approx(np.vdot(x, folded), rel=1e-13)
    np.testing.assert_array_equal(folded, fold(y.copy(), pads, mode))  # a fixed order


def test_fill_and_fold_keep_float16_and_sum_replicated_edges_in_float32():
    x = np.ones((1, 1, 1, 2), np.float16)
    padded = fill(x, ((0, 0), (0, 3000)), "replicate")
    assert padded.dtype == np.float16 and padded.shape == (1, 1, 1, 3002)
    folded = fold(np.ones_like(padded), ((0, 0), (0, 3000)), "replicate")
    np.testing.assert_array_equal(folded, np.array([[[[1, 3001]]]], np.float16))


@pytest.mark.parametrize("mode, width, copies", [
    ("circular", 3, (3, 0, 6)),  # x[0] is padded[3], copied to padded[0] and padded[6]
    ("reflect", 4, (4, 2, 8)),   # x[1] is padded[4], mirrored to padded[2] and padded[8]
])
def test_fold_sums_float16_borders_in_float32(torch, mode, width, copies):
    """An input cell's gradient adds those of the border cells copying it: 4e4 + 4e4 - 4e4
    overflowed to inf in a float16 running sum, where torch's (in float32, rounded once) is
    4e4."""
    dpadded = np.zeros((1, 1, 1, width + 6), np.float16)
    dpadded[..., list(copies)] = [4e4, 4e4, -4e4]
    x = torch.zeros((1, 1, 1, width), requires_grad=True)
    torch.nn.functional.pad(x, (3, 3, 0, 0), mode=mode).backward(
        torch.from_numpy(dpadded.astype(np.float32)))
    folded = fold(dpadded.copy(), ((0, 0), (3, 3)), mode)
    assert folded.dtype == np.float16 and folded.flags.c_contiguous
    np.testing.assert_array_equal(folded, x.grad.numpy().astype(np.float16))


def test_same_padding_with_a_mode_uses_the_resolved_pads(torch):
    """An even kernel: 'same' puts the odd pad on the bottom/right, as torch's Conv2d."""
    case = dict(kw=dict(stride=1, padding="same", dilation=1, groups=1,
                        padding_mode="reflect"))
    x, w = normal(0, (1, 2, 5, 6), np.float64), normal(1, (3, 2, 2, 4), np.float64)
    want = torch_run(torch, _torch_conv2d(torch, case, np.float64), (x, w, None),
                     lambda s: normal(2, s, np.float64))
    out, cache = F.conv2d_forward(x, w, **case["kw"])
    assert out.shape == (1, 3, 5, 6) and cache.fill == ("reflect", ((0, 1), (1, 2)))
    compare("conv2d padding_mode", np.float64, (out, *F.conv2d_backward(want[1], cache)),
            (want[0], *want[2]))


def test_no_padding_needs_no_fill_and_skipping_dx_skips_the_fold():
    x, w = normal(0, (2, 2, 5, 5), np.float64), normal(1, (3, 2, 3, 3), np.float64)
    out, cache = F.conv2d_forward(x, w, padding=0, padding_mode="circular")
    assert cache.fill is None and cache.x is x
    out, cache = F.conv2d_forward(x, w, padding=1, padding_mode="circular")
    assert cache.x.shape == (2, 2, 7, 7)
    dx, dw, _ = F.conv2d_backward(np.ones_like(out), cache, needs_input_grad=False)
    assert dx is None
    np.testing.assert_array_equal(dw, F.conv2d_backward(np.ones_like(out), cache)[1])


# ------------------------------------------------------------------------------- the layer
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("mode", MODES)
def test_conv2d_layer_padding_mode_matches_torch(torch, dtype, mode):
    kw = dict(stride=(2, 1), padding=(1, 2), padding_mode=mode)
    layer = nn.Conv2d(3, 4, 3, dtype=dtype, seed=1, **kw)
    ref = torch.nn.Conv2d(3, 4, 3, dtype=getattr(torch, np.dtype(dtype).name), **kw)
    with torch.no_grad():
        ref.weight.copy_(torch.from_numpy(layer.params["W"]))
        layer.params["b"][...] = normal(5, 4, dtype)
        ref.bias.copy_(torch.from_numpy(layer.params["b"]))
    x = normal(2, (2, 3, 6, 5), dtype)
    out = layer.forward(x)
    want = torch_run(torch, ref, (x,), lambda s: normal(3, s, dtype))
    compare("Conv2d padding_mode", dtype,
            (out, layer.backward(want[1]), layer.grads["W"], layer.grads["b"]),
            (want[0], want[2][0], ref.weight.grad.numpy(), ref.bias.grad.numpy()))
    assert f"padding_mode={mode!r}" in repr(layer)


@pytest.mark.parametrize("mode", MODES)
def test_conv2d_layer_padding_mode_gradients_match_numerical(mode):
    layer = nn.Conv2d(2, 3, 3, padding=((2, 1), (0, 2)), padding_mode=mode, dtype=np.float64,
                      seed=0)
    assert gradcheck.check_layer(layer, normal(1, (2, 2, 4, 5), np.float64)) < 1e-7


# ------------------------------------------------------------------------ the GPU backend
@settings(max_examples=20, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(case=padded_conv_cases(), dtype=st.sampled_from(DTYPES))
def test_gpu_backend_on_emulated_kernels_matches_the_cpu(emulated_kernels, kernels_for_numpy,
                                                         case, dtype):
    """The same fill and fold (array code) around the GPU convolution."""
    _, x, w, b = case_arrays(case, dtype)
    out, cache = on_cpu(F.conv2d_forward, x, w, b, **case["kw"])
    dout = normal(case["seed"], out.shape, dtype)
    want = (out, *on_cpu(F.conv2d_backward, dout, cache))
    out, cache = F.conv2d_forward(x, w, b, **case["kw"])
    assert_gpu_matches_cpu((out, *F.conv2d_backward(dout, cache)), want)


@pytest.mark.gpu
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
def test_padding_modes_on_the_gpu(mode, dtype):
    kw = dict(padding=((2, 1), (1, 3)), stride=(1, 2), padding_mode=mode)
    arrays = normal(0, (2, 3, 6, 7), dtype), normal(1, (4, 3, 3, 2), dtype), normal(2, 4, dtype)
    check_on_cupy(F.conv2d_forward, F.conv2d_backward, arrays, kw, dtype)


# -------------------------------------------------------------------------------- errors
def _raises(exc, *fragments):
    return pytest.raises(exc, match="".join(f"(?=.*{re.escape(f)})" for f in fragments))


def _conv(x_shape=(1, 2, 3, 4), **kw):
    return F.conv2d_forward(np.zeros(x_shape), np.zeros((2, 2, 3, 3)), **kw)


def test_error_unknown_padding_mode():
    with _raises(ValueError, "padding_mode must be one of", "'zeros'", "'mirror'"):
        _conv(padding=1, padding_mode="mirror")


def test_error_padding_mode_not_a_string():
    with _raises(TypeError, "padding_mode must be a string", "None"):
        _conv(padding=1, padding_mode=None)


def test_error_reflect_pad_not_below_the_input_size():
    with _raises(ValueError, "padding_mode='reflect' needs each pad smaller than the input",
                 "padding (3, 3) along axis 2 of size 3", "(1, 2, 3, 4)"):
        _conv(padding=3, padding_mode="reflect")


def test_error_circular_pad_above_the_input_size():
    with _raises(ValueError, "padding_mode='circular' needs each pad at most the input size",
                 "padding (0, 5) along axis 3 of size 4"):
        _conv(padding=((0, 0), (0, 5)), padding_mode="circular")


def test_error_conv2d_layer_padding_mode():
    with _raises(ValueError, "padding_mode must be one of"):
        nn.Conv2d(2, 2, 3, padding_mode="symmetric")
