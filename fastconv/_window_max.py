"""The running maximum over the cells of pooling windows: the first-maximum and NaN rules.

Max pooling and adaptive max pooling on the CPU (:mod:`fastconv._cpu.pool`,
:mod:`fastconv._cpu.unpool`; the GPU kernels apply the same rules in
kernels/common.cuh's ``fc_max_pool_takes``) visit every window's cells
in increasing window order k (row-major, k = i * KW + j), one array of output
shape per k, and keep each window's best value and its k. The rules of
:mod:`fastconv.functional.pool` live here once: a strictly greater value
replaces the best (so a tie keeps the first maximum, -0.0 before +0.0 too), and
the first NaN wins over any number. Written against the arrays' module, NumPy or CuPy.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy

from ._typing import Array
from .backend import get_array_module


def needs_masked_rule(x: Array) -> bool:
    """Whether ``x`` holds a NaN or a -0.0, the values that :func:`running_max`'s quicker
    ``maximum()`` path would not rank by the rules: a NaN must win, and on a tie of -0.0
    with +0.0 the first must be kept (``maximum()`` may return either zero).

    Examples
    --------
    >>> needs_masked_rule(numpy.array([0.0, 1.0])), needs_masked_rule(numpy.array([-0.0]))
    (False, True)
    """
    if x.size == 0:
        return False
    xp = get_array_module(x)
    bits = f"u{x.dtype.itemsize}"  # -0.0 is the one value with only the sign bit set
    negative_zero = numpy.array(-0.0, dtype=x.dtype).view(bits)
    # min() propagates a NaN in one pass, quicker than isnan().any()
    return bool(xp.isnan(x.min())) or bool((x.view(bits) == negative_zero).any())


def running_max(best: Array, best_k: Array, candidates: Iterable[tuple[int, Array]],
                masked: bool) -> None:
    """Fold ``candidates`` into ``best`` and ``best_k`` in place.

    Parameters
    ----------
    best : ndarray
        The best value of each window so far (its first cell's, to start).
    best_k : ndarray of int32
        The window offset of ``best``, of the same shape.
    candidates : iterable of (int, ndarray)
        ``(k, values)`` pairs in increasing k, each ``values`` shaped like ``best``.
    masked : bool
        Whether a candidate may be NaN or -0.0 (:func:`needs_masked_rule`): then each
        winner is copied through a mask, else ``maximum()`` takes the values, which is
        quicker on strided candidates.

    Examples
    --------
    >>> best, best_k = numpy.array([1.0, 5.0]), numpy.zeros(2, numpy.int32)
    >>> running_max(best, best_k, [(1, numpy.array([3.0, 5.0]))], masked=False)
    >>> best, best_k
    (array([3., 5.]), array([1, 0], dtype=int32))
    """
    xp = get_array_module(best)
    offset_k = xp.empty_like(best_k)
    for k, candidate in candidates:
        better = candidate > best
        if masked:
            better |= xp.isnan(candidate) & ~xp.isnan(best)
            xp.copyto(best, candidate, where=better)
        else:  # equal values but for the zeros' sign have the same bits: either will do
            xp.maximum(best, candidate, out=best)
        # k increases, so the last k that beat the running maximum is the largest:
        # maximum(best_k, k * better) is two contiguous passes, where
        # copyto(best_k, k, where=better) is several times slower
        xp.multiply(better, numpy.int32(k), out=offset_k)
        xp.maximum(best_k, offset_k, out=best_k)
