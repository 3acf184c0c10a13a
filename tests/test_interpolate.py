"""fastconv.functional.interpolate (and nn.Upsample) against PyTorch (hypothesis over sizes,
scale factors, modes and align_corners, degenerate sizes included), PyTorch's index quirks,
float64 gradients and the error contracts."""

import doctest
import re

import numpy as np
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

import fastconv.functional as F
import fastconv.functional.interpolate
import fastconv.nn as nn
import torch_oracle
from conftest import require_torch
from fastconv import gradcheck
from torch_oracle import hypothesis_settings

DTYPES = [np.float64, np.float32]


def randn(shape, dtype=np.float64, seed=0):
    return np.random.default_rng(seed).standard_normal(shape).astype(dtype)


def torch_interpolate(torch, x, dout_fn, **kw):
    """torch's interpolate and its gradient: (out, dout, dx)."""
    tx = torch.from_numpy(x.copy()).requires_grad_(True)
    out = torch.nn.functional.interpolate(tx, **kw)
    dout = dout_fn(tuple(out.shape))
    out.backward(torch.from_numpy(dout))
    return out.detach().numpy(), dout, tx.grad.numpy()


def compare(torch, x, seed, **kw):
    """Forward and backward of one case against torch, in x's dtype."""
    rng = np.random.default_rng(seed)
    t_out, dout, t_dx = torch_interpolate(
        torch, x, lambda shape: rng.standard_normal(shape).astype(x.dtype), **kw)
    out, cache = F.interpolate_forward(x, **kw)
    dx = F.interpolate_backward(dout, cache)
    assert out.dtype == dx.dtype == x.dtype and out.flags.c_contiguous and dx.flags.c_contiguous
    mode = kw.get("mode", "nearest")
    if mode == "nearest":  # a copy of input cells: the same bits
        np.testing.assert_array_equal(out, t_out)
    torch_oracle.check(f"interpolate {mode}", x.dtype, dict(out=(out, t_out), dx=(dx, t_dx)))


def _scales(draw):
    """A scale factor: an int, a float (from 0.3 to 4) or a pair of them."""
    one = st.one_of(st.integers(1, 3), st.floats(0.3, 4.0, allow_nan=False))
    return draw(st.one_of(one, st.tuples(one, one)))


@st.composite
def interpolate_cases(draw, mode):
    """x (sizes 1 to 8), size (1 to 16) or scale_factor, align_corners, seed."""
    x_shape = (draw(st.integers(1, 2)), draw(st.integers(1, 3)), draw(st.integers(1, 8)),
               draw(st.integers(1, 8)))
    kw = dict(mode=mode)
    if mode == "bilinear":
        kw["align_corners"] = draw(st.sampled_from([None, False, True]))
    if draw(st.booleans()):
        kw["size"] = draw(st.one_of(st.integers(1, 16),
                                    st.tuples(st.integers(1, 16), st.integers(1, 16))))
    else:
        kw["scale_factor"] = _scales(draw)
        scales = np.broadcast_to(kw["scale_factor"], 2)
        assume(all(int(n * s) >= 1 for n, s in zip(x_shape[2:], scales)))
    return dict(x_shape=x_shape, kw=kw, seed=draw(st.integers(0, 2**32 - 1)))


@pytest.mark.parametrize("mode", fastconv.functional.interpolate.MODES)
@hypothesis_settings(35)
@given(data=st.data())
def test_interpolate_matches_torch(mode, data):
    torch = require_torch()
    case = data.draw(interpolate_cases(mode))
    for dtype in DTYPES:
        compare(torch, randn(case["x_shape"], dtype, case["seed"]), case["seed"] + 1,
                **case["kw"])
    torch_oracle.count_case(f"interpolate {case['kw']['mode']}")


