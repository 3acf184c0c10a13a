"""2-D max, average, adaptive average and adaptive max pooling, forward and backward.

Max and average pooling validate their arguments, build the window geometry
and dispatch once to the backend of the arrays' device: :mod:`fastconv._cpu.pool`
(elementwise passes over the kernel offsets' slabs) or :mod:`fastconv._gpu.pool`
(the CUDA kernels). Pooling does not chunk: its workspace, a padded copy on
the CPU, is the size of the input. Adaptive pooling is the same array code on
both devices (adaptive max pooling scans its windows with the max-pool rules
of :mod:`fastconv._window_max`), except the adaptive max-pool gradient, a
scatter-add (:mod:`fastconv._cpu.scatter`, :mod:`fastconv._gpu.scatter`).

Rules, the same on every path (CPU, GPU, reference):

* Max pooling pads with -inf and only input cells compete, so padding never
  wins (a window of -inf inputs picks its first input cell, as PyTorch).
* Ties: the gradient goes to the first maximum in row-major window order
  (the smallest kernel offset i*KW + j), as in PyTorch.
* NaN propagates: a window holding a NaN outputs NaN, and its gradient goes
  to the first NaN of the window (PyTorch picks the last; the output is the
  same). Adaptive max pooling follows both rules over its windows.
* ``ceil_mode`` adds a last window if it starts inside the input or its left
  padding (PyTorch's rule), even one that overhangs the padded input by up to
  stride - 1 (a kernel that long still gives one window); for average
  pooling, as in PyTorch, the divisor counts the padding only up to the
  padded border (``count_include_pad``), never the part of a ceil-mode
  window beyond it.
"""

from typing import ClassVar

from .. import _backends, _validate
from .._window_max import running_max
from ..backend import accumulator_dtype, get_array_module
from ..shapes import WindowGeometry, window_geometry
from ..workspace import whole_batch
from ._axes import per_axis


@_validate.op_cache
class MaxPoolCache:
    """What :func:`max_pool2d_backward` needs: the input shape and dtype, geometry and argmax offsets."""

    op: ClassVar[str] = "max_pool2d_forward"
    x_shape: tuple
    dtype: object
    geometry: WindowGeometry
    argmax: object


@_validate.op_cache
class AvgPoolCache:
    """What :func:`avg_pool2d_backward` needs: the input shape and dtype, geometry and divisors."""

    op: ClassVar[str] = "avg_pool2d_forward"
    x_shape: tuple
    dtype: object
    geometry: WindowGeometry
    divisor: object


@_validate.op_cache
class AdaptiveMaxPoolCache:
    """What :func:`adaptive_max_pool2d_backward` needs: the input shape and dtype, the maxima's indices."""

    op: ClassVar[str] = "adaptive_max_pool2d_forward"
    x_shape: tuple
    dtype: object
    indices: object


@_validate.op_cache
class AdaptiveAvgPoolCache:
    """What :func:`adaptive_avg_pool2d_backward` needs: the input shape and dtype, window bounds."""

    op: ClassVar[str] = "adaptive_avg_pool2d_forward"
    x_shape: tuple
    dtype: object
    rows: tuple
    columns: tuple


def pool_arguments(x, kernel_size, stride, padding):
    """Check a pool's x (N, C, H, W) floats; its ``(kernel, stride, padding)`` pairs.

    The stride defaults to the kernel size; padding is >= 0. Max unpooling
    (:mod:`fastconv.functional.unpool`) takes the same arguments.
    """
    _validate.check_ndim(x, 4, "x", "(N, C, H, W)")
    _validate.check_float(x, "x")
    kernel = _validate.positive_pair(kernel_size, "kernel_size")
    stride = kernel if stride is None else _validate.positive_pair(stride, "stride")
    pad = _validate.pair(padding, "padding")
    if min(pad) < 0:
        raise ValueError(f"padding must be >= 0, got {padding!r}")
    return kernel, stride, pad


