"""The pooling loops of the oracle: max, average and adaptive average pooling.

Public through :mod:`fastconv.reference`, whose conventions they follow.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from ._reference_args import open_cache, pair
from ._typing import IntPair
from .shapes import conv_output_size


@dataclass(frozen=True, eq=False)
class MaxPoolLoopCache:
    """What :func:`max_pool2d_backward` needs: x's shape and dtype, each window's winner.

    Attributes
    ----------
    x_shape : tuple of int
        The input's shape (N, C, H, W).
    dtype : numpy.dtype
        The input's dtype.
    indices : numpy.ndarray
        Each output's argmax ``ih * W + iw`` in its input plane, int64.

    Examples
    --------
    >>> x = np.array([[[[1.0, 3.0], [2.0, 0.0]]]])
    >>> max_pool2d_forward(x, 2)[1].indices.tolist()
    [[[[1]]]]
    """

    op: ClassVar[str] = "max_pool2d"
    x_shape: tuple[int, ...]
    dtype: np.dtype
    indices: np.ndarray


@dataclass(frozen=True, eq=False)
class WindowMeansCache:
    """What the average-pool backwards need: x's shape and dtype, and the windows of ``op``.

    Attributes
    ----------
    op : str
        The forward op: ``"avg_pool2d"`` or ``"adaptive_avg_pool2d"``.
    x_shape : tuple of int
        The input's shape (N, C, H, W).
    dtype : numpy.dtype
        The input's dtype.
    windows : list
        ``((oh, ow), (h0, h1), (w0, w1), divisor)`` for each output position:
        the rows and columns it sums, and what it divides the sum by.

    Examples
    --------
    >>> adaptive_avg_pool2d_forward(np.zeros((1, 1, 2, 3)), 1)[1].windows
    [((0, 0), (0, 2), (0, 3), 6)]
    """

    op: str
    x_shape: tuple[int, ...]
    dtype: np.dtype
    windows: list[tuple[tuple[int, int], tuple[int, int], tuple[int, int], int]]


# ----------------------------------------------------------------------------
# max pooling
# ----------------------------------------------------------------------------

def max_pool2d_forward(x: np.ndarray, kernel_size: IntPair, stride: IntPair | None = None,
                       padding: IntPair = 0, dilation: IntPair = 1, ceil_mode: bool = False,
                       return_indices: bool = False) -> tuple[Any, ...]:
    """Max pooling by scanning each window; -inf padding, the first maximum wins.

    The oracle of :func:`fastconv.functional.max_pool2d_forward`. A NaN in a
    window makes that output NaN.

    Parameters
    ----------
    x : numpy.ndarray
        (N, C, H, W).
    kernel_size : int or pair of int
        The window (KH, KW).
    stride : int or pair of int, optional
        Defaults to ``kernel_size``.
    padding : int or pair of int, default 0
        Symmetric padding (ph, pw), as PyTorch.
    dilation : int or pair of int, default 1
        The spacing of the window's taps.
    ceil_mode : bool, default False
        Round the output size up, as PyTorch.
    return_indices : bool, default False
        Also return the indices of the maxima.

    Returns
    -------
    out : numpy.ndarray
        (N, C, OH, OW), in x's dtype.
    indices : numpy.ndarray
        Only with ``return_indices``: PyTorch's indices, ``ih * W + iw`` into
        each input plane, int64.
    cache : MaxPoolLoopCache
        For :func:`max_pool2d_backward`.

    Examples
    --------
    >>> x = np.arange(16.0).reshape(1, 1, 4, 4)
    >>> out, indices, cache = max_pool2d_forward(x, 2, return_indices=True)
    >>> out[0, 0].tolist(), indices[0, 0].tolist()
    ([[5.0, 7.0], [13.0, 15.0]], [[5, 7], [13, 15]])
    """
    n_img, chans, height, width = x.shape
    kh_size, kw_size = pair(kernel_size)
    sh, sw = pair(kernel_size if stride is None else stride)
    ph, pw = pair(padding)
    dh, dw = pair(dilation)
    out_h = conv_output_size(height, kh_size, sh, ph, dh, ceil_mode)
    out_w = conv_output_size(width, kw_size, sw, pw, dw, ceil_mode)
    out = np.zeros((n_img, chans, out_h, out_w), dtype=x.dtype)
    indices = np.zeros((n_img, chans, out_h, out_w), dtype=np.int64)
    for n in range(n_img):
        for c in range(chans):
            for oh in range(out_h):
                for ow in range(out_w):
                    best, best_index = -math.inf, -1
                    for kh in range(kh_size):
                        for kw in range(kw_size):
                            ih = oh * sh - ph + kh * dh
                            iw = ow * sw - pw + kw * dw
                            if not (0 <= ih < height and 0 <= iw < width):
                                continue  # -inf padding never wins
                            value = float(x[n, c, ih, iw])
                            if math.isnan(best):
                                continue  # the first NaN already won
                            # the first input cell starts the scan, so padding never wins
                            # (an all -inf window picks its first input cell, as PyTorch)
                            if best_index < 0 or math.isnan(value) or value > best:
                                best, best_index = value, ih * width + iw
                    out[n, c, oh, ow] = best
                    indices[n, c, oh, ow] = best_index
    cache = MaxPoolLoopCache(x.shape, x.dtype, indices)
    if return_indices:
        return out, indices.copy(), cache
    return out, cache


def max_pool2d_backward(dout: np.ndarray, cache: MaxPoolLoopCache) -> np.ndarray:
    """Gradient of :func:`max_pool2d_forward`: each output's gradient goes to its argmax.

    Parameters
    ----------
    dout : numpy.ndarray
        The gradient of the loss with respect to the forward's output.
    cache : MaxPoolLoopCache
        The forward's cache.

    Returns
    -------
    numpy.ndarray
        dx, in x's shape and dtype.

    Raises
    ------
    TypeError
        When ``cache`` comes from another op.

    Examples
    --------
    >>> out, cache = max_pool2d_forward(np.array([[[[1.0, 3.0], [2.0, 0.0]]]]), 2)
    >>> max_pool2d_backward(np.ones_like(out), cache)[0, 0].tolist()
    [[0.0, 1.0], [0.0, 0.0]]
    """
    cache = open_cache(cache, MaxPoolLoopCache, "max_pool2d")
    x_shape, dtype, indices = cache.x_shape, cache.dtype, cache.indices
    n_img, chans, _, width = x_shape
    _, _, out_h, out_w = dout.shape
    dx = np.zeros(x_shape, dtype=np.float64)
    for n in range(n_img):
        for c in range(chans):
            for oh in range(out_h):
                for ow in range(out_w):
                    index = int(indices[n, c, oh, ow])
                    if index >= 0:
                        dx[n, c, index // width, index % width] += float(dout[n, c, oh, ow])
    return dx.astype(dtype)


# ----------------------------------------------------------------------------
# average pooling
# ----------------------------------------------------------------------------

def _avg_windows(height: int, width: int, kernel_size: IntPair, stride: IntPair | None,
                 padding: IntPair, ceil_mode: bool, count_include_pad: bool) -> Any:
    """Output size and windows ``[((oh, ow), (h0, h1), (w0, w1), divisor), ...]`` of avg pooling.

    PyTorch's rule: the window ends are clipped to ``size + pad`` for the
    count_include_pad divisor, and to ``size`` for the summed region and the
    other divisor.
    """
    kh_size, kw_size = pair(kernel_size)
    sh, sw = pair(kernel_size if stride is None else stride)
    ph, pw = pair(padding)
    out_h = conv_output_size(height, kh_size, sh, ph, 1, ceil_mode)
    out_w = conv_output_size(width, kw_size, sw, pw, 1, ceil_mode)
    windows = []
    for oh in range(out_h):
        for ow in range(out_w):
            h0, w0 = oh * sh - ph, ow * sw - pw
            h1, w1 = min(h0 + kh_size, height + ph), min(w0 + kw_size, width + pw)
            padded_count = (h1 - h0) * (w1 - w0)
            h0, w0 = max(h0, 0), max(w0, 0)
            h1, w1 = min(h1, height), min(w1, width)
            divisor = padded_count if count_include_pad else (h1 - h0) * (w1 - w0)
            windows.append(((oh, ow), (h0, h1), (w0, w1), divisor))
    return (out_h, out_w), windows


def _window_means(x, out_hw, windows):
    """Forward of a window mean: each output is its window's sum over its divisor."""
    n_img, chans, _, _ = x.shape
    out = np.zeros((n_img, chans) + tuple(out_hw), dtype=x.dtype)
    for n in range(n_img):
        for c in range(chans):
            for (oh, ow), (h0, h1), (w0, w1), divisor in windows:
                total = 0.0
                for ih in range(h0, h1):
                    for iw in range(w0, w1):
                        total += float(x[n, c, ih, iw])
                out[n, c, oh, ow] = total / divisor
    return out