QUIRKS = [  # PyTorch's index rules where a naive formula differs
    dict(scale_factor=1.2),  # 4 * 1.2 -> 4: the axis is copied, not read at 1 / 1.2
    dict(scale_factor=1.5),  # 5 -> 7, positions at 1 / 1.5 (not 5 / 7)
    dict(scale_factor=2.0000001),  # twice the size: nearest halves the index
    dict(scale_factor=(0.5, 3)),
    dict(size=(12, 9)),  # in / out in float32 for nearest
    dict(size=(1, 1)),
    dict(size=(13, 2), mode="bilinear"),
    dict(size=(1, 9), mode="bilinear", align_corners=True),  # one output row: ratio 0
    dict(scale_factor=1.4, mode="bilinear"),
    dict(scale_factor=3.5 / (2.5 - 1e-9), mode="bilinear"),  # a position 1e-9 below an integer:
    # ATen floors it in float32, reading the upper cell alone
]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("kw", QUIRKS)
def test_pytorch_index_rules(torch, kw, dtype):
    compare(torch, randn((2, 2, 5, 4), dtype, 3), 4, **kw)


@pytest.mark.parametrize("dtype", DTYPES)
def test_nearest_index_is_computed_in_the_inputs_precision(torch, dtype):
    """87 rows to 345, 11 columns to 29: output row 115 sits at 115 * 87/345 = 29 (28.999998
    in float32). PyTorch's CPU forward computes the product in float64 for float64 inputs
    and rounds it to float32 before the floor, so the rows read differ between the dtypes:
    the output is PyTorch's bit for bit. The gradient is the forward's adjoint, each input
    cell summing the dout of the outputs that read it; PyTorch's own float64 backward takes
    its indices in float32 (row 115's gradient to row 28), so its gradcheck of this case
    fails, and its dx is not the oracle here."""
    x = randn((1, 2, 87, 11), dtype, 6)
    dout = randn((1, 2, 345, 29), dtype, 7)
    out, cache = F.interpolate_forward(x, size=(345, 29))
    tx = torch.from_numpy(x)
    np.testing.assert_array_equal(out, torch.nn.functional.interpolate(tx, size=(345, 29)).numpy())
    # which input cell each output reads, from PyTorch's forward of the cells' numbers
    numbers = torch.arange(x[0, 0].size, dtype=tx.dtype).reshape((1, 1) + x.shape[2:])
    reads = torch.nn.functional.interpolate(numbers, size=(345, 29))[0, 0].numpy().astype(int)
    assert reads[115, 0] // 11 == (29 if dtype == np.float64 else 28)
    want = np.zeros((2, x[0, 0].size))
    for c in range(2):
        np.add.at(want[c], reads.ravel(), dout[0, c].astype(np.float64).ravel())
    np.testing.assert_allclose(F.interpolate_backward(dout, cache)[0].reshape(2, -1), want,
                               rtol=1e-12 if dtype == np.float64 else 1e-5, atol=1e-6)


def test_float16_is_computed_in_float32():
    x = randn((1, 2, 5, 5), np.float16, 5)
    out, cache = F.interpolate_forward(x, scale_factor=2.5, mode="bilinear")
    want, _ = F.interpolate_forward(x.astype(np.float32), scale_factor=2.5, mode="bilinear")
    assert out.dtype == np.float16
    np.testing.assert_array_equal(out, want.astype(np.float16))
    assert F.interpolate_backward(np.ones_like(out), cache).dtype == np.float16


def test_nearest_downsampling_sends_no_gradient_to_unread_cells():
    x = randn((1, 1, 4, 4), seed=6)
    out, cache = F.interpolate_forward(x, size=2)
    np.testing.assert_array_equal(out, x[:, :, ::2, ::2])
    dx = F.interpolate_backward(np.ones_like(out), cache)
    np.testing.assert_array_equal(dx, np.kron(np.ones((1, 1, 2, 2)), [[1, 0], [0, 0]]))


def test_a_copied_size_gives_a_fresh_contiguous_array():
    x = randn((2, 3, 4, 5), seed=7).transpose(0, 1, 3, 2)
    out, cache = F.interpolate_forward(x, size=(5, 4), mode="bilinear")
    assert out is not x and out.flags.c_contiguous
    np.testing.assert_array_equal(out, x)
    dout = randn(out.shape, seed=8)
    dx = F.interpolate_backward(dout, cache)
    assert dx is not dout and np.array_equal(dx, dout)


def test_non_finite_dout_reaches_only_its_readers():
    """The table entries with no reader read a zero row, so an inf in dout goes nowhere else."""
    x = randn((1, 1, 3, 3), seed=9)
    out, cache = F.interpolate_forward(x, size=(1, 1))
    dx = F.interpolate_backward(np.full((1, 1, 1, 1), np.inf), cache)
    assert np.isinf(dx[0, 0, 0, 0]) and (dx.ravel()[1:] == 0).all()


