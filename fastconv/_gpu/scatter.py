"""Scatter-add on the GPU without atomics: a sort by position, then passes with no two alike.

The general case of max unpooling and of the adaptive max-pool gradient
(:mod:`fastconv._gpu.unpool`, whose gather kernels take every index inside its
own window: this serves the others), with the name of
:mod:`fastconv._cpu.scatter`. Atomic adds would make the sum of a position's
values depend on the order the threads run in; here the values are sorted by
(position, order in the plane), each gets its rank among the values of its
position, and pass r adds every position's r-th value, in array code: a pass
touches distinct positions, so it is a gather, an add and a scatter, and each
position sums its values in their order in the plane in float64, as the CPU's
bincount does (the same bits, rounded once). Several kernels and sorts per
call: the gathers are the fast path. Written against the arrays' module, so
NumPy arrays run it too.
"""

from __future__ import annotations

from .._typing import Array
from ..backend import get_array_module


def scatter_add(values: Array, index: Array, size: int) -> Array:
    """Per plane, the sum of the ``values`` sent to each of ``size`` positions.

    The arguments and the result are those of :func:`fastconv._cpu.scatter.scatter_add`
    (``index`` -1: a value that goes nowhere); the sums run in float64, in the
    values' order in the plane, rounded once to their dtype.

    Examples
    --------
    >>> import numpy
    >>> scatter_add(numpy.array([[1.0, 2.0, 4.0]]), numpy.array([[2, -1, 2]]), 3)
    array([[0., 0., 5.]])
    """
    xp = get_array_module(values, index)
    planes = index.shape[0]
    flat_index = index.reshape(-1)
    source = xp.flatnonzero(flat_index >= 0)  # the values that go somewhere, in plane order
    target = flat_index[source] + (source // max(index.shape[1], 1)) * size
    # lexsort's last key is the primary one: by target, then by order in the plane
    order = xp.lexsort(xp.stack([source, target]))
    target, source = target[order], source[order]
    rank = xp.arange(target.size) - xp.searchsorted(target, target, side="left")
    by_rank = xp.argsort(rank)  # within one rank the targets are distinct: any order will do
    target, source, rank = target[by_rank], source[by_rank], rank[by_rank]
    depth = int(rank[-1]) + 1 if rank.size else 0
    bounds = xp.searchsorted(rank, xp.arange(depth + 1)).tolist()
    sums = xp.zeros(planes * size, dtype=xp.float64)
    flat_values = values.reshape(-1)
    for start, stop in zip(bounds, bounds[1:]):
        cells = target[start:stop]
        sums[cells] += flat_values[source[start:stop]]
    return sums.reshape(planes, size).astype(values.dtype, copy=False)
