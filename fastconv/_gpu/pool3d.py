"""3-D max and average pooling on the GPU: array code on CuPy arrays, not custom kernels.

The CUDA pooling kernels (:mod:`fastconv._gpu.pool`) are written for 2-D windows, so a 3-D
pool runs the CPU backend's array algorithm (:mod:`fastconv._window_arrays`) on the device:
the input padded into a workspace buffer, one strided slab of output size per kernel offset
reduced elementwise (the running maximum of :mod:`fastconv._window_max`), and in backward
each offset's share added onto its slab of the padded gradient, one offset after another.
There are no atomics, so the results are the same bits every run. The batch runs in one
pass. The same names as :mod:`fastconv._cpu.pool`, and the same rules (ties, NaN, padding)
as :mod:`fastconv.functional.pool`. Written against the arrays' module, so the tests run it
on NumPy arrays too.
"""

from __future__ import annotations

from .. import _window_arrays
from .._typing import Array, DTypeLike
from .._window_arrays import Buffers
from .._window_arrays import one_pass
from ..shapes import WindowGeometry
from ..workspace import Buffer


def pool_plan(x_shape: tuple[int, ...], geometry: WindowGeometry,
              dtype: DTypeLike) -> tuple[Buffer, ...]:
    """The buffers of a pooling forward per image: the padded input.

    Examples
    --------
    >>> from fastconv.shapes import window_geometry
    >>> g = window_geometry((1, 2, 3, 4, 4), 3, 1, 1, 1)
    >>> [b.shape for b in pool_plan((1, 2, 3, 4, 4), g, "float32")]
    [(2, 5, 6, 6)]
    """
    return _window_arrays.pool_plans(x_shape, geometry, dtype)[0]


def pool_backward_plan(x_shape: tuple[int, ...], geometry: WindowGeometry,
                       dtype: DTypeLike) -> tuple[Buffer, ...]:
    """The buffers of a pooling backward per image: the padded gradient.

    Examples
    --------
    >>> from fastconv.shapes import window_geometry
    >>> g = window_geometry((1, 2, 4, 4, 4), 2, 2, 0, 1)
    >>> pool_backward_plan((1, 2, 4, 4, 4), g, "float32")
    ()
    """
    return _window_arrays.pool_plans(x_shape, geometry, dtype)[1]


def max_pool_forward(x: Array, geometry: WindowGeometry,
                     buffers: Buffers) -> tuple[Array, Array]:
    """``(out, argmax)`` of max pooling in one pass over the batch; the arguments and results
    are :func:`fastconv._cpu.pool.max_pool_forward`'s, on the device.

    Examples
    --------
    >>> import numpy
    >>> from fastconv.shapes import window_geometry
    >>> x = numpy.arange(8.0).reshape(1, 1, 2, 2, 2)
    >>> out, argmax = max_pool_forward(x, window_geometry(x.shape, 2, 2, 0, 1), {})
    >>> float(out[0, 0, 0, 0, 0]), int(argmax[0, 0, 0, 0, 0])
    (7.0, 7)
    """
    return _window_arrays.max_pool(x, geometry, buffers, one_pass)


def max_pool_backward(dout: Array, argmax: Array, x_shape: tuple[int, ...],
                      geometry: WindowGeometry, buffers: Buffers) -> Array:
    """The max-pool gradient in one pass; as :func:`fastconv._cpu.pool.max_pool_backward`.

    Examples
    --------
    >>> import numpy
    >>> from fastconv.shapes import window_geometry
    >>> g = window_geometry((1, 1, 2, 1, 1), (2, 1, 1), 1, 0, 1)
    >>> max_pool_backward(numpy.ones((1, 1, 1, 1, 1)), numpy.ones((1, 1, 1, 1, 1), "int32"),
    ...                   (1, 1, 2, 1, 1), g, {}).reshape(-1)
    array([0., 1.])
    """
    return _window_arrays.max_pool_backward(dout, argmax, x_shape, geometry, buffers, one_pass)


def avg_pool_forward(x: Array, geometry: WindowGeometry, divisor: Array,
                     buffers: Buffers) -> Array:
    """Average pooling in one pass; as :func:`fastconv._cpu.pool.avg_pool_forward`.

    Examples
    --------
    >>> import numpy
    >>> from fastconv.shapes import window_geometry
    >>> x = numpy.arange(8.0).reshape(1, 1, 2, 2, 2)
    >>> avg_pool_forward(x, window_geometry(x.shape, 2, 2, 0, 1), numpy.full((1, 1, 1), 8.0), {})
    array([[[[[3.5]]]]])
    """
    return _window_arrays.avg_pool(x, geometry, divisor, buffers, one_pass)


def avg_pool_backward(dout: Array, divisor: Array, x_shape: tuple[int, ...],
                      geometry: WindowGeometry, buffers: Buffers) -> Array:
    """The average-pool gradient in one pass; as :func:`fastconv._cpu.pool.avg_pool_backward`.

    Examples
    --------
    >>> import numpy
    >>> from fastconv.shapes import window_geometry
    >>> g = window_geometry((1, 1, 2, 1, 1), (2, 1, 1), 1, 0, 1)
    >>> avg_pool_backward(numpy.ones((1, 1, 1, 1, 1)), numpy.full((1, 1, 1), 2.0),
    ...                   (1, 1, 2, 1, 1), g, {}).reshape(-1)
    array([0.5, 0.5])
    """
    return _window_arrays.avg_pool_backward(dout, divisor, x_shape, geometry, buffers,
                                            one_pass)