@pytest.mark.parametrize("kw", [dict(scale_factor=2), dict(size=(3, 7)),
                                dict(scale_factor=(1.5, 0.6), mode="bilinear"),
                                dict(size=5, mode="bilinear", align_corners=True)])
def test_upsample_layer_matches_torch_and_numerical_gradients(torch, kw):
    x = randn((2, 3, 4, 5), seed=10)
    ours = nn.Upsample(**kw)
    theirs = torch.nn.Upsample(**kw)
    out = ours.forward(x)
    t = torch.from_numpy(x.copy()).requires_grad_(True)
    want = theirs(t)
    dout = randn(out.shape, seed=11)
    want.backward(torch.from_numpy(dout))
    torch_oracle.check("Upsample", np.float64, dict(out=(out, want.detach().numpy()),
                                                    dx=(ours.backward(dout), t.grad.numpy())))
    assert gradcheck.check_layer(ours, x) < 1e-8


X = np.zeros((1, 1, 4, 4))


@pytest.mark.parametrize("call, err, fragments", [
    (lambda: F.interpolate_forward(X), ValueError,
     ["give exactly one of size and scale_factor, got neither"]),
    (lambda: F.interpolate_forward(X, size=2, scale_factor=2), ValueError,
     ["give exactly one of size and scale_factor, got both"]),
    (lambda: F.interpolate_forward(X, size=(2, 2, 2)), ValueError,
     ["size must be one value or a (height, width) pair", "length 3"]),
    (lambda: F.interpolate_forward(X, size=0), ValueError, ["size must be >= 1"]),
    (lambda: F.interpolate_forward(X, size=2.0), TypeError, ["size must be an int"]),
    (lambda: F.interpolate_forward(X, scale_factor=[2]), ValueError,
     ["scale_factor must be one value or a (height, width) pair", "length 1"]),
    (lambda: F.interpolate_forward(X, scale_factor=0), ValueError,
     ["scale_factor must be in (0.0, inf)"]),
    (lambda: F.interpolate_forward(X, scale_factor=float("inf")), ValueError,
     ["scale_factor must be in (0.0, inf)"]),
    (lambda: F.interpolate_forward(X, scale_factor="2"), TypeError,
     ["scale_factor must be a real number"]),
    (lambda: F.interpolate_forward(X, scale_factor=(1, 0.2)), ValueError,
     ["gives the empty output size (4, 0) for x of shape (1, 1, 4, 4)"]),
    # an output no device allocates sensibly, refused before the tap tables (they were built,
    # one entry per output row: 10**9 was OOM-killed, 1e9 asked for 37 GiB)
    (lambda: F.interpolate_forward(X, size=10**9), ValueError,
     ["size=1000000000 gives the output shape (1, 1, 1000000000, 1000000000) for x of shape "
      "(1, 1, 4, 4), too large", "(OH*OW) must stay below 2**31"]),
    (lambda: F.interpolate_forward(X, scale_factor=1e9, mode="bilinear"), ValueError,
     ["scale_factor=1000000000.0 gives the output shape (1, 1, 4000000000, 4000000000)"]),
    (lambda: F.interpolate_forward(X, size=(2**31, 1)), ValueError,  # one plane too many
     ["size=(2147483648, 1) gives the output shape (1, 1, 2147483648, 1)", "too large"]),
    (lambda: F.interpolate_forward(X, scale_factor=1e308), ValueError,  # was an OverflowError
     ["scale_factor=1e+308 gives an output size past the largest float", "(1, 1, 4, 4)"]),
    (lambda: F.interpolate_forward(X, size=2, mode="bicubic"), ValueError,
     ["mode must be one of ('nearest', 'bilinear')", "'bicubic'"]),
    (lambda: F.interpolate_forward(X, size=2, align_corners=False), ValueError,
     ["align_corners applies to mode='bilinear' only"]),
    (lambda: F.interpolate_forward(X, size=2, mode="bilinear", align_corners=1), TypeError,
     ["align_corners must be a bool"]),
    (lambda: F.interpolate_forward(X[0], size=2), ValueError, ["x must be 4-D"]),
    (lambda: F.interpolate_forward(np.zeros((1, 1, 0, 3)), size=2), ValueError,
     ["height and width of at least 1", "(1, 1, 0, 3)"]),
    (lambda: F.interpolate_forward(X.astype(np.int64), size=2), TypeError,
     ["x must be a floating-point array"]),
    (lambda: F.interpolate_backward(np.zeros((1, 1, 2, 3)), F.interpolate_forward(X, size=2)[1]),
     ValueError, ["dout has shape (1, 1, 2, 3)", "(1, 1, 2, 2)"]),
    (lambda: F.interpolate_backward(np.zeros((1, 1, 2, 2)), F.max_pool2d_forward(X, 2)[1]),
     TypeError, ["cache comes from max_pool2d_forward, not interpolate_forward"]),
])
def test_bad_input_gets_errors_naming_the_argument_and_shapes(call, err, fragments):
    with pytest.raises(err, match="".join(f"(?=.*{re.escape(f)})" for f in fragments)):
        call()


