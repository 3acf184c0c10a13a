"""2-D max, average and adaptive average pooling, forward and backward.

The CPU path never materialises the windows: it walks the KH*KW kernel
offsets, each one a strided slab of the padded input of output size, and
reduces them elementwise. Backward adds each offset's share back onto its
slab. This is as fast as a reshape for tiling windows (stride == kernel) and
also covers overlap, padding, dilation and ``ceil_mode``.

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

from .. import _cuda, _parallel, _validate
from ..backend import accumulator_dtype, get_array_module
from ..im2col import pad_input, window_geometry
from ..profiling import step
from ..workspace import scratch


class MaxPoolCache:
    """What max_pool2d_backward needs: the input shape, geometry and argmax offsets."""

    op = "max_pool2d_forward"
    __slots__ = ("x_shape", "dtype", "geometry", "argmax")

    def __init__(self, x_shape, dtype, geometry, argmax):
        self.x_shape, self.dtype, self.geometry, self.argmax = x_shape, dtype, geometry, argmax


class AvgPoolCache:
    """What avg_pool2d_backward needs: the input shape, geometry and divisors."""

    op = "avg_pool2d_forward"
    __slots__ = ("x_shape", "dtype", "geometry", "divisor")

    def __init__(self, x_shape, dtype, geometry, divisor):
        self.x_shape, self.dtype, self.geometry, self.divisor = x_shape, dtype, geometry, divisor


class AdaptiveAvgPoolCache:
    """What adaptive_avg_pool2d_backward needs: the input shape and the window bounds."""

    op = "adaptive_avg_pool2d_forward"
    __slots__ = ("x_shape", "dtype", "rows", "columns")

    def __init__(self, x_shape, dtype, rows, columns):
        self.x_shape, self.dtype, self.rows, self.columns = x_shape, dtype, rows, columns


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
    return window_geometry(x.shape, kernel, stride, pad, dilation, ceil_mode)


def _slab(padded, geometry, i, j):
    rows, columns = geometry.offset_slices(i, j)
    return padded[:, :, rows, columns]


def _offsets(geometry):
    kh, kw = geometry.kernel
    return [(k, k // kw, k % kw) for k in range(kh * kw)]


def _add_back(share_of, geometry, x_shape, dtype, xp):
    """Sum per-offset gradients onto the padded input, cropped to ``x_shape``.

    ``share_of(batch, k)`` gives the slab gradient of kernel offset k for a
    batch slice, of output size. When the windows do not overlap, the slabs are
    disjoint and each is assigned rather than added: a strided copy runs
    several times faster in NumPy than a strided ``+=``. The batch is split
    across threads.
    """
    disjoint = all(d * (k - 1) + 1 <= s for k, s, d in
                   zip(geometry.kernel, geometry.stride, geometry.dilation))
    (top, _), (left, _) = geometry.pads
    height, width = geometry.size
    unpadded = geometry.padded == geometry.size
    dx = xp.empty(x_shape, dtype=dtype)

    def add(batch):
        target = dx[batch]
        padded = target if unpadded else scratch(
            xp, "pool grad", target.shape[:2] + geometry.padded, dtype)
        padded.fill(0)
        for k, i, j in _offsets(geometry):
            share = share_of(batch, k)
            slab = _slab(padded, geometry, i, j)
            if disjoint:
                slab[...] = share
            else:
                slab += share
        if not unpadded:
            target[...] = padded[:, :, top:top + height, left:left + width]

    _parallel.over_batch(add, x_shape[0], dx.nbytes)
    return dx


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
    if _cuda.uses_kernels(x):
        out, argmax = _cuda.max_pool2d_forward(x, geometry)
    else:
        out, argmax = _max_over_slabs(x, geometry, xp)
    cache = MaxPoolCache(x.shape, x.dtype, geometry, argmax)
    if return_indices:
        return out, _flat_indices(argmax, geometry, xp), cache
    return out, cache


def _max_over_slabs(x, geometry, xp):
    """The CPU max pooling: ``(out, argmax)``, argmax the int32 kernel offset i*KW + j.

    A strict ``>`` scan over the kernel offsets keeps the first maximum. Each
    window's argmax starts at its first input cell, so the -inf padding never
    wins, even over -inf inputs (PyTorch's rule). Slices holding NaN take a
    slower scan that also moves the argmax to each window's first NaN. The
    offsets are scanned in increasing order, so the argmax is the largest k
    that beat the running maximum: ``argmax = maximum(argmax, k * better)``,
    two contiguous passes, where ``copyto(argmax, k, where=better)`` is about
    8x slower. The batch is split across threads.
    """
    shape = x.shape[:2] + geometry.out
    out = xp.empty(shape, dtype=x.dtype)
    argmax = xp.empty(shape, dtype=xp.int32)  # kernel offset i*KW + j of each maximum
    first_inside = _first_inside(geometry, xp)

    def scan(batch):
        padded = pad_input(x[batch], geometry, value=-xp.inf)
        has_nan = bool(xp.isnan(x[batch]).any())
        best, best_k = out[batch], argmax[batch]
        best[...] = _slab(padded, geometry, 0, 0)
        best_k[...] = first_inside
        offset_k = xp.empty_like(best_k)
        for k, i, j in _offsets(geometry)[1:]:
            candidate = _slab(padded, geometry, i, j)
            better = candidate > best
            if has_nan:
                better |= xp.isnan(candidate) & ~xp.isnan(best)
                xp.copyto(best, candidate, where=better)
            else:
                xp.maximum(best, candidate, out=best)
            xp.multiply(better, xp.int32(k), out=offset_k)
            xp.maximum(best_k, offset_k, out=best_k)

    with step("max"):
        _parallel.over_batch(scan, x.shape[0], x.nbytes)
    return out, argmax


def _first_inside(geometry, xp):
    """(OH, OW): the first kernel offset of each window that reads an input cell, not padding.

    A window of padding only (possible with dilation) keeps offset 0.
    """
    first, found = [], []
    for n, o, s, d, (before, _), k in zip(geometry.size, geometry.out, geometry.stride,
                                          geometry.dilation, geometry.pads, geometry.kernel):
        start = xp.arange(o) * s - before  # the window's first position, maybe in the padding
        offset = xp.maximum(-(start // d), 0)  # ceil(-start / d): the first offset at >= 0
        first.append(offset)
        found.append((offset < k) & (start + offset * d < n))
    offset = first[0].reshape(-1, 1) * geometry.kernel[1] + first[1]
    return xp.where(found[0].reshape(-1, 1) & found[1], offset, 0)


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
    xp = get_array_module(dout)
    if _cuda.uses_kernels(dout):
        return _cuda.max_pool2d_backward(dout, cache.argmax, cache.x_shape, cache.geometry)
    # dout * won is 8x faster than where(won, dout, 0) but turns a non-finite
    # dout into NaN where it lost, so it is kept for finite dout
    finite = bool(xp.isfinite(dout).all())
    zero = xp.zeros((), dtype=cache.dtype)

    def share_of(batch, k):
        won = cache.argmax[batch] == k
        return dout[batch] * won if finite else xp.where(won, dout[batch], zero)

    with step("max backward"):
        return _add_back(share_of, cache.geometry, cache.x_shape, cache.dtype, xp)


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
    divisor = _avg_divisor(geometry, count_include_pad, accumulator_dtype(x.dtype), xp)
    if _cuda.uses_kernels(x):
        out = _cuda.avg_pool2d_forward(x, geometry, divisor)
    else:
        out = _mean_over_slabs(x, geometry, divisor, xp)
    return out, AvgPoolCache(x.shape, x.dtype, geometry, divisor)


def _mean_over_slabs(x, geometry, divisor, xp):
    """The CPU average pooling: the sum of the kernel-offset slabs over ``divisor``.

    The sum runs in the divisor's (accumulator) dtype: in place in the output,
    or, for float16, in a float32 temporary.
    """
    out = xp.empty(x.shape[:2] + geometry.out, dtype=x.dtype)

    def average(batch):
        padded = pad_input(x[batch], geometry, value=0)
        total = out[batch] if divisor.dtype == x.dtype else xp.empty(
            out[batch].shape, divisor.dtype)
        total[...] = _slab(padded, geometry, 0, 0)
        for _, i, j in _offsets(geometry)[1:]:
            total += _slab(padded, geometry, i, j)
        xp.divide(total, divisor, out=out[batch])

    with step("avg"):
        _parallel.over_batch(average, x.shape[0], x.nbytes)
    return out


def avg_pool2d_backward(dout, cache):
    """Gradient of :func:`avg_pool2d_forward`: each window spreads dout / divisor evenly."""
    _validate.check_cache(cache, AvgPoolCache, "avg_pool2d_forward")
    _validate.check_dout(dout, cache.x_shape[:2] + cache.geometry.out, cache.dtype)
    xp = get_array_module(dout)
    if _cuda.uses_kernels(dout):
        return _cuda.avg_pool2d_backward(dout, cache.divisor, cache.x_shape, cache.geometry)
    with step("avg backward"):
        share = dout / cache.divisor
        return _add_back(lambda batch, k: share[batch], cache.geometry, cache.x_shape,
                         cache.dtype, xp)


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
