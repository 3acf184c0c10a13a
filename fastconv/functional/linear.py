"""Fully connected (affine) layer: ``out = x.reshape(N, D) @ w + b``.

Weights follow the course convention ``w`` of shape (D, M) (inputs by outputs),
so a CS231n/DLFS network's weights can be used as they are. Inputs of any rank
(N, d1, ..., dk) are flattened per sample, so a linear layer can follow a conv
layer without an explicit reshape.
"""

from __future__ import annotations

from typing import ClassVar

from .._typing import Array
from ..backend import accumulator_dtype, get_array_module
from .._validate import check_cache, check_dout, check_float, check_ndim, check_same_dtype, op_cache


@op_cache
class LinearCache:
    """What :func:`linear_backward` needs: x's shape, x as (N, D), w and whether there is a bias.

    Attributes
    ----------
    x_shape : tuple of int
        x's shape.
    x2 : array
        x as (N, D).
    w : array
        The weights (D, M).
    has_bias : bool
        Whether the forward had a bias.

    Examples
    --------
    >>> import numpy as np
    >>> linear_forward(np.ones((2, 3, 4)), np.ones((12, 5)))[1].x2.shape
    (2, 12)
    """

    op: ClassVar[str] = "linear_forward"
    x_shape: tuple[int, ...]
    x2: Array
    w: Array
    has_bias: bool


def linear_forward(x: Array, w: Array, b: Array | None = None) -> tuple[Array, LinearCache]:
    """Affine forward pass ``x.reshape(N, D) @ w + b``.

    Parameters
    ----------
    x : array
        (N, d1, ..., dk), flattened to (N, D) with D = d1*...*dk.
    w : array
        (D, M), x's dtype.
    b : array, optional
        (M,), x's dtype; None: no bias.

    Returns
    -------
    out : array
        (N, M).
    cache : LinearCache
        For :func:`linear_backward`.

    Raises
    ------
    TypeError
        A non-float array, or arrays of two dtypes.
    ValueError
        Shapes that do not fit, naming them; arrays on two devices.

    Examples
    --------
    >>> import numpy as np
    >>> linear_forward(np.ones((2, 3)), np.ones((3, 4)), np.arange(4.0))[0]
    array([[3., 4., 5., 6.],
           [3., 4., 5., 6.]])
    """
    xp = get_array_module(x, w, b)
    check_float(x, "x")
    if x.ndim < 2:
        raise ValueError(f"linear: x must be (N, d1, ..., dk) with at least 2 dimensions, "
                         f"got shape {tuple(x.shape)}")
    check_float(w, "w")
    check_ndim(w, 2, "w", "(in_features, out_features)")
    check_same_dtype(x, "x", w, "w")
    if b is not None:
        check_float(b, "b")
        check_ndim(b, 1, "b", "(out_features,)")
        check_same_dtype(x, "x", b, "b")
    n = x.shape[0]
    d = 1
    for s in x.shape[1:]:
        d *= s
    if w.shape[0] != d:
        raise ValueError(
            f"linear: x has {d} features per sample (x.shape={tuple(x.shape)}) but w "
            f"expects {w.shape[0]} (w.shape={tuple(w.shape)}, (in_features, out_features))")
    if b is not None and b.shape[0] != w.shape[1]:
        raise ValueError(f"linear: b has {b.shape[0]} entries (b.shape={tuple(b.shape)}) but w "
                         f"has {w.shape[1]} outputs (w.shape={tuple(w.shape)})")
    x2 = x.reshape(n, d)
    out = xp.matmul(x2, w)
    if b is not None:
        out += b
    return out, LinearCache(x.shape, x2, w, b is not None)


def linear_backward(dout: Array, cache: LinearCache) -> tuple[Array, Array, Array | None]:
    """Affine backward pass.

    Parameters
    ----------
    dout : array
        (N, M): the gradient of the output, in its dtype.
    cache : LinearCache
        From :func:`linear_forward`.

    Returns
    -------
    dx : array
        x's shape.
    dw : array
        (D, M).
    db : array or None
        (M,); None without a bias.

    Raises
    ------
    TypeError, ValueError
        A cache from another op; dout unlike the forward's output.

    Examples
    --------
    >>> import numpy as np
    >>> out, cache = linear_forward(np.ones((2, 3)), np.ones((3, 4)))
    >>> [None if g is None else g.shape for g in linear_backward(np.ones((2, 4)), cache)]
    [(2, 3), (3, 4), None]
    """
    check_cache(cache, LinearCache, "linear_forward")
    w = cache.w
    xp = get_array_module(dout, w)
    check_dout(dout, (cache.x2.shape[0], w.shape[1]), w.dtype)
    dx = xp.matmul(dout, w.T).reshape(cache.x_shape)
    dw = xp.matmul(cache.x2.T, dout)
    db = None
    if cache.has_bias:  # float16 sums in float32 (a float16 running sum stalls at 2048)
        db = dout.sum(axis=0, dtype=accumulator_dtype(dout.dtype)).astype(dout.dtype)
    return dx, dw, db