def _spread_window_means(dout, x_shape, dtype, windows):
    """Backward of a window mean: each output's gradient / divisor to every summed cell."""
    n_img, chans, _, _ = x_shape
    dx = np.zeros(x_shape, dtype=np.float64)
    for n in range(n_img):
        for c in range(chans):
            for (oh, ow), (h0, h1), (w0, w1), divisor in windows:
                share = float(dout[n, c, oh, ow]) / divisor
                for ih in range(h0, h1):
                    for iw in range(w0, w1):
                        dx[n, c, ih, iw] += share
    return dx.astype(dtype)


def avg_pool2d_forward(x: np.ndarray, kernel_size: IntPair, stride: IntPair | None = None,
                       padding: IntPair = 0, ceil_mode: bool = False,
                       count_include_pad: bool = True) -> tuple[np.ndarray, WindowMeansCache]:
    """Average pooling by summing each window, with PyTorch's divisor rule.

    The oracle of :func:`fastconv.functional.avg_pool2d_forward`.

    Parameters
    ----------
    x : numpy.ndarray
        (N, C, H, W).
    kernel_size : int or pair of int
        The window (KH, KW).
    stride : int or pair of int, optional
        Defaults to ``kernel_size``.
    padding : int or pair of int, default 0
        Symmetric zero padding (ph, pw).
    ceil_mode : bool, default False
        Round the output size up, as PyTorch.
    count_include_pad : bool, default True
        Count the padded cells in the divisor (never the cells past
        ``size + pad`` that ``ceil_mode`` adds).

    Returns
    -------
    out : numpy.ndarray
        (N, C, OH, OW), in x's dtype.
    cache : WindowMeansCache
        For :func:`avg_pool2d_backward`.

    Examples
    --------
    >>> out, cache = avg_pool2d_forward(np.arange(16.0).reshape(1, 1, 4, 4), 2)
    >>> out[0, 0].tolist()
    [[2.5, 4.5], [10.5, 12.5]]
    """
    _, _, height, width = x.shape
    out_hw, windows = _avg_windows(height, width, kernel_size, stride, padding,
                                   ceil_mode, count_include_pad)
    return _window_means(x, out_hw, windows), WindowMeansCache("avg_pool2d", x.shape, x.dtype,
                                                               windows)


