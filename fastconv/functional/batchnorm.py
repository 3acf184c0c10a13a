"""Batch normalisation over (N, D) features and, per channel, over (N, C, H, W) maps.

PyTorch semantics: in train mode the batch is normalised with its biased
variance and the running statistics are updated IN PLACE as
``running = (1 - momentum) * running + momentum * batch``, the variance with
the unbiased batch variance; in eval mode the running statistics are used.
Passing ``running_mean=running_var=None`` tracks no running statistics and
normalises with the batch statistics in both modes (PyTorch's
``track_running_stats=False``). float16 inputs are normalised in float32.

Both layouts are one computation per channel (axis 1) over every other
axis: the fronts validate, then dispatch once to the backend of the arrays'
device, :mod:`fastconv._cpu.batchnorm` (NCHW read natively in cache-sized
blocks, split across threads) or :mod:`fastconv._gpu.batchnorm` (CuPy array
code).
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

from .. import _backends
from .._typing import Array
from ..backend import accumulator_dtype, get_array_module
from .._validate import (check_bool, check_cache, check_dout, check_float, check_ndim,
                         check_real, check_same_dtype, op_cache)


# The cache keeps x itself, not the normalised xhat: a full-size array less to
# write, and the backward recomputes xhat exactly.
@op_cache
class _NormalizedBatch:
    """What a batchnorm backward needs, the statistics in the working dtype (float32 for float16).

    ``x`` the (contiguous) input, ``gamma``, ``mean`` and ``inv_std`` =
    1/sqrt(var + eps) as used, ``use_batch`` whether they were the batch's
    (so the gradient flows through them).
    """

    x: Array
    gamma: Array
    mean: Array
    inv_std: Array
    use_batch: bool

    @property
    def xhat(self) -> Array:
        """The normalised input ``(x - mean) * inv_std``, recomputed (the cache keeps x)."""
        shape = (-1,) + (1,) * (self.x.ndim - 2)
        return ((self.x.astype(self.mean.dtype, copy=False) - self.mean.reshape(shape))
                * self.inv_std.reshape(shape))


@op_cache
class BatchnormCache(_NormalizedBatch):
    """What :func:`batchnorm_backward` needs: x and the statistics it was normalised with.

    Attributes
    ----------
    x : array
        The (contiguous) input.
    gamma : array
        The scale.
    mean, inv_std : array
        The mean and ``1/sqrt(var + eps)`` as used, in the working dtype
        (float32 for float16).
    use_batch : bool
        Whether they were the batch's (so the gradient flows through them).
    xhat : array
        The normalised input, recomputed.

    Examples
    --------
    >>> import numpy as np
    >>> x = np.array([[1.0], [3.0]])
    >>> batchnorm_forward(x, np.ones(1), np.zeros(1), None, None)[1].mean
    array([2.])
    """

    op: ClassVar[str] = "batchnorm_forward"


@op_cache
class SpatialBatchnormCache(_NormalizedBatch):
    """What :func:`spatial_batchnorm_backward` needs: as :class:`BatchnormCache`, per channel.

    Examples
    --------
    >>> import numpy as np
    >>> x = np.arange(8.0).reshape(2, 2, 2, 1)
    >>> spatial_batchnorm_forward(x, np.ones(2), np.zeros(2), None, None)[1].mean
    array([2.5, 4.5])
    """

    op: ClassVar[str] = "spatial_batchnorm_forward"


def _check_vector(name, v, d):
    check_float(v, name)
    check_ndim(v, 1, name, "(features,)")
    if v.shape[0] != d:
        raise ValueError(f"batchnorm: {name} has {v.shape[0]} entries ({name}.shape="
                         f"{tuple(v.shape)}) but x has {d} features/channels")


def _checked_settings(x, rows, gamma, beta, running_mean, running_var, train, momentum, eps):
    """Validate the parameters of a batchnorm of ``x`` normalised as ``rows`` = (values, features).

    Returns ``(train, momentum, eps, use_batch)``, the numbers as Python
    floats; ``use_batch``: whether the batch statistics normalise.
    """
    n, d = rows
    _check_vector("gamma", gamma, d)
    _check_vector("beta", beta, d)
    for name, v in (("running_mean", running_mean), ("running_var", running_var)):
        if v is not None:
            _check_vector(name, v, d)
    check_same_dtype(x, "x", gamma, "gamma")
    check_same_dtype(x, "x", beta, "beta")
    if (running_mean is None) != (running_var is None):
        raise ValueError("batchnorm: give both running_mean and running_var, or neither")
    if momentum is None:
        raise TypeError("batchnorm: momentum must be a number in [0, 1]; PyTorch's "
                        "momentum=None (a cumulative average) is not supported")
    train = check_bool("batchnorm: train", train)
    momentum = check_real("batchnorm: momentum", momentum, 0.0, 1.0)
    eps = check_real("batchnorm: eps", eps, 0.0, low_open=True)
    if train and running_mean is not None:
        # Both are updated in place, the mean first: a read-only variance found then would
        # leave the mean moved and the error unnamed.
        for name, v in (("running_mean", running_mean), ("running_var", running_var)):
            if not getattr(v.flags, "writeable", True):
                raise ValueError(f"batchnorm: {name} is read-only; train mode updates it "
                                 f"in place (pass a writeable copy, or train=False)")
    use_batch = train or running_mean is None
    if use_batch and n < 2:  # PyTorch refuses too: the variance of one value is 0, the output beta
        raise ValueError(f"batchnorm: batch statistics (train mode, or no running "
                         f"statistics) need more than one value per feature, got "
                         f"x.shape={tuple(rows)}")
    return train, momentum, eps, use_batch


def _update_running(running_mean, running_var, mean, var, momentum, count):
    """Move the running statistics IN PLACE towards the batch's (``count`` values per channel)."""
    running_mean *= 1 - momentum
    running_mean += momentum * mean
    running_var *= 1 - momentum
    running_var += momentum * var * (count / (count - 1))  # the unbiased variance


