"""Inverted dropout: zero each input with probability ``p`` and scale the rest by 1/(1-p).

``p`` is the DROP probability (PyTorch's convention; the CS231n front-end in
fastconv.compat.cs231n converts the course's keep probability). Because the kept
values are scaled at training time, evaluation is the identity. The mask is
drawn with the input's array module (``xp.random``), so on the GPU it is made on
the GPU and never copied.
"""

from typing import ClassVar

from ..backend import get_array_module
from .._validate import check_bool, check_cache, check_dout, check_float, check_real, op_cache


@op_cache
class DropoutCache:
    """What :func:`dropout_backward` needs: the scaled keep mask (ones in eval mode)."""

    op: ClassVar[str] = "dropout_forward"
    mask: object


def dropout_forward(x, p=0.5, train=True, seed=None, rng=None):
    """Dropout forward pass; returns ``(out, cache)``.

    ``train=False`` returns x unchanged. The cache holds the mask: ones (a
    read-only broadcast, no memory) in eval mode and for p = 0, so that the
    backward still checks dout against x. The mask comes from ``rng`` (a
    ``numpy.random.Generator`` or ``cupy.random.Generator`` on x's device) if
    given, else from a fresh ``xp.random.default_rng(seed)`` when ``seed`` is
    given (the same seed gives the same mask, e.g. for gradient checks), else
    from ``xp.random``'s global state.
    """
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


def dropout_backward(dout, cache):
    """Dropout backward pass: ``dout * mask`` (the identity in eval mode)."""
    check_cache(cache, DropoutCache, "dropout_forward")
    check_dout(dout, cache.mask.shape, cache.mask.dtype)
    return dout * cache.mask
