"""Layer and group normalisation: statistics per sample, the same in training and evaluation.

PyTorch semantics (``torch.nn.functional.layer_norm`` and ``group_norm``):
biased variance, ``eps`` inside the square root, no running statistics, and
optional affine parameters (``gamma``/``beta`` of None skip the scale or the
shift, and their gradients come back as None). Both standardise the rows of a
2-D view of x, one row per sample (layer norm: its trailing
``normalized_shape`` dims) or per (sample, group) (group norm: C/G channels
with all their positions), then scale and shift per feature (layer norm) or
per channel (group norm). float16 inputs are normalised in float32, as
batchnorm's are.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence
from typing import Any, ClassVar

from .._typing import Array
from ..backend import accumulator_dtype, get_array_module
from .._validate import (check_cache, check_dout, check_float, check_int, check_real,
                         check_same_dtype, op_cache)


@op_cache
class _NormCache:
    """What the backward needs: the standardised rows and how x and the parameters map onto them.

    ``xhat`` (rows, K) and ``inv_std`` (rows, 1) are in the working dtype
    (float32 for float16); ``gamma`` is the caller's (or None); in the
    ``affine_shape`` view of x, a parameter reshaped to ``param_view``
    broadcasts. ``param_shape`` is the parameters' own shape, ``has_beta``
    whether a shift was applied, ``dtype`` the forward output's.
    """

    x_shape: tuple[int, ...]
    dtype: Any
    xhat: Array
    inv_std: Array
    gamma: Array | None
    has_beta: bool
    param_shape: tuple[int, ...]
    affine_shape: tuple[int, ...]
    param_view: tuple[int, ...]


@op_cache
class LayerNormCache(_NormCache):
    """What :func:`layer_norm_backward` needs: the standardised rows and how x maps onto them.

    Examples
    --------
    >>> import numpy as np
    >>> layer_norm_forward(np.array([[1.0, 3.0]]), 2)[1].xhat.round(3)
    array([[-1.,  1.]])
    """

    op: ClassVar[str] = "layer_norm_forward"


@op_cache
class GroupNormCache(_NormCache):
    """What :func:`group_norm_backward` needs: the standardised rows and how x maps onto them.

    Examples
    --------
    >>> import numpy as np
    >>> group_norm_forward(np.ones((2, 4, 3)), 2)[1].xhat.shape
    (4, 6)
    """

    op: ClassVar[str] = "group_norm_forward"


def _check_params(x, gamma, beta, eps, param_shape, expected):
    """x, optional gamma and beta of ``param_shape`` (``expected`` says why), x's dtype; eps > 0."""
    get_array_module(x, gamma, beta)
    check_float(x, "x")
    for name, p in (("gamma", gamma), ("beta", beta)):
        if p is None:
            continue
        check_float(p, name)
        check_same_dtype(x, "x", p, name)
        if tuple(p.shape) != param_shape:
            raise ValueError(f"{name} has shape {tuple(p.shape)} but {expected}; gamma and "
                             f"beta must have shape {param_shape}")
    return check_real("eps", eps, 0.0, low_open=True)


def _normalize(cache_type, x, gamma, beta, rows, affine_shape, param_view, eps, param_shape):
    """Standardise x viewed as ``rows`` along axis 1, then apply gamma and beta (if given)."""
    xp = get_array_module(x)
    if rows[1] == 0:  # a mean over nothing
        raise ValueError(f"{cache_type.op}: nothing to normalise over in x of shape "
                         f"{tuple(x.shape)}")
    work = accumulator_dtype(x.dtype)  # float16 statistics in float32
    xw = x.reshape(rows).astype(work, copy=False)
    centered = xw - xw.mean(axis=1, keepdims=True)
    inv_std = 1 / xp.sqrt((centered * centered).mean(axis=1, keepdims=True) + eps)
    xhat = centered * inv_std
    out = xhat.reshape(affine_shape)
    if gamma is not None:
        out = out * gamma.reshape(param_view).astype(work, copy=False)
    if beta is not None:
        out = out + beta.reshape(param_view).astype(work, copy=False)
    out = out.astype(x.dtype, copy=False).reshape(x.shape)
    return out, cache_type(tuple(x.shape), x.dtype, xhat, inv_std, gamma, beta is not None,
                           param_shape, affine_shape, param_view)


