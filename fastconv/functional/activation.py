"""Element-wise activations: relu, leaky_relu, tanh and sigmoid, forward and backward.

Each forward returns ``(out, cache)`` and each backward ``dx``; dtypes are preserved.
relu and leaky_relu validate and dispatch once to the backend of the arrays'
device: :mod:`fastconv._cpu.activation` (blocked, branch-free, split across
threads) or :mod:`fastconv._gpu.activation` (one CuPy kernel each). tanh and
sigmoid are the same array code on both devices.
"""

from __future__ import annotations

from typing import ClassVar

from .. import _backends
from .._typing import Array
from ..backend import get_array_module
from .._validate import check_cache, check_dout, check_float, check_real, op_cache


@op_cache
class ReluCache:
    """What :func:`relu_backward` needs: the output.

    Attributes
    ----------
    out : array
        The forward's output.

    Examples
    --------
    >>> import numpy as np
    >>> relu_forward(np.array([-1.0, 2.0]))[1].out
    array([0., 2.])
    """

    # The output, not the input: out <= 0 exactly where x <= 0, and the next
    # layer usually keeps the output anyway, so the input can be freed.
    op: ClassVar[str] = "relu_forward"
    out: Array


@op_cache
class LeakyReluCache:
    """What :func:`leaky_relu_backward` needs: the input and the slope.

    Attributes
    ----------
    x : array
        The forward's input.
    negative_slope : float
        The slope where x <= 0.

    Examples
    --------
    >>> import numpy as np
    >>> leaky_relu_forward(np.array([-1.0, 2.0]), 0.1)[1].negative_slope
    0.1
    """

    op: ClassVar[str] = "leaky_relu_forward"
    x: Array
    negative_slope: float


@op_cache
class TanhCache:
    """What :func:`tanh_backward` needs: the output.

    Attributes
    ----------
    out : array
        The forward's output.

    Examples
    --------
    >>> import numpy as np
    >>> tanh_forward(np.zeros(2))[1].out
    array([0., 0.])
    """

    op: ClassVar[str] = "tanh_forward"
    out: Array


@op_cache
class SigmoidCache:
    """What :func:`sigmoid_backward` needs: the output.

    Attributes
    ----------
    out : array
        The forward's output.

    Examples
    --------
    >>> import numpy as np
    >>> sigmoid_forward(np.zeros(2))[1].out
    array([0.5, 0.5])
    """

    op: ClassVar[str] = "sigmoid_forward"
    out: Array


def relu_forward(x: Array) -> tuple[Array, ReluCache]:
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
        For :func:`relu_backward`. It holds ``out`` itself: do not change ``out`` in place
        before the backward (``out += skip`` would change the gradient; write
        ``out = out + skip``).

    Raises
    ------
    TypeError
        When ``x`` is not a float array.

    Examples
    --------
    >>> import numpy as np
    >>> relu_forward(np.array([-1.0, 0.0, 2.0]))[0]
    array([0., 0., 2.])
    """
    check_float(x, "x")
    out = _backends.backend_for(x).activation.relu_forward(x)
    return out, ReluCache(out)


def relu_backward(dout: Array, cache: ReluCache) -> Array:
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

    Raises
    ------
    TypeError
        When ``cache`` comes from another op, or dout's dtype is not the output's.
    ValueError
        When dout's shape is not the output's.

    Examples
    --------
    >>> import numpy as np
    >>> out, cache = relu_forward(np.array([-1.0, 0.0, 2.0]))
    >>> relu_backward(np.ones(3), cache)
    array([0., 0., 1.])
    """
    check_cache(cache, ReluCache, "relu_forward")
    out = cache.out
    backend = _backends.backend_for(dout, out)
    check_dout(dout, out.shape, out.dtype)
    return backend.activation.relu_backward(dout, out)


def leaky_relu_forward(x: Array, negative_slope: float = 0.01
                       ) -> tuple[Array, LeakyReluCache]:
    """``x`` where x > 0, else ``negative_slope * x``.

    Parameters
    ----------
    x : array
        A float array (NumPy or CuPy).
    negative_slope : float, default 0.01
        The slope where x <= 0 (and where x is NaN).

    Returns
    -------
    out : array
        x's shape and dtype.
    cache : LeakyReluCache
        For :func:`leaky_relu_backward`. It holds ``x`` itself: do not change ``x`` in
        place before the backward.

    Raises
    ------
    TypeError
        When ``x`` is not a float array, or ``negative_slope`` is not a real number.

    Examples
    --------
    >>> import numpy as np
    >>> leaky_relu_forward(np.array([-2.0, 3.0]), 0.5)[0]
    array([-1.,  3.])
    """
    check_float(x, "x")
    # The backends cast the slope to x's dtype: None would become NaN, a string its number.
    negative_slope = check_real("leaky_relu: negative_slope", negative_slope)
    out = _backends.backend_for(x).activation.leaky_relu_forward(x, negative_slope)
    return out, LeakyReluCache(x, negative_slope)


