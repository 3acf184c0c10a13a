"""im2col, col2im and pooling as array passes over strided views, in any number of spatial axes.

The CPU backend's algorithms (:mod:`fastconv._cpu.im2col`, :mod:`fastconv._cpu.pool`); the GPU
backend runs CUDA kernels instead and takes only the device-neutral helpers (:func:`pad_into`,
:func:`window_view`, :func:`grouped`, :func:`ungrouped`). Each algorithm works in the
geometry's 1, 2 or 3 spatial axes and takes ``split(work, batch, nbytes, passes)``
(:class:`Split`): how to run ``work(batch_slice)`` over the batch, the CPU's thread split
(:func:`fastconv._cpu.threads.over_batch`, which also keeps blocks of images in cache for the
passes that sweep their memory several times). Each image is independent, so the results do
not depend on the split.

No pass uses fancy indexing or a scatter (the max-pool gradient, a scatter, is the CPU
backend's own: :func:`fastconv._cpu.pool.max_pool_backward`): the windows are one strided
view of the padded input (:func:`window_view`), copied once; a sum over the windows is one strided slab of output size
per kernel offset, added (or, when the windows do not overlap, assigned) in a fixed order. So
the results are deterministic. The column layout is :mod:`fastconv.im2col`'s:
(N, C, *kernel, *out), e.g. (N, C, KD, KH, KW, OD, OH, OW) in 3-D. Pooling follows the rules
of :mod:`fastconv.functional.pool` (ties, NaN, padding), the running maximum being
:func:`fastconv._window_max.running_max`.

The buffers are named by the ``*_plan`` functions and come from the caller's workspace
(``buffers``, a mapping; a name is absent when its plan is empty).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from types import ModuleType
from typing import Protocol, TypeAlias

import numpy
from numpy.lib.stride_tricks import as_strided

from ._typing import Array, DTypeLike
from ._window_max import needs_masked_rule, running_max
from .backend import accumulator_dtype, get_array_module
from .shapes import WindowGeometry
from .workspace import Buffer

_IMAGES = (slice(None), slice(None))  # the (N, C) axes of an index, taken whole


class Split(Protocol):
    """``split(work, batch, nbytes, passes=1)`` runs ``work(batch_slice)`` over ``range(batch)``;
    the work touches ``nbytes`` and sweeps them ``passes`` times."""

    def __call__(self, work: Callable[[slice], None], batch: int, nbytes: int,
                 passes: int = 1) -> None: ...


Buffers: TypeAlias = Mapping[str, Array]  # a workspace's buffers, by name
Shares: TypeAlias = Callable[[int, tuple[int, ...]], Array]  # (k, offset) -> slab gradient


def _part(buffer: Array | None, batch: slice) -> Array | None:
    return None if buffer is None else buffer[batch]


def grouped(a: Array, groups: int) -> Array:
    """(n, C, *spatial) as (n, G, C/G, positions), the convolutions' product layout: a view of
    a C-contiguous ``a``, else a contiguous copy.

    Examples
    --------
    >>> grouped(numpy.zeros((2, 4, 3, 5, 5)), 2).shape
    (2, 2, 2, 75)
    """
    n, c = a.shape[:2]
    return get_array_module(a).ascontiguousarray(a).reshape(n, groups, c // groups,
                                                            math.prod(a.shape[2:]))


def ungrouped(a: Array) -> Array:
    """A C-contiguous (n, G, C/G, k) array as the view (n, C, k): the groups' channels (or
    filters) in order again.

    Examples
    --------
    >>> ungrouped(numpy.zeros((2, 3, 4, 5))).shape
    (2, 12, 5)
    """
    n, groups, per_group, k = a.shape
    return a.reshape(n, groups * per_group, k)


def padded_plan(channels: int, geometry: WindowGeometry, dtype: DTypeLike,
                name: str = "padded") -> tuple[Buffer, ...]:
    """The buffer of one padded image, (C, *padded); none when the geometry does not pad.

    Examples
    --------
    >>> from fastconv.shapes import window_geometry
    >>> padded_plan(3, window_geometry((1, 3, 4, 4, 4), 3, 1, 1, 1), "float32")[0].shape
    (3, 6, 6, 6)
    """
    if geometry.padded == geometry.size:
        return ()
    return (Buffer(name, (channels,) + geometry.padded, dtype),)


def pad_into(x: Array, geometry: WindowGeometry, value: float, padded: Array | None) -> Array:
    """``x`` (N, C, *size) written into ``padded`` (N, C, *padded) with a ``value`` border.

    Returns ``padded``, or ``x`` itself when the geometry does not pad (``padded`` is then
    None). Each axis's border is written within the interior of the axes before it, so no
    element is written twice.

    Examples
    --------
    >>> from fastconv.shapes import window_geometry
    >>> x = numpy.ones((1, 1, 1, 2))
    >>> pad_into(x, window_geometry(x.shape, 1, 1, (0, 1), 1), 0, numpy.empty((1, 1, 1, 4)))
    array([[[[0., 1., 1., 0.]]]])
    """
    if geometry.padded == geometry.size:
        return x
    if padded is None:
        raise ValueError(f"pad_into: {geometry} pads, so it needs a padded buffer")
    interior = geometry.interior
    for axis, inside in enumerate(interior):
        within = _IMAGES + interior[:axis]
        padded[within + (slice(None, inside.start),)] = value
        padded[within + (slice(inside.stop, None),)] = value
    padded[_IMAGES + interior] = x
    return padded


def window_view(padded: Array, geometry: WindowGeometry) -> Array:
    """A strided view (N, C, *kernel, *out) of the windows of a padded input.

    Read-only for NumPy arrays (its elements overlap); CuPy's ``as_strided`` has no such
    flag, so do not write through it.

    Examples
    --------
    >>> from fastconv.shapes import window_geometry
    >>> x = numpy.arange(4.0).reshape(1, 1, 4)
    >>> window_view(x, window_geometry(x.shape, 2, 2, 0, 1))[0, 0]
    array([[0., 2.],
           [1., 3.]])
    """
    lead, spatial = padded.strides[:2], padded.strides[2:]
    shape = padded.shape[:2] + geometry.kernel + geometry.out
    strides = (lead + tuple(s * d for s, d in zip(spatial, geometry.dilation))
               + tuple(s * st for s, st in zip(spatial, geometry.stride)))
    xp = get_array_module(padded)
    if xp is numpy:
        return as_strided(padded, shape=shape, strides=strides, writeable=False)
    return xp.lib.stride_tricks.as_strided(padded, shape=shape, strides=strides)


def _slab(padded: Array, geometry: WindowGeometry, offset: tuple[int, ...]) -> Array:
    """The elements of ``padded`` that kernel ``offset`` reads, one per window: (N, C, *out)."""
    return padded[_IMAGES + geometry.offset_slices(*offset)]


def im2col_into(x: Array, geometry: WindowGeometry, out: Array, buffers: Buffers,
                split: Split) -> Array:
    """Write the columns of ``x`` (N, C, *size) into ``out`` (N, C, *kernel, *out); ``out``.

    ``buffers`` may hold "padded" (:func:`padded_plan`): the padded images.
    """
    padded = buffers.get("padded")
    xp = get_array_module(x)

    def copy_windows(batch: slice) -> None:
        images = pad_into(x[batch], geometry, 0, _part(padded, batch))
        xp.copyto(out[batch], window_view(images, geometry))

    split(copy_windows, x.shape[0], out.nbytes)
    return out


def _add_windows(share: Shares, geometry: WindowGeometry, target: Array, out: Array) -> None:
    """``target`` (N, C, *padded, or ``out`` itself) = the sum over kernel offsets k of
    ``share(k, offset)`` on k's slab; then its interior copied to ``out``.

    When the windows do not overlap, the slabs are disjoint and each is assigned rather than
    added: a strided copy runs several times faster in NumPy than a strided ``+=``.
    """
    disjoint = not geometry.windows_overlap
    target.fill(0)
    for k, offset in enumerate(geometry.kernel_offsets()):
        slab = _slab(target, geometry, offset)
        if disjoint:
            slab[...] = share(k, offset)
        else:
            slab += share(k, offset)
    if target is not out:
        out[...] = target[_IMAGES + geometry.interior]


def col2im_into(cols: Array, geometry: WindowGeometry, out: Array, buffers: Buffers,
                split: Split) -> Array:
    """Sum columns (N, C, *kernel, *out) back onto ``out`` (N, C, *size); return ``out``.

    Each kernel offset is one strided slab of the padded image (``out`` itself when there is
    no padding); ``buffers`` may hold "col2im padded" (:func:`padded_plan` by that name).
    """
    padded = buffers.get("col2im padded")

    def add_slabs(batch: slice) -> None:
        columns = cols[batch]
        target = out[batch] if padded is None else padded[batch]
        _add_windows(lambda k, offset: columns[_IMAGES + offset], geometry, target, out[batch])

    split(add_slabs, cols.shape[0], cols.nbytes, passes=math.prod(geometry.kernel))
    return out


def first_inside(geometry: WindowGeometry, xp: ModuleType) -> Array:
    """(*out) of int64: each window's first kernel offset (flat, row-major) on an input cell.

    A window of padding only (possible with dilation) keeps offset 0.

    Examples
    --------
    >>> from fastconv.shapes import window_geometry
    >>> first_inside(window_geometry((1, 1, 3, 3), 3, 2, 1, 1), numpy)
    array([[4, 3],
           [1, 0]])
    """
    flat: Array | int = 0
    found: Array | bool = True
    for axis, (n, o, s, d, (before, _), k) in enumerate(zip(
            geometry.size, geometry.out, geometry.stride, geometry.dilation, geometry.pads,
            geometry.kernel)):
        start = numpy.arange(o) * s - before  # each window's first position, maybe padding
        offset = numpy.maximum(-(start // d), 0)  # ceil(-start / d): the first offset at >= 0
        along = (-1,) + (1,) * (geometry.ndim - axis - 1)  # this axis, broadcast over the rest
        flat = flat * k + offset.reshape(along)
        found = found & ((offset < k) & (start + offset * d < n)).reshape(along)
    return xp.asarray(numpy.where(found, flat, 0))


def max_pool(x: Array, geometry: WindowGeometry, buffers: Buffers,
             split: Split) -> tuple[Array, Array]:
    """``(out, argmax)`` of max pooling, argmax the int32 flat kernel offset of each maximum.

    The kernel offsets' slabs go through :func:`fastconv._window_max.running_max` (ties keep
    the first maximum, the first NaN wins; batch slices without NaN or -0.0 take its faster
    path).
    Each window's argmax starts at its first input cell, so the -inf padding never wins, even
    over -inf inputs (PyTorch's rule). ``buffers`` may hold "padded".
    """
    xp = get_array_module(x)
    shape = x.shape[:2] + geometry.out
    out, argmax = xp.empty(shape, dtype=x.dtype), xp.empty(shape, dtype=xp.int32)
    start, padded = first_inside(geometry, xp), buffers.get("padded")
    offsets = list(geometry.kernel_offsets())

    def scan(batch: slice) -> None:
        images = pad_into(x[batch], geometry, -numpy.inf, _part(padded, batch))
        best, best_k = out[batch], argmax[batch]
        best[...] = _slab(images, geometry, offsets[0])
        best_k[...] = start
        slabs = ((k, _slab(images, geometry, offset)) for k, offset in enumerate(offsets[1:], 1))
        running_max(best, best_k, slabs, needs_masked_rule(x[batch]))

    split(scan, x.shape[0], x.nbytes, passes=len(offsets))
    return out, argmax


def avg_pool(x: Array, geometry: WindowGeometry, divisor: Array, buffers: Buffers,
             split: Split) -> Array:
    """Average pooling: the sum of the kernel-offset slabs over ``divisor`` (*out).

    The sum runs in the divisor's (accumulator) dtype: in place in the output, or, for
    float16, in a float32 temporary. ``buffers`` may hold "padded".
    """
    xp = get_array_module(x)
    out = xp.empty(x.shape[:2] + geometry.out, dtype=x.dtype)
    padded = buffers.get("padded")
    offsets = list(geometry.kernel_offsets())

    def average(batch: slice) -> None:
        images = pad_into(x[batch], geometry, 0, _part(padded, batch))
        total = out[batch] if divisor.dtype == x.dtype else xp.empty(out[batch].shape,
                                                                     divisor.dtype)
        total[...] = _slab(images, geometry, offsets[0])
        for offset in offsets[1:]:
            total += _slab(images, geometry, offset)
        xp.divide(total, divisor, out=out[batch])

    split(average, x.shape[0], x.nbytes, passes=math.prod(geometry.kernel))
    return out


def _spread(shares_of: Callable[[slice], Shares], geometry: WindowGeometry,
            x_shape: tuple[int, ...], dout: Array, buffers: Buffers, split: Split) -> Array:
    """dx (``x_shape``, dout's dtype): per batch slice, the slab gradients
    ``shares_of(batch)(k, offset)`` summed onto the padded gradient "padded grad" (or dx
    itself), cropped and rounded to dx's dtype."""
    dx = get_array_module(dout).empty(x_shape, dtype=dout.dtype)
    padded_grad = buffers.get("padded grad")

    def add(batch: slice) -> None:
        target = dx[batch] if padded_grad is None else padded_grad[batch]
        _add_windows(shares_of(batch), geometry, target, dx[batch])

    split(add, x_shape[0], dx.nbytes, passes=math.prod(geometry.kernel))
    return dx


def avg_pool_backward(dout: Array, divisor: Array, x_shape: tuple[int, ...],
                      geometry: WindowGeometry, buffers: Buffers, split: Split) -> Array:
    """The average-pool gradient: each window spreads dout / divisor evenly. ``buffers`` may
    hold "padded grad"."""
    share = dout / divisor

    def shares_of(batch: slice) -> Shares:
        part = share[batch]
        return lambda k, offset: part

    return _spread(shares_of, geometry, x_shape, dout, buffers, split)


def pool_plans(x_shape: tuple[int, ...], geometry: WindowGeometry,
               dtype: DTypeLike) -> tuple[tuple[Buffer, ...], tuple[Buffer, ...]]:
    """The buffers of a pooling forward and of its backward, per image: the padded input, and
    the padded gradient the shares add into.

    Overlapping float16 windows add their shares into a float32 gradient even where the
    geometry does not pad, rounded once into dx.

    Examples
    --------
    >>> from fastconv.shapes import window_geometry
    >>> g = window_geometry((1, 2, 4, 4), 3, 1, 0, 1)
    >>> [[b.dtype for b in plan] for plan in pool_plans((1, 2, 4, 4), g, "float16")]
    [[], [dtype('float32')]]
    """
    # A float16 running sum rounds at every add (2048 + 1 + 1 stays 2048) and overflows past
    # 65504 before a later share cancels it; the shares (dout / divisor) are already float32.
    # Disjoint windows assign each share once, so they round once in any dtype.
    acc = accumulator_dtype(dtype)
    if acc != numpy.dtype(dtype) and geometry.windows_overlap:
        backward: tuple[Buffer, ...] = (Buffer("padded grad", (x_shape[1],) + geometry.padded,
                                                acc),)
    else:
        backward = padded_plan(x_shape[1], geometry, dtype, name="padded grad")
    return padded_plan(x_shape[1], geometry, dtype), backward