def _pool_geometry(x, kernel_size, stride, padding, dilation, ceil_mode):
    """Validate pooling arguments (PyTorch's rules) and build the window geometry."""
    kernel, stride, pad = pool_arguments(x, kernel_size, stride, padding)
    if pad[0] > kernel[0] // 2 or pad[1] > kernel[1] // 2:
        raise ValueError(
            f"padding {padding!r} must be at most half of kernel_size {kernel_size!r}")
    ceil_mode = _validate.check_bool("ceil_mode", ceil_mode)
    return window_geometry(x.shape, kernel, stride, pad, dilation, ceil_mode)


def max_pool2d_forward(x, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False,
                       return_indices=False):
    """Max pooling of ``x`` (N, C, H, W); return ``(out, cache)``.

    As ``torch.nn.functional.max_pool2d``: stride defaults to kernel_size,
    padding (at most half the kernel) is -inf, dilation spreads the window,
    ``ceil_mode`` keeps a last partial window. With ``return_indices`` return
    ``(out, indices, cache)``, indices (int64) being the flat position
    ``h * W + w`` of each maximum in its input plane, as PyTorch's. Ties go to
    the first maximum in row-major window order; NaN propagates.
    """
    xp = get_array_module(x)
    geometry = _pool_geometry(x, kernel_size, stride, padding, dilation, ceil_mode)
    return_indices = _validate.check_bool("return_indices", return_indices)
    backend = _backends.backend_for(x).pool
    with whole_batch(xp, backend.pool_plan(x.shape, geometry, x.dtype), x.shape[0]) as buffers:
        out, argmax = backend.max_pool_forward(x, geometry, buffers)
    cache = MaxPoolCache(x.shape, x.dtype, geometry, argmax)
    if return_indices:
        return out, _flat_indices(argmax, geometry, xp), cache
    return out, cache


