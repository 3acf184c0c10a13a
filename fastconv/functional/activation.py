"""Element-wise activations: relu, leaky_relu, tanh and sigmoid, forward and backward.

Each forward returns ``(out, cache)`` and each backward ``dx``; dtypes are preserved.
"""

from ..backend import get_array_module
from .._validate import check_dout, check_float


def relu_forward(x):
    """``max(x, 0)``; the cache keeps x. NaN propagates (as in PyTorch)."""
    xp = get_array_module(x)
    check_float(x, "x")
    return xp.maximum(x, xp.zeros((), x.dtype)), x


def relu_backward(dout, cache):
    """Gradient of relu: 0 where x <= 0, else dout (0 at x == 0; a NaN passes dout, as PyTorch)."""
    x = cache
    xp = get_array_module(dout, x)
    check_dout(dout, x.shape, x.dtype)
    return xp.where(x <= 0, xp.zeros((), dout.dtype), dout)


def leaky_relu_forward(x, negative_slope=0.01):
    """``x`` where x > 0, else ``negative_slope * x``."""
    xp = get_array_module(x)
    check_float(x, "x")
    out = xp.where(x > 0, x, x * x.dtype.type(negative_slope))
    return out, (x, negative_slope)


def leaky_relu_backward(dout, cache):
    """Gradient of leaky_relu: dout where x > 0, else ``negative_slope * dout``."""
    x, negative_slope = cache
    xp = get_array_module(dout, x)
    check_dout(dout, x.shape, x.dtype)
    return xp.where(x > 0, dout, dout * dout.dtype.type(negative_slope))


def tanh_forward(x):
    """``tanh(x)``; the cache keeps the output."""
    xp = get_array_module(x)
    check_float(x, "x")
    out = xp.tanh(x)
    return out, out


def tanh_backward(dout, cache):
    """Gradient of tanh: ``dout * (1 - tanh(x)**2)``."""
    out = cache
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
    return out, out


def sigmoid_backward(dout, cache):
    """Gradient of sigmoid: ``dout * s * (1 - s)``."""
    out = cache
    check_dout(dout, out.shape, out.dtype)
    return dout * out * (1 - out)
