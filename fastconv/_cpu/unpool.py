"""Max unpooling and the adaptive max-pool gradient on the CPU: the scatter-add of their values.

The same names as :mod:`fastconv._gpu.unpool`; both send each value to its index and sum
the values a cell receives in the order of the input (:func:`fastconv._cpu.scatter.scatter_add`).
"""

from __future__ import annotations

import numpy

from .scatter import scatter_add


def max_unpool2d(x: numpy.ndarray, indices: numpy.ndarray, out_size: tuple[int, int],
                 kernel: tuple[int, int], stride: tuple[int, int],
                 padding: tuple[int, int]) -> numpy.ndarray:
    """x (N, C, h, w) sent to its ``indices`` in zero (N, C, H, W) planes, ``out_size`` (H, W).

    ``kernel``, ``stride`` and ``padding`` (the max pool's) are not needed here: every index
    in range is summed where it points.

    Examples
    --------
    >>> x = numpy.array([[[[1.0, 2.0]]]])
    >>> max_unpool2d(x, numpy.array([[[[1, 1]]]]), (1, 3), (1, 2), (1, 1), (0, 0))
    array([[[[0., 3., 0.]]]])
    """
    n, c, h, w = x.shape
    out = scatter_add(x.reshape(n * c, h * w), indices.reshape(n * c, h * w),
                      out_size[0] * out_size[1])
    return out.reshape((n, c) + tuple(out_size))


def adaptive_max_pool2d_backward(dout: numpy.ndarray, indices: numpy.ndarray,
                                 x_shape: tuple[int, ...]) -> numpy.ndarray:
    """dx (``x_shape``): each dout (N, C, OH, OW) added at its index in its plane of x.

    Examples
    --------
    >>> adaptive_max_pool2d_backward(numpy.ones((1, 1, 1, 2)), numpy.array([[[[1, 1]]]]),
    ...                              (1, 1, 1, 3))
    array([[[[0., 2., 0.]]]])
    """
    planes, size = x_shape[0] * x_shape[1], dout.shape[2] * dout.shape[3]
    dx = scatter_add(dout.reshape(planes, size), indices.reshape(planes, size),
                     x_shape[2] * x_shape[3])
    return dx.reshape(x_shape)
