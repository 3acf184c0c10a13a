"""Element-wise activations: relu, leaky_relu, tanh and sigmoid, forward and backward.

Each forward returns ``(out, cache)`` and each backward ``dx``; dtypes are preserved.
relu and leaky_relu validate and dispatch once to the backend of the arrays'
device: :mod:`fastconv._cpu.activation` (blocked, branch-free, split across
threads) or :mod:`fastconv._gpu.activation` (one CuPy kernel each). tanh and
sigmoid are the same array code on both devices.
"""

from typing import ClassVar

from .. import _backends
from ..backend import get_array_module
from .._validate import check_cache, check_dout, check_float, op_cache


@op_cache
class ReluCache:
    """What :func:`relu_backward` needs: the output.

    The output, not the input: ``out <= 0`` exactly where ``x <= 0``, and the
    next layer usually keeps the output anyway, so the input can be freed.
    """

    op: ClassVar[str] = "relu_forward"
    out: object


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
    """``max(x, 0)``; the cache keeps the output. NaN propagates (as in PyTorch).

    Parameters
    ----------
    x : array
        A float array (NumPy or CuPy).

    Returns
    -------
    out : array
        x's shape and dtype.
    cache : ReluCache
        For :func:`relu_backward`.
    """
    check_float(x, "x")
    out = _backends.backend_for(x).activation.relu_forward(x)
    return out, ReluCache(out)


def relu_backward(dout, cache):
    """Gradient of relu: 0 where x <= 0, else dout (0 at x == 0; a NaN passes dout, as PyTorch).

    Parameters
    ----------
    dout : array
        The gradient of the output, its shape and dtype.
    cache : ReluCache
        From :func:`relu_forward`.

    Returns
    -------
    array
        dx, dout's shape and dtype.
    """
    check_cache(cache, ReluCache, "relu_forward")
    out = cache.out
    backend = _backends.backend_for(dout, out)
    check_dout(dout, out.shape, out.dtype)
    return backend.activation.relu_backward(dout, out)


def leaky_relu_forward(x, negative_slope=0.01):
    """``x`` where x > 0, else ``negative_slope * x``.

    Parameters
    ----------
    x : array
        A float array (NumPy or CuPy).
    negative_slope : float
        The slope where x <= 0 (and where x is NaN).

    Returns
    -------
    out : array
        x's shape and dtype.
    cache : LeakyReluCache
        For :func:`leaky_relu_backward`.
    """
    check_float(x, "x")
    out = _backends.backend_for(x).activation.leaky_relu_forward(x, negative_slope)
    return out, LeakyReluCache(x, negative_slope)


def leaky_relu_backward(dout, cache):
    """Gradient of leaky_relu: dout where x > 0, else ``negative_slope * dout``.

    Parameters
    ----------
    dout : array
        The gradient of the output, its shape and dtype.
    cache : LeakyReluCache
        From :func:`leaky_relu_forward`.

    Returns
    -------
    array
        dx, dout's shape and dtype.
    """
    check_cache(cache, LeakyReluCache, "leaky_relu_forward")
    x = cache.x
    backend = _backends.backend_for(dout, x)
    check_dout(dout, x.shape, x.dtype)
    return backend.activation.leaky_relu_backward(dout, x, cache.negative_slope)


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
