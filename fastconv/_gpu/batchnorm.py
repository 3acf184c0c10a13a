"""Batch normalisation on the GPU (CuPy): per channel, natively on (N, C, ...) arrays.

The same names and rules as :mod:`fastconv._cpu.batchnorm`, as whole-array
CuPy code over every axis but the channel axis 1: each expression is one
elementwise kernel or reduction that CuPy spreads over the whole device, so
the CPU's blocks and threads have no counterpart. The variance is the array
module's two-pass ``var``; float16 is computed in float32. Written against
the arrays' module ``xp``, so the tests run it on NumPy arrays.
"""

from __future__ import annotations

import math

from .._typing import Array
from ..backend import accumulator_dtype


def _axes(x: Array) -> tuple[int, ...]:
    """Every axis of ``x`` but the channel axis 1."""
    return (0,) + tuple(range(2, x.ndim))


def _column(v: Array, x: Array) -> Array:
    """A per-channel vector (C,) shaped to broadcast over ``x`` (N, C, ...)."""
    return v.reshape((-1,) + (1,) * (x.ndim - 2))


def batch_statistics(x: Array) -> tuple[Array, Array]:
    """The per-channel mean and biased variance of ``x``, in the accumulator dtype."""
    work = accumulator_dtype(x.dtype)
    return x.mean(axis=_axes(x), dtype=work), x.var(axis=_axes(x), dtype=work)


def normalize(x: Array, mean: Array, inv_std: Array, gamma: Array, beta: Array) -> Array:
    """``(x - mean) * (gamma * inv_std) + beta`` per channel, in x's dtype."""
    work = mean.dtype
    scale = _column(gamma.astype(work) * inv_std, x)
    out = (x - _column(mean, x)) * scale + _column(beta.astype(work), x)
    return out.astype(x.dtype, copy=False)


def normalize_backward(dout: Array, x: Array, mean: Array, inv_std: Array, gamma: Array,
                       use_batch: bool) -> tuple[Array, Array, Array]:
    """``(dx, dgamma, dbeta)`` of :func:`normalize`; through the batch statistics if ``use_batch``.

    ``dx = gamma * inv_std * (dout - mean(dout) - xhat * mean(dout * xhat))``
    with batch statistics, ``dout * gamma * inv_std`` without.
    """
    work, axes = mean.dtype, _axes(x)
    grad = dout.astype(work, copy=False)
    xhat = (x - _column(mean, x)) * _column(inv_std, x)
    dbeta = grad.sum(axis=axes)
    dgamma = (grad * xhat).sum(axis=axes)
    scale = _column(gamma.astype(work) * inv_std, x)
    if use_batch:
        count = x.shape[0] * math.prod(x.shape[2:])
        dx = scale * (grad - _column(dbeta / count, x) - xhat * _column(dgamma / count, x))
    else:
        dx = grad * scale
    dtype = dout.dtype
    return (dx.astype(dtype, copy=False), dgamma.astype(dtype, copy=False),
            dbeta.astype(dtype, copy=False))