def test_the_size_bound_is_on_the_planes_not_on_each_axis():
    """A long row passes (its tables, one entry per output column, are the only work on an
    empty batch); one more element than a plane may hold does not."""
    out, cache = F.interpolate_forward(np.zeros((0, 1, 1, 2)), size=(1, 2**16))
    assert out.shape == (0, 1, 1, 2**16)
    assert F.interpolate_backward(out, cache).shape == (0, 1, 1, 2)
    with pytest.raises(ValueError, match=r"size=\(2, 1073741824\) gives the output shape"):
        F.interpolate_forward(np.zeros((0, 1, 1, 2)), size=(2, 2**30))


@pytest.mark.parametrize("kw, err, fragments", [
    (dict(size=2, scale_factor=2), ValueError, ["give exactly one of size and scale_factor"]),
    (dict(), ValueError, ["got neither"]),
    (dict(size=0), ValueError, ["size must be >= 1"]),
    (dict(scale_factor=-1.0), ValueError, ["scale_factor must be in (0.0, inf)"]),
    (dict(size=2, mode="bicubic"), ValueError, ["mode must be one of"]),
    (dict(size=2, align_corners=True), ValueError, ["align_corners applies to mode='bilinear'"]),
    (dict(size=10**9), ValueError,
     ["size=1000000000 gives output planes of (1000000000, 1000000000), too large"]),
    (dict(scale_factor=1e9), ValueError,  # too large for any input: a 1x1 one already is
     ["scale_factor=1000000000.0 (on a 1x1 input) gives output planes of "
      "(1000000000, 1000000000)"]),
])
def test_upsample_refuses_bad_settings_when_built(kw, err, fragments):
    """They were stored, and refused at the first forward."""
    with pytest.raises(err, match="".join(f"(?=.*{re.escape(f)})" for f in fragments)):
        nn.Upsample(**kw)


def test_upsample_settings_that_depend_on_the_input_still_build():
    """A scale factor below 1 empties a small input only: that is the forward's to refuse."""
    layer = nn.Upsample(scale_factor=0.5)
    assert layer.forward(np.zeros((1, 1, 4, 6))).shape == (1, 1, 2, 3)
    with pytest.raises(ValueError, match="empty output size"):
        layer.forward(np.zeros((1, 1, 1, 6)))


def test_docstring_examples_run():
    assert doctest.testmod(fastconv.functional.interpolate).failed == 0


@pytest.mark.gpu
@pytest.mark.parametrize("kw", [dict(scale_factor=2), dict(size=(5, 11), mode="bilinear"),
                                dict(scale_factor=0.7, mode="bilinear", align_corners=True)])
def test_interpolate_on_cupy_matches_numpy_bitwise(kw):
    import cupy
    x = randn((2, 3, 8, 6), seed=12)
    out, cache = F.interpolate_forward(x, **kw)
    g_out, g_cache = F.interpolate_forward(cupy.asarray(x), **kw)
    assert isinstance(g_out, cupy.ndarray)
    np.testing.assert_array_equal(g_out.get(), out)
    dout = randn(out.shape, seed=13)
    np.testing.assert_array_equal(F.interpolate_backward(cupy.asarray(dout), g_cache).get(),
                                  F.interpolate_backward(dout, cache))
