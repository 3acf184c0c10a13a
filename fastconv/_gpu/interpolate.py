"""Resizing on the GPU: one CUDA kernel launch per pass (kernels/interpolate.cu).

The forward's threads each compute one output element from its taps (T x T cells, T = 1
for 'nearest', 2 for 'bilinear'); the backward's threads each one input element, gathering
the outputs that read it through the adjoint tables, in ascending output order: no atomics,
the same bits every run. Both read the tap tables that
:mod:`fastconv.functional.interpolate` builds, and do the CPU path's arithmetic
(:mod:`fastconv._cpu.interpolate`) operation for operation, so the results are its bits.
The same names as :mod:`fastconv._cpu.interpolate`.
"""

from __future__ import annotations

from typing import Any

import numpy

from .. import _cuda
from .._typing import Array
from ..backend import get_array_module


def _kernel_axis(xp, axis_taps, size, adjoint):
    """One axis's kernel tables ``(index, weight)``: int32 indices; an axis that keeps its
    ``size`` reads its own cell, a one-tap unweighted table (a copy, as the CPU path's)."""
    if axis_taps is None:
        return xp.arange(size, dtype=numpy.int32)[None], None
    index, weight = ((axis_taps.adjoint_index, axis_taps.adjoint_weight) if adjoint
                     else (axis_taps.index, axis_taps.weight))
    return index.astype(numpy.int32), weight


def interpolate_forward(x: Array, taps: tuple[Any, ...]) -> Array:
    """Resize ``x`` (N, C, H, W) by the H and the W axis's ``taps`` (None: the axis keeps its
    size), one thread per output element."""
    xp = get_array_module(x)
    rows, columns = (_kernel_axis(xp, t, n, False) for t, n in zip(taps, x.shape[2:]))
    return _cuda.interpolate_forward(x, rows, columns)


def interpolate_backward(dout: Array, taps: tuple[Any, ...], x_shape: tuple[int, ...]) -> Array:
    """The input gradient (``x_shape``) of a resize, one thread per input element gathering
    its readers through the adjoint tables."""
    xp = get_array_module(dout)
    rows, columns = (_kernel_axis(xp, t, n, True) for t, n in zip(taps, x_shape[2:]))
    return _cuda.interpolate_backward(dout, rows, columns, x_shape[2:])
