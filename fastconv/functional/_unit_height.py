"""What the 1-D ops share: (N, C, L) arrays run as (N, C, 1, L) through the 2-D ops.

A 1-D convolution or pooling is the 2-D one over an image of height 1, with a kernel of height
1, stride and dilation 1 and no padding along the height, so the 1-D ops are thin: they check
their own arguments (errors name the 1-D shapes), lift the arrays to 4-D views, call the 2-D op
and drop the unit axis again. Their caches wrap the 2-D op's.
"""

import numbers

from .. import _validate


def single(value, name, low):
    """An int, or a 1-tuple or 1-list of one (as PyTorch's 1-D ops take), as an int >= ``low``."""
    if isinstance(value, (tuple, list)) and len(value) == 1:
        value = value[0]
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an int or a 1-tuple of one, got {value!r}")
    return _validate.check_int(name, value, low)


def lift(a):
    """(N, C, L) as the view (N, C, 1, L); (F, C/groups, K) weights alike."""
    return a[:, :, None]


def drop(a):
    """(N, C, 1, L) as the view (N, C, L)."""
    return a[:, :, 0]


@_validate.op_cache
class UnitHeightCache:
    """A 1-D op's cache: the 2-D op's cache, the 1-D output shape and its dtype.

    Each 1-D op subclasses it to name itself in ``op``, so a backward refuses another op's
    cache.
    """

    inner: object
    out_shape: tuple
    dtype: object


def backward_1d(dout, cache, cache_type, backward_2d, *args):
    """Check ``dout`` against a 1-D forward's ``cache`` and run ``backward_2d`` on the lifted views.

    Returns the 2-D backward's result with the unit axis dropped from every 4-D array in it
    (dx, dw), others (db, None) as they are.
    """
    _validate.check_cache(cache, cache_type, cache_type.op)
    _validate.check_dout(dout, cache.out_shape, cache.dtype)
    grads = backward_2d(lift(dout), cache.inner, *args)
    if not isinstance(grads, tuple):
        return drop(grads)
    return tuple(drop(g) if getattr(g, "ndim", None) == 4 else g for g in grads)
