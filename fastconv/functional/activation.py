"""Element-wise activations: relu, leaky_relu, tanh and sigmoid, forward and backward.

Each forward returns ``(out, cache)`` and each backward ``dx``; dtypes are preserved.
"""

from typing import ClassVar

from ..backend import get_array_module
from .._validate import check_cache, check_dout, check_float, op_cache


@op_cache
class ReluCache:
    """What :func:`relu_backward` needs: the input."""

    op: ClassVar[str] = "relu_forward"
    x: object


@op_cache
class LeakyReluCache:
    """What :func:`leaky_relu_backward` needs: the input and the slope."""

    op: ClassVar[str] = "leaky_relu_forward"
    x: object
    negative_slope: float


@op_cache
class TanhCache:
    """What :func:`tanh_backward` needs: the output."""

    op: ClassVar[str] = "tanh_forward"
    out: object


@op_cache
class SigmoidCache:
    """What :func:`sigmoid_backward` needs: the output."""

    op: ClassVar[str] = "sigmoid_forward"
    out: object


def relu_forward(x):
    """``max(x, 0)``; the cache keeps x. NaN propagates (as in PyTorch)."""
    xp = get_array_module(x)
    check_float(x, "x")
    return xp.maximum(x, xp.zeros((), x.dtype)), ReluCache(x)


def relu_backward(dout, cache):
    """Gradient of relu: 0 where x <= 0, else dout (0 at x == 0; a NaN passes dout, as PyTorch)."""
    check_cache(cache, ReluCache, "relu_forward")
    x = cache.x
    xp = get_array_module(dout, x)
    check_dout(dout, x.shape, x.dtype)
    return xp.where(x <= 0, xp.zeros((), dout.dtype), dout)


def leaky_relu_forward(x, negative_slope=0.01):
    """``x`` where x > 0, else ``negative_slope * x``."""
    xp = get_array_module(x)
    check_float(x, "x")
    out = xp.where(x > 0, x, x * x.dtype.type(negative_slope))
    return out, LeakyReluCache(x, negative_slope)


def leaky_relu_backward(dout, cache):
    """Gradient of leaky_relu: dout where x > 0, else ``negative_slope * dout``."""
    check_cache(cache, LeakyReluCache, "leaky_relu_forward")
    x = cache.x
    xp = get_array_module(dout, x)
    check_dout(dout, x.shape, x.dtype)
    return xp.where(x > 0, dout, dout * dout.dtype.type(cache.negative_slope))


def tanh_forward(x):
    """``tanh(x)``; the cache keeps the output."""
    xp = get_array_module(x)
    check_float(x, "x")
    out = xp.tanh(x)
    return out, TanhCache(out)


def tanh_backward(dout, cache):
    """Gradient of tanh: ``dout * (1 - tanh(x)**2)``."""
    check_cache(cache, TanhCache, "tanh_forward")
    out = cache.out
    check_dout(dout, out.shape, out.dtype)
    return dout * (1 - out * out)


def sigmoid(x):
    """``1 / (1 + exp(-x))`` without overflow for large |x| (exp only of -|x|)."""
    xp = get_array_module(x)
    e = xp.exp(-xp.abs(x))
    return xp.where(x >= 0, 1 / (1 + e), e / (1 + e))


def sigmoid_forward(x):
    """Logistic sigmoid, numerically stable for large |x|; the cache keeps the output."""
    check_float(x, "x")
    out = sigmoid(x)
    return out, SigmoidCache(out)


def sigmoid_backward(dout, cache):
    """Gradient of sigmoid: ``dout * s * (1 - s)``."""
    check_cache(cache, SigmoidCache, "sigmoid_forward")
    out = cache.out
    check_dout(dout, out.shape, out.dtype)
    return dout * out * (1 - out)
