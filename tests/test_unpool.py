"""fastconv.functional max unpooling (and nn.MaxUnpool2d) against PyTorch (hypothesis over
max-pool geometries), a NumPy scatter where windows share a maximum (fastconv sums, PyTorch
keeps one), the -1 index of a padding-only window, float64 gradients and the error contracts."""

import doctest
import re
from functools import partial

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import fastconv.functional as F
import fastconv.functional.unpool
import fastconv.nn as nn
import torch_oracle
from conftest import require_torch
from fastconv import gradcheck
from test_pool import _distinct, _dout_fn, _pool_axes
from torch_oracle import hypothesis_settings

DTYPES = [np.float64, np.float32]


def _raises(exc, *fragments):
    return pytest.raises(exc, match="".join(f"(?=.*{re.escape(f)})" for f in fragments))


@st.composite
def unpool_cases(draw):
    """A max pool (no dilation, as unpooling has none) of a distinct-valued x, and whether to
    pass the pooled input's size as output_size (needed when the pool's size formula rounded)."""
    kernel, stride, padding, _, _, size, ceil_mode = _pool_axes(draw, dilated=False)
    return dict(x_shape=(draw(st.integers(1, 3)), draw(st.integers(1, 3)), *size),
                seed=draw(st.integers(0, 2**32 - 1)), give_size=draw(st.booleans()),
                pool=dict(kernel_size=kernel, stride=stride, padding=padding,
                          ceil_mode=ceil_mode))


def _unpool_args(case, pooled_shape, x_shape):
    """The unpooling arguments; the default output size only where it is the pool's input size."""
    kw = {k: case["pool"][k] for k in ("kernel_size", "stride", "padding")}
    kernel = np.broadcast_to(kw["kernel_size"], 2)
    stride = kernel if kw["stride"] is None else np.broadcast_to(kw["stride"], 2)
    default = tuple((n - 1) * s + k - 2 * p for n, k, s, p in zip(
        pooled_shape[2:], kernel, stride, np.broadcast_to(kw["padding"], 2)))
    keep = not case["give_size"] and default == tuple(x_shape[2:])
    return dict(kw, output_size=None if keep else x_shape[2:])


def _scatter_reference(x, indices, out_shape):
    """NumPy's sequential ``add.at`` per plane: every value lands, shared indices add up."""
    n, c = x.shape[:2]
    out = np.zeros((n * c, out_shape[2] * out_shape[3]))
    for plane, (values, index) in enumerate(zip(x.reshape(n * c, -1), indices.reshape(n * c, -1))):
        keep = index >= 0
        np.add.at(out[plane], index[keep], values[keep].astype(np.float64))
    return out.reshape(out_shape)


def _shared(indices):
    """Whether two values of one plane have the same index (windows sharing a maximum)."""
    flat = indices.reshape(indices.shape[0] * indices.shape[1], -1)
    return any(len(np.unique(row)) < row.size for row in flat)


def _torch_unpool(torch, x, indices, dout_fn, **kw):
    tx = torch.from_numpy(x.copy()).requires_grad_(True)
    out = torch.nn.functional.max_unpool2d(tx, torch.from_numpy(indices), **kw)
    dout = dout_fn(tuple(out.shape))
    out.backward(torch.from_numpy(dout))
    return out.detach().numpy(), dout, tx.grad.numpy()


@hypothesis_settings(40)
@given(case=unpool_cases())
def test_max_unpool2d_matches_torch(case):
    torch = require_torch()
    for dtype in DTYPES:
        source = _distinct(case["x_shape"], case["seed"], dtype)
        x, indices, _ = F.max_pool2d_forward(source, return_indices=True, **case["pool"])
        kw = _unpool_args(case, x.shape, source.shape)
        t_out, dout, t_dx = _torch_unpool(torch, x, indices, _dout_fn(case["seed"], dtype), **kw)
        out, cache = F.max_unpool2d_forward(x, indices, **kw)
        dx = F.max_unpool2d_backward(dout, cache)
        assert out.dtype == dx.dtype == dtype and out.shape == t_out.shape
        pairs = dict(dx=(dx, t_dx))
        if _shared(indices):  # PyTorch keeps one of the values, fastconv sums them
            np.testing.assert_allclose(out, _scatter_reference(x, indices, out.shape),
                                       rtol=torch_oracle.TOLERANCE[np.dtype(dtype)])
        else:
            pairs["out"] = (out, t_out)
        torch_oracle.check("max_unpool2d", dtype, pairs)
    torch_oracle.count_case("max_unpool2d")


