"""Max and average pooling on the CPU (NumPy): elementwise passes over the kernel offsets.

The windows are never materialised: each kernel offset is one strided slab of the padded
input, of output size, and the windows reduce elementwise over the slabs. The average pool's
backward adds each offset's share back onto its slab; the max pool's sends each window's
gradient to its argmax cell in one scatter. This is as fast as a reshape for tiling windows (stride ==
kernel) and also covers overlap, padding, dilation and ``ceil_mode``, in any number of spatial
axes (the 2-D and 3-D pools run here alike). The passes are :mod:`fastconv._window_arrays`',
the batch split across threads (:mod:`fastconv._cpu.threads`). The rules (ties, NaN, padding) are those of
:mod:`fastconv.functional.pool`.

Each function's buffers are declared by its ``*_plan`` function and come from the caller's
workspace, for the whole batch.
"""

from __future__ import annotations

import math

import numpy

from .. import _window_arrays
from .._typing import Array, DTypeLike
from .._window_arrays import Buffers
from ..profiling import step
from ..shapes import WindowGeometry
from ..workspace import Buffer
from .threads import over_batch


def pool_plan(x_shape: tuple[int, ...], geometry: WindowGeometry,
              dtype: DTypeLike) -> tuple[Buffer, ...]:
    """The buffers of a pooling forward per image: the padded input.

    Examples
    --------
    >>> from fastconv.shapes import window_geometry
    >>> [b.name for b in pool_plan((1, 2, 4, 4), window_geometry((1, 2, 4, 4), 3, 1, 1, 1), "f")]
    ['padded']
    """
    return _window_arrays.pool_plans(x_shape, geometry, dtype)[0]


def avg_pool_backward_plan(x_shape: tuple[int, ...], geometry: WindowGeometry,
                       dtype: DTypeLike) -> tuple[Buffer, ...]:
    """The buffers of an average-pool backward per image: the padded gradient the shares add
    into.

    Examples
    --------
    >>> from fastconv.shapes import window_geometry
    >>> avg_pool_backward_plan((1, 2, 4, 4), window_geometry((1, 2, 4, 4), 2, 2, 0, 1), "f")
    ()
    """
    return _window_arrays.pool_plans(x_shape, geometry, dtype)[1]


def max_pool_forward(x: Array, geometry: WindowGeometry,
                     buffers: Buffers) -> tuple[Array, Array]:
    """``(out, argmax)`` of max pooling, argmax the int32 flat kernel offset of each maximum
    (i*KW + j in 2-D, (i*KH + j)*KW + l in 3-D).

    Parameters
    ----------
    x : numpy.ndarray
        (N, C, *size).
    geometry : WindowGeometry
    buffers : mapping
        The workspace buffers of :func:`pool_plan`.

    Returns
    -------
    out : numpy.ndarray
        (N, C, *out), x's dtype.
    argmax : numpy.ndarray
        (N, C, *out), int32.

    Examples
    --------
    >>> import numpy
    >>> from fastconv.shapes import window_geometry
    >>> x = numpy.array([[[1.0, 3.0, 2.0]]])
    >>> max_pool_forward(x, window_geometry(x.shape, 2, 1, 0, 1), {})
    (array([[[3., 3.]]]), array([[[1, 0]]], dtype=int32))
    """
    with step("max"):
        return _window_arrays.max_pool(x, geometry, buffers, over_batch)


