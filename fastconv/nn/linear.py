"""Fully connected layers: Linear (weights (in_features, out_features), course layout) and Flatten."""

import numpy

from .._validate import check_int
from ..functional.linear import linear_backward, linear_forward
from .init import add_weight_and_bias, store_weight_and_bias_grads
from .module import Module


class Linear(Module):
    """``out = x.reshape(N, -1) @ W + b`` with ``W`` (in_features, out_features), ``b`` (out_features,).

    Inputs of any rank are flattened per sample. Initialisation, dtype,
    device and seeding as for Conv2d ('he' default, 'xavier', or ``weight_scale``).
    """

    def __init__(self, in_features, out_features, bias=True, init="he", weight_scale=None,
                 dtype=numpy.float32, device=None, seed=None, rng=None):
        super().__init__()
        self.in_features = check_int("Linear: in_features", in_features, 1)
        self.out_features = check_int("Linear: out_features", out_features, 1)
        add_weight_and_bias(self, (in_features, out_features), in_features, out_features,
                            out_features, bias, init, weight_scale, dtype, device, seed, rng)
        self._cache = None

    def forward(self, x):
        """Affine map of ``x`` (N, ...) with in_features values per sample; returns (N, out_features)."""
        shape = tuple(getattr(x, "shape", ()))
        features = int(numpy.prod(shape[1:])) if len(shape) >= 2 else None
        if features != self.in_features:
            raise ValueError(f"Linear(in_features={self.in_features}) got x of shape {shape} "
                             f"with {features} features per sample")
        out, self._cache = linear_forward(x, self.params["W"], self.params.get("b"))
        return out

    def backward(self, dout):
        """dL/dx (in x's shape); stores dL/dW and dL/db."""
        dx, dw, db = linear_backward(dout, self._take_cache())
        store_weight_and_bias_grads(self, dw, db)
        return dx

    def extra_repr(self):
        return f"{self.in_features}, {self.out_features}, bias={'b' in self.params}"


class Flatten(Module):
    """Reshape (N, d1, ..., dk) to (N, d1*...*dk); backward restores the shape."""

    def __init__(self):
        super().__init__()
        self._cache = None

    def forward(self, x):
        """Flatten every axis after the first."""
        if getattr(x, "ndim", 0) < 1:
            raise ValueError(f"Flatten expects x with a batch axis, got shape {tuple(getattr(x, 'shape', ()))}")
        self._cache = x.shape
        return x.reshape(x.shape[0], -1)

    def backward(self, dout):
        """Reshape the gradient back to the input's shape."""
        return dout.reshape(self._take_cache())