def _flat_indices(argmax, geometry, xp):
    """PyTorch-style indices h * W + w of each window's maximum from kernel offsets.

    A window of padding only (its argmax, offset 0, is no input cell) gets -1,
    as in the loop reference; PyTorch's index there lies outside the input.
    """
    (_, kw), (sh, sw), (dh, dw) = geometry.kernel, geometry.stride, geometry.dilation
    (top, _), (left, _) = geometry.pads
    (oh, ow), (height, width) = geometry.out, geometry.size
    offset = argmax.astype(xp.int64)
    rows = xp.arange(oh, dtype=xp.int64).reshape(oh, 1) * sh - top + (offset // kw) * dh
    cols = xp.arange(ow, dtype=xp.int64) * sw - left + (offset % kw) * dw
    inside = (rows >= 0) & (rows < height) & (cols >= 0) & (cols < width)
    return xp.where(inside, rows * width + cols, -1)


def max_pool2d_backward(dout, cache):
    """Gradient of :func:`max_pool2d_forward`: each window's gradient goes to its argmax."""
    _validate.check_cache(cache, MaxPoolCache, "max_pool2d_forward")
    _validate.check_dout(dout, cache.argmax.shape, cache.dtype)
    backend = _backends.backend_for(dout, cache.argmax).pool
    plan = backend.pool_backward_plan(cache.x_shape, cache.geometry, cache.dtype)
    with whole_batch(get_array_module(dout), plan, cache.x_shape[0]) as buffers:
        return backend.max_pool_backward(dout, cache.argmax, cache.x_shape, cache.geometry,
                                         buffers)


def _avg_divisor(geometry, count_include_pad, dtype, xp):
    """Per-output window sizes (OH, OW) under PyTorch's avg-pool divisor rule, in ``dtype``
    (the accumulator dtype: float16 has no 2049, and overflows at 65520)."""
    sizes = []
    for n, k, s, (before, _), o in zip(geometry.size, geometry.kernel, geometry.stride,
                                        geometry.pads, geometry.out):
        start = xp.arange(o) * s - before
        end = xp.minimum(start + k, n + before)
        if count_include_pad:
            sizes.append(end - start)
        else:
            sizes.append(xp.minimum(end, n) - xp.maximum(start, 0))
    return (sizes[0].reshape(-1, 1) * sizes[1]).astype(dtype)


def _divisor_override(value):
    """``divisor_override`` as an int: any but 0, as PyTorch (a negative one too)."""
    value = _validate.check_int("divisor_override", value)
    if value == 0:
        raise ValueError("divisor_override must not be 0 (None divides by the window size)")
    return value


def avg_pool2d_forward(x, kernel_size, stride=None, padding=0, ceil_mode=False,
                       count_include_pad=True, divisor_override=None):
    """Average pooling of ``x`` (N, C, H, W); return ``(out, cache)``.

    As ``torch.nn.functional.avg_pool2d``: zero padding (at most half the
    kernel), ``count_include_pad`` counts it in the divisor, ``ceil_mode``
    keeps a last partial window whose divisor stops at the padded border.
    ``divisor_override`` (a nonzero int) divides every window sum by that
    number instead, whatever the window holds (``count_include_pad`` then
    changes nothing).

    Examples
    --------
    >>> import numpy as np
    >>> avg_pool2d_forward(np.ones((1, 1, 2, 2)), 2, divisor_override=2)[0]
    array([[[[2.]]]])
    """
    xp = get_array_module(x)
    geometry = _pool_geometry(x, kernel_size, stride, padding, 1, ceil_mode)
    count_include_pad = _validate.check_bool("count_include_pad", count_include_pad)
    acc = accumulator_dtype(x.dtype)
    if divisor_override is None:
        divisor = _avg_divisor(geometry, count_include_pad, acc, xp)
    else:  # the kernels take a divisor per output position: here all the same
        divisor = xp.full(geometry.out, _divisor_override(divisor_override), dtype=acc)
    backend = _backends.backend_for(x).pool
    with whole_batch(xp, backend.pool_plan(x.shape, geometry, x.dtype), x.shape[0]) as buffers:
        out = backend.avg_pool_forward(x, geometry, divisor, buffers)
    return out, AvgPoolCache(x.shape, x.dtype, geometry, divisor)


def avg_pool2d_backward(dout, cache):
    """Gradient of :func:`avg_pool2d_forward`: each window spreads dout / divisor evenly."""
    _validate.check_cache(cache, AvgPoolCache, "avg_pool2d_forward")
    _validate.check_dout(dout, cache.x_shape[:2] + cache.geometry.out, cache.dtype)
    backend = _backends.backend_for(dout, cache.divisor).pool
    plan = backend.pool_backward_plan(cache.x_shape, cache.geometry, cache.dtype)
    with whole_batch(get_array_module(dout), plan, cache.x_shape[0]) as buffers:
        return backend.avg_pool_backward(dout, cache.divisor, cache.x_shape, cache.geometry,
                                         buffers)


def _adaptive_bounds(size, out_size):
    """PyTorch's adaptive windows: [floor(i*size/out), ceil((i+1)*size/out))."""
    return [((i * size) // out_size, -(-((i + 1) * size) // out_size)) for i in range(out_size)]


def _adaptive_windows(x, output_size, op):
    """Check an adaptive pool's x and ``output_size``; the windows' bounds along H and along W."""
    _validate.check_ndim(x, 4, "x", "(N, C, H, W)")
    _validate.check_float(x, "x")
    if isinstance(output_size, (tuple, list)):  # None in the pair keeps that input size
        output_size = tuple(x.shape[2 + a] if s is None else s
                            for a, s in enumerate(per_axis(output_size, "output_size")))
    oh, ow = _validate.pair(output_size, "output_size")
    if oh < 1 or ow < 1:
        raise ValueError(f"output_size must be >= 1, got {output_size!r}")
    h, w = x.shape[2:]
    if h < 1 or w < 1:  # no window to pool over (PyTorch refuses too)
        raise ValueError(f"{op} needs a height and width of at least 1, "
                         f"got x shape {tuple(x.shape)}")
    return _adaptive_bounds(h, oh), _adaptive_bounds(w, ow)


def adaptive_avg_pool2d_forward(x, output_size):
    """Average ``x`` (N, C, H, W) over adaptive windows to (OH, OW); return ``(out, cache)``.

    ``output_size`` is an int or (OH, OW) pair (``None`` in the pair keeps that
    input size), as ``torch.nn.functional.adaptive_avg_pool2d``; window i spans
    [floor(i*H/OH), ceil((i+1)*H/OH)). ``output_size=1`` is global average pooling.
    """
    rows, columns = _adaptive_windows(x, output_size, "adaptive_avg_pool2d")
    xp = get_array_module(x)
    (n, c, _, w), oh, ow = x.shape, len(rows), len(columns)
    acc = accumulator_dtype(x.dtype)  # float16 sums in float32
    pooled_rows = xp.empty((n, c, oh, w), dtype=acc)
    for o, (start, end) in enumerate(rows):
        pooled_rows[:, :, o] = x[:, :, start:end].sum(axis=2, dtype=acc) / (end - start)
    out = xp.empty((n, c, oh, ow), dtype=x.dtype)
    for o, (start, end) in enumerate(columns):
        out[..., o] = pooled_rows[..., start:end].sum(axis=3) / (end - start)
    return out, AdaptiveAvgPoolCache(x.shape, x.dtype, rows, columns)


def adaptive_avg_pool2d_backward(dout, cache):
    """Gradient of :func:`adaptive_avg_pool2d_forward`."""
    _validate.check_cache(cache, AdaptiveAvgPoolCache, "adaptive_avg_pool2d_forward")
    n, c, h, w = cache.x_shape
    _validate.check_dout(dout, (n, c, len(cache.rows), len(cache.columns)), cache.dtype)
    xp = get_array_module(dout)
    drows = xp.zeros((n, c, len(cache.rows), w), dtype=dout.dtype)
    for o, (start, end) in enumerate(cache.columns):
        drows[..., start:end] += dout[..., o:o + 1] / (end - start)
    dx = xp.zeros(cache.x_shape, dtype=dout.dtype)
    for o, (start, end) in enumerate(cache.rows):
        dx[:, :, start:end] += drows[:, :, o:o + 1] / (end - start)
    return dx


def _window_cells(bounds, xp):
    """(K, O) int64: the k-th cell of each adaptive window along one axis, K the longest window.

    A shorter window repeats its last cell, which can never win: it ties with
    itself, scanned earlier, and a tie keeps the first maximum (a NaN keeps
    the first NaN).
    """
    longest = max(end - start for start, end in bounds)
    return xp.array([[min(start + k, end - 1) for start, end in bounds] for k in range(longest)],
                    dtype=xp.int64)


def _window_max(a, axis, cells, has_nan):
    """``(best, k)``: the maximum of ``a`` over each adaptive window along ``axis``, and its offset."""
    xp = get_array_module(a)
    best = a.take(cells[0], axis=axis)
    best_k = xp.zeros(best.shape, dtype=xp.int32)
    later = ((k, a.take(c, axis=axis)) for k, c in enumerate(cells[1:], 1))
    running_max(best, best_k, later, has_nan)
    return best, best_k


def adaptive_max_pool2d_forward(x, output_size, return_indices=False):
    """Max of ``x`` (N, C, H, W) over adaptive windows to (OH, OW); return ``(out, cache)``.

    As ``torch.nn.functional.adaptive_max_pool2d``: window i spans
    [floor(i*H/OH), ceil((i+1)*H/OH)) (adjacent windows may share a cell).
    Ties go to the first maximum in row-major window order and NaN propagates,
    its gradient going to the window's first NaN (PyTorch: the last), as in
    :func:`max_pool2d_forward`.

    Parameters
    ----------
    x : ndarray
        (N, C, H, W), float16/32/64, H and W at least 1.
    output_size : int or (int or None, int or None)
        (OH, OW), each at least 1; None in the pair keeps that input size.
    return_indices : bool
        Also return the indices (int64, like ``out``): the flat position
        ``h * W + w`` of each maximum in its input plane, as PyTorch's (and
        as :func:`max_unpool2d_forward` takes them).

    Returns
    -------
    out : ndarray
        (N, C, OH, OW), x's dtype.
    indices : ndarray
        With ``return_indices`` only.
    cache : AdaptiveMaxPoolCache
        For :func:`adaptive_max_pool2d_backward`.

    Raises
    ------
    ValueError
        x not 4-D or with no height or width, an output size below 1, or an
        ``output_size`` sequence not of length 2.
    TypeError
        A non-float x, a malformed ``output_size``, a non-bool ``return_indices``.

    Examples
    --------
    >>> import numpy as np
    >>> x = np.array([[[[1.0, 5.0, 2.0], [0.0, 3.0, 4.0]]]])
    >>> out, indices, cache = adaptive_max_pool2d_forward(x, (1, 2), return_indices=True)
    >>> out, indices
    (array([[[[5., 5.]]]]), array([[[[1, 1]]]]))
    """
    rows, columns = _adaptive_windows(x, output_size, "adaptive_max_pool2d")
    return_indices = _validate.check_bool("return_indices", return_indices)
    xp = get_array_module(x)
    row_cells, column_cells = _window_cells(rows, xp), _window_cells(columns, xp)
    has_nan = bool(xp.isnan(x).any())
    # Each window's maximum over its columns, row by row, then over those rows: KH + KW
    # passes, not KH * KW. The first row holding the maximum and its first column holding it
    # are the first maximum in row-major window order (the first NaN, with NaN).
    across, column_k = _window_max(x, 3, column_cells, has_nan)  # (N, C, H, OW)
    out, row_k = _window_max(across, 2, row_cells, has_nan)
    row = row_cells[0].reshape(-1, 1) + row_k
    column = column_cells[0] + xp.take_along_axis(column_k, row, axis=2)
    indices = row * x.shape[3] + column
    cache = AdaptiveMaxPoolCache(x.shape, x.dtype, indices)
    return (out, indices, cache) if return_indices else (out, cache)


def adaptive_max_pool2d_backward(dout, cache):
    """Gradient of :func:`adaptive_max_pool2d_forward`: each window's dout goes to its maximum.

    A cell that is the maximum of two windows sums both, in window order (a
    deterministic scatter-add on both devices).

    Parameters
    ----------
    dout : ndarray
        The gradient of the pooled output, (N, C, OH, OW) in its dtype.
    cache : AdaptiveMaxPoolCache

    Returns
    -------
    ndarray
        dx (N, C, H, W), dout's dtype.

    Raises
    ------
    TypeError, ValueError
        A cache not from adaptive_max_pool2d_forward; dout unlike the pooled output.

    Examples
    --------
    >>> import numpy as np
    >>> out, cache = adaptive_max_pool2d_forward(np.array([[[[1.0, 5.0, 2.0]]]]), (1, 2))
    >>> adaptive_max_pool2d_backward(np.ones((1, 1, 1, 2)), cache)
    array([[[[0., 2., 0.]]]])
    """
    _validate.check_cache(cache, AdaptiveMaxPoolCache, "adaptive_max_pool2d_forward")
    _validate.check_dout(dout, cache.indices.shape, cache.dtype)
    n, c, h, w = cache.x_shape
    planes, size = n * c, cache.indices.shape[2] * cache.indices.shape[3]
    scatter = _backends.backend_for(dout, cache.indices).scatter
    dx = scatter.scatter_add(dout.reshape(planes, size), cache.indices.reshape(planes, size),
                             h * w)
    return dx.reshape(cache.x_shape)
