"""Scatter-add on the CPU: sums of values sent to flat positions, in one ``bincount`` pass.

The index work of max unpooling and of the adaptive max-pool gradient
(:mod:`fastconv.functional.unpool`, :mod:`fastconv.functional.pool`). The
same name as :mod:`fastconv._gpu.scatter`, which sums in the same order.
"""

from __future__ import annotations

import numpy


def scatter_add(values: numpy.ndarray, index: numpy.ndarray, size: int) -> numpy.ndarray:
    """Per plane, the sum of the ``values`` sent to each of ``size`` positions.

    ``bincount`` adds the values of a position one by one in their order in
    the plane, starting from zero, in float64 whatever their dtype (one
    rounding at the end for float32 and float16): deterministic, duplicates
    summed.

    Parameters
    ----------
    values : ndarray
        (P, n) floats.
    index : ndarray of int64
        (P, n): the position in [0, size) of each value in its plane, or -1
        for a value that goes nowhere.
    size : int
        The positions per plane.

    Returns
    -------
    ndarray
        (P, size), values' dtype; 0 where nothing was sent.

    Examples
    --------
    >>> scatter_add(numpy.array([[1.0, 2.0, 4.0]]), numpy.array([[2, -1, 2]]), 3)
    array([[0., 0., 5.]])
    """
    planes = index.shape[0]
    target = index + numpy.arange(planes, dtype=numpy.int64).reshape(-1, 1) * size
    kept = index >= 0
    if not kept.all():
        target, values = target[kept], values[kept]
    sums = numpy.bincount(target.reshape(-1), weights=values.reshape(-1),
                          minlength=planes * size)
    return sums.reshape(planes, size).astype(values.dtype, copy=False)