def leaky_relu_backward(dout: Array, cache: LeakyReluCache) -> Array:
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

    Raises
    ------
    TypeError
        When ``cache`` comes from another op, or dout's dtype is not the output's.
    ValueError
        When dout's shape is not the output's.

    Examples
    --------
    >>> import numpy as np
    >>> out, cache = leaky_relu_forward(np.array([-2.0, 3.0]), 0.5)
    >>> leaky_relu_backward(np.ones(2), cache)
    array([0.5, 1. ])
    """
    check_cache(cache, LeakyReluCache, "leaky_relu_forward")
    x = cache.x
    backend = _backends.backend_for(dout, x)
    check_dout(dout, x.shape, x.dtype)
    return backend.activation.leaky_relu_backward(dout, x, cache.negative_slope)


def tanh_forward(x: Array) -> tuple[Array, TanhCache]:
    """``tanh(x)``; the cache keeps the output.

    Parameters
    ----------
    x : array
        A float array (NumPy or CuPy).

    Returns
    -------
    out : array
        x's shape and dtype.
    cache : TanhCache
        For :func:`tanh_backward`. It holds ``out`` itself: do not change ``out`` in place
        before the backward (``out += skip`` would change the gradient; write
        ``out = out + skip``).

    Raises
    ------
    TypeError
        When ``x`` is not a float array.

    Examples
    --------
    >>> import numpy as np
    >>> tanh_forward(np.array([0.0]))[0]
    array([0.])
    """
    xp = get_array_module(x)
    check_float(x, "x")
    out = xp.tanh(x)
    return out, TanhCache(out)


def tanh_backward(dout: Array, cache: TanhCache) -> Array:
    """Gradient of tanh: ``dout * (1 - tanh(x)**2)``.

    Parameters
    ----------
    dout : array
        The gradient of the output, its shape and dtype.
    cache : TanhCache
        From :func:`tanh_forward`.

    Returns
    -------
    array
        dx, dout's shape and dtype.

    Raises
    ------
    TypeError
        When ``cache`` comes from another op, or dout's dtype is not the output's.
    ValueError
        When dout's shape is not the output's.

    Examples
    --------
    >>> import numpy as np
    >>> out, cache = tanh_forward(np.array([0.0]))
    >>> tanh_backward(np.array([2.0]), cache)
    array([2.])
    """
    check_cache(cache, TanhCache, "tanh_forward")
    out = cache.out
    check_dout(dout, out.shape, out.dtype)
    return dout * (1 - out * out)


def sigmoid(x: Array) -> Array:
    """``1 / (1 + exp(-x))`` without overflow for large ``|x|``.

    Parameters
    ----------
    x : array
        A float array (NumPy or CuPy); not checked.

    Returns
    -------
    array
        x's shape and dtype.

    Examples
    --------
    >>> import numpy as np
    >>> sigmoid(np.array([-1000.0, 0.0, 1000.0]))
    array([0. , 0.5, 1. ])
    """
    # exp only of -|x|: never overflows.
    xp = get_array_module(x)
    e = xp.exp(-xp.abs(x))
    return xp.where(x >= 0, 1 / (1 + e), e / (1 + e))


def sigmoid_forward(x: Array) -> tuple[Array, SigmoidCache]:
    """Logistic sigmoid, numerically stable for large ``|x|``; the cache keeps the output.

    Parameters
    ----------
    x : array
        A float array (NumPy or CuPy).

    Returns
    -------
    out : array
        x's shape and dtype.
    cache : SigmoidCache
        For :func:`sigmoid_backward`. It holds ``out`` itself: do not change ``out`` in place
        before the backward (``out += skip`` would change the gradient; write
        ``out = out + skip``).

    Raises
    ------
    TypeError
        When ``x`` is not a float array.

    Examples
    --------
    >>> import numpy as np
    >>> sigmoid_forward(np.array([0.0]))[0]
    array([0.5])
    """
    check_float(x, "x")
    out = sigmoid(x)
    return out, SigmoidCache(out)


def sigmoid_backward(dout: Array, cache: SigmoidCache) -> Array:
    """Gradient of sigmoid: ``dout * s * (1 - s)``.

    Parameters
    ----------
    dout : array
        The gradient of the output, its shape and dtype.
    cache : SigmoidCache
        From :func:`sigmoid_forward`.

    Returns
    -------
    array
        dx, dout's shape and dtype.

    Raises
    ------
    TypeError
        When ``cache`` comes from another op, or dout's dtype is not the output's.
    ValueError
        When dout's shape is not the output's.

    Examples
    --------
    >>> import numpy as np
    >>> out, cache = sigmoid_forward(np.array([0.0]))
    >>> sigmoid_backward(np.array([4.0]), cache)
    array([1.])
    """
    check_cache(cache, SigmoidCache, "sigmoid_forward")
    out = cache.out
    check_dout(dout, out.shape, out.dtype)
    return dout * out * (1 - out)
