"""Max unpooling and the adaptive max pool on the CPU: the scatter-add of their values, and
the adaptive forward as ``take`` gathers.

The same names as :mod:`fastconv._gpu.unpool`. Unpooling and the adaptive gradient send
each value to its index and sum the values a cell receives in the order of the input
(:func:`fastconv._cpu.scatter.scatter_add`). The adaptive forward gathers each window's
cells along W, then along H, folding them with :func:`fastconv._window_max.running_max`.
"""

from __future__ import annotations

from typing import Any

import numpy

from .._typing import Array
from .._window_max import needs_masked_rule, running_max
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


def _window_cells(bounds: Any) -> numpy.ndarray:
    """(K, O) int64: the k-th cell of each adaptive window along one axis, K the longest window.

    ``bounds`` holds each window's ``[start, end)``: an (O, 2) int64 array, or O pairs. A
    shorter window repeats its last cell, which can never win: it ties with itself, scanned
    earlier, and a tie keeps the first maximum (a NaN keeps the first NaN).

    Examples
    --------
    >>> _window_cells([(0, 2), (1, 4)])
    array([[0, 1],
           [1, 2],
           [1, 3]])
    """
    bounds = numpy.asarray(bounds, dtype=numpy.int64).reshape(-1, 2)
    starts, ends = bounds[:, 0], bounds[:, 1]
    offsets = numpy.arange(int((ends - starts).max()), dtype=numpy.int64)
    cells = starts + offsets[:, None]
    return numpy.minimum(cells, ends - 1, out=cells)


def _window_max(a: Array, axis: int, cells: Array, masked: bool) -> tuple[Array, Array]:
    """``(best, k)``: the maximum of ``a`` over each adaptive window along ``axis``, and its
    offset."""
    best = a.take(cells[0], axis=axis)
    best_k = numpy.zeros(best.shape, dtype=numpy.int32)
    later = ((k, a.take(c, axis=axis)) for k, c in enumerate(cells[1:], 1))
    running_max(best, best_k, later, masked)
    return best, best_k


def adaptive_max_pool2d_forward(x: numpy.ndarray, rows: list[tuple[int, int]],
                                columns: list[tuple[int, int]]
                                ) -> tuple[numpy.ndarray, numpy.ndarray]:
    """``(out, indices)``: the maximum of x (N, C, H, W) over each adaptive window, the
    windows' bounds along H ``rows`` and along W ``columns``, and its flat index h * W + w
    (int64) in its plane; ties keep the first maximum in row-major window order, the first
    NaN wins.

    Examples
    --------
    >>> x = numpy.array([[[[1.0, 5.0, 2.0], [0.0, 3.0, 4.0]]]])
    >>> adaptive_max_pool2d_forward(x, [(0, 2)], [(0, 2), (1, 3)])
    (array([[[[5., 5.]]]]), array([[[[1, 1]]]]))
    """
    row_cells, column_cells = _window_cells(rows), _window_cells(columns)
    masked = needs_masked_rule(x)
    # Each window's maximum over its columns, row by row, then over those rows: KH + KW
    # passes, not KH * KW. The first row holding the maximum and its first column holding it
    # are the first maximum in row-major window order (the first NaN, with NaN).
    across, column_k = _window_max(x, 3, column_cells, masked)  # (N, C, H, OW)
    out, row_k = _window_max(across, 2, row_cells, masked)
    row = row_cells[0].reshape(-1, 1) + row_k
    column = column_cells[0] + numpy.take_along_axis(column_k, row, axis=2)
    return out, row * x.shape[3] + column
