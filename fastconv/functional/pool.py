"""2-D max, average and adaptive average pooling, forward and backward.

Max and average pooling validate their arguments, build the window geometry
and dispatch once to the backend of the arrays' device: :mod:`fastconv._cpu.pool`
(elementwise passes over the kernel offsets' slabs) or :mod:`fastconv._gpu.pool`
(the CUDA kernels). Pooling does not chunk: its workspace, a padded copy on
the CPU, is the size of the input. Adaptive average pooling is the same array
code on both devices.

Rules, the same on every path (CPU, GPU, reference):

* Max pooling pads with -inf and only input cells compete, so padding never
  wins (a window of -inf inputs picks its first input cell, as PyTorch).
* Ties: the gradient goes to the first maximum in row-major window order
  (the smallest kernel offset i*KW + j), as in PyTorch.
* NaN propagates: a window holding a NaN outputs NaN, and its gradient goes
  to the first NaN of the window (PyTorch picks the last; the output is the
  same).
* ``ceil_mode`` adds a last window if it starts inside the input or its left
  padding (PyTorch's rule), even one that overhangs the padded input by up to
  stride - 1 (a kernel that long still gives one window); for average
  pooling, as in PyTorch, the divisor counts the padding only up to the
  padded border (``count_include_pad``), never the part of a ceil-mode
  window beyond it.
"""

from typing import ClassVar

from .. import _backends, _validate
from ..backend import accumulator_dtype, get_array_module
from ..shapes import WindowGeometry, window_geometry
from ..workspace import whole_batch


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
class AdaptiveAvgPoolCache:
    """What :func:`adaptive_avg_pool2d_backward` needs: the input shape and dtype, window bounds."""

    op: ClassVar[str] = "adaptive_avg_pool2d_forward"
    x_shape: tuple
    dtype: object
    rows: tuple
    columns: tuple


def _pool_geometry(x, kernel_size, stride, padding, dilation, ceil_mode):
    """Validate pooling arguments (PyTorch's rules) and build the window geometry."""
    _validate.check_ndim(x, 4, "x", "(N, C, H, W)")
    _validate.check_float(x, "x")
    kernel = _validate.positive_pair(kernel_size, "kernel_size")
    stride = kernel if stride is None else _validate.positive_pair(stride, "stride")
    pad = _validate.pair(padding, "padding")
    if min(pad) < 0:
        raise ValueError(f"padding must be >= 0, got {padding!r}")
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


def avg_pool2d_forward(x, kernel_size, stride=None, padding=0, ceil_mode=False,
                       count_include_pad=True):
    """Average pooling of ``x`` (N, C, H, W); return ``(out, cache)``.

    As ``torch.nn.functional.avg_pool2d``: zero padding (at most half the
    kernel), ``count_include_pad`` counts it in the divisor, ``ceil_mode``
    keeps a last partial window whose divisor stops at the padded border.
    """
    xp = get_array_module(x)
    geometry = _pool_geometry(x, kernel_size, stride, padding, 1, ceil_mode)
    count_include_pad = _validate.check_bool("count_include_pad", count_include_pad)
    divisor = _avg_divisor(geometry, count_include_pad, accumulator_dtype(x.dtype), xp)
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


def adaptive_avg_pool2d_forward(x, output_size):
    """Average ``x`` (N, C, H, W) over adaptive windows to (OH, OW); return ``(out, cache)``.

    ``output_size`` is an int or (OH, OW) pair (``None`` in the pair keeps that
    input size), as ``torch.nn.functional.adaptive_avg_pool2d``; window i spans
    [floor(i*H/OH), ceil((i+1)*H/OH)). ``output_size=1`` is global average pooling.
    """
    _validate.check_ndim(x, 4, "x", "(N, C, H, W)")
    _validate.check_float(x, "x")
    xp = get_array_module(x)
    if isinstance(output_size, (tuple, list)) and len(output_size) == 2:
        output_size = tuple(x.shape[2 + a] if s is None else s for a, s in enumerate(output_size))
    oh, ow = _validate.pair(output_size, "output_size")
    if oh < 1 or ow < 1:
        raise ValueError(f"output_size must be >= 1, got {output_size!r}")
    n, c, h, w = x.shape
    if h < 1 or w < 1:  # no window to average over (PyTorch refuses too)
        raise ValueError(f"adaptive_avg_pool2d needs a height and width of at least 1, "
                         f"got x shape {tuple(x.shape)}")
    rows, columns = _adaptive_bounds(h, oh), _adaptive_bounds(w, ow)
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
