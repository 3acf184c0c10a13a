"""Batch normalisation layers: BatchNorm1d over (N, D), BatchNorm2d per channel over (N, C, H, W)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar

import numpy

from .._typing import Array, DTypeLike
from .._validate import check_float, check_int, check_real
from ..functional.batchnorm import (batchnorm_backward, batchnorm_forward,
                                    spatial_batchnorm_backward, spatial_batchnorm_forward)
from .init import constant
from .module import Module


class _BatchNorm(Module):
    """Learnable ``gamma``/``beta`` and running statistics (buffers) with PyTorch semantics."""

    ndim: ClassVar[int]
    forward_fn: ClassVar[Callable[..., Any]]
    backward_fn: ClassVar[Callable[..., Any]]

    def __init__(self, num_features: int, eps: float = 1e-5, momentum: float = 0.1,
                 dtype: DTypeLike = numpy.float32, device: str | None = None) -> None:
        super().__init__()
        name = type(self).__name__
        self.num_features = check_int(f"{name}: num_features", num_features, 1)
        # The functional batchnorm's bounds, refused now rather than at the first forward
        if momentum is None:
            raise TypeError(f"{name}: momentum must be a number in [0, 1]; PyTorch's "
                            f"momentum=None (a cumulative average) is not supported")
        self.momentum = check_real(f"{name}: momentum", momentum, 0.0, 1.0)
        self.eps = check_real(f"{name}: eps", eps, 0.0, low_open=True)
        self.add_param("gamma", constant((num_features,), 1.0, dtype, device))
        self.add_param("beta", constant((num_features,), 0.0, dtype, device))
        self.add_buffer("running_mean", constant((num_features,), 0.0, dtype, device))
        self.add_buffer("running_var", constant((num_features,), 1.0, dtype, device))
        self._cache: Any = None

    def forward(self, x: Array) -> Array:
        """Normalise x by the batch statistics (train mode) or the running ones (eval mode).

        In train mode the running statistics are updated too.

        Parameters
        ----------
        x : array
            (N, num_features) for BatchNorm1d, (N, num_features, H, W) for BatchNorm2d.

        Returns
        -------
        array
            x's shape and dtype.

        Raises
        ------
        TypeError
            When x is not a float NumPy or CuPy array.
        ValueError
            When x has another number of dimensions or features.
        """
        check_float(x, "x")  # first: what is no array is a TypeError, not a shape of ()
        if x.ndim != self.ndim or x.shape[1] != self.num_features:
            raise ValueError(f"{type(self).__name__}(num_features={self.num_features}) expects "
                             f"{self.ndim}-D input with {self.num_features} features in axis 1, "
                             f"got shape {tuple(x.shape)}")
        p, b = self.params, self.buffers
        out, self._cache = type(self).forward_fn(
            x, p["gamma"], p["beta"], b["running_mean"], b["running_var"],
            train=self.training, momentum=self.momentum, eps=self.eps)
        return out

    def backward(self, dout: Array) -> Array:
        """dL/dx; stores dL/dgamma and dL/dbeta.

        Parameters
        ----------
        dout : array
            The gradient of the loss with respect to the last output.

        Returns
        -------
        array
            The gradient with respect to the last input.
        """
        dx, self.grads["gamma"], self.grads["beta"] = type(self).backward_fn(dout, self._take_cache())
        return dx

    def extra_repr(self) -> str:
        return f"{self.num_features}, eps={self.eps}, momentum={self.momentum}"


class BatchNorm1d(_BatchNorm):
    """Batch normalisation of (N, D) features (see :func:`fastconv.functional.batchnorm_forward`).

    Parameters
    ----------
    num_features : int
        D.
    eps : float, default 1e-5
        Added to the variance; > 0.
    momentum : float, default 0.1
        The weight of the batch's statistics in the running ones, in [0, 1].
    dtype : {numpy.float32, numpy.float64}, default numpy.float32
        The parameters' and buffers' dtype.
    device : {'cpu', 'gpu', 'auto'}, optional
        Where they live; default :func:`fastconv.backend.default_device`.

    Raises
    ------
    TypeError, ValueError
        When built with a ``num_features`` below 1, a ``momentum`` outside [0, 1] (or None)
        or an ``eps`` not > 0, each named.

    Examples
    --------
    >>> import numpy as np
    >>> layer = BatchNorm1d(2, dtype=np.float64)
    >>> layer.forward(np.array([[1.0, 2.0], [3.0, 6.0]])).round(3)
    array([[-1., -1.],
           [ 1.,  1.]])
    >>> layer.buffers["running_mean"]
    array([0.2, 0.4])
    """

    ndim = 2
    forward_fn = batchnorm_forward
    backward_fn = batchnorm_backward


class BatchNorm2d(_BatchNorm):
    """Spatial batch normalisation of (N, C, H, W) maps, one mean/variance per channel.

    See :func:`fastconv.functional.spatial_batchnorm_forward`.

    Parameters
    ----------
    num_features : int
        C.
    eps : float, default 1e-5
        Added to the variance; > 0.
    momentum : float, default 0.1
        The weight of the batch's statistics in the running ones, in [0, 1].
    dtype : {numpy.float32, numpy.float64}, default numpy.float32
        The parameters' and buffers' dtype.
    device : {'cpu', 'gpu', 'auto'}, optional
        Where they live; default :func:`fastconv.backend.default_device`.

    Raises
    ------
    TypeError, ValueError
        When built with a ``num_features`` below 1, a ``momentum`` outside [0, 1] (or None)
        or an ``eps`` not > 0, each named.

    Examples
    --------
    >>> import numpy as np
    >>> layer = BatchNorm2d(3).eval()
    >>> layer.forward(np.ones((2, 3, 4, 4), np.float32)).shape
    (2, 3, 4, 4)
    """

    ndim = 4
    forward_fn = spatial_batchnorm_forward
    backward_fn = spatial_batchnorm_backward