def _normalize_backward(dout, cache):
    """``(dx, dgamma, dbeta)`` of :func:`_normalize`, in dout's dtype (None for a missing parameter)."""
    check_dout(dout, cache.x_shape, cache.dtype)
    xhat, gamma, dt = cache.xhat, cache.gamma, dout.dtype
    g = dout.astype(xhat.dtype, copy=False).reshape(cache.affine_shape)
    axes = tuple(i for i, size in enumerate(cache.param_view) if size == 1)

    def per_parameter(total):
        return total.sum(axis=axes).reshape(cache.param_shape).astype(dt, copy=False)

    dbeta = per_parameter(g) if cache.has_beta else None
    dgamma = None if gamma is None else per_parameter(g * xhat.reshape(cache.affine_shape))
    dxhat = g if gamma is None else g * gamma.reshape(cache.param_view).astype(xhat.dtype)
    dxhat = dxhat.reshape(xhat.shape)
    k = xhat.shape[1]
    dx = (cache.inv_std / k) * (k * dxhat - dxhat.sum(axis=1, keepdims=True)
                                - xhat * (dxhat * xhat).sum(axis=1, keepdims=True))
    return dx.reshape(cache.x_shape).astype(dt, copy=False), dgamma, dbeta


def _shape_of(normalized_shape):
    """``normalized_shape`` (an int or a sequence of ints >= 0, at least one) as a tuple."""
    dims = normalized_shape if isinstance(normalized_shape, (tuple, list)) else (normalized_shape,)
    if not isinstance(normalized_shape, (tuple, list, numbers.Integral)) or not dims:
        raise TypeError(f"normalized_shape must be an int or a non-empty sequence of ints (the "
                        f"trailing dims of x to normalise over), got {normalized_shape!r}")
    return tuple(check_int(f"normalized_shape[{i}]", d, 0) for i, d in enumerate(dims))


def layer_norm_forward(x: Array, normalized_shape: int | Sequence[int], gamma: Array | None = None,
                       beta: Array | None = None, eps: float = 1e-5
                       ) -> tuple[Array, LayerNormCache]:
    """Layer normalisation over the trailing ``normalized_shape`` dims of x; ``(out, cache)``.

    As ``torch.nn.functional.layer_norm(x, normalized_shape, gamma, beta, eps)``.

    Parameters
    ----------
    x : ndarray
        Input ``(*, d_1, ..., d_k)``, float16/32/64; each leading index is one
        sample, normalised over its (d_1, ..., d_k) values.
    normalized_shape : int or sequence of int
        (d_1, ..., d_k), x's trailing dims; an int is (d_1,).
    gamma, beta : ndarray or None
        Scale and shift of shape ``normalized_shape``, x's dtype and device;
        None (the default) for no scale or no shift.
    eps : float
        Added to the variance, > 0. Default 1e-5.

    Returns
    -------
    out : ndarray
        x's shape and dtype.
    cache : LayerNormCache
        For :func:`layer_norm_backward`.

    Raises
    ------
    ValueError
        ``normalized_shape`` is not x's trailing dims, gamma or beta not of
        that shape, eps <= 0, or nothing to normalise over (a zero dim).
    TypeError
        A malformed ``normalized_shape``, a non-float array, or arrays of two dtypes.

    Examples
    --------
    >>> import numpy as np
    >>> out, cache = layer_norm_forward(np.array([[1.0, 3.0]]), 2)
    >>> np.round(out, 4)
    array([[-1.,  1.]])
    """
    shape = _shape_of(normalized_shape)
    k = len(shape)
    check_float(x, "x")
    if x.ndim < k or tuple(x.shape[x.ndim - k:]) != shape:
        raise ValueError(f"normalized_shape {shape} does not match the trailing dims "
                         f"{tuple(x.shape[max(x.ndim - k, 0):])} of x (x.shape="
                         f"{tuple(x.shape)}); expected x of shape (*, "
                         f"{', '.join(map(str, shape))})")
    eps = _check_params(x, gamma, beta, eps, shape, f"normalized_shape is {shape}")
    features, samples = math.prod(shape), math.prod(x.shape[:x.ndim - k])
    return _normalize(LayerNormCache, x, gamma, beta, (samples, features),
                      (samples, features), (1, features), eps, shape)


