"""Max and average pooling on the CPU (NumPy): elementwise passes over the kernel offsets.

The windows are never materialised: each of the KH*KW kernel offsets is one
strided slab of the padded input, of output size, and the windows reduce
elementwise over the slabs. Backward adds each offset's share back onto its
slab. This is as fast as a reshape for tiling windows (stride == kernel) and
also covers overlap, padding, dilation and ``ceil_mode``. The batch is split
across threads (:mod:`fastconv._cpu.threads`). The rules (ties, NaN, padding)
are those of :mod:`fastconv.functional.pool`.

Each function's buffers are declared by its ``*_plan`` function and come from
the caller's workspace, for the whole batch.
"""

import numpy

from .._window_max import running_max
from ..profiling import step
from .im2col import pad_into, padded_plan
from .threads import over_batch


def _slab(padded, geometry, i, j):
    rows, columns = geometry.offset_slices(i, j)
    return padded[:, :, rows, columns]


def _offsets(geometry):
    kh, kw = geometry.kernel
    return [(k, k // kw, k % kw) for k in range(kh * kw)]


def pool_plan(x_shape, geometry, dtype):
    """The buffers of a pooling forward per image: the padded input."""
    return padded_plan(x_shape[1], geometry, dtype)


def pool_backward_plan(x_shape, geometry, dtype):
    """The buffers of a pooling backward per image: the padded gradient the shares add into."""
    return padded_plan(x_shape[1], geometry, dtype, name="padded grad")


def _add_back(share_of, geometry, x_shape, dtype, buffers):
    """Sum per-offset gradients onto the padded input, cropped to ``x_shape``.

    ``share_of(batch, k)`` gives the slab gradient of kernel offset k for a
    batch slice, of output size. When the windows do not overlap, the slabs are
    disjoint and each is assigned rather than added: a strided copy runs
    several times faster in NumPy than a strided ``+=``.
    """
    disjoint = all(d * (k - 1) + 1 <= s for k, s, d in
                   zip(geometry.kernel, geometry.stride, geometry.dilation))
    (top, _), (left, _) = geometry.pads
    height, width = geometry.size
    padded_grad = buffers.get("padded grad")
    dx = numpy.empty(x_shape, dtype=dtype)

    def add(batch):
        target = dx[batch] if padded_grad is None else padded_grad[batch]
        target.fill(0)
        for k, i, j in _offsets(geometry):
            share = share_of(batch, k)
            slab = _slab(target, geometry, i, j)
            if disjoint:
                slab[...] = share
            else:
                slab += share
        if padded_grad is not None:
            dx[batch] = target[:, :, top:top + height, left:left + width]

    over_batch(add, x_shape[0], dx.nbytes)
    return dx


def max_pool_forward(x, geometry, buffers):
    """``(out, argmax)`` of max pooling, argmax the int32 kernel offset i*KW + j of each maximum.

    The kernel offsets' slabs go through :func:`fastconv._window_max.running_max`
    (ties keep the first maximum, the first NaN wins; batch slices without NaN
    take its faster path). Each window's argmax starts at its first input
    cell, so the -inf padding never wins, even over -inf inputs (PyTorch's rule).
    """
    shape = x.shape[:2] + geometry.out
    out = numpy.empty(shape, dtype=x.dtype)
    argmax = numpy.empty(shape, dtype=numpy.int32)
    first_inside = _first_inside(geometry)
    padded = buffers.get("padded")

    def scan(batch):
        images = pad_into(x[batch], geometry, -numpy.inf, None if padded is None else padded[batch])
        out[batch] = _slab(images, geometry, 0, 0)
        argmax[batch] = first_inside
        slabs = ((k, _slab(images, geometry, i, j)) for k, i, j in _offsets(geometry)[1:])
        running_max(out[batch], argmax[batch], slabs, bool(numpy.isnan(x[batch]).any()))

    with step("max"):
        over_batch(scan, x.shape[0], x.nbytes)
    return out, argmax


def _first_inside(geometry):
    """(OH, OW): the first kernel offset of each window that reads an input cell, not padding.

    A window of padding only (possible with dilation) keeps offset 0.
    """
    first, found = [], []
    for n, o, s, d, (before, _), k in zip(geometry.size, geometry.out, geometry.stride,
                                          geometry.dilation, geometry.pads, geometry.kernel):
        start = numpy.arange(o) * s - before  # the window's first position, maybe in the padding
        offset = numpy.maximum(-(start // d), 0)  # ceil(-start / d): the first offset at >= 0
        first.append(offset)
        found.append((offset < k) & (start + offset * d < n))
    offset = first[0].reshape(-1, 1) * geometry.kernel[1] + first[1]
    return numpy.where(found[0].reshape(-1, 1) & found[1], offset, 0)


def max_pool_backward(dout, argmax, x_shape, geometry, buffers):
    """The max-pool gradient: each window's dout goes to its argmax offset."""
    # dout * won is several times faster than where(won, dout, 0) but turns a
    # non-finite dout into NaN where it lost, so it is kept for finite dout
    finite = bool(numpy.isfinite(dout).all())
    zero = numpy.zeros((), dtype=dout.dtype)

    def share_of(batch, k):
        won = argmax[batch] == k
        return dout[batch] * won if finite else numpy.where(won, dout[batch], zero)

    with step("max backward"):
        return _add_back(share_of, geometry, x_shape, dout.dtype, buffers)


def avg_pool_forward(x, geometry, divisor, buffers):
    """Average pooling: the sum of the kernel-offset slabs over ``divisor`` (OH, OW).

    The sum runs in the divisor's (accumulator) dtype: in place in the output,
    or, for float16, in a float32 temporary.
    """
    out = numpy.empty(x.shape[:2] + geometry.out, dtype=x.dtype)
    padded = buffers.get("padded")

    def average(batch):
        images = pad_into(x[batch], geometry, 0, None if padded is None else padded[batch])
        total = out[batch] if divisor.dtype == x.dtype else numpy.empty(
            out[batch].shape, divisor.dtype)
        total[...] = _slab(images, geometry, 0, 0)
        for _, i, j in _offsets(geometry)[1:]:
            total += _slab(images, geometry, i, j)
        numpy.divide(total, divisor, out=out[batch])

    with step("avg"):
        over_batch(average, x.shape[0], x.nbytes)
    return out


def avg_pool_backward(dout, divisor, x_shape, geometry, buffers):
    """The average-pool gradient: each window spreads dout / divisor evenly."""
    with step("avg backward"):
        share = dout / divisor
        return _add_back(lambda batch, k: share[batch], geometry, x_shape, dout.dtype, buffers)
