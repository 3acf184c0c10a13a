"""Batch normalisation over (N, D) features and, per channel, over (N, C, H, W) maps.

PyTorch semantics: in train mode the batch is normalised with its biased
variance and the running statistics are updated IN PLACE as
``running = (1 - momentum) * running + momentum * batch``, the variance with
the unbiased batch variance; in eval mode the running statistics are used.
Passing ``running_mean=running_var=None`` tracks no running statistics and
normalises with the batch statistics in both modes (PyTorch's
``track_running_stats=False``). float16 inputs are normalised in float32.
"""

from typing import ClassVar

from ..backend import accumulator_dtype, get_array_module
from .._validate import (check_bool, check_cache, check_dout, check_float, check_ndim,
                         check_real, check_same_dtype, op_cache)


@op_cache
class BatchnormCache:
    """What :func:`batchnorm_backward` needs, in the working dtype (float32 for float16).

    ``xhat`` the normalised input, ``gamma``, ``inv_std`` = 1/sqrt(var + eps),
    ``use_batch`` whether the batch statistics ``mean``/``var`` were used (so the
    gradient flows through them).
    """

    op: ClassVar[str] = "batchnorm_forward"
    xhat: object
    gamma: object
    inv_std: object
    use_batch: bool
    mean: object
    var: object


@op_cache
class SpatialBatchnormCache:
    """What :func:`spatial_batchnorm_backward` needs: x's shape and the (N*H*W, C) rows' cache."""

    op: ClassVar[str] = "spatial_batchnorm_forward"
    x_shape: tuple
    rows: BatchnormCache


def _check_vector(name, v, d):
    check_float(v, name)
    check_ndim(v, 1, name, "(features,)")
    if v.shape[0] != d:
        raise ValueError(f"batchnorm: {name} has {v.shape[0]} entries ({name}.shape="
                         f"{tuple(v.shape)}) but x has {d} features/channels")


def batchnorm_forward(x, gamma, beta, running_mean, running_var, train=True,
                      momentum=0.1, eps=1e-5):
    """Batchnorm forward for x of shape (N, D); returns ``(out, cache)``."""
    xp = get_array_module(x, gamma, beta, running_mean, running_var)
    check_float(x, "x")
    check_ndim(x, 2, "x", "(N, D)")
    n, d = x.shape
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
    work = accumulator_dtype(x.dtype)  # float16 statistics in float32
    xw = x.astype(work, copy=False)
    use_batch = train or running_mean is None
    if use_batch:
        if n < 2:  # PyTorch refuses too: the variance of one value is 0, the output beta
            raise ValueError(f"batchnorm: batch statistics (train mode, or no running "
                             f"statistics) need more than one value per feature, got "
                             f"x.shape={tuple(x.shape)}")
        mean = xw.mean(axis=0)
        var = xw.var(axis=0)
        if train and running_mean is not None:
            running_mean *= 1 - momentum
            running_mean += momentum * mean
            running_var *= 1 - momentum
            running_var += momentum * var * (n / (n - 1))
    else:
        mean = running_mean.astype(work)
        var = running_var.astype(work)
    inv_std = 1 / xp.sqrt(var + eps)
    xhat = (xw - mean) * inv_std
    out = (xhat * gamma.astype(work) + beta.astype(work)).astype(x.dtype, copy=False)
    return out, BatchnormCache(xhat, gamma, inv_std, use_batch, mean, var)


def batchnorm_backward(dout, cache):
    """Batchnorm backward for (N, D); returns ``(dx, dgamma, dbeta)``.

    With batch statistics the gradient flows through the mean and variance; in
    eval mode (running statistics, constants) it does not.
    """
    check_cache(cache, BatchnormCache, "batchnorm_forward")
    xhat, gamma, inv_std = cache.xhat, cache.gamma, cache.inv_std
    check_dout(dout, xhat.shape, gamma.dtype)
    g = dout.astype(xhat.dtype, copy=False)
    dbeta = g.sum(axis=0)
    dgamma = (g * xhat).sum(axis=0)
    dxhat = g * gamma.astype(xhat.dtype)
    if cache.use_batch:
        n = xhat.shape[0]
        dx = (inv_std / n) * (n * dxhat - dxhat.sum(axis=0) - xhat * (dxhat * xhat).sum(axis=0))
    else:
        dx = dxhat * inv_std
    dt = dout.dtype
    return dx.astype(dt, copy=False), dgamma.astype(dt, copy=False), dbeta.astype(dt, copy=False)


def _to_rows(x):
    n, c, h, w = x.shape
    return x.transpose(0, 2, 3, 1).reshape(n * h * w, c)


def _from_rows(rows, shape):
    n, c, h, w = shape
    return rows.reshape(n, h, w, c).transpose(0, 3, 1, 2)


def spatial_batchnorm_forward(x, gamma, beta, running_mean, running_var, train=True,
                              momentum=0.1, eps=1e-5):
    """Batchnorm per channel for x of shape (N, C, H, W) (statistics over N, H, W).

    Errors about the features name the (N*H*W, C) rows that are normalised.
    """
    check_float(x, "x")
    check_ndim(x, 4, "x", "(N, C, H, W)")
    out, cache = batchnorm_forward(_to_rows(x), gamma, beta, running_mean, running_var,
                                   train=train, momentum=momentum, eps=eps)
    return _from_rows(out, x.shape), SpatialBatchnormCache(x.shape, cache)


def spatial_batchnorm_backward(dout, cache):
    """Spatial batchnorm backward; returns ``(dx, dgamma, dbeta)`` with dx of shape (N, C, H, W)."""
    check_cache(cache, SpatialBatchnormCache, "spatial_batchnorm_forward")
    check_dout(dout, cache.x_shape, cache.rows.gamma.dtype)
    dx, dgamma, dbeta = batchnorm_backward(_to_rows(dout), cache.rows)
    return _from_rows(dx, cache.x_shape), dgamma, dbeta