def layer_norm_backward(dout: Array, cache: LayerNormCache
                        ) -> tuple[Array, Array | None, Array | None]:
    """Gradients of :func:`layer_norm_forward`; returns ``(dx, dgamma, dbeta)``.

    Parameters
    ----------
    dout : ndarray
        The gradient of the output, shaped and typed like it.
    cache : LayerNormCache
        From :func:`layer_norm_forward`.

    Returns
    -------
    dx : ndarray
        x's shape, dout's dtype.
    dgamma, dbeta : ndarray or None
        ``normalized_shape``, dout's dtype; None where the forward had no gamma or no beta.

    Raises
    ------
    TypeError, ValueError
        A cache not from layer_norm_forward; dout unlike the normalised output.

    Examples
    --------
    >>> import numpy as np
    >>> out, cache = layer_norm_forward(np.array([[1.0, 3.0]]), 2, np.ones(2))
    >>> dx, dgamma, dbeta = layer_norm_backward(np.ones((1, 2)), cache)
    >>> np.round(dgamma, 4), dbeta
    (array([-1.,  1.]), None)
    """
    check_cache(cache, LayerNormCache, "layer_norm_forward")
    return _normalize_backward(dout, cache)


def group_norm_forward(x: Array, num_groups: int, gamma: Array | None = None,
                       beta: Array | None = None, eps: float = 1e-5
                       ) -> tuple[Array, GroupNormCache]:
    """Group normalisation of x ``(N, C, *)`` in ``num_groups`` channel groups; ``(out, cache)``.

    As ``torch.nn.functional.group_norm(x, num_groups, gamma, beta, eps)``:
    each sample's channels are split into ``num_groups`` contiguous groups,
    each group normalised over its channels and all their positions, then
    scaled and shifted per channel. ``num_groups=1`` is layer norm over
    (C, H, W) with per-channel parameters; ``num_groups=C`` is instance norm.

    Parameters
    ----------
    x : ndarray
        Input (N, C, H, W) (any ``(N, C, *)`` works), float16/32/64.
    num_groups : int
        Number of groups, a divisor of C.
    gamma, beta : ndarray or None
        Per-channel scale and shift, shape (C,), x's dtype and device; None
        (the default) for no scale or no shift.
    eps : float
        Added to the variance, > 0. Default 1e-5.

    Returns
    -------
    out : ndarray
        x's shape and dtype.
    cache : GroupNormCache
        For :func:`group_norm_backward`.

    Raises
    ------
    ValueError
        x with fewer than 2 dims, num_groups < 1 or not dividing C, gamma or
        beta not (C,), eps <= 0.
    TypeError
        A non-int num_groups, a non-float array, or arrays of two dtypes.

    Examples
    --------
    >>> import numpy as np
    >>> out, cache = group_norm_forward(np.array([[1.0, 3.0, 5.0, 7.0]]), 2)
    >>> np.round(out, 4)
    array([[-1.,  1., -1.,  1.]])
    """
    check_float(x, "x")
    if x.ndim < 2:
        raise ValueError(f"x must be (N, C, *) with at least 2 dims, got shape "
                         f"{tuple(x.shape)}")
    groups = check_int("num_groups", num_groups, 1)
    n, c = x.shape[:2]
    if c % groups:
        raise ValueError(f"num_groups={groups} must divide the {c} channels of x "
                         f"(x.shape={tuple(x.shape)})")
    eps = _check_params(x, gamma, beta, eps, (c,),
                        f"x has {c} channels (x.shape={tuple(x.shape)})")
    positions = math.prod(x.shape[2:])
    return _normalize(GroupNormCache, x, gamma, beta, (n * groups, c // groups * positions),
                      (n, c, positions), (1, c, 1), eps, (c,))


def group_norm_backward(dout: Array, cache: GroupNormCache
                        ) -> tuple[Array, Array | None, Array | None]:
    """Gradients of :func:`group_norm_forward`; returns ``(dx, dgamma, dbeta)``.

    Parameters
    ----------
    dout : ndarray
        The gradient of the output, shaped and typed like it.
    cache : GroupNormCache
        From :func:`group_norm_forward`.

    Returns
    -------
    dx : ndarray
        x's shape, dout's dtype.
    dgamma, dbeta : ndarray or None
        (C,), dout's dtype; None where the forward had no gamma or no beta.

    Raises
    ------
    TypeError, ValueError
        A cache not from group_norm_forward; dout unlike the normalised output.

    Examples
    --------
    >>> import numpy as np
    >>> out, cache = group_norm_forward(np.ones((1, 2, 2)), 1, beta=np.zeros(2))
    >>> group_norm_backward(np.ones((1, 2, 2)), cache)[2]
    array([2., 2.])
    """
    check_cache(cache, GroupNormCache, "group_norm_forward")
    return _normalize_backward(dout, cache)