def avg_pool2d_backward(dout: np.ndarray, cache: WindowMeansCache) -> np.ndarray:
    """Gradient of :func:`avg_pool2d_forward`: each output's share to every cell it summed.

    Parameters
    ----------
    dout : numpy.ndarray
        The gradient of the loss with respect to the forward's output.
    cache : WindowMeansCache
        The forward's cache.

    Returns
    -------
    numpy.ndarray
        dx, in x's shape and dtype.

    Raises
    ------
    TypeError
        When ``cache`` comes from another op.

    Examples
    --------
    >>> out, cache = avg_pool2d_forward(np.zeros((1, 1, 2, 2)), 2)
    >>> avg_pool2d_backward(np.ones_like(out), cache)[0, 0].tolist()
    [[0.25, 0.25], [0.25, 0.25]]
    """
    cache = open_cache(cache, WindowMeansCache, "avg_pool2d")
    return _spread_window_means(dout, cache.x_shape, cache.dtype, cache.windows)


# ----------------------------------------------------------------------------
# adaptive average pooling
# ----------------------------------------------------------------------------

def _adaptive_windows(height: int, width: int, output_size: IntPair) -> Any:
    """Output size and windows of adaptive pooling: start = floor(i*H/OH), end = ceil((i+1)*H/OH)."""
    out_h, out_w = pair(output_size)
    windows = []
    for oh in range(out_h):
        for ow in range(out_w):
            h0, h1 = (oh * height) // out_h, -(-((oh + 1) * height) // out_h)
            w0, w1 = (ow * width) // out_w, -(-((ow + 1) * width) // out_w)
            windows.append(((oh, ow), (h0, h1), (w0, w1), (h1 - h0) * (w1 - w0)))
    return (out_h, out_w), windows


def adaptive_avg_pool2d_forward(x: np.ndarray, output_size: IntPair
                                ) -> tuple[np.ndarray, WindowMeansCache]:
    """Adaptive average pooling to ``output_size``, with PyTorch's windows.

    The oracle of :func:`fastconv.functional.adaptive_avg_pool2d_forward`.

    Parameters
    ----------
    x : numpy.ndarray
        (N, C, H, W).
    output_size : int or pair of int
        (OH, OW); 1 is global average pooling.

    Returns
    -------
    out : numpy.ndarray
        (N, C, OH, OW), in x's dtype.
    cache : WindowMeansCache
        For :func:`adaptive_avg_pool2d_backward`.

    Examples
    --------
    >>> out, cache = adaptive_avg_pool2d_forward(np.arange(6.0).reshape(1, 1, 2, 3), 1)
    >>> out.tolist()
    [[[[2.5]]]]
    """
    _, _, height, width = x.shape
    out_hw, windows = _adaptive_windows(height, width, output_size)
    return _window_means(x, out_hw, windows), WindowMeansCache("adaptive_avg_pool2d", x.shape,
                                                               x.dtype, windows)


def adaptive_avg_pool2d_backward(dout: np.ndarray, cache: WindowMeansCache) -> np.ndarray:
    """Gradient of :func:`adaptive_avg_pool2d_forward`.

    Parameters
    ----------
    dout : numpy.ndarray
        The gradient of the loss with respect to the forward's output.
    cache : WindowMeansCache
        The forward's cache.

    Returns
    -------
    numpy.ndarray
        dx, in x's shape and dtype.

    Raises
    ------
    TypeError
        When ``cache`` comes from another op.

    Examples
    --------
    >>> out, cache = adaptive_avg_pool2d_forward(np.zeros((1, 1, 1, 2)), 1)
    >>> adaptive_avg_pool2d_backward(np.ones_like(out), cache).tolist()
    [[[[0.5, 0.5]]]]
    """
    cache = open_cache(cache, WindowMeansCache, "adaptive_avg_pool2d")
    return _spread_window_means(dout, cache.x_shape, cache.dtype, cache.windows)
