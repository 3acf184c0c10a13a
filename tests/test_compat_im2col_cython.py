"""fastconv.compat.im2col_cython against the course extension's documented contract: the
column layout from its definition (a loop), the two col2im functions as adjoints, the
course's own uses of them in fast_layers (conv forward and both backward recipes) against
PyTorch, dtypes, signatures and shape errors."""

import doctest
import inspect

import numpy as np
import pytest

import fastconv.compat.im2col_cython as ic
from torch_oracle import check


def randn(shape, seed=0, dtype=np.float64):
    return np.random.default_rng(seed).standard_normal(shape).astype(dtype)


def out_size(size, field, pad, stride):
    return (size + 2 * pad - field) // stride + 1


def loop_cols(x, fh, fw, pad, stride):
    """``cols[(c*fh + i)*fw + j, (oh*out_w + ow)*N + n]
    = x_padded[n, c, oh*stride + i, ow*stride + j]``."""
    n, c, h, w = x.shape
    xp = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    oh, ow = out_size(h, fh, pad, stride), out_size(w, fw, pad, stride)
    cols = np.empty((c * fh * fw, oh * ow * n), x.dtype)
    for ch in range(c):
        for i in range(fh):
            for j in range(fw):
                for y in range(oh):
                    for z in range(ow):
                        for s in range(n):
                            cols[(ch * fh + i) * fw + j, (y * ow + z) * n + s] = \
                                xp[s, ch, y * stride + i, z * stride + j]
    return cols


GEOMETRIES = [((2, 3, 5, 5), 3, 3, 1, 1), ((3, 2, 7, 6), 3, 3, 0, 2), ((1, 2, 6, 7), 2, 3, 1, 2),
              ((2, 1, 8, 8), 4, 2, 2, 3)]


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("shape, fh, fw, pad, stride", GEOMETRIES)
def test_im2col_cython_layout_matches_its_definition(dtype, shape, fh, fw, pad, stride):
    x = randn(shape, 1, dtype)
    cols = ic.im2col_cython(x, fh, fw, pad, stride)
    assert cols.dtype == dtype
    np.testing.assert_array_equal(cols, loop_cols(x, fh, fw, pad, stride))


@pytest.mark.parametrize("shape, fh, fw, pad, stride", GEOMETRIES)
def test_both_col2im_functions_are_adjoints(shape, fh, fw, pad, stride):
    n, c, h, w = shape
    x = randn(shape, 2)
    cols = ic.im2col_cython(x, fh, fw, pad, stride)
    other = randn(cols.shape, 3)
    back = ic.col2im_cython(other, n, c, h, w, fh, fw, pad, stride)
    assert back.shape == shape
    assert float((cols * other).sum()) == pytest.approx(float((x * back).sum()), rel=1e-12)
    oh, ow = out_size(h, fh, pad, stride), out_size(w, fw, pad, stride)
    six = randn((c, fh, fw, n, oh, ow), 4)  # the 6-D layout: rows (c, i, j), columns (n, oh, ow)
    cols6 = cols.reshape(c, fh, fw, oh, ow, n).transpose(0, 1, 2, 5, 3, 4)
    back6 = ic.col2im_6d_cython(six, n, c, h, w, fh, fw, pad, stride)
    assert float((cols6 * six).sum()) == pytest.approx(float((x * back6).sum()), rel=1e-12)


def test_the_courses_fast_conv_recipes_match_torch(torch):
    """fast_layers' use: ``w.reshape(F, -1) @ cols`` forward; ``col2im_cython`` of
    ``w.reshape(F, -1).T @ dout`` in (F, oh, ow, N) order, or ``col2im_6d_cython`` of it in
    (F, N, oh, ow) order, backward."""
    x, w, b = randn((2, 3, 7, 7), 5), randn((4, 3, 3, 3), 6), randn((4,), 7)
    pad, stride = 1, 2
    n, c, h, wd = x.shape
    f = w.shape[0]
    cols = ic.im2col_cython(x, 3, 3, pad, stride)
    oh = out_size(h, 3, pad, stride)
    out = (w.reshape(f, -1) @ cols + b[:, None]).reshape(f, oh, oh, n).transpose(3, 0, 1, 2)
    dout = randn(out.shape, 8)
    dx = ic.col2im_cython(w.reshape(f, -1).T @ dout.transpose(1, 2, 3, 0).reshape(f, -1),
                          n, c, h, wd, 3, 3, pad, stride)
    dx6 = ic.col2im_6d_cython((w.reshape(f, -1).T @ dout.transpose(1, 0, 2, 3).reshape(f, -1))
                              .reshape(c, 3, 3, n, oh, oh), n, c, h, wd, 3, 3, pad, stride)
    tx = torch.from_numpy(x.copy()).requires_grad_(True)
    want = torch.nn.functional.conv2d(tx, torch.from_numpy(w), torch.from_numpy(b), stride=stride,
                                      padding=pad)
    want.backward(torch.from_numpy(dout))
    check("im2col_cython recipes", np.float64, {"out": (out, want.detach().numpy()),
                                                "dx": (dx, tx.grad.numpy()),
                                                "dx6": (dx6, tx.grad.numpy())})
    assert ic.col2im_cython(cols.astype(np.float32), n, c, h, wd, 3, 3, pad, stride).dtype == \
        np.float32
    assert ic.col2im_6d_cython(np.zeros((c, 3, 3, n, oh, oh), np.float32), n, c, h, wd, 3, 3,
                               pad, stride).dtype == np.float32


def test_signatures_are_the_extensions():
    assert list(inspect.signature(ic.im2col_cython).parameters) == \
        ["x", "field_height", "field_width", "padding", "stride"]
    assert list(inspect.signature(ic.col2im_cython).parameters) == \
        ["cols", "N", "C", "H", "W", "field_height", "field_width", "padding", "stride"]
    assert list(inspect.signature(ic.col2im_6d_cython).parameters) == \
        ["cols", "N", "C", "H", "W", "HH", "WW", "pad", "stride"]


def test_wrong_column_shapes_are_named():
    with pytest.raises(ValueError, match=r"col2im_cython: cols has shape \(27, 10\), expected "
                                         r"\(27, 50\)"):
        ic.col2im_cython(np.zeros((27, 10)), 2, 3, 5, 5, 3, 3, 1, 1)
    with pytest.raises(ValueError, match=r"col2im_6d_cython: cols has shape \(3, 3, 3, 2, 4, 4\)"):
        ic.col2im_6d_cython(np.zeros((3, 3, 3, 2, 4, 4)), 2, 3, 5, 5, 3, 3, 1, 1)


def test_docstring_example_runs():
    assert doctest.testmod(ic).failed == 0
