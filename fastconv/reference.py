"""Plain nested-loop convolution and pooling: the ground truth for tests and benchmarks.

Every function here has the same name, signature and ``(out, cache)`` / grads
convention as its vectorised twin in :mod:`fastconv.functional`, but is written
for clarity, never for speed: explicit Python loops over the batch, the
channels, the output positions and the kernel offsets, with NumPy used only to
allocate arrays and hold scalars. Sums are accumulated in Python floats
(double precision) and stored in the input's dtype, so float32 and float64 are
both preserved and accurate.

These loops are the oracle the vectorised code is tested against and the
"loop" column of the benchmarks; keep them obviously correct.

Conventions (as in PyTorch): NCHW inputs, weights ``(F, C // groups, KH, KW)``,
output sizes from :func:`fastconv.shapes.conv_output_size`. Max pooling pads
with -inf but a padding cell is never the maximum; the maximum of a window is
its first largest input element in row-major window order (ties go to the
first), and a NaN counts as larger than every number (the first NaN wins), so
NaN propagates to the output.
"""

import math
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from fastconv.shapes import conv_output_size


# ----------------------------------------------------------------------------
# argument normalisation
# ----------------------------------------------------------------------------

def _pair(value):
    """An int or a pair of ints as a (height, width) tuple."""
    if isinstance(value, (tuple, list)):
        return int(value[0]), int(value[1])
    return int(value), int(value)


def _pad_pairs(padding):
    """int, (ph, pw) or ((top, bottom), (left, right)) as ((top, bottom), (left, right))."""
    if isinstance(padding, (tuple, list)):
        rows, cols = padding
        rows = tuple(rows) if isinstance(rows, (tuple, list)) else (rows, rows)
        cols = tuple(cols) if isinstance(cols, (tuple, list)) else (cols, cols)
        return (int(rows[0]), int(rows[1])), (int(cols[0]), int(cols[1]))
    return (int(padding), int(padding)), (int(padding), int(padding))


