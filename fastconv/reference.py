"""Plain nested-loop convolution and pooling: the ground truth for tests and benchmarks.

Every function here has the same name, signature and ``(out, cache)`` / grads
convention as its vectorised twin in :mod:`fastconv.functional`, but is written
for clarity, never for speed: explicit Python loops over the batch, the
channels, the output positions and the kernel offsets, with NumPy used only to
allocate arrays and hold scalars. Sums are accumulated in Python floats
(double precision) and stored in the input's dtype, so float32 and float64 are
both preserved and accurate.

These loops are the oracle the vectorised code is tested against and the
"loop" column of the benchmarks; keep them obviously correct. The pooling
loops are written in :mod:`fastconv._reference_pool`, the argument
normalisation in :mod:`fastconv._reference_args`; all are public here.

Conventions (as in PyTorch): NCHW inputs, weights ``(F, C // groups, KH, KW)``,
output sizes from :func:`fastconv.shapes.conv_output_size`. Max pooling pads
with -inf but a padding cell is never the maximum; the maximum of a window is
its first largest input element in row-major window order (ties go to the
first), and a NaN counts as larger than every number (the first NaN wins), so
NaN propagates to the output.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from ._reference_args import conv_padding, open_cache, pad_pairs, pair
from ._reference_pool import (
    MaxPoolLoopCache,
    WindowMeansCache,
    adaptive_avg_pool2d_backward,
    adaptive_avg_pool2d_forward,
    avg_pool2d_backward,
    avg_pool2d_forward,
    max_pool2d_backward,
    max_pool2d_forward,
)
from ._typing import IntPair, Padding2d
from .shapes import conv_output_size

__all__ = [
    "ConvLoopCache", "MaxPoolLoopCache", "WindowMeansCache", "im2col", "col2im",
    "conv2d_forward", "conv2d_backward", "max_pool2d_forward", "max_pool2d_backward",
    "avg_pool2d_forward", "avg_pool2d_backward",
    "adaptive_avg_pool2d_forward", "adaptive_avg_pool2d_backward",
]


@dataclass(frozen=True, eq=False)
class ConvLoopCache:
    """What :func:`conv2d_backward` needs: the inputs and the (stride, pads, dilation, groups).

    Attributes
    ----------
    x, w : numpy.ndarray
        The input and the weights.
    b : numpy.ndarray or None
        The bias.
    geometry : tuple
        ``((sh, sw), ((top, bottom), (left, right)), (dh, dw), groups)``.

    Examples
    --------
    >>> conv2d_forward(np.zeros((1, 1, 3, 3)), np.zeros((1, 1, 2, 2)), padding=1)[1].geometry
    ((1, 1), ((1, 1), (1, 1)), (1, 1), 1)
    """

    op: ClassVar[str] = "conv2d"
    x: np.ndarray
    w: np.ndarray
    b: np.ndarray | None
    geometry: tuple[Any, ...]


# ----------------------------------------------------------------------------
# im2col / col2im
# ----------------------------------------------------------------------------

def _column_taps(x_shape: tuple[int, ...], kernel_size: IntPair, stride: IntPair,
                 padding: Padding2d, dilation: IntPair
                 ) -> tuple[int, int, list[tuple[int, int, int, int, int, int]]]:
    """Output size and every in-bounds tap of the column layout, one loop per index.

    Returns ``(out_h, out_w, taps)``; each tap ``(n, c, row, col, ih, iw)``
    says that column entry ``[n, row, col]`` is input element ``[n, c, ih, iw]``.
    Taps that fall in the zero padding are left out.
    """
    n_img, chans, height, width = x_shape
    kh_size, kw_size = pair(kernel_size)
    sh, sw = pair(stride)
    dh, dw = pair(dilation)
    (pt, pb), (pl, pr) = pad_pairs(padding)
    out_h = conv_output_size(height, kh_size, sh, (pt, pb), dh)
    out_w = conv_output_size(width, kw_size, sw, (pl, pr), dw)
    taps = []
    for n in range(n_img):
        for c in range(chans):
            for kh in range(kh_size):
                for kw in range(kw_size):
                    row = c * kh_size * kw_size + kh * kw_size + kw
                    for oh in range(out_h):
                        for ow in range(out_w):
                            ih = oh * sh - pt + kh * dh
                            iw = ow * sw - pl + kw * dw
                            if 0 <= ih < height and 0 <= iw < width:
                                taps.append((n, c, row, oh * out_w + ow, ih, iw))
    return out_h, out_w, taps


def im2col(x: np.ndarray, kernel_size: IntPair, stride: IntPair = 1, padding: Padding2d = 0,
           dilation: IntPair = 1) -> np.ndarray:
    """Unfold ``x`` (N, C, H, W) into columns (N, C*KH*KW, OH*OW), one loop per index.

    The oracle of :func:`fastconv.im2col`.

    Parameters
    ----------
    x : numpy.ndarray
        (N, C, H, W).
    kernel_size : int or pair of int
        The window (KH, KW).
    stride : int or pair of int, default 1
        The window's step.
    padding : int, pair of int or pair of pairs of int, default 0
        Zero padding: p, (ph, pw) or ((top, bottom), (left, right)).
    dilation : int or pair of int, default 1
        The spacing of the window's taps.

    Returns
    -------
    numpy.ndarray
        (N, C*KH*KW, OH*OW) in x's dtype: row ``c*KH*KW + kh*KW + kw`` holds
        kernel tap (c, kh, kw), column ``oh*OW + ow`` output position (oh, ow);
        taps that fall in the padding are 0.

    Examples
    --------
    >>> im2col(np.arange(4.0).reshape(1, 1, 2, 2), 2).tolist()
    [[[0.0], [1.0], [2.0], [3.0]]]
    """
    n_img, chans = x.shape[:2]
    out_h, out_w, taps = _column_taps(x.shape, kernel_size, stride, padding, dilation)
    kh_size, kw_size = pair(kernel_size)
    cols = np.zeros((n_img, chans * kh_size * kw_size, out_h * out_w), dtype=x.dtype)
    for n, c, row, col, ih, iw in taps:
        cols[n, row, col] = x[n, c, ih, iw]
    return cols


def col2im(cols: np.ndarray, x_shape: tuple[int, ...], kernel_size: IntPair, stride: IntPair = 1,
           padding: Padding2d = 0, dilation: IntPair = 1) -> np.ndarray:
    """Fold columns (N, C*KH*KW, OH*OW) back to (N, C, H, W), summing overlaps.

    The adjoint of :func:`im2col` (same layout, same arguments), the oracle
    of :func:`fastconv.col2im`.

    Parameters
    ----------
    cols : numpy.ndarray
        (N, C*KH*KW, OH*OW).
    x_shape : tuple of int
        The image shape (N, C, H, W).
    kernel_size, stride, padding, dilation
        As for :func:`im2col`.

    Returns
    -------
    numpy.ndarray
        ``x_shape``, in cols' dtype; contributions that land in the padding
        are dropped.

    Examples
    --------
    >>> col2im(np.ones((1, 4, 4)), (1, 1, 3, 3), 2)[0, 0].tolist()
    [[1.0, 2.0, 1.0], [2.0, 4.0, 2.0], [1.0, 2.0, 1.0]]
    """
    _, _, taps = _column_taps(tuple(x_shape), kernel_size, stride, padding, dilation)
    acc = np.zeros(x_shape, dtype=np.float64)
    for n, c, row, col, ih, iw in taps:
        acc[n, c, ih, iw] += float(cols[n, row, col])
    return acc.astype(cols.dtype)


def conv2d_forward(x: np.ndarray, w: np.ndarray, b: np.ndarray | None = None,
                   stride: IntPair = 1, padding: Padding2d | str = 0, dilation: IntPair = 1,
                   groups: int = 1) -> tuple[np.ndarray, ConvLoopCache]:
    """2-D convolution (cross-correlation, as PyTorch) by direct summation.

    The oracle of :func:`fastconv.functional.conv2d_forward`.

    Parameters
    ----------
    x : numpy.ndarray
        (N, C, H, W).
    w : numpy.ndarray
        (F, C // groups, KH, KW).
    b : numpy.ndarray, optional
        (F,); None: no bias.
    stride : int or pair of int, default 1
        The window's step.
    padding : int, pair, pair of pairs, "valid" or "same", default 0
        Zero padding; "same" needs stride 1 and puts the odd one out on the
        bottom/right, as PyTorch.
    dilation : int or pair of int, default 1
        The spacing of the kernel's taps.
    groups : int, default 1
        Channel groups, each convolved with its own filters.

    Returns
    -------
    out : numpy.ndarray
        (N, F, OH, OW), in x's dtype.
    cache : ConvLoopCache
        For :func:`conv2d_backward`.

    Raises
    ------
    ValueError
        When ``padding`` is an unknown string, or "same" with a stride.

    Examples
    --------
    >>> out, cache = conv2d_forward(np.ones((1, 1, 3, 3)), np.ones((1, 1, 2, 2)))
    >>> out.tolist()
    [[[[4.0, 4.0], [4.0, 4.0]]]]
    """
    n_img, chans, height, width = x.shape
    n_filt, chans_per_group, kh_size, kw_size = w.shape
    stride, dilation = pair(stride), pair(dilation)
    (pt, pb), (pl, pr) = conv_padding(padding, (kh_size, kw_size), stride, dilation)
    sh, sw = stride
    dh, dw = dilation
    out_h = conv_output_size(height, kh_size, sh, (pt, pb), dh)
    out_w = conv_output_size(width, kw_size, sw, (pl, pr), dw)
    filt_per_group = n_filt // groups
    out = np.zeros((n_img, n_filt, out_h, out_w), dtype=x.dtype)
    for n in range(n_img):
        for f in range(n_filt):
            group = f // filt_per_group
            for oh in range(out_h):
                for ow in range(out_w):
                    total = 0.0 if b is None else float(b[f])
                    for cg in range(chans_per_group):
                        c = group * chans_per_group + cg
                        for kh in range(kh_size):
                            for kw in range(kw_size):
                                ih = oh * sh - pt + kh * dh
                                iw = ow * sw - pl + kw * dw
                                if 0 <= ih < height and 0 <= iw < width:
                                    total += float(x[n, c, ih, iw]) * float(w[f, cg, kh, kw])
                    out[n, f, oh, ow] = total
    geometry = (stride, ((pt, pb), (pl, pr)), dilation, groups)
    return out, ConvLoopCache(x, w, b, geometry)


def conv2d_backward(dout: np.ndarray, cache: ConvLoopCache
                    ) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """Gradients of :func:`conv2d_forward`, along the same loops as its sum.

    Each output gradient is scattered back to x through the weights, to w
    through the inputs, to b directly.

    Parameters
    ----------
    dout : numpy.ndarray
        The gradient of the loss with respect to the forward's output.
    cache : ConvLoopCache
        The forward's cache.

    Returns
    -------
    dx, dw : numpy.ndarray
        In the shapes and dtypes of x and w.
    db : numpy.ndarray or None
        In b's shape and dtype; None without a bias.

    Raises
    ------
    TypeError
        When ``cache`` comes from another op.

    Examples
    --------
    >>> out, cache = conv2d_forward(np.ones((1, 1, 3, 3)), np.ones((1, 1, 2, 2)))
    >>> dx, dw, db = conv2d_backward(np.ones_like(out), cache)
    >>> dx[0, 0].tolist(), dw[0, 0].tolist(), db
    ([[1.0, 2.0, 1.0], [2.0, 4.0, 2.0], [1.0, 2.0, 1.0]], [[4.0, 4.0], [4.0, 4.0]], None)
    """
    cache = open_cache(cache, ConvLoopCache, "conv2d")
    x, w, b = cache.x, cache.w, cache.b
    (sh, sw), ((pt, _), (pl, _)), (dh, dw_), groups = cache.geometry
    n_img, chans, height, width = x.shape
    n_filt, chans_per_group, kh_size, kw_size = w.shape
    _, _, out_h, out_w = dout.shape
    filt_per_group = n_filt // groups
    dx = np.zeros(x.shape, dtype=np.float64)
    dw = np.zeros(w.shape, dtype=np.float64)
    db = np.zeros(n_filt, dtype=np.float64)
    for n in range(n_img):
        for f in range(n_filt):
            group = f // filt_per_group
            for oh in range(out_h):
                for ow in range(out_w):
                    g = float(dout[n, f, oh, ow])
                    db[f] += g
                    for cg in range(chans_per_group):
                        c = group * chans_per_group + cg
                        for kh in range(kh_size):
                            for kw in range(kw_size):
                                ih = oh * sh - pt + kh * dh
                                iw = ow * sw - pl + kw * dw_
                                if 0 <= ih < height and 0 <= iw < width:
                                    dx[n, c, ih, iw] += g * float(w[f, cg, kh, kw])
                                    dw[f, cg, kh, kw] += g * float(x[n, c, ih, iw])
    return dx.astype(x.dtype), dw.astype(w.dtype), None if b is None else db.astype(b.dtype)
