"""Batch normalisation layers: BatchNorm1d over (N, D), BatchNorm2d per channel over (N, C, H, W)."""

import numpy

from .._validate import check_int
from ..functional.batchnorm import (batchnorm_backward, batchnorm_forward,
                                    spatial_batchnorm_backward, spatial_batchnorm_forward)
from .init import constant
from .module import Module


class _BatchNorm(Module):
    """Learnable ``gamma``/``beta`` and running statistics (buffers) with PyTorch semantics."""

    ndim = None
    forward_fn = None
    backward_fn = None

    def __init__(self, num_features, eps=1e-5, momentum=0.1, dtype=numpy.float32, device=None):
        super().__init__()
        self.num_features = check_int(f"{type(self).__name__}: num_features", num_features, 1)
        self.eps = eps
        self.momentum = momentum
        self.add_param("gamma", constant((num_features,), 1.0, dtype, device))
        self.add_param("beta", constant((num_features,), 0.0, dtype, device))
        self.add_buffer("running_mean", constant((num_features,), 0.0, dtype, device))
        self.add_buffer("running_var", constant((num_features,), 1.0, dtype, device))
        self._cache = None

    def forward(self, x):
        """Normalise with batch statistics (training, updating the running ones) or running ones (eval)."""
        if getattr(x, "ndim", None) != self.ndim or x.shape[1] != self.num_features:
            raise ValueError(f"{type(self).__name__}(num_features={self.num_features}) expects "
                             f"{self.ndim}-D input with {self.num_features} features in axis 1, "
                             f"got shape {tuple(getattr(x, 'shape', ()))}")
        p, b = self.params, self.buffers
        out, self._cache = type(self).forward_fn(
            x, p["gamma"], p["beta"], b["running_mean"], b["running_var"],
            train=self.training, momentum=self.momentum, eps=self.eps)
        return out

    def backward(self, dout):
        """dL/dx; stores dL/dgamma and dL/dbeta."""
        dx, self.grads["gamma"], self.grads["beta"] = type(self).backward_fn(dout, self._take_cache())
        return dx

    def extra_repr(self):
        return f"{self.num_features}, eps={self.eps}, momentum={self.momentum}"


class BatchNorm1d(_BatchNorm):
    """Batch normalisation of (N, D) features."""

    ndim = 2
    forward_fn = batchnorm_forward
    backward_fn = batchnorm_backward


class BatchNorm2d(_BatchNorm):
    """Spatial batch normalisation of (N, C, H, W) maps, one mean/variance per channel."""

    ndim = 4
    forward_fn = spatial_batchnorm_forward
    backward_fn = spatial_batchnorm_backward
