"""fastconv.functional pooling against PyTorch (hypothesis), the loop reference, and the
documented semantics: first-maximum ties, NaN propagation, -inf padding."""

import math
import re

import numpy as np
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

import fastconv.functional as F
import fastconv.nn as nn
import torch_oracle
from conftest import require_torch
from fastconv import gradcheck
from fastconv import reference as ref
from fastconv.shapes import conv_output_size
from torch_oracle import hypothesis_settings, rel_err

DTYPES = [np.float64, np.float32]
TOL = {np.float64: 1e-12, np.float32: 1e-5}  # vs the loop reference (accumulates in double)


def _distinct(shape, seed, dtype=np.float64):
    """Distinct values 0.5 apart (a shuffled ramp around 0), so every maximum is unique."""
    size = int(np.prod(shape))
    perm = np.random.default_rng(seed).permutation(size)
    return ((perm - size / 2) * 0.5).reshape(shape).astype(dtype)


def _every_window_touches_input(size, kernel, stride, pad, dilation, ceil_mode):
    """True when no pooling window lies wholly in the padding (PyTorch leaves those undefined)."""
    n_out = conv_output_size(size, kernel, stride, pad, dilation, ceil_mode)
    return n_out >= 1 and all(
        any(0 <= o * stride - pad + k * dilation < size for k in range(kernel))
        for o in range(n_out))


