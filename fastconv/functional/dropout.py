"""Inverted dropout: zero each input with probability ``p`` and scale the rest by 1/(1-p).

``p`` is the DROP probability (PyTorch's convention; the CS231n front-end in
fastconv.compat.cs231n converts the course's keep probability). Because the kept
values are scaled at training time, evaluation is the identity. The mask is
drawn with the input's array module (``xp.random``), so on the GPU it is made on
the GPU and never copied.
"""

from __future__ import annotations

from typing import Any, ClassVar

from .._typing import Array
from ..backend import get_array_module
from .._validate import check_bool, check_cache, check_dout, check_float, check_real, op_cache


@op_cache
class DropoutCache:
    """What :func:`dropout_backward` needs: the scaled keep mask (ones in eval mode).

    Attributes
    ----------
    mask : array
        ``1/(1-p)`` where x was kept, 0 where it was dropped; in eval mode and
        for p = 0 a read-only broadcast of ones.

    Examples
    --------
    >>> import numpy as np
    >>> sorted(set(dropout_forward(np.ones(100), p=0.5, seed=0)[1].mask.tolist()))
    [0.0, 2.0]
    """

    op: ClassVar[str] = "dropout_forward"
    mask: Array


def dropout_forward(x: Array, p: float = 0.5, train: bool = True, seed: Any = None,
                    rng: Any = None) -> tuple[Array, DropoutCache]:
    """Dropout forward pass: zero each entry with probability ``p``, scale the rest by 1/(1-p).

    Parameters
    ----------
    x : array
        A float array.
    p : float, default 0.5
        The drop probability, in [0, 1].
    train : bool, default True
        False: return x unchanged.
    seed : int or sequence of int, optional
        Draw the mask from a fresh ``xp.random.default_rng(seed)``: the same
        seed gives the same mask (e.g. for gradient checks).
    rng : numpy.random.Generator or cupy.random.Generator, optional
        Draw the mask from it, on x's device. Without ``seed`` and ``rng``,
        the mask comes from ``xp.random``'s global state.

    Returns
    -------
    out : array
        x's shape and dtype.
    cache : DropoutCache
        For :func:`dropout_backward`.

    Raises
    ------
    TypeError
        A non-float x, a non-real p, a non-bool train.
    ValueError
        p outside [0, 1]; both seed and rng; an rng of another device.

    Examples
    --------
    >>> import numpy as np
    >>> out = dropout_forward(np.ones(100), p=0.5, seed=0)[0]
    >>> again = dropout_forward(np.ones(100), p=0.5, seed=0)[0]
    >>> sorted(set(out.tolist())), bool((out == again).all())
    ([0.0, 2.0], True)
    >>> dropout_forward(np.ones(2), train=False)[0]
    array([1., 1.])
    """
    # The eval-mode mask is ones, a read-only broadcast (no memory), so that
    # the backward still checks dout against x.
    xp = get_array_module(x)
    check_float(x, "x")
    p = check_real("dropout: p (the drop probability)", p, 0.0, 1.0)
    train = check_bool("dropout: train", train)
    if seed is not None and rng is not None:
        raise ValueError("dropout: give seed or rng, not both")
    if not train or p == 0.0:
        return x, DropoutCache(xp.broadcast_to(xp.ones((), dtype=x.dtype), x.shape))
    if p == 1.0:
        mask = xp.zeros(x.shape, dtype=x.dtype)
    else:
        if rng is None and seed is not None:
            rng = xp.random.default_rng(seed)
        u = rng.random(x.shape) if rng is not None else xp.random.random(x.shape)
        get_array_module(x, u)  # raises on a numpy rng with a cupy x (and vice versa)
        mask = (u >= p).astype(x.dtype) / x.dtype.type(1.0 - p)
    return x * mask, DropoutCache(mask)


def dropout_backward(dout: Array, cache: DropoutCache) -> Array:
    """Dropout backward pass: ``dout * mask`` (the identity in eval mode).

    Parameters
    ----------
    dout : array
        The gradient of the output, its shape and dtype.
    cache : DropoutCache
        From :func:`dropout_forward`.

    Returns
    -------
    array
        dx.

    Raises
    ------
    TypeError, ValueError
        A cache from another op; dout unlike the forward's output.

    Examples
    --------
    >>> import numpy as np
    >>> out, cache = dropout_forward(np.ones(100), p=0.5, seed=0)
    >>> bool((dropout_backward(np.ones(100), cache) == out).all())
    True
    """
    check_cache(cache, DropoutCache, "dropout_forward")
    check_dout(dout, cache.mask.shape, cache.mask.dtype)
    return dout * cache.mask
