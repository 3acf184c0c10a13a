"""Resizing on the CPU (NumPy): each axis's taps as ``take`` gathers, H first, then W.

The taps are those :mod:`fastconv.functional.interpolate` builds (its ``_Taps``:
per axis the source index and weight of every output, and the adjoint tables of
the backward; None for an axis that keeps its size). The forward runs in the
accumulator dtype (float32 for float16) and rounds once; the H pass's sums stay
in that dtype for the W pass. The backward is the adjoint written as gathers
too, the W axis first: for each input, pass r gathers the r-th output that
reads it (a table entry with no reader points at a zero row appended to dout),
so each input's terms add up in increasing output order, with no scatter.
The same names as :mod:`fastconv._gpu.interpolate`.
"""

from __future__ import annotations

from typing import Any

import numpy

from .._typing import Array
from ..backend import accumulator_dtype


def _gather(a, axis, index, weight):
    """``sum_t weight[t] * a.take(index[t], axis)``, weights along ``axis`` (None: ones)."""
    view = [1] * a.ndim
    view[axis] = -1
    total = None
    for t in range(index.shape[0]):
        term = a.take(index[t], axis=axis)
        if weight is not None:
            term *= weight[t].reshape(view)
        total = term if total is None else total + term
    return total


def interpolate_forward(x: Array, taps: tuple[Any, ...]) -> Array:
    """Resize ``x`` (N, C, H, W) by the H and the W axis's ``taps``.

    Parameters
    ----------
    x : numpy.ndarray
        (N, C, H, W), float16/32/64.
    taps : tuple
        The H and the W axis's taps (index (T, O), weight (T, O) or None), None for an
        axis that keeps its size.

    Returns
    -------
    numpy.ndarray
        (N, C, OH, OW), x's dtype, C-contiguous.

    Examples
    --------
    >>> import numpy
    >>> from types import SimpleNamespace
    >>> index = numpy.array([[0, 0, 1, 1]])
    >>> interpolate_forward(numpy.array([[[[1.0, 2.0]]]]),
    ...                     (None, SimpleNamespace(index=index, weight=None)))
    array([[[[1., 1., 2., 2.]]]])
    """
    a = x.astype(accumulator_dtype(x.dtype), copy=False)
    for axis, axis_taps in zip((2, 3), taps):
        if axis_taps is not None:
            a = _gather(a, axis, axis_taps.index, axis_taps.weight)
    return numpy.ascontiguousarray(a.copy() if a is x else a, dtype=x.dtype)


def interpolate_backward(dout: Array, taps: tuple[Any, ...], x_shape: tuple[int, ...]) -> Array:
    """The input gradient of a resize: each input sums the weighted dout of its readers.

    Parameters
    ----------
    dout : numpy.ndarray
        (N, C, OH, OW), float16/32/64.
    taps : tuple
        The forward's taps, whose adjoint tables (adjoint_index (M, I), adjoint_weight or
        None) are read here.
    x_shape : tuple of int
        The input's shape, which the gathers give here (the GPU's twin needs it for the
        axes that keep their size).

    Returns
    -------
    numpy.ndarray
        dx, ``x_shape``, dout's dtype, C-contiguous.

    Examples
    --------
    >>> import numpy
    >>> from types import SimpleNamespace
    >>> adjoint = numpy.array([[0, 2], [1, 3]])  # input i is read by outputs 2i and 2i + 1
    >>> interpolate_backward(numpy.array([[[[1.0, 2.0, 3.0, 4.0]]]]),
    ...                      (None, SimpleNamespace(adjoint_index=adjoint, adjoint_weight=None)),
    ...                      (1, 1, 1, 2))
    array([[[[3., 7.]]]])
    """
    g = dout.astype(accumulator_dtype(dout.dtype), copy=False)
    for axis, axis_taps in reversed(tuple(zip((2, 3), taps))):
        if axis_taps is not None:
            rows = list(g.shape)
            rows[axis] = 1
            g = numpy.concatenate([g, numpy.zeros(rows, g.dtype)], axis=axis)
            g = _gather(g, axis, axis_taps.adjoint_index, axis_taps.adjoint_weight)
    return numpy.ascontiguousarray(g.copy() if g is dout else g, dtype=dout.dtype)