def _pool_axes(draw, dilated):
    """Kernel, stride, padding (<= half the kernel), dilation, size and ceil_mode, per axis.

    The size may fall short of the dilated kernel by up to stride - 1: ceil_mode
    then keeps one window that overhangs the padded input (PyTorch's formula).
    """
    kernel = (draw(st.integers(1, 4)), draw(st.integers(1, 4)))
    stride = draw(st.one_of(st.none(), st.tuples(st.integers(1, 5), st.integers(1, 5))))
    strides = kernel if stride is None else stride
    dilation = (draw(st.sampled_from([1, 1, 2, 3])), draw(st.sampled_from([1, 1, 2, 3]))) \
        if dilated else (1, 1)
    pads = (draw(st.integers(0, kernel[0] // 2)), draw(st.integers(0, kernel[1] // 2)))
    padding = pads[0] if pads[0] == pads[1] and draw(st.booleans()) else pads
    ceil_mode = draw(st.booleans())
    size = [max(1, d * (k - 1) + 1 - 2 * p - ceil_mode * draw(st.integers(0, s - 1)))
            + draw(st.integers(0, 5)) for k, s, d, p in zip(kernel, strides, dilation, pads)]
    for n, k, s, d, p in zip(size, kernel, strides, dilation, pads):
        assume(conv_output_size(n, k, s, p, d, ceil_mode) >= 1)
    return kernel, stride, padding, pads, dilation, size, ceil_mode


@st.composite
def max_pool_cases(draw):
    """Geometry + seed of a max-pool case whose windows all touch the input."""
    kernel, stride, padding, pads, dilation, size, ceil_mode = _pool_axes(draw, dilated=True)
    strides = kernel if stride is None else stride
    for i in range(2):
        assume(_every_window_touches_input(size[i], kernel[i], strides[i], pads[i],
                                           dilation[i], ceil_mode))
    return dict(x_shape=(draw(st.integers(1, 3)), draw(st.integers(1, 3)), *size),
                seed=draw(st.integers(0, 2**32 - 1)),
                kw=dict(kernel_size=kernel, stride=stride, padding=padding, dilation=dilation,
                        ceil_mode=ceil_mode))


@st.composite
def avg_pool_cases(draw):
    """Geometry + seed of an avg-pool case (no dilation, as PyTorch)."""
    kernel, stride, padding, _, _, size, ceil_mode = _pool_axes(draw, dilated=False)
    return dict(x_shape=(draw(st.integers(1, 3)), draw(st.integers(1, 3)), *size),
                seed=draw(st.integers(0, 2**32 - 1)),
                kw=dict(kernel_size=kernel, stride=stride, padding=padding,
                        ceil_mode=ceil_mode, count_include_pad=draw(st.booleans())))


@st.composite
def adaptive_cases(draw):
    """Input size, output size (int or pair; smaller, equal or larger than the input), seed."""
    size = (draw(st.integers(1, 10)), draw(st.integers(1, 10)))
    output_size = draw(st.one_of(st.integers(1, 6), st.tuples(st.integers(1, 6), st.integers(1, 6))))
    return dict(x_shape=(draw(st.integers(1, 3)), draw(st.integers(1, 3)), *size),
                seed=draw(st.integers(0, 2**32 - 1)), output_size=output_size)


def _dout_fn(seed, dtype):
    rng = np.random.default_rng(seed + 1)
    return lambda shape: rng.standard_normal(shape).astype(dtype)


def _assert_dtype(dtype, **arrays):
    for name, a in arrays.items():
        assert a.dtype == np.dtype(dtype), f"{name} is {a.dtype}, x was {np.dtype(dtype)}"
        assert a.flags.c_contiguous, f"{name} is not C-contiguous"


# ---------------------------------------------------------------- against PyTorch

@hypothesis_settings(80)
@given(case=max_pool_cases())
def test_max_pool2d_matches_torch(case):
    torch = require_torch()
    for dtype in DTYPES:
        x = _distinct(case["x_shape"], case["seed"], dtype)
        t_out, t_idx, dout, t_dx = torch_oracle.max_pool2d(
            torch, x, _dout_fn(case["seed"], dtype), **case["kw"])
        out, idx, cache = F.max_pool2d_forward(x, return_indices=True, **case["kw"])
        dx = F.max_pool2d_backward(dout, cache)
        _assert_dtype(dtype, out=out, dx=dx)
        assert idx.dtype == np.int64
        np.testing.assert_array_equal(idx, t_idx)
        torch_oracle.check("max_pool2d", dtype, dict(out=(out, t_out), dx=(dx, t_dx)))
    torch_oracle.count_case("max_pool2d")


@hypothesis_settings(50)
@given(case=avg_pool_cases())
def test_avg_pool2d_matches_torch(case):
    torch = require_torch()
    for dtype in DTYPES:
        x = np.random.default_rng(case["seed"]).standard_normal(case["x_shape"]).astype(dtype)
        t_out, dout, t_dx = torch_oracle.avg_pool2d(torch, x, _dout_fn(case["seed"], dtype),
                                                    **case["kw"])
        out, cache = F.avg_pool2d_forward(x, **case["kw"])
        dx = F.avg_pool2d_backward(dout, cache)
        _assert_dtype(dtype, out=out, dx=dx)
        torch_oracle.check("avg_pool2d", dtype, dict(out=(out, t_out), dx=(dx, t_dx)))
    torch_oracle.count_case("avg_pool2d")


@hypothesis_settings(30)
@given(case=adaptive_cases())
def test_adaptive_avg_pool2d_matches_torch(case):
    torch = require_torch()
    for dtype in DTYPES:
        x = np.random.default_rng(case["seed"]).standard_normal(case["x_shape"]).astype(dtype)
        t_out, dout, t_dx = torch_oracle.adaptive_avg_pool2d(
            torch, x, _dout_fn(case["seed"], dtype), case["output_size"])
        out, cache = F.adaptive_avg_pool2d_forward(x, case["output_size"])
        dx = F.adaptive_avg_pool2d_backward(dout, cache)
        _assert_dtype(dtype, out=out, dx=dx)
        torch_oracle.check("adaptive_avg_pool2d", dtype, dict(out=(out, t_out), dx=(dx, t_dx)))
    torch_oracle.count_case("adaptive_avg_pool2d")


OVERHANGING_CEIL_MODE = [  # the dilated kernel is longer than the padded input
    ("max_pool2d", (2, 2, 6, 14), dict(kernel_size=(3, 1), stride=(3, 2), dilation=3)),
    ("max_pool2d", (1, 3, 6, 9), dict(kernel_size=(5, 3), stride=2, padding=1, dilation=2)),
    ("max_pool2d", (2, 1, 10, 6), dict(kernel_size=(1, 4), stride=(2, 3), dilation=2)),
    ("avg_pool2d", (2, 2, 9, 1), dict(kernel_size=3, stride=(4, 3), padding=(1, 0))),
    ("avg_pool2d", (1, 2, 1, 1), dict(kernel_size=(2, 3), stride=3, count_include_pad=False)),
]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("op, x_shape, kw", OVERHANGING_CEIL_MODE)
def test_ceil_mode_keeps_a_window_overhanging_the_padded_input_like_torch(torch, op, x_shape, kw,
                                                                          dtype):
    """PyTorch's ceil_mode rounds (size + 2p - span) / stride up, so a kernel up to
    stride - 1 longer than the padded input still gives one window per axis."""
    x = _distinct(x_shape, 4, dtype)
    kw = dict(kw, ceil_mode=True)
    oracle = getattr(torch_oracle, op)(torch, x, _dout_fn(4, dtype), **kw)
    out, cache = getattr(F, op + "_forward")(x, **kw)
    dx = getattr(F, op + "_backward")(oracle[-2], cache)
    torch_oracle.check(op, dtype, dict(out=(out, oracle[0]), dx=(dx, oracle[-1])))
    r_out, _ = getattr(ref, op + "_forward")(x, **kw)
    np.testing.assert_allclose(out, r_out, rtol=TOL[dtype], atol=0)
    torch_oracle.count_case(op)


# ---------------------------------------------------------------- against the loop reference

def _max_pool_both(x, dout=None, **kw):
    """(fastconv, reference) results of max pool: (out, indices, dx) each."""
    results = []
    for impl in (F, ref):
        out, idx, cache = impl.max_pool2d_forward(x, return_indices=True, **kw)
        g = np.ones_like(out) if dout is None else dout
        results.append((out, idx, impl.max_pool2d_backward(g, cache)))
    return results


@hypothesis_settings(20)
@given(case=max_pool_cases())
def test_max_pool2d_matches_reference_with_indices(case):
    x = _distinct(case["x_shape"], case["seed"])
    r_out, _ = ref.max_pool2d_forward(x, **case["kw"])
    dout = _dout_fn(case["seed"], np.float64)(r_out.shape)
    (out, idx, dx), (r_out, r_idx, r_dx) = _max_pool_both(x, dout, **case["kw"])
    np.testing.assert_array_equal(out, r_out)
    np.testing.assert_array_equal(idx, r_idx)
    assert rel_err(dx, r_dx) <= TOL[np.float64]


@hypothesis_settings(15)
@given(case=avg_pool_cases())
def test_avg_pool2d_matches_reference(case):
    x = np.random.default_rng(case["seed"]).standard_normal(case["x_shape"])
    out, cache = F.avg_pool2d_forward(x, **case["kw"])
    r_out, r_cache = ref.avg_pool2d_forward(x, **case["kw"])
    dout = _dout_fn(case["seed"], np.float64)(r_out.shape)
    assert rel_err(out, r_out) <= TOL[np.float64]
    assert rel_err(F.avg_pool2d_backward(dout, cache), ref.avg_pool2d_backward(dout, r_cache)) \
        <= TOL[np.float64]


@hypothesis_settings(15)
@given(case=adaptive_cases())
def test_adaptive_avg_pool2d_matches_reference(case):
    x = np.random.default_rng(case["seed"]).standard_normal(case["x_shape"])
    out, cache = F.adaptive_avg_pool2d_forward(x, case["output_size"])
    r_out, r_cache = ref.adaptive_avg_pool2d_forward(x, case["output_size"])
    dout = _dout_fn(case["seed"], np.float64)(r_out.shape)
    assert rel_err(out, r_out) <= TOL[np.float64]
    assert rel_err(F.adaptive_avg_pool2d_backward(dout, cache),
                   ref.adaptive_avg_pool2d_backward(dout, r_cache)) <= TOL[np.float64]


# ---------------------------------------------------------------- documented semantics

TIE_GEOMETRIES = [
    dict(kernel_size=2),  # tiling windows (a reshape fast path, if any)
    dict(kernel_size=(2, 3)),  # tiling, non-square
    dict(kernel_size=3, stride=1, padding=1),  # overlapping, padded
    dict(kernel_size=3, stride=2, padding=1, ceil_mode=True),
    dict(kernel_size=2, stride=1, dilation=2),
]


@pytest.mark.parametrize("kw", TIE_GEOMETRIES)
def test_ties_send_the_gradient_to_the_first_maximum(kw):
    x = np.full((2, 2, 6, 6), 1.5)
    (out, idx, dx), (r_out, r_idx, r_dx) = _max_pool_both(x, **kw)
    np.testing.assert_array_equal(out, r_out)
    np.testing.assert_array_equal(idx, r_idx)
    np.testing.assert_array_equal(dx, r_dx)


def test_tie_rule_on_tiling_windows_is_the_top_left_cell():
    x = np.zeros((1, 1, 4, 6))
    dout = np.arange(1.0, 7.0).reshape(1, 1, 2, 3)
    out, cache = F.max_pool2d_forward(x, 2)
    dx = F.max_pool2d_backward(dout, cache)
    expected = np.zeros_like(x)
    expected[:, :, ::2, ::2] = dout
    np.testing.assert_array_equal(dx, expected)


SIGNED_ZERO_POOLS = [
    ("max_pool1d", (2, 3, 9), dict(kernel_size=3, stride=2)),
    ("max_pool2d", (2, 3, 6, 6), dict(kernel_size=2)),
    ("max_pool2d", (2, 3, 7, 7), dict(kernel_size=3, stride=1, padding=1)),
    ("max_pool3d", (1, 2, 4, 4, 4), dict(kernel_size=2)),
    ("adaptive_max_pool2d", (2, 3, 7, 5), dict(output_size=(3, 2))),
]


@pytest.mark.parametrize("dtype", [np.float64, np.float32, np.float16])
@pytest.mark.parametrize("op, x_shape, kw", SIGNED_ZERO_POOLS)
def test_a_tie_of_signed_zeros_keeps_the_first_zeros_sign_like_torch(torch, op, x_shape, kw,
                                                                     dtype):
    """Windows of -0.0 and +0.0 only, in a random order: the maximum is the first of them,
    sign bit included, as PyTorch's (the indices agree either way)."""
    signs = np.random.default_rng(8).integers(0, 2, x_shape).astype(bool)
    x = np.where(signs, -0.0, 0.0).astype(dtype)
    out = getattr(F, f"{op}_forward")(x, **kw)[0]
    want = getattr(torch.nn.functional, op)(torch.from_numpy(x), **kw).numpy()
    assert np.signbit(want).any() and not np.signbit(want).all()
    np.testing.assert_array_equal(np.signbit(out), np.signbit(want))


@pytest.mark.parametrize("kw", [dict(kernel_size=2), dict(kernel_size=3, stride=1, padding=1)])
def test_nan_propagates_through_max_pool(kw):
    x = _distinct((2, 2, 6, 6), 0)
    x[0, 0, 2, 3] = np.nan
    x[1, 1, 5, 0] = np.nan
    (out, idx, dx), (r_out, r_idx, r_dx) = _max_pool_both(x, **kw)
    assert np.isnan(r_out).sum() > 0
    np.testing.assert_array_equal(np.isnan(out), np.isnan(r_out))
    np.testing.assert_array_equal(out, r_out)  # NaN == NaN in assert_array_equal
    np.testing.assert_array_equal(idx, r_idx)  # a window's only NaN is its maximum
    np.testing.assert_array_equal(dx, r_dx)


@pytest.mark.parametrize("kw", [dict(kernel_size=2), dict(kernel_size=3, stride=2, padding=1)])
def test_non_finite_dout_reaches_only_the_maximum(kw):
    """An inf or NaN in dout goes to its window's maximum; the cells that lost get exactly 0."""
    x = _distinct((2, 2, 6, 6), 3)
    out, cache = F.max_pool2d_forward(x, **kw)
    r_out, r_cache = ref.max_pool2d_forward(x, **kw)
    dout = np.ones_like(out)
    dout[0, 0, 1, 1], dout[1, 1, 0, 2] = np.inf, np.nan
    dx = F.max_pool2d_backward(dout, cache)
    r_dx = ref.max_pool2d_backward(dout, r_cache)
    assert np.isnan(dx).sum() == 1 and np.isinf(dx).sum() == 1
    np.testing.assert_array_equal(dx, r_dx)


@pytest.mark.parametrize("dims", [2, 3])
def test_a_cell_won_by_many_windows_gets_their_gradients_summed_and_rounded_once(dims):
    """Every 3x3 (3x3x3) window at stride 1 over a 5-wide input holds its center, the one
    maximum: the center sums 9 (27) gradients, 2**25, 1 and -2**25 among them, which float32
    adds one by one to 0 (or to 2**25 - 2**25) but whose exact sum, rounded once, is what the
    CPU returns."""
    x = np.zeros((1, 1) + (5,) * dims, np.float32)
    center = (0, 0) + (2,) * dims
    x[center] = 1
    pool = F.max_pool2d_forward if dims == 2 else F.max_pool3d_forward
    backward = F.max_pool2d_backward if dims == 2 else F.max_pool3d_backward
    out, cache = pool(x, 3, stride=1)
    dout = np.full(out.shape, 0.375, np.float32)
    dout.reshape(-1)[:3] = 2.0**25, 1, -(2.0**25)
    dx = backward(dout, cache)
    exact = math.fsum(dout.astype(np.float64).reshape(-1))
    assert dx[center] == np.float32(exact) and dx.sum() == dx[center]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("kw", [dict(kernel_size=2, padding=1),
                                dict(kernel_size=3, stride=2, padding=1, ceil_mode=True),
                                dict(kernel_size=(3, 2), stride=1, padding=(1, 1), dilation=2)])
def test_all_negative_input_with_padding_never_pools_a_zero(dtype, kw):
    x = -1.0 - _distinct((2, 3, 5, 5), 1, dtype) ** 2
    out, _ = F.max_pool2d_forward(x, **kw)
    r_out, _ = ref.max_pool2d_forward(x, **kw)
    assert (out < 0).all()
    np.testing.assert_array_equal(out, r_out)


@pytest.mark.parametrize("dtype", DTYPES)
def test_pool_views_give_contiguous_results(dtype):
    rng = np.random.default_rng(12)
    x = _distinct((6, 3, 2, 9), 3, dtype).transpose(1, 2, 0, 3)[:, :, :, 1:]  # (3, 2, 6, 8)
    assert not x.flags.c_contiguous
    xc = np.ascontiguousarray(x)
    ops = [
        (F.max_pool2d_forward, F.max_pool2d_backward, dict(kernel_size=3, stride=2, padding=1)),
        (F.avg_pool2d_forward, F.avg_pool2d_backward, dict(kernel_size=2, padding=1)),
        (F.adaptive_avg_pool2d_forward, F.adaptive_avg_pool2d_backward, dict(output_size=(4, 3))),
    ]
    for forward, backward, kw in ops:
        out, cache = forward(x, **kw)
        c_out, c_cache = forward(xc, **kw)
        big = rng.standard_normal(out.shape[:3] + (2 * out.shape[3],)).astype(dtype)
        dout = big[..., ::2]
        dx = backward(dout, cache)
        c_dx = backward(np.ascontiguousarray(dout), c_cache)
        _assert_dtype(dtype, out=out, dx=dx)
        np.testing.assert_allclose(out, c_out, rtol=TOL[dtype], atol=0)
        np.testing.assert_allclose(dx, c_dx, rtol=TOL[dtype], atol=0)


def test_global_average_pooling_is_output_size_one():
    x = np.random.default_rng(13).standard_normal((2, 3, 5, 7))
    out, _ = F.adaptive_avg_pool2d_forward(x, 1)
    assert out.shape == (2, 3, 1, 1)
    np.testing.assert_allclose(out[:, :, 0, 0], x.mean(axis=(2, 3)), rtol=1e-13)


@pytest.mark.parametrize("op, kw", [
    ("max_pool2d", dict(kernel_size=2, padding=1)),
    ("avg_pool2d", dict(kernel_size=3, stride=2)),
    ("adaptive_avg_pool2d", dict(output_size=(2, 3))),
])
def test_empty_batch_gives_empty_results(op, kw):
    x = np.zeros((0, 3, 7, 6))
    r_out, _ = getattr(ref, op + "_forward")(x, **kw)
    out, cache = getattr(F, op + "_forward")(x, **kw)
    assert out.shape == r_out.shape
    assert getattr(F, op + "_backward")(out, cache).shape == x.shape


@pytest.mark.parametrize("forward, backward, x_shape", [
    (F.max_pool1d_forward, F.max_pool1d_backward, (2, 0, 7)),
    (F.max_pool2d_forward, F.max_pool2d_backward, (2, 0, 7, 6)),
    (F.max_pool3d_forward, F.max_pool3d_backward, (2, 0, 3, 7, 6)),
])
def test_max_pool_backward_of_no_channels_is_empty(forward, backward, x_shape):
    """Images of no channels pool to empty planes, as the average pools do both ways; the
    max pools' backward reshaped its sums to (-1, C, ...), ambiguous for C = 0, and raised."""
    x = np.zeros(x_shape, np.float32)
    out, cache = forward(x, 2, padding=1)
    assert out.shape[:2] == x_shape[:2]
    dx = backward(np.zeros_like(out), cache)
    assert dx.shape == x.shape and dx.dtype == x.dtype


@pytest.mark.parametrize("kw", [dict(kernel_size=2), dict(kernel_size=3, stride=1, padding=1),
                                dict(kernel_size=2, stride=1, padding=1, ceil_mode=True)])
def test_minus_infinity_input_with_padding_indexes_an_input_cell_like_torch(torch, kw):
    """-inf inputs tie with the -inf padding: the maximum must still be an input cell
    (the first in window order), as in PyTorch, and the gradient must go there."""
    x = np.full((2, 2, 4, 5), -np.inf)
    x[0, 0, 3, 3], x[1, 1, 0, 4] = 1.0, -2.0
    t_out, t_idx, dout, t_dx = torch_oracle.max_pool2d(torch, x, _dout_fn(0, np.float64), **kw)
    out, idx, cache = F.max_pool2d_forward(x, return_indices=True, **kw)
    np.testing.assert_array_equal(out, t_out)
    np.testing.assert_array_equal(idx, t_idx)
    np.testing.assert_allclose(F.max_pool2d_backward(dout, cache), t_dx, rtol=1e-12)


def test_float16_averages_sum_in_float32():
    """float16 window sums overflowed (4 x 40000 > 65504) or stalled at 2048, and a
    divisor of 65536 cells was inf; PyTorch accumulates half in float32 too."""
    big = np.full((1, 1, 2, 2), 40000, np.float16)
    np.testing.assert_array_equal(F.avg_pool2d_forward(big, 2)[0], [[[[40000]]]])
    ones = np.ones((1, 2, 256, 256), np.float16)
    out, cache = F.avg_pool2d_forward(ones, 256)
    np.testing.assert_array_equal(out, np.ones((1, 2, 1, 1), np.float16))
    assert F.avg_pool2d_backward(np.ones_like(out), cache).max() == np.float16(1 / 65536)
    np.testing.assert_array_equal(F.avg_pool2d_forward(ones[:, :, :47, :47], 47)[0], 1)
    flat = np.full((1, 1, 200, 200), 400, np.float16)
    np.testing.assert_array_equal(F.adaptive_avg_pool2d_forward(flat, 1)[0], [[[[400]]]])


@pytest.mark.parametrize("dims", [1, 2, 3])
@pytest.mark.parametrize("padding", [0, 1])
def test_float16_average_pool_gradient_sums_overlapping_windows_in_float32(torch, dims, padding):
    """A cell's dx adds the shares of every window covering it: summed in float16 each add
    rounds (2048 + 1 + 1 stays 2048), where the sum in float32 rounded once matches torch's
    float64 gradient rounded to float16. The windows (4 cells in 1-D, 2 per axis else) make
    the shares (dout / 4 or 8, dout integers) and their sums exact in float32 and float64, so
    the two agree bit for bit."""
    rng = np.random.default_rng(dims)
    shape, kernel = (2, 3) + (6,) * dims, 4 if dims == 1 else 2
    x = np.zeros(shape, np.float16)
    out, cache = getattr(F, f"avg_pool{dims}d_forward")(x, kernel, 1, padding)
    dout = rng.integers(-30000, 30000, out.shape).astype(np.float16)
    pool = getattr(torch.nn.functional, f"avg_pool{dims}d")
    leaf = torch.zeros(shape, dtype=torch.float64, requires_grad=True)
    pool(leaf, kernel, 1, padding).backward(torch.from_numpy(dout.astype(np.float64)))
    dx = getattr(F, f"avg_pool{dims}d_backward")(dout, cache)
    assert dx.dtype == np.float16
    np.testing.assert_array_equal(dx, leaf.grad.numpy().astype(np.float16))


def test_a_window_of_padding_only_gives_minus_infinity_and_index_minus_one():
    """Dilation can skip every input row of a window. PyTorch's index there lies outside the
    input (and its backward writes out of bounds), so the loop reference is the oracle."""
    x = _distinct((2, 1, 1, 6), 6)
    kw = dict(kernel_size=(2, 3), stride=(3, 1), padding=(1, 0), dilation=(2, 1))
    (out, idx, dx), (r_out, r_idx, r_dx) = _max_pool_both(x, np.ones((2, 1, 1, 4)), **kw)
    assert np.isneginf(out).all() and (idx == -1).all() and not dx.any()
    np.testing.assert_array_equal(out, r_out)
    np.testing.assert_array_equal(idx, r_idx)
    np.testing.assert_array_equal(dx, r_dx)


@pytest.mark.parametrize("op, kw", [
    ("max_pool2d", dict(kernel_size=3, stride=2, padding=1)),
    ("avg_pool2d", dict(kernel_size=3, stride=1, padding=1)),
    ("adaptive_avg_pool2d", dict(output_size=(4, 5))),
])
def test_backward_twice_gives_identical_results_and_leaves_inputs_untouched(op, kw):
    x = _distinct((2, 3, 7, 8), 5)
    x_copy = x.copy()
    out, cache = getattr(F, op + "_forward")(x, **kw)
    dout = np.random.default_rng(5).standard_normal(out.shape)
    dout_copy = dout.copy()
    first = getattr(F, op + "_backward")(dout, cache)
    np.testing.assert_array_equal(first, getattr(F, op + "_backward")(dout, cache))
    np.testing.assert_array_equal(x, x_copy)
    np.testing.assert_array_equal(dout, dout_copy)


# ---------------------------------------------------------------- adaptive max pooling

def _torch_adaptive_max(torch, x, dout_fn, output_size):
    """torch's adaptive_max_pool2d with indices and its gradient: (out, indices, dout, dx)."""
    tx = torch.from_numpy(x.copy()).requires_grad_(True)
    out, idx = torch.nn.functional.adaptive_max_pool2d(tx, output_size, return_indices=True)
    dout = dout_fn(tuple(out.shape))
    out.backward(torch.from_numpy(dout))
    return out.detach().numpy(), idx.numpy(), dout, tx.grad.numpy()


@st.composite
def adaptive_max_cases(draw):
    """adaptive_cases, with None in a pair (keep that input size) some of the time."""
    case = draw(adaptive_cases())
    if isinstance(case["output_size"], tuple) and draw(st.booleans()):
        keep = draw(st.integers(0, 1))
        case["output_size"] = tuple(None if a == keep else s
                                    for a, s in enumerate(case["output_size"]))
    return case


@hypothesis_settings(40)
@given(case=adaptive_max_cases())
def test_adaptive_max_pool2d_matches_torch(case):
    torch = require_torch()
    for dtype in DTYPES:
        x = _distinct(case["x_shape"], case["seed"], dtype)
        t_out, t_idx, dout, t_dx = _torch_adaptive_max(torch, x, _dout_fn(case["seed"], dtype),
                                                       case["output_size"])
        out, idx, cache = F.adaptive_max_pool2d_forward(x, case["output_size"],
                                                        return_indices=True)
        dx = F.adaptive_max_pool2d_backward(dout, cache)
        _assert_dtype(dtype, out=out, dx=dx)
        assert idx.dtype == np.int64
        np.testing.assert_array_equal(idx, t_idx)
        torch_oracle.check("adaptive_max_pool2d", dtype, dict(out=(out, t_out), dx=(dx, t_dx)))
    torch_oracle.count_case("adaptive_max_pool2d")


@pytest.mark.parametrize("x_shape, output_size", [((2, 3, 5, 7), (2, 3)), ((1, 2, 3, 3), 5),
                                                  ((2, 1, 6, 4), (4, 4))])
def test_adaptive_max_pool2d_ties_go_to_the_first_maximum_like_torch(torch, x_shape, output_size):
    """Whole rows of equal values, overlapping windows and windows larger than the input."""
    x = np.repeat(_distinct(x_shape[:3] + (1,), 2), x_shape[3], axis=3)
    x[..., ::2] = np.round(x[..., ::2])
    t_out, t_idx, dout, t_dx = _torch_adaptive_max(torch, x, _dout_fn(2, np.float64), output_size)
    out, idx, cache = F.adaptive_max_pool2d_forward(x, output_size, return_indices=True)
    np.testing.assert_array_equal(out, t_out)
    np.testing.assert_array_equal(idx, t_idx)
    np.testing.assert_allclose(F.adaptive_max_pool2d_backward(dout, cache), t_dx, rtol=1e-13)


def test_adaptive_max_pool2d_nan_wins_and_takes_the_gradient_at_the_first_nan():
    """Output as PyTorch (NaN); the gradient goes to the window's first NaN (PyTorch: the last)."""
    x = _distinct((1, 1, 4, 4), 3)
    x[0, 0, 1, 2] = x[0, 0, 2, 1] = np.nan
    out, idx, cache = F.adaptive_max_pool2d_forward(x, 1, return_indices=True)
    assert np.isnan(out).all() and idx.item() == 1 * 4 + 2
    dx = F.adaptive_max_pool2d_backward(np.ones_like(out), cache)
    assert dx[0, 0, 1, 2] == 1 and dx.sum() == 1
    out, idx, _ = F.adaptive_max_pool2d_forward(x, (2, 2), return_indices=True)
    np.testing.assert_array_equal(np.isnan(out[0, 0]), [[False, True], [True, False]])
    corner = [np.unravel_index(x[0, 0, r:r + 2, c:c + 2].argmax(), (2, 2)) for r, c in
              ((0, 0), (2, 2))]
    np.testing.assert_array_equal(idx[0, 0], [[corner[0][0] * 4 + corner[0][1], 6],
                                              [9, (2 + corner[1][0]) * 4 + 2 + corner[1][1]]])


def test_adaptive_max_pool2d_shared_cells_sum_their_windows_gradients():
    """Adaptive windows overlap when OH does not divide H: a shared maximum gets both douts."""
    x = np.zeros((1, 1, 1, 3))
    x[0, 0, 0, 1] = 1.0  # windows [0, 2) and [1, 3) share column 1
    out, cache = F.adaptive_max_pool2d_forward(x, (1, 2))
    dx = F.adaptive_max_pool2d_backward(np.array([[[[2.0, 3.0]]]]), cache)
    np.testing.assert_array_equal(dx, [[[[0.0, 5.0, 0.0]]]])


def test_adaptive_max_pool2d_keeps_float16_and_empty_batches():
    x = _distinct((2, 2, 5, 5), 4).astype(np.float16)
    out, cache = F.adaptive_max_pool2d_forward(x, 2)
    assert out.dtype == np.float16 and F.adaptive_max_pool2d_backward(out, cache).dtype == x.dtype
    out, cache = F.adaptive_max_pool2d_forward(np.zeros((0, 3, 4, 4)), (2, 3))
    assert out.shape == (0, 3, 2, 3)
    assert F.adaptive_max_pool2d_backward(out, cache).shape == (0, 3, 4, 4)


# ---------------------------------------------------------------- divisor_override

@hypothesis_settings(25)
@given(case=avg_pool_cases(), divisor=st.sampled_from([1, 2, 3, 7, -2]))
def test_avg_pool2d_divisor_override_matches_torch(case, divisor):
    torch = require_torch()
    kw = dict(case["kw"], divisor_override=divisor)
    for dtype in DTYPES:
        x = np.random.default_rng(case["seed"]).standard_normal(case["x_shape"]).astype(dtype)
        tx = torch.from_numpy(x.copy()).requires_grad_(True)
        t_out = torch.nn.functional.avg_pool2d(tx, **kw)
        dout = _dout_fn(case["seed"], dtype)(tuple(t_out.shape))
        t_out.backward(torch.from_numpy(dout))
        t_out, t_dx = t_out.detach().numpy(), tx.grad.numpy()
        out, cache = F.avg_pool2d_forward(x, **kw)
        dx = F.avg_pool2d_backward(dout, cache)
        _assert_dtype(dtype, out=out, dx=dx)
        torch_oracle.check("avg_pool2d divisor_override", dtype,
                           dict(out=(out, t_out), dx=(dx, t_dx)))
    torch_oracle.count_case("avg_pool2d divisor_override")


def test_divisor_override_ignores_padding_and_the_window_size():
    x = np.ones((1, 1, 3, 3))
    out, _ = F.avg_pool2d_forward(x, 2, stride=2, padding=1, ceil_mode=True, divisor_override=4,
                                  count_include_pad=False)
    np.testing.assert_array_equal(out, [[[[0.25, 0.5], [0.5, 1.0]]]])


# ---------------------------------------------------------------- layers and bad input

def test_new_pool_layers_match_torch_modules_and_numerical_gradients(torch):
    x = _distinct((2, 3, 7, 6), 8)
    cases = [(nn.AdaptiveMaxPool2d((3, 4)), torch.nn.AdaptiveMaxPool2d((3, 4))),
             (nn.AdaptiveMaxPool2d((None, 2)), torch.nn.AdaptiveMaxPool2d((None, 2))),
             (nn.AvgPool2d(3, 2, 1, divisor_override=5), torch.nn.AvgPool2d(3, 2, 1,
                                                                            divisor_override=5))]
    for ours, theirs in cases:
        out = ours.forward(x)
        dout = _dout_fn(8, np.float64)(out.shape)
        t = torch.from_numpy(x.copy()).requires_grad_(True)
        want = theirs(t)
        want.backward(torch.from_numpy(dout))
        torch_oracle.check(type(ours).__name__, np.float64, dict(
            out=(out, want.detach().numpy()), dx=(ours.backward(dout), t.grad.numpy())))
        assert gradcheck.check_layer(ours, x) < 1e-7


@pytest.mark.parametrize("op", ["adaptive_avg_pool2d", "adaptive_max_pool2d"])
@pytest.mark.parametrize("x_shape, output_size", [((2, 3, 5, 3), (4001, 2)),
                                                  ((1, 2, 7, 2), (3, 5003))])
def test_adaptive_pools_to_long_axes_match_torch(torch, op, x_shape, output_size):
    """Thousands of windows along an axis (a Python loop each, before; now array code): the
    windows, maxima, indices and gradients are still PyTorch's."""
    x = _distinct(x_shape, 14)
    tx = torch.from_numpy(x).requires_grad_(True)
    t_out = getattr(torch.nn.functional, op)(tx, output_size)
    dout = np.random.default_rng(14).standard_normal(tuple(t_out.shape))
    t_out.backward(torch.from_numpy(dout))
    out, cache = getattr(F, f"{op}_forward")(x, output_size)
    np.testing.assert_allclose(out, t_out.detach().numpy(), rtol=1e-13, atol=0)
    np.testing.assert_allclose(getattr(F, f"{op}_backward")(dout, cache), tx.grad.numpy(),
                               rtol=1e-12, atol=1e-13)


def test_adaptive_window_bounds_are_exact_for_any_array_size():
    """floor(i*H/OH) and ceil((i+1)*H/OH) in integer arithmetic: a float quotient of an H
    past 2**53 (a broadcast view can be that tall) would round."""
    from fastconv.functional.adaptive_pool import _adaptive_bounds
    for size, out in ((2**61 + 12345, 997), (2**53 + 1, 3), (5, 12), (7, 7), (1, 4)):
        want = [[i * size // out, -(-(i + 1) * size // out)] for i in range(out)]
        assert _adaptive_bounds(size, out).tolist() == want


def test_pool_layers_return_indices_like_torch(torch):
    x = _distinct((2, 2, 6, 6), 9)
    for ours, theirs in ((nn.MaxPool2d(2, return_indices=True),
                          torch.nn.MaxPool2d(2, return_indices=True)),
                         (nn.AdaptiveMaxPool2d(4, return_indices=True),
                          torch.nn.AdaptiveMaxPool2d(4, return_indices=True))):
        (out, idx), (t_out, t_idx) = ours.forward(x), theirs(torch.from_numpy(x))
        np.testing.assert_array_equal(out, t_out.numpy())
        np.testing.assert_array_equal(idx, t_idx.numpy())
        assert ours.backward(np.ones_like(out)).shape == x.shape


@pytest.mark.parametrize("call, err, fragments", [
    (lambda: F.adaptive_max_pool2d_forward(np.zeros((1, 1, 4, 4)), (2, 2, 2)), ValueError,
     ["output_size must be one value or a (height, width) pair", "length 3"]),
    (lambda: F.adaptive_max_pool2d_forward(np.zeros((1, 1, 4, 4)), (2, 0)), ValueError,
     ["output_size must be >= 1"]),
    (lambda: F.adaptive_max_pool2d_forward(np.zeros((1, 1, 4, 4)), 2.5), TypeError,
     ["output_size must be an int"]),
    (lambda: F.adaptive_max_pool2d_forward(np.zeros((1, 1, 0, 4)), 2), ValueError,
     ["adaptive_max_pool2d needs a height and width of at least 1", "(1, 1, 0, 4)"]),
    (lambda: F.adaptive_max_pool2d_forward(np.zeros((1, 4, 4)), 2), ValueError,
     ["x must be 4-D"]),
    (lambda: F.adaptive_max_pool2d_forward(np.zeros((1, 1, 4, 4), np.int32), 2), TypeError,
     ["floating-point"]),
    (lambda: F.adaptive_max_pool2d_forward(np.zeros((1, 1, 4, 4)), 2, return_indices=1),
     TypeError, ["return_indices must be a bool"]),
    (lambda: F.adaptive_avg_pool2d_forward(np.zeros((1, 1, 4, 4)), [1]), ValueError,
     ["output_size must be one value or a (height, width) pair", "length 1"]),
    (lambda: F.adaptive_avg_pool2d_forward(np.zeros((1, 1, 4, 4)), (2, 2.0)), TypeError,
     ["output_size must be an int or a pair of ints", "(2, 2.0)"]),
    # outputs no device allocates sensibly, refused before any table: the windows' bounds
    # were a Python list of one entry per output row (10**9 was OOM-killed)
    (lambda: F.adaptive_avg_pool2d_forward(np.zeros((1, 1, 4, 4)), 10**9), ValueError,
     ["output_size=1000000000 gives the output shape (1, 1, 1000000000, 1000000000) for x "
      "of shape (1, 1, 4, 4), too large", "(OH*OW) must stay below 2**31"]),
    (lambda: F.adaptive_max_pool2d_forward(np.zeros((1, 1, 4, 4)), 10**9), ValueError,
     ["output_size=1000000000 gives the output shape (1, 1, 1000000000, 1000000000)"]),
    (lambda: F.adaptive_max_pool2d_forward(np.zeros((2, 3, 4, 4)), (None, 2**30)), ValueError,
     ["output_size=(None, 1073741824) gives the output shape (2, 3, 4, 1073741824)"]),
    (lambda: F.adaptive_avg_pool2d_forward(np.zeros((0, 1, 4, 4)), (2**31, 1)), ValueError,
     ["output_size=(2147483648, 1) gives the output shape (0, 1, 2147483648, 1)"]),
    (lambda: F.adaptive_max_pool2d_backward(
        np.zeros((1, 1, 2, 3)), F.adaptive_max_pool2d_forward(np.zeros((1, 1, 4, 4)), 2)[1]),
     ValueError, ["dout has shape (1, 1, 2, 3)", "(1, 1, 2, 2)"]),
    (lambda: F.adaptive_max_pool2d_backward(
        np.zeros((1, 1, 2, 2)), F.adaptive_avg_pool2d_forward(np.zeros((1, 1, 4, 4)), 2)[1]),
     TypeError, ["cache comes from adaptive_avg_pool2d_forward"]),
    (lambda: F.avg_pool2d_forward(np.zeros((1, 1, 4, 4)), 2, divisor_override=0), ValueError,
     ["divisor_override must not be 0"]),
    (lambda: F.avg_pool2d_forward(np.zeros((1, 1, 4, 4)), 2, divisor_override=2.0), TypeError,
     ["divisor_override must be an int"]),
    (lambda: F.avg_pool2d_forward(np.zeros((1, 1, 4, 4)), 2, divisor_override=True), TypeError,
     ["divisor_override must be an int"]),
])
def test_new_pool_arguments_get_errors_naming_them(call, err, fragments):
    with pytest.raises(err, match="".join(f"(?=.*{re.escape(f)})" for f in fragments)):
        call()


@pytest.mark.gpu
def test_adaptive_max_pool_and_divisor_override_on_cupy_match_numpy():
    import cupy
    x = _distinct((2, 3, 9, 7), 10)
    x[0, 1, 4, 4] = np.nan
    for forward, backward in ((lambda a: F.adaptive_max_pool2d_forward(a, (4, 3)),
                               F.adaptive_max_pool2d_backward),
                              (lambda a: F.avg_pool2d_forward(a, 3, 2, 1, divisor_override=3),
                               F.avg_pool2d_backward)):
        out, cache = forward(x)
        g_out, g_cache = forward(cupy.asarray(x))
        np.testing.assert_allclose(g_out.get(), out, rtol=1e-13, atol=0)  # NaN where x's is
        dout = _dout_fn(10, np.float64)(out.shape)
        np.testing.assert_allclose(backward(cupy.asarray(dout), g_cache).get(),
                                   backward(dout, cache), rtol=1e-13, atol=0)


def test_docstring_examples_run():
    import doctest

    import fastconv._window_max
    import fastconv.functional._axes
    import fastconv.functional.pool
    for module in (fastconv.functional.pool, fastconv._window_max, fastconv.functional._axes):
        assert doctest.testmod(module).failed == 0, module.__name__
