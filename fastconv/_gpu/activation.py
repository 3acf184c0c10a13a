"""ReLU and leaky ReLU on the GPU (CuPy): one elementwise kernel per call.

The same names and rules as :mod:`fastconv._cpu.activation`. On the GPU a
``where`` is a select, not a branch, so the plain formulas are the fast
ones. Written against the arrays' module ``xp``, so the tests run it on NumPy
arrays.
"""

from __future__ import annotations

from .._typing import Array
from ..backend import get_array_module


def relu_forward(x: Array) -> Array:
    """``max(x, 0)``; NaN propagates."""
    xp = get_array_module(x)
    return xp.maximum(x, xp.zeros((), dtype=x.dtype))


def relu_backward(dout: Array, out: Array) -> Array:
    """dx: 0 where the forward's ``out`` <= 0 (exactly where x <= 0), else dout."""
    xp = get_array_module(dout, out)
    return xp.where(out <= 0, xp.zeros((), dtype=dout.dtype), dout)


def leaky_relu_forward(x: Array, negative_slope: float) -> Array:
    """``x`` where x > 0, else ``negative_slope * x``."""
    xp = get_array_module(x)
    return xp.where(x > 0, x, x * x.dtype.type(negative_slope))


def leaky_relu_backward(dout: Array, x: Array, negative_slope: float) -> Array:
    """dx: dout where the forward's input x > 0, else ``negative_slope * dout``."""
    xp = get_array_module(dout, x)
    return xp.where(x > 0, dout, dout * dout.dtype.type(negative_slope))