def max_pool_backward(dout: Array, argmax: Array, x_shape: tuple[int, ...],
                      geometry: WindowGeometry) -> Array:
    """The max-pool gradient: each window's dout sent to its argmax cell.

    Each window's dout goes to the cell of the padded plane its argmax names, by
    ``bincount`` (as :func:`fastconv._cpu.scatter.scatter_add` does): a cell's
    shares summed in window order from zero, in float64, rounded once; the padding is
    cropped (a window of padding only, argmax 0, sends its dout there). One pass of
    index arithmetic and one scatter, whatever the window: adding a masked share onto
    each kernel offset's slab instead sweeps the gradient once per offset (3x3/2 on
    (64, 64, 32, 32) float32: 21.6 ms against 6.7 ms; 2x2/2: 5.4 ms against 5.3).
    ``bincount`` holds the GIL, so threads gain nothing on it; the batch runs in blocks
    of about 1 MiB of dx, so the float64 sums are cropped from the cache.

    Parameters
    ----------
    dout, argmax : numpy.ndarray
        (N, C, *out): the output's gradient and :func:`max_pool_forward`'s argmax.
    x_shape : tuple of int
    geometry : WindowGeometry

    Returns
    -------
    numpy.ndarray
        dx, ``x_shape``, dout's dtype.

    Examples
    --------
    >>> import numpy
    >>> from fastconv.shapes import window_geometry
    >>> argmax = numpy.array([[[1, 0]]], dtype=numpy.int32)
    >>> max_pool_backward(numpy.ones((1, 1, 2)), argmax, (1, 1, 3),
    ...                   window_geometry((1, 1, 3), 2, 1, 0, 1))
    array([[[0., 2., 0.]]])
    """
    with step("max backward"):
        n, c = x_shape[:2]
        positions, plane = math.prod(geometry.out), math.prod(geometry.padded)
        steps = numpy.cumprod((1,) + geometry.padded[:0:-1])[::-1]  # the padded plane's strides
        # each kernel offset's, and each window corner's, position in the padded plane
        offset_of = numpy.array(
            [sum(i * d * t for i, d, t in zip(offset, geometry.dilation, steps))
             for offset in geometry.kernel_offsets()], dtype=numpy.int64)
        corner = sum(numpy.arange(o, dtype=numpy.int64).reshape((-1,) + (1,) * (len(steps) - 1 - a))
                     * (s * t) for a, (o, s, t) in enumerate(zip(geometry.out, geometry.stride,
                                                                  steps)))
        corner = numpy.broadcast_to(corner, geometry.out).reshape(1, positions)
        dx = numpy.empty(x_shape, dtype=dout.dtype)
        crop = (slice(None), slice(None)) + geometry.interior

        def scatter(batch):
            images = batch.stop - batch.start
            planes = images * c
            index = numpy.take(offset_of, argmax[batch].reshape(planes, positions))
            index += corner
            index += numpy.arange(0, planes * plane, plane, dtype=numpy.int64).reshape(-1, 1)
            sums = numpy.bincount(index.reshape(-1), weights=dout[batch].reshape(-1),
                                  minlength=planes * plane)
            # (images, c), not (-1, c): with no channels the -1 is ambiguous
            numpy.copyto(dx[batch], sums.reshape((images, c) + geometry.padded)[crop],
                         casting="same_kind")  # cropped and rounded once, in one pass

        over_batch(scatter, n, dx.nbytes, passes=2)  # written, then read back for the crop
        return dx


def avg_pool_forward(x: Array, geometry: WindowGeometry, divisor: Array,
                     buffers: Buffers) -> Array:
    """Average pooling: the sum of the kernel-offset slabs over ``divisor`` (*out).

    The sum runs in the divisor's (accumulator) dtype: in place in the output, or, for
    float16, in a float32 temporary.

    Parameters
    ----------
    x : numpy.ndarray
        (N, C, *size).
    geometry : WindowGeometry
    divisor : numpy.ndarray
        (*out), the accumulator dtype.
    buffers : mapping
        The workspace buffers of :func:`pool_plan`.

    Returns
    -------
    numpy.ndarray
        (N, C, *out), x's dtype.

    Examples
    --------
    >>> import numpy
    >>> from fastconv.shapes import window_geometry
    >>> x = numpy.array([[[1.0, 3.0, 2.0, 6.0]]])
    >>> avg_pool_forward(x, window_geometry(x.shape, 2, 2, 0, 1), numpy.full(2, 2.0), {})
    array([[[2., 4.]]])
    """
    with step("avg"):
        return _window_arrays.avg_pool(x, geometry, divisor, buffers, over_batch)


def avg_pool_backward(dout: Array, divisor: Array, x_shape: tuple[int, ...],
                      geometry: WindowGeometry, buffers: Buffers) -> Array:
    """The average-pool gradient: each window spreads dout / divisor evenly.

    Parameters
    ----------
    dout : numpy.ndarray
        (N, C, *out).
    divisor : numpy.ndarray
        (*out), as the forward's.
    x_shape, geometry, buffers
        As for :func:`max_pool_backward`.

    Returns
    -------
    numpy.ndarray
        dx, ``x_shape``, dout's dtype.

    Examples
    --------
    >>> import numpy
    >>> from fastconv.shapes import window_geometry
    >>> avg_pool_backward(numpy.ones((1, 1, 2)), numpy.full(2, 2.0), (1, 1, 4),
    ...                   window_geometry((1, 1, 4), 2, 2, 0, 1), {})
    array([[[0.5, 0.5, 0.5, 0.5]]])
    """
    with step("avg backward"):
        return _window_arrays.avg_pool_backward(dout, divisor, x_shape, geometry, buffers,
                                                over_batch)
