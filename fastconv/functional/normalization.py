"""Layer and group normalisation: statistics per sample, the same in training and evaluation.

PyTorch semantics (``torch.nn.functional.layer_norm`` and ``group_norm``):
biased variance, ``eps`` inside the square root, no running statistics.
Both standardise the rows of a 2-D view of x, one row per sample (layer
norm: its trailing ``gamma.shape`` dims) or per (sample, group) (group norm:
C/G channels with all their positions), then scale and shift with gamma and
beta per feature (layer norm) or per channel (group norm). float16 inputs are
normalised in float32, as batchnorm's are.
"""

import math
from typing import ClassVar

from ..backend import accumulator_dtype, get_array_module
from .._validate import (check_cache, check_dout, check_float, check_int, check_real,
                         check_same_dtype, op_cache)


@op_cache
class _NormCache:
    """What the backward needs: the standardised rows and how x and gamma map onto them.

    ``xhat`` (rows, K) and ``inv_std`` (rows, 1) are in the working dtype
    (float32 for float16); ``gamma`` is the caller's; in the ``affine_shape``
    view of x, gamma reshaped to ``param_view`` broadcasts.
    """

    x_shape: tuple
    xhat: object
    inv_std: object
    gamma: object
    affine_shape: tuple
    param_view: tuple


@op_cache
class LayerNormCache(_NormCache):
    """What :func:`layernorm_backward` needs (see ``_NormCache``)."""

    op: ClassVar[str] = "layernorm_forward"


@op_cache
class GroupNormCache(_NormCache):
    """What :func:`groupnorm_backward` needs (see ``_NormCache``)."""

    op: ClassVar[str] = "groupnorm_forward"


def _check_params(op, x, gamma, beta, eps):
    """Float arrays of one dtype, gamma and beta of one shape, eps > 0."""
    get_array_module(x, gamma, beta)
    for name, a in (("x", x), ("gamma", gamma), ("beta", beta)):
        check_float(a, name)
    check_same_dtype(x, "x", gamma, "gamma")
    check_same_dtype(x, "x", beta, "beta")
    if tuple(beta.shape) != tuple(gamma.shape):
        raise ValueError(f"{op}: beta has shape {tuple(beta.shape)} but gamma has shape "
                         f"{tuple(gamma.shape)}; they must match")
    return check_real(f"{op}: eps", eps, 0.0, low_open=True)


def _normalize(cache_type, x, gamma, beta, rows, affine_shape, param_view, eps):
    """Standardise x viewed as ``rows`` along axis 1, then apply gamma and beta."""
    xp = get_array_module(x)
    if rows[1] == 0:  # a mean over nothing
        raise ValueError(f"{cache_type.op}: nothing to normalise over in x of shape "
                         f"{tuple(x.shape)}")
    work = accumulator_dtype(x.dtype)  # float16 statistics in float32
    xw = x.reshape(rows).astype(work, copy=False)
    centered = xw - xw.mean(axis=1, keepdims=True)
    inv_std = 1 / xp.sqrt((centered * centered).mean(axis=1, keepdims=True) + eps)
    xhat = centered * inv_std
    g = gamma.reshape(param_view).astype(work, copy=False)
    b = beta.reshape(param_view).astype(work, copy=False)
    out = (xhat.reshape(affine_shape) * g + b).astype(x.dtype, copy=False).reshape(x.shape)
    return out, cache_type(tuple(x.shape), xhat, inv_std, gamma, affine_shape, param_view)


def _normalize_backward(dout, cache):
    """``(dx, dgamma, dbeta)`` of :func:`_normalize`, in dout's dtype."""
    check_dout(dout, cache.x_shape, cache.gamma.dtype)
    xhat, gamma = cache.xhat, cache.gamma
    g = dout.astype(xhat.dtype, copy=False).reshape(cache.affine_shape)
    axes = tuple(i for i, size in enumerate(cache.param_view) if size == 1)
    dbeta = g.sum(axis=axes)
    dgamma = (g * xhat.reshape(cache.affine_shape)).sum(axis=axes)
    dxhat = (g * gamma.reshape(cache.param_view).astype(xhat.dtype)).reshape(xhat.shape)
    k = xhat.shape[1]
    dx = (cache.inv_std / k) * (k * dxhat - dxhat.sum(axis=1, keepdims=True)
                                - xhat * (dxhat * xhat).sum(axis=1, keepdims=True))
    dt = dout.dtype
    return (dx.reshape(cache.x_shape).astype(dt, copy=False),
            dgamma.reshape(gamma.shape).astype(dt, copy=False),
            dbeta.reshape(gamma.shape).astype(dt, copy=False))


