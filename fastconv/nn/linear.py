"""Fully connected layers: Linear (weights (in_features, out_features), course layout) and Flatten."""

from __future__ import annotations

from typing import Any

import numpy

from .._typing import Array, DTypeLike
from .._validate import check_float, check_int
from ..backend import is_array
from ..functional.linear import linear_backward, linear_forward
from .init import add_weight_and_bias, store_weight_and_bias_grads
from .module import Module


class Linear(Module):
    """``out = x.reshape(N, -1) @ W + b`` with ``W`` (in_features, out_features), ``b`` (out_features,).

    Inputs of any rank are flattened per sample. Biases start at zero.

    Parameters
    ----------
    in_features, out_features : int
        D and M.
    bias : bool, default True
        Whether the layer has ``b``.
    init : {'he', 'xavier'}, default 'he'
        The weights' normal initialisation.
    weight_scale : float, optional
        Draw Normal(0, weight_scale) weights instead (the course's convention).
    dtype : {numpy.float32, numpy.float64}, default numpy.float32
        The parameters' dtype.
    device : {'cpu', 'gpu', 'auto'}, optional
        Where they live; default :func:`fastconv.backend.default_device`.
    seed : int, optional
        Seeds the initialisation; give it or ``rng``.
    rng : numpy.random.Generator, optional
        Draws the initialisation.

    Raises
    ------
    ValueError
        When a size is below 1.
    TypeError
        When a size is not an int.

    Examples
    --------
    >>> import numpy as np
    >>> layer = Linear(12, 5, seed=0)
    >>> out = layer.forward(np.ones((2, 3, 4), np.float32))
    >>> out.shape, layer.backward(np.ones_like(out)).shape
    ((2, 5), (2, 3, 4))
    """

    def __init__(self, in_features: int, out_features: int, bias: bool = True, init: str = "he",
                 weight_scale: float | None = None, dtype: DTypeLike = numpy.float32,
                 device: str | None = None, seed: Any = None,
                 rng: numpy.random.Generator | None = None) -> None:
        super().__init__()
        self.in_features = check_int("Linear: in_features", in_features, 1)
        self.out_features = check_int("Linear: out_features", out_features, 1)
        add_weight_and_bias(self, (in_features, out_features), in_features, out_features,
                            out_features, bias, init, weight_scale, dtype, device, seed, rng)
        self._cache: Any = None

    def forward(self, x: Array) -> Array:
        """Affine map of ``x`` with in_features values per sample.

        Parameters
        ----------
        x : array
            (N, d1, ..., dk) with d1*...*dk = in_features.

        Returns
        -------
        array
            (N, out_features).

        Raises
        ------
        TypeError
            When x is not a float NumPy or CuPy array.
        ValueError
            When a sample of x has another number of values.
        """
        check_float(x, "x")  # first: what is no array is a TypeError, not a shape of ()
        shape = tuple(x.shape)
        features = int(numpy.prod(shape[1:])) if len(shape) >= 2 else None
        if features != self.in_features:
            raise ValueError(f"Linear(in_features={self.in_features}) got x of shape {shape} "
                             f"with {features} features per sample")
        out, self._cache = linear_forward(x, self.params["W"], self.params.get("b"))
        return out

    def backward(self, dout: Array) -> Array:
        """dL/dx (in x's shape); stores dL/dW and dL/db.

        Parameters
        ----------
        dout : array
            (N, out_features): the gradient of the loss with respect to the last output.

        Returns
        -------
        array
            The gradient with respect to the last input, in its shape.
        """
        dx, dw, db = linear_backward(dout, self._take_cache())
        store_weight_and_bias_grads(self, dw, db)
        return dx

    def extra_repr(self) -> str:
        return f"{self.in_features}, {self.out_features}, bias={'b' in self.params}"


class Flatten(Module):
    """Reshape (N, d1, ..., dk) to (N, d1*...*dk); backward restores the shape.

    Examples
    --------
    >>> import numpy as np
    >>> layer = Flatten()
    >>> layer.forward(np.zeros((2, 3, 4))).shape, layer.backward(np.zeros((2, 12))).shape
    ((2, 12), (2, 3, 4))
    """

    def __init__(self) -> None:
        super().__init__()
        self._cache: Any = None

    def forward(self, x: Array) -> Array:
        """Flatten every axis after the first.

        Parameters
        ----------
        x : array
            (N, d1, ..., dk).

        Returns
        -------
        array
            (N, d1*...*dk), a view where x's layout allows.

        Raises
        ------
        TypeError
            When x is not a NumPy or CuPy array.
        ValueError
            When x has no batch axis.
        """
        if not is_array(x):  # of any dtype: flattening reads no values
            raise TypeError(f"x must be a NumPy or CuPy array, got {type(x).__name__}")
        if x.ndim < 1:
            raise ValueError(f"Flatten expects x with a batch axis, got shape {tuple(x.shape)}")
        self._cache = x.shape
        return x.reshape(x.shape[0], -1)

    def backward(self, dout: Array) -> Array:
        """Reshape the gradient back to the input's shape.

        Parameters
        ----------
        dout : array
            (N, d1*...*dk).

        Returns
        -------
        array
            (N, d1, ..., dk).
        """
        return dout.reshape(self._take_cache())