def _forward(backend, x, cache_type, running_mean, running_var, gamma, beta, settings):
    """Normalise x (validated) with the batch or running statistics; ``(out, cache)``."""
    train, momentum, eps, use_batch = settings
    xp = get_array_module(x)
    x = xp.ascontiguousarray(x)  # once: the backend and the cached x read contiguous rows
    if use_batch:
        mean, var = backend.batch_statistics(x)
        if train and running_mean is not None:
            _update_running(running_mean, running_var, mean, var, momentum,
                            x.shape[0] * math.prod(x.shape[2:]))
    else:
        work = accumulator_dtype(x.dtype)  # float16 statistics in float32
        mean = running_mean.astype(work)
        var = running_var.astype(work)
    inv_std = 1 / xp.sqrt(var + eps)
    out = backend.normalize(x, mean, inv_std, gamma, beta)
    return out, cache_type(x, gamma, mean, inv_std, use_batch)


def batchnorm_forward(x: Array, gamma: Array, beta: Array, running_mean: Array | None,
                      running_var: Array | None, train: bool = True, momentum: float = 0.1,
                      eps: float = 1e-5) -> tuple[Array, BatchnormCache]:
    """Batchnorm forward for x of shape (N, D); returns ``(out, cache)``.

    Parameters
    ----------
    x : array
        (N, D) features, float16/32/64.
    gamma, beta : array
        (D,) scale and shift, x's dtype.
    running_mean, running_var : array or None
        (D,) running statistics, updated in place in train mode; both None
        to normalise with the batch statistics in both modes.
    train : bool, default True
        Normalise with the batch statistics (and update the running ones).
    momentum : float, default 0.1
        In [0, 1]: the weight of the batch in the running update.
    eps : float, default 1e-5
        > 0, added to the variance.

    Returns
    -------
    out : array
        The normalised x, its shape and dtype, contiguous.
    cache : BatchnormCache
        For :func:`batchnorm_backward`.

    Raises
    ------
    TypeError
        A non-float array, arrays of two dtypes, a non-bool ``train``.
    ValueError
        x not (N, D), a vector not (D,), only one running statistic, a
        read-only running statistic in train mode, a momentum or eps out
        of range, arrays on two devices.

    Examples
    --------
    >>> import numpy as np
    >>> mean, var = np.zeros(1), np.ones(1)
    >>> out, cache = batchnorm_forward(np.array([[1.0], [3.0]]), np.ones(1), np.zeros(1), mean, var)
    >>> out.round(3).ravel(), mean, var
    (array([-1.,  1.]), array([0.2]), array([1.1]))
    """
    backend = _backends.backend_for(x, gamma, beta, running_mean, running_var).batchnorm
    check_float(x, "x")
    check_ndim(x, 2, "x", "(N, D)")
    settings = _checked_settings(x, x.shape, gamma, beta, running_mean, running_var, train,
                                 momentum, eps)
    return _forward(backend, x, BatchnormCache, running_mean, running_var, gamma, beta,
                    settings)