def test_unpooling_tiling_windows_restores_the_maxima_and_zeros_elsewhere():
    x = _distinct((2, 3, 6, 8), 1)
    pooled, indices, _ = F.max_pool2d_forward(x, 2, return_indices=True)
    out, _ = F.max_unpool2d_forward(pooled, indices, 2)
    np.testing.assert_array_equal(out, np.where(out != 0, x, 0))
    np.testing.assert_array_equal(F.max_pool2d_forward(out + (out == 0) * -1e9, 2)[0], pooled)


def test_values_sharing_an_index_are_summed_in_order():
    x = np.array([[[[1.0, 2.0, 4.0, 8.0]]]])
    indices = np.array([[[[3, 3, 0, 3]]]])
    out, cache = F.max_unpool2d_forward(x, indices, (1, 2), output_size=(1, 8))
    np.testing.assert_array_equal(out, [[[[4.0, 0, 0, 11.0, 0, 0, 0, 0]]]])
    dx = F.max_unpool2d_backward(np.arange(8.0).reshape(1, 1, 1, 8), cache)
    np.testing.assert_array_equal(dx, [[[[3.0, 3.0, 0.0, 3.0]]]])


def test_index_minus_one_of_a_padding_only_window_is_skipped():
    """fastconv's max pool gives -1 for a window of padding only; unpooling skips its value."""
    x = _distinct((2, 1, 1, 6), 6)
    pool = dict(kernel_size=(2, 3), stride=(3, 1), padding=(1, 0), dilation=(2, 1))
    pooled, indices, _ = F.max_pool2d_forward(x, return_indices=True, **pool)
    assert (indices == -1).all()
    out, cache = F.max_unpool2d_forward(pooled, indices, (2, 3), (3, 1), (1, 0),
                                        output_size=(1, 6))
    assert not out.any()
    assert not F.max_unpool2d_backward(np.ones_like(out), cache).any()
    indices[0, 0, 0, 1] = 5
    out, cache = F.max_unpool2d_forward(np.ones_like(pooled), indices, (2, 3), (3, 1), (1, 0),
                                        output_size=(1, 6))
    np.testing.assert_array_equal(out[0, 0, 0], [0, 0, 0, 0, 0, 1])
    dx = F.max_unpool2d_backward(np.full(out.shape, 2.0), cache)
    np.testing.assert_array_equal(dx[0, 0, 0], [0, 2, 0, 0])


def test_float16_and_empty_batches():
    x = _distinct((2, 2, 4, 4), 2).astype(np.float16)
    pooled, indices, _ = F.max_pool2d_forward(x, 2, return_indices=True)
    out, cache = F.max_unpool2d_forward(pooled, indices, 2)
    assert out.dtype == np.float16 and F.max_unpool2d_backward(out, cache).dtype == np.float16
    out, cache = F.max_unpool2d_forward(np.zeros((0, 3, 2, 2)), np.zeros((0, 3, 2, 2), np.int64),
                                        2)
    assert out.shape == (0, 3, 4, 4)
    assert F.max_unpool2d_backward(out, cache).shape == (0, 3, 2, 2)


@pytest.mark.parametrize("kernel, stride, size", [(2, None, 6), (3, 2, 7)])
def test_max_unpool_layer_matches_torch_and_numerical_gradients(torch, kernel, stride, size):
    x = _distinct((2, 3, size, size), 3)
    pooled, indices = nn.MaxPool2d(kernel, stride, return_indices=True).forward(x)
    ours, theirs = nn.MaxUnpool2d(kernel, stride), torch.nn.MaxUnpool2d(kernel, stride)
    out = ours.forward(pooled, indices, output_size=x.shape)
    t_in = torch.from_numpy(pooled.copy()).requires_grad_(True)
    want = theirs(t_in, torch.from_numpy(indices), output_size=x.shape)
    dout = _dout_fn(3, np.float64)(out.shape)
    want.backward(torch.from_numpy(dout))
    pairs = dict(dx=(ours.backward(dout), t_in.grad.numpy()))
    if not _shared(indices):  # 3/2 windows may share a maximum, which PyTorch keeps once
        pairs["out"] = (out, want.detach().numpy())
    torch_oracle.check("MaxUnpool2d", np.float64, pairs)
    ours.forward = partial(ours.forward, indices=indices, output_size=x.shape)
    assert gradcheck.check_layer(ours, pooled) < 1e-7


X = np.zeros((1, 1, 2, 2))
IDX = np.array([[[[0, 1], [4, 5]]]])


