"""The running maximum over the cells of pooling windows: the first-maximum and NaN rules.

Max pooling and adaptive max pooling on the CPU (:mod:`fastconv._cpu.pool`,
:mod:`fastconv._cpu.unpool`; the GPU kernels apply the same rules in
kernels/common.cuh's ``fc_max_pool_takes``) visit every window's cells
in increasing window order k (row-major, k = i * KW + j), one array of output
shape per k, and keep each window's best value and its k. The rules of
:mod:`fastconv.functional.pool` live here once: a strictly greater value
replaces the best (so a tie keeps the first maximum), and the first NaN wins
over any number. Written against the arrays' module, NumPy or CuPy.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy

from ._typing import Array
from .backend import get_array_module


def running_max(best: Array, best_k: Array, candidates: Iterable[tuple[int, Array]],
                has_nan: bool) -> None:
    """Fold ``candidates`` into ``best`` and ``best_k`` in place.

    Parameters
    ----------
    best : ndarray
        The best value of each window so far (its first cell's, to start).
    best_k : ndarray of int32
        The window offset of ``best``, of the same shape.
    candidates : iterable of (int, ndarray)
        ``(k, values)`` pairs in increasing k, each ``values`` shaped like ``best``.
    has_nan : bool
        Whether any candidate may be NaN; False skips the NaN rule.

    Examples
    --------
    >>> best, best_k = numpy.array([1.0, 5.0]), numpy.zeros(2, numpy.int32)
    >>> running_max(best, best_k, [(1, numpy.array([3.0, 5.0]))], has_nan=False)
    >>> best, best_k
    (array([3., 5.]), array([1, 0], dtype=int32))
    """
    xp = get_array_module(best)
    offset_k = xp.empty_like(best_k)
    for k, candidate in candidates:
        better = candidate > best
        if has_nan:  # without NaN, maximum() is the rule, and quicker than a masked copy
            better |= xp.isnan(candidate) & ~xp.isnan(best)
            xp.copyto(best, candidate, where=better)
        else:
            xp.maximum(best, candidate, out=best)
        # k increases, so the last k that beat the running maximum is the largest:
        # maximum(best_k, k * better) is two contiguous passes, where
        # copyto(best_k, k, where=better) is several times slower
        xp.multiply(better, numpy.int32(k), out=offset_k)
        xp.maximum(best_k, offset_k, out=best_k)