def _conv_padding(padding, kernel, stride, dilation):
    """Resolve "valid" / "same" / int / pairs into ((top, bottom), (left, right)).

    "same" pads a total of ``dilation * (kernel - 1)`` per axis, the odd one
    out on the bottom/right, as PyTorch does; it needs stride 1.
    """
    if isinstance(padding, str):
        if padding == "valid":
            return (0, 0), (0, 0)
        if padding == "same":
            if stride != (1, 1):
                raise ValueError(f"padding='same' needs stride 1, got stride={stride}")
            pads = []
            for k, d in zip(kernel, dilation):
                total = d * (k - 1)
                pads.append((total // 2, total - total // 2))
            return tuple(pads)
        raise ValueError(f"padding must be an int, a pair, 'valid' or 'same', got {padding!r}")
    return _pad_pairs(padding)


@dataclass(frozen=True, eq=False)
class ConvLoopCache:
    """What :func:`conv2d_backward` needs: the inputs and the (stride, pads, dilation, groups)."""

    op: ClassVar[str] = "conv2d"
    x: np.ndarray
    w: np.ndarray
    b: object
    geometry: tuple


@dataclass(frozen=True, eq=False)
class MaxPoolLoopCache:
    """What :func:`max_pool2d_backward` needs: x's shape and dtype, each window's winner."""

    op: ClassVar[str] = "max_pool2d"
    x_shape: tuple
    dtype: np.dtype
    indices: np.ndarray


@dataclass(frozen=True, eq=False)
class WindowMeansCache:
    """What the average-pool backwards need: x's shape and dtype, and the windows of ``op``."""

    op: str
    x_shape: tuple
    dtype: np.dtype
    windows: list


def _open_cache(cache, kind, op):
    """``cache`` after checking it is a ``kind`` from ``op``_forward (a TypeError naming it if not)."""
    origin = getattr(cache, "op", None) or type(cache).__name__
    if not isinstance(cache, kind) or cache.op != op:
        raise TypeError(f"cache comes from {origin}, not {op}_forward")
    return cache


# ----------------------------------------------------------------------------
# im2col / col2im
# ----------------------------------------------------------------------------

def _column_taps(x_shape, kernel_size, stride, padding, dilation):
    """Output size and every in-bounds tap of the column layout, one loop per index.

    Returns ``(out_h, out_w, taps)``; each tap ``(n, c, row, col, ih, iw)``
    says that column entry ``[n, row, col]`` is input element ``[n, c, ih, iw]``.
    Taps that fall in the zero padding are left out.
    """
    n_img, chans, height, width = x_shape
    kh_size, kw_size = _pair(kernel_size)
    sh, sw = _pair(stride)
    dh, dw = _pair(dilation)
    (pt, pb), (pl, pr) = _pad_pairs(padding)
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


def im2col(x, kernel_size, stride=1, padding=0, dilation=1):
    """Unfold ``x`` (N, C, H, W) into columns (N, C*KH*KW, OH*OW), one loop per index.

    Row ``c*KH*KW + kh*KW + kw`` holds kernel tap (c, kh, kw); column
    ``oh*OW + ow`` holds output position (oh, ow). Taps that fall in the zero
    padding are 0.
    """
    n_img, chans = x.shape[:2]
    out_h, out_w, taps = _column_taps(x.shape, kernel_size, stride, padding, dilation)
    kh_size, kw_size = _pair(kernel_size)
    cols = np.zeros((n_img, chans * kh_size * kw_size, out_h * out_w), dtype=x.dtype)
    for n, c, row, col, ih, iw in taps:
        cols[n, row, col] = x[n, c, ih, iw]
    return cols


def col2im(cols, x_shape, kernel_size, stride=1, padding=0, dilation=1):
    """Fold columns (N, C*KH*KW, OH*OW) back to (N, C, H, W), summing overlaps.

    The adjoint of :func:`im2col` (same layout); contributions that land in
    the padding are dropped.
    """
    _, _, taps = _column_taps(tuple(x_shape), kernel_size, stride, padding, dilation)
    acc = np.zeros(x_shape, dtype=np.float64)
    for n, c, row, col, ih, iw in taps:
        acc[n, c, ih, iw] += float(cols[n, row, col])
    return acc.astype(cols.dtype)


def conv2d_forward(x, w, b=None, stride=1, padding=0, dilation=1, groups=1):
    """2-D convolution (cross-correlation, as PyTorch) by direct summation.

    x (N, C, H, W), w (F, C // groups, KH, KW), b (F,) or None. ``padding`` is
    an int, a pair, ((top, bottom), (left, right)), "valid" or "same".
    Returns ``(out, cache)`` with out (N, F, OH, OW) in x's dtype.
    """
    n_img, chans, height, width = x.shape
    n_filt, chans_per_group, kh_size, kw_size = w.shape
    stride, dilation = _pair(stride), _pair(dilation)
    (pt, pb), (pl, pr) = _conv_padding(padding, (kh_size, kw_size), stride, dilation)
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


def conv2d_backward(dout, cache):
    """Gradients of :func:`conv2d_forward`: ``(dx, dw, db)``, db None without bias.

    Each output gradient is scattered back along the same loops as the forward
    sum: to x through the weights, to w through the inputs, to b directly.
    """
    cache = _open_cache(cache, ConvLoopCache, "conv2d")
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
    db = None if b is None else db.astype(b.dtype)
    return dx.astype(x.dtype), dw.astype(w.dtype), db


# ----------------------------------------------------------------------------
# max pooling
# ----------------------------------------------------------------------------

def max_pool2d_forward(x, kernel_size, stride=None, padding=0, dilation=1,
                       ceil_mode=False, return_indices=False):
    """Max pooling by scanning each window; -inf padding, first maximum wins.

    ``stride`` defaults to ``kernel_size``; ``padding`` is an int or a pair
    (symmetric, as PyTorch). A NaN in a window makes that output NaN. Indices
    are PyTorch's: ``ih * W + iw`` into each input plane, int64. Returns
    ``(out, cache)``, or ``(out, indices, cache)`` with ``return_indices``.
    """
    n_img, chans, height, width = x.shape
    kh_size, kw_size = _pair(kernel_size)
    sh, sw = _pair(kernel_size if stride is None else stride)
    ph, pw = _pair(padding)
    dh, dw = _pair(dilation)
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


def max_pool2d_backward(dout, cache):
    """Gradient of :func:`max_pool2d_forward`: each output's gradient goes to its argmax."""
    cache = _open_cache(cache, MaxPoolLoopCache, "max_pool2d")
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

def _avg_windows(height, width, kernel_size, stride, padding, ceil_mode, count_include_pad):
    """Output size and windows ``[((oh, ow), (h0, h1), (w0, w1), divisor), ...]`` of avg pooling.

    PyTorch's rule: the window ends are clipped to ``size + pad`` for the
    count_include_pad divisor, and to ``size`` for the summed region and the
    other divisor.
    """
    kh_size, kw_size = _pair(kernel_size)
    sh, sw = _pair(kernel_size if stride is None else stride)
    ph, pw = _pair(padding)
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


def avg_pool2d_forward(x, kernel_size, stride=None, padding=0, ceil_mode=False,
                       count_include_pad=True):
    """Average pooling by summing each window, with PyTorch's divisor rule.

    Zero padding; with ``count_include_pad`` the padded cells count in the
    divisor (but never cells past ``size + pad`` that ceil_mode adds).
    Returns ``(out, cache)``.
    """
    _, _, height, width = x.shape
    out_hw, windows = _avg_windows(height, width, kernel_size, stride, padding,
                                   ceil_mode, count_include_pad)
    return _window_means(x, out_hw, windows), WindowMeansCache("avg_pool2d", x.shape, x.dtype,
                                                               windows)


def avg_pool2d_backward(dout, cache):
    """Gradient of :func:`avg_pool2d_forward`."""
    cache = _open_cache(cache, WindowMeansCache, "avg_pool2d")
    return _spread_window_means(dout, cache.x_shape, cache.dtype, cache.windows)


# ----------------------------------------------------------------------------
# adaptive average pooling
# ----------------------------------------------------------------------------

def _adaptive_windows(height, width, output_size):
    """Output size and windows of adaptive pooling: start = floor(i*H/OH), end = ceil((i+1)*H/OH)."""
    out_h, out_w = _pair(output_size)
    windows = []
    for oh in range(out_h):
        for ow in range(out_w):
            h0, h1 = (oh * height) // out_h, -(-((oh + 1) * height) // out_h)
            w0, w1 = (ow * width) // out_w, -(-((ow + 1) * width) // out_w)
            windows.append(((oh, ow), (h0, h1), (w0, w1), (h1 - h0) * (w1 - w0)))
    return (out_h, out_w), windows


def adaptive_avg_pool2d_forward(x, output_size):
    """Adaptive average pooling to ``output_size`` (int or pair), PyTorch's windows.

    Global average pooling is ``output_size=1``. Returns ``(out, cache)``.
    """
    _, _, height, width = x.shape
    out_hw, windows = _adaptive_windows(height, width, output_size)
    return _window_means(x, out_hw, windows), WindowMeansCache("adaptive_avg_pool2d", x.shape,
                                                               x.dtype, windows)


def adaptive_avg_pool2d_backward(dout, cache):
    """Gradient of :func:`adaptive_avg_pool2d_forward`."""
    cache = _open_cache(cache, WindowMeansCache, "adaptive_avg_pool2d")
    return _spread_window_means(dout, cache.x_shape, cache.dtype, cache.windows)
