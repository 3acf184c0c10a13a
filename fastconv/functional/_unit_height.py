"""What the 1-D ops share: (N, C, L) arrays run as (N, C, 1, L) through the 2-D ops.

A 1-D convolution or pooling is the 2-D one over an image of height 1, with a kernel of height
1, stride and dilation 1 and no padding along the height, so the 1-D ops are thin: they check
their own arguments (errors name the 1-D shapes), lift the arrays to 4-D views, call the 2-D op
and drop the unit axis again. Their caches wrap the 2-D op's.
"""

from __future__ import annotations

import numbers
from collections.abc import Callable
from typing import Any

from .. import _validate
from .._typing import Array


def single(value: Any, name: str, low: int) -> int:
    """An int, or a 1-tuple or 1-list of one (as PyTorch's 1-D ops take), as an int >= ``low``.

    Parameters
    ----------
    value : int or 1-tuple of int
        The argument.
    name : str
        Its name, for the errors.
    low : int
        The least value allowed.

    Returns
    -------
    int

    Raises
    ------
    TypeError
        When ``value`` is neither.
    ValueError
        When it is below ``low``.

    Examples
    --------
    >>> single(3, "stride", 1), single((2,), "stride", 1)
    (3, 2)
    """
    if isinstance(value, (tuple, list)) and len(value) == 1:
        value = value[0]
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an int or a 1-tuple of one, got {value!r}")
    return _validate.check_int(name, value, low)


def lift(a: Array) -> Array:
    """(N, C, L) as the view (N, C, 1, L); (F, C/groups, K) weights alike.

    Parameters
    ----------
    a : array
        (N, C, L).

    Returns
    -------
    array
        The view (N, C, 1, L).

    Examples
    --------
    >>> import numpy as np
    >>> lift(np.zeros((2, 3, 5))).shape
    (2, 3, 1, 5)
    """
    return a[:, :, None]


def drop(a: Array) -> Array:
    """(N, C, 1, L) as the view (N, C, L).

    Parameters
    ----------
    a : array
        (N, C, 1, L).

    Returns
    -------
    array
        The view (N, C, L).

    Examples
    --------
    >>> import numpy as np
    >>> drop(np.zeros((2, 3, 1, 5))).shape
    (2, 3, 5)
    """
    return a[:, :, 0]


@_validate.op_cache
class UnitHeightCache:
    """A 1-D op's cache: the 2-D op's cache, the 1-D output shape and its dtype.

    Each 1-D op subclasses it to name itself in ``op``, so a backward refuses another op's
    cache.

    Attributes
    ----------
    inner : object
        The 2-D op's cache.
    out_shape : tuple of int
        The 1-D output's shape.
    dtype : numpy.dtype
        Its dtype.

    Examples
    --------
    >>> import numpy as np
    >>> from fastconv.functional import max_pool1d_forward
    >>> max_pool1d_forward(np.zeros((1, 2, 4)), 2)[1].out_shape
    (1, 2, 2)
    """

    inner: Any
    out_shape: tuple[int, ...]
    dtype: Any


def backward_1d(dout: Array, cache: Any, cache_type: Any, backward_2d: Callable[..., Any],
                *args: Any) -> Any:
    """Check ``dout`` against a 1-D forward's ``cache`` and run ``backward_2d`` on the lifted views.

    Parameters
    ----------
    dout : array
        The gradient of the 1-D output.
    cache : UnitHeightCache
        The 1-D forward's cache.
    cache_type : type
        The class the cache must be.
    backward_2d : callable
        The 2-D op's backward.
    *args
        Its arguments after the cache.

    Returns
    -------
    array or tuple
        The 2-D backward's result with the unit axis dropped from every 4-D
        array in it (dx, dw), the others (db, None) as they are.

    Raises
    ------
    TypeError, ValueError
        A cache of another type; dout unlike the 1-D output.

    Examples
    --------
    >>> import numpy as np
    >>> from fastconv.functional.pool import max_pool2d_backward
    >>> from fastconv.functional.pool1d import MaxPool1dCache, max_pool1d_forward
    >>> out, cache = max_pool1d_forward(np.array([[[1.0, 3.0]]]), 2)
    >>> backward_1d(np.ones((1, 1, 1)), cache, MaxPool1dCache, max_pool2d_backward)
    array([[[0., 1.]]])
    """
    _validate.check_cache(cache, cache_type, cache_type.op)
    _validate.check_dout(dout, cache.out_shape, cache.dtype)
    grads = backward_2d(lift(dout), cache.inner, *args)
    if not isinstance(grads, tuple):
        return drop(grads)
    return tuple(drop(g) if getattr(g, "ndim", None) == 4 else g for g in grads)