def layernorm_forward(x, gamma, beta, eps=1e-5):
    """Layer normalisation over the trailing ``gamma.shape`` dims of x; returns ``(out, cache)``.

    As ``torch.nn.functional.layer_norm(x, gamma.shape, gamma, beta, eps)``.

    Parameters
    ----------
    x : ndarray
        Input (*, d_1, ..., d_k), float16/32/64; each leading index is one
        sample, normalised over its (d_1, ..., d_k) values.
    gamma, beta : ndarray
        Scale and shift of shape (d_1, ..., d_k), x's dtype and device; their
        shape says which trailing dims are normalised ((D,) for x (N, D)).
    eps : float
        Added to the variance, > 0. Default 1e-5.

    Returns
    -------
    out : ndarray
        x's shape and dtype.
    cache : LayerNormCache
        For :func:`layernorm_backward`.

    Examples
    --------
    >>> import numpy as np
    >>> out, cache = layernorm_forward(np.array([[1.0, 3.0]]), np.ones(2), np.zeros(2))
    >>> np.round(out, 4)
    array([[-1.,  1.]])
    """
    eps = _check_params("layernorm", x, gamma, beta, eps)
    k = gamma.ndim
    if k < 1 or x.ndim < k or tuple(x.shape[x.ndim - k:]) != tuple(gamma.shape):
        raise ValueError(f"layernorm: gamma has shape {tuple(gamma.shape)} but x's trailing "
                         f"dims are {tuple(x.shape[max(x.ndim - k, 0):])} (x.shape="
                         f"{tuple(x.shape)}); gamma and beta take the shape of the "
                         f"normalised trailing dims, e.g. (D,) for x of shape (N, D)")
    features, samples = math.prod(gamma.shape), math.prod(x.shape[:x.ndim - k])
    return _normalize(LayerNormCache, x, gamma, beta, (samples, features),
                      (samples, features), (1, features), eps)


def layernorm_backward(dout, cache):
    """Gradients of :func:`layernorm_forward`; returns ``(dx, dgamma, dbeta)``.

    Parameters
    ----------
    dout : ndarray
        The gradient of the output, shaped and typed like it.
    cache : LayerNormCache
        From :func:`layernorm_forward`.

    Returns
    -------
    dx, dgamma, dbeta : ndarray
        In dout's dtype; dx in x's shape, dgamma and dbeta in gamma's.
    """
    check_cache(cache, LayerNormCache, "layernorm_forward")
    return _normalize_backward(dout, cache)


def groupnorm_forward(x, num_groups, gamma, beta, eps=1e-5):
    """Group normalisation of x (N, C, *) in ``num_groups`` channel groups; ``(out, cache)``.

    As ``torch.nn.functional.group_norm(x, num_groups, gamma, beta, eps)``:
    each sample's channels are split into ``num_groups`` contiguous groups,
    each group normalised over its channels and all their positions, then
    scaled and shifted per channel. ``num_groups=1`` is layer norm over
    (C, H, W) with per-channel parameters; ``num_groups=C`` is instance norm.

    Parameters
    ----------
    x : ndarray
        Input (N, C, H, W) (any (N, C, *) works), float16/32/64.
    num_groups : int
        Number of groups, a divisor of C.
    gamma, beta : ndarray
        Per-channel scale and shift, shape (C,), x's dtype and device.
    eps : float
        Added to the variance, > 0. Default 1e-5.

    Returns
    -------
    out : ndarray
        x's shape and dtype.
    cache : GroupNormCache
        For :func:`groupnorm_backward`.
    """
    eps = _check_params("groupnorm", x, gamma, beta, eps)
    if x.ndim < 2:
        raise ValueError(f"groupnorm: x must be (N, C, *) with at least 2 dims, got shape "
                         f"{tuple(x.shape)}")
    groups = check_int("groupnorm: num_groups", num_groups, 1)
    n, c = x.shape[:2]
    if c % groups:
        raise ValueError(f"groupnorm: num_groups={groups} must divide the {c} channels of x "
                         f"(x.shape={tuple(x.shape)})")
    if tuple(gamma.shape) != (c,):
        raise ValueError(f"groupnorm: gamma has shape {tuple(gamma.shape)} but x has {c} "
                         f"channels (x.shape={tuple(x.shape)}); gamma and beta must be ({c},)")
    positions = math.prod(x.shape[2:])
    return _normalize(GroupNormCache, x, gamma, beta, (n * groups, c // groups * positions),
                      (n, c, positions), (1, c, 1), eps)


def groupnorm_backward(dout, cache):
    """Gradients of :func:`groupnorm_forward`; returns ``(dx, dgamma, dbeta)``.

    Parameters
    ----------
    dout : ndarray
        The gradient of the output, shaped and typed like it.
    cache : GroupNormCache
        From :func:`groupnorm_forward`.

    Returns
    -------
    dx, dgamma, dbeta : ndarray
        In dout's dtype; dx in x's shape, dgamma and dbeta of shape (C,).
    """
    check_cache(cache, GroupNormCache, "groupnorm_forward")
    return _normalize_backward(dout, cache)