def _backward(dout: Array, cache: Any) -> tuple[Array, Array, Array]:
    """``(dx, dgamma, dbeta)`` of a checked cache of either layout."""
    check_dout(dout, cache.x.shape, cache.gamma.dtype)
    backend = _backends.backend_for(dout, cache.x).batchnorm
    dout = get_array_module(dout).ascontiguousarray(dout)  # as x: rows in the same order
    return backend.normalize_backward(dout, cache.x, cache.mean, cache.inv_std, cache.gamma,
                                      cache.use_batch)


def batchnorm_backward(dout: Array, cache: BatchnormCache) -> tuple[Array, Array, Array]:
    """Batchnorm backward for (N, D); returns ``(dx, dgamma, dbeta)``.

    With batch statistics the gradient flows through the mean and variance; in
    eval mode (running statistics, constants) it does not.

    Parameters
    ----------
    dout : array
        The gradient of the output, (N, D) in x's dtype.
    cache : BatchnormCache
        From :func:`batchnorm_forward`.

    Returns
    -------
    dx, dgamma, dbeta : array
        In dout's dtype, dx contiguous.

    Raises
    ------
    TypeError, ValueError
        A cache from another op; dout unlike the forward's output.

    Examples
    --------
    >>> import numpy as np
    >>> x = np.array([[1.0], [3.0]])
    >>> out, cache = batchnorm_forward(x, np.ones(1), np.zeros(1), None, None)
    >>> dx, dgamma, dbeta = batchnorm_backward(np.array([[1.0], [1.0]]), cache)
    >>> dx.round(6).ravel(), dbeta
    (array([0., 0.]), array([2.]))
    """
    check_cache(cache, BatchnormCache, "batchnorm_forward")
    return _backward(dout, cache)


def spatial_batchnorm_forward(x: Array, gamma: Array, beta: Array, running_mean: Array | None,
                              running_var: Array | None, train: bool = True,
                              momentum: float = 0.1, eps: float = 1e-5
                              ) -> tuple[Array, SpatialBatchnormCache]:
    """Batchnorm per channel for x of shape (N, C, H, W) (statistics over N, H, W).

    Errors about the features name the (N*H*W, C) values that are normalised.

    Parameters
    ----------
    x : array
        (N, C, H, W) maps, float16/32/64.
    gamma, beta, running_mean, running_var, train, momentum, eps
        As for :func:`batchnorm_forward`, with C channels for D features.

    Returns
    -------
    out : array
        The normalised x, its shape and dtype, contiguous.
    cache : SpatialBatchnormCache
        For :func:`spatial_batchnorm_backward`.

    Raises
    ------
    TypeError, ValueError
        As for :func:`batchnorm_forward`; x not (N, C, H, W).

    Examples
    --------
    >>> import numpy as np
    >>> x = np.ones((2, 3, 4, 4), np.float32)
    >>> gamma, beta = np.ones(3, np.float32), np.zeros(3, np.float32)
    >>> spatial_batchnorm_forward(x, gamma, beta, None, None)[0].shape
    (2, 3, 4, 4)
    """
    check_float(x, "x")
    check_ndim(x, 4, "x", "(N, C, H, W)")
    backend = _backends.backend_for(x, gamma, beta, running_mean, running_var).batchnorm
    n, c, h, w = x.shape
    settings = _checked_settings(x, (n * h * w, c), gamma, beta, running_mean, running_var,
                                 train, momentum, eps)
    return _forward(backend, x, SpatialBatchnormCache, running_mean, running_var, gamma, beta,
                    settings)


def spatial_batchnorm_backward(dout: Array, cache: SpatialBatchnormCache
                               ) -> tuple[Array, Array, Array]:
    """Spatial batchnorm backward; returns ``(dx, dgamma, dbeta)`` with dx of shape (N, C, H, W).

    Parameters
    ----------
    dout : array
        The gradient of the output, (N, C, H, W) in x's dtype.
    cache : SpatialBatchnormCache
        From :func:`spatial_batchnorm_forward`.

    Returns
    -------
    dx, dgamma, dbeta : array
        In dout's dtype, dx contiguous.

    Raises
    ------
    TypeError, ValueError
        A cache from another op; dout unlike the forward's output.

    Examples
    --------
    >>> import numpy as np
    >>> x = np.arange(8.0).reshape(2, 2, 2, 1)
    >>> out, cache = spatial_batchnorm_forward(x, np.ones(2), np.zeros(2), None, None)
    >>> spatial_batchnorm_backward(np.ones_like(x), cache)[2]
    array([4., 4.])
    """
    check_cache(cache, SpatialBatchnormCache, "spatial_batchnorm_forward")
    return _backward(dout, cache)