@pytest.mark.parametrize("call, err, fragments", [
    (lambda: F.max_unpool2d_forward(X, IDX.astype(np.int32), 2), TypeError,
     ["indices must be int64", "int32"]),
    (lambda: F.max_unpool2d_forward(X, IDX.astype(np.float64), 2), TypeError,
     ["indices must be int64", "float64"]),
    (lambda: F.max_unpool2d_forward(X, [[0, 1], [4, 5]], 2), TypeError,
     ["indices must be an int64 array", "list"]),
    (lambda: F.max_unpool2d_forward(X, IDX[..., :1], 2), ValueError,
     ["indices has shape (1, 1, 2, 1) but x has shape (1, 1, 2, 2)"]),
    (lambda: F.max_unpool2d_forward(X, IDX + 11, 2), ValueError,
     ["index 16 is out of range for output planes of 16 cells", "[0, 16)"]),
    (lambda: F.max_unpool2d_forward(X, IDX - 2, 2), ValueError, ["index -2 is out of range"]),
    (lambda: F.max_unpool2d_forward(X, IDX, 2, output_size=(6, 4)), ValueError,
     ["output_size (6, 4)", "height must be in (2, 6)", "default is (4, 4)"]),
    (lambda: F.max_unpool2d_forward(X, IDX, 2, output_size=(4,)), TypeError,
     ["output_size must be (H, W) or (N, C, H, W)"]),
    (lambda: F.max_unpool2d_forward(X, IDX, 2, output_size=(2, 1, 4, 4)), ValueError,
     ["another (N, C) than x of shape (1, 1, 2, 2)"]),
    (lambda: F.max_unpool2d_forward(X, IDX, 2, output_size=(4.0, 4)), TypeError,
     ["output_size must be an int or a pair of ints"]),
    (lambda: F.max_unpool2d_forward(X, IDX, 2, padding=-1), ValueError, ["padding must be >= 0"]),
    (lambda: F.max_unpool2d_forward(X, IDX, 0), ValueError, ["kernel_size must be >= 1"]),
    (lambda: F.max_unpool2d_forward(X, IDX, 2, stride=(1, 0)), ValueError,
     ["stride must be >= 1"]),
    (lambda: F.max_unpool2d_forward(np.zeros((1, 1, 1, 1)), IDX[..., :1, :1], 1, padding=1),
     ValueError, ["the unpooled size (-1, -1) is empty"]),
    (lambda: F.max_unpool2d_forward(X, IDX, 2, stride=10**30), ValueError,  # was OverflowError
     ["the unpooled size (1000000000000000000000000000002, 1000000000000000000000000000002) "
      "is too large", "N*C*H*W must stay below 2**62"]),
    (lambda: F.max_unpool2d_forward(X[0], IDX[0], 2), ValueError, ["x must be 4-D"]),
    (lambda: F.max_unpool2d_forward(X.astype(np.int64), IDX, 2), TypeError,
     ["x must be a floating-point array"]),
    (lambda: F.max_unpool2d_backward(np.zeros((1, 1, 4, 3)), F.max_unpool2d_forward(X, IDX, 2)[1]),
     ValueError, ["dout has shape (1, 1, 4, 3)", "(1, 1, 4, 4)"]),
    (lambda: F.max_unpool2d_backward(np.zeros((1, 1, 1, 1)), F.max_pool2d_forward(X, 2)[1]),
     TypeError, ["cache comes from max_pool2d_forward, not max_unpool2d_forward"]),
])
def test_bad_input_gets_errors_naming_the_argument_and_shapes(call, err, fragments):
    with _raises(err, *fragments):
        call()


def test_docstring_examples_run():
    assert doctest.testmod(fastconv.functional.unpool).failed == 0


@pytest.mark.gpu
def test_max_unpool_on_cupy_matches_numpy_bitwise():
    import cupy
    x = _distinct((2, 3, 9, 9), 4)
    pooled, indices, _ = F.max_pool2d_forward(x, 3, stride=1, return_indices=True)
    assert _shared(indices)
    out, cache = F.max_unpool2d_forward(pooled, indices, 3, 1, output_size=(9, 9))
    g_out, g_cache = F.max_unpool2d_forward(cupy.asarray(pooled), cupy.asarray(indices), 3, 1,
                                            output_size=(9, 9))
    np.testing.assert_array_equal(g_out.get(), out)
    dout = _dout_fn(4, np.float64)(out.shape)
    np.testing.assert_array_equal(F.max_unpool2d_backward(cupy.asarray(dout), g_cache).get(),
                                  F.max_unpool2d_backward(dout, cache))
