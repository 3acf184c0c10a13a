"""Per-sample normalisation layers: LayerNorm over trailing dims, GroupNorm over channel groups.

Unlike batchnorm they keep no running statistics: training and eval mode
compute the same thing, so the layers have no buffers. Their params are
``gamma`` (ones) and ``beta`` (zeros), as PyTorch's ``weight`` and ``bias``,
each left out when the layer is built without it (``elementwise_affine``,
``bias``, ``affine``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, ClassVar

import numpy

from .._typing import Array, DTypeLike
from .._validate import check_bool, check_int, check_real
from ..functional.normalization import (group_norm_backward, group_norm_forward,
                                        layer_norm_backward, layer_norm_forward)
from .init import constant
from .module import Module


class _Normalization(Module):
    """Optional learnable ``gamma``/``beta`` of ``param_shape`` around one functional op pair."""

    backward_fn: ClassVar[Callable[..., Any]]

    def __init__(self, param_shape: tuple[int, ...], eps: float, scale: bool, shift: bool,
                 dtype: DTypeLike, device: str | None) -> None:
        super().__init__()
        # the functional ops' bound (eps > 0), refused now rather than at the first forward
        self.eps = check_real(f"{type(self).__name__}: eps", eps, 0.0, low_open=True)
        if scale:
            self.add_param("gamma", constant(param_shape, 1.0, dtype, device))
        if shift:
            self.add_param("beta", constant(param_shape, 0.0, dtype, device))
        self._cache: Any = None

    def _affine(self) -> tuple[Array | None, Array | None]:
        """(gamma, beta), None for a parameter the layer does not have."""
        return self.params.get("gamma"), self.params.get("beta")

    def backward(self, dout: Array) -> Array:
        """dL/dx; stores dL/dgamma and dL/dbeta for the parameters the layer has.

        Parameters
        ----------
        dout : array
            The gradient of the loss with respect to the last output.

        Returns
        -------
        array
            The gradient with respect to the last input.
        """
        dx, dgamma, dbeta = type(self).backward_fn(dout, self._take_cache())
        for name, grad in (("gamma", dgamma), ("beta", dbeta)):
            if grad is not None:
                self.grads[name] = grad
        return dx


class LayerNorm(_Normalization):
    """Layer normalisation over the trailing ``normalized_shape`` dims, as ``torch.nn.LayerNorm``.

    See :func:`fastconv.functional.layer_norm_forward`.

    Parameters
    ----------
    normalized_shape : int or sequence of int
        The last dim (e.g. D for (N, D) features) or the trailing dims (e.g.
        (C, H, W) for a whole feature map).
    eps : float, default 1e-5
        Added to the variance; > 0.
    elementwise_affine : bool, default True
        False: no params.
    bias : bool, default True
        False: no ``beta``.
    dtype : {numpy.float32, numpy.float64}, default numpy.float32
        The parameters' dtype.
    device : {'cpu', 'gpu', 'auto'}, optional
        Where they live; default :func:`fastconv.backend.default_device`.

    Raises
    ------
    ValueError
        When ``normalized_shape`` is empty or holds a dim below 1, or ``eps`` is not > 0.
    TypeError
        When it holds a non-int, ``eps`` is not a real number, or a flag is not a bool.

    Examples
    --------
    >>> import numpy as np
    >>> LayerNorm(2, dtype=np.float64).forward(np.array([[1.0, 3.0]])).round(3)
    array([[-1.,  1.]])
    """

    backward_fn = layer_norm_backward

    def __init__(self, normalized_shape: int | Sequence[int], eps: float = 1e-5,
                 elementwise_affine: bool = True, bias: bool = True,
                 dtype: DTypeLike = numpy.float32, device: str | None = None) -> None:
        dims = (tuple(normalized_shape) if isinstance(normalized_shape, (tuple, list))
                else (normalized_shape,))
        self.normalized_shape = tuple(check_int(f"LayerNorm: normalized_shape[{i}]", d, 1)
                                      for i, d in enumerate(dims))
        if not self.normalized_shape:
            raise ValueError("LayerNorm: normalized_shape must name at least one dim")
        self.elementwise_affine = check_bool("LayerNorm: elementwise_affine", elementwise_affine)
        bias = check_bool("LayerNorm: bias", bias)  # as PyTorch's: only with elementwise_affine
        super().__init__(self.normalized_shape, eps, self.elementwise_affine,
                         self.elementwise_affine and bias, dtype, device)

    def forward(self, x: Array) -> Array:
        """Normalise each sample over its trailing ``normalized_shape`` values.

        Parameters
        ----------
        x : array
            ``(N, ..., *normalized_shape)``.

        Returns
        -------
        array
            x's shape and dtype.
        """
        out, self._cache = layer_norm_forward(x, self.normalized_shape, *self._affine(),
                                              eps=self.eps)
        return out

    def extra_repr(self) -> str:
        return (f"{self.normalized_shape}, eps={self.eps}, "
                f"elementwise_affine={self.elementwise_affine}")


class GroupNorm(_Normalization):
    """Group normalisation of ``(N, C, *)`` in ``num_groups`` channel groups (``torch.nn.GroupNorm``).

    See :func:`fastconv.functional.group_norm_forward`.

    Parameters
    ----------
    num_groups : int
        The groups, dividing ``num_channels``.
    num_channels : int
        C.
    eps : float, default 1e-5
        Added to the variance; > 0.
    affine : bool, default True
        False: no params.
    dtype : {numpy.float32, numpy.float64}, default numpy.float32
        The parameters' dtype.
    device : {'cpu', 'gpu', 'auto'}, optional
        Where they live; default :func:`fastconv.backend.default_device`.

    Raises
    ------
    ValueError
        When ``num_groups`` does not divide ``num_channels``, either is below 1, or ``eps``
        is not > 0.
    TypeError
        When either is not an int, ``eps`` not a real number, or ``affine`` not a bool.

    Examples
    --------
    >>> import numpy as np
    >>> GroupNorm(2, 4).forward(np.ones((3, 4, 5, 5), np.float32)).shape
    (3, 4, 5, 5)
    """

    backward_fn = group_norm_backward

    def __init__(self, num_groups: int, num_channels: int, eps: float = 1e-5, affine: bool = True,
                 dtype: DTypeLike = numpy.float32, device: str | None = None) -> None:
        self.num_groups = check_int("GroupNorm: num_groups", num_groups, 1)
        self.num_channels = check_int("GroupNorm: num_channels", num_channels, 1)
        if num_channels % num_groups:
            raise ValueError(f"GroupNorm: num_groups={num_groups} must divide "
                             f"num_channels={num_channels}")
        self.affine = check_bool("GroupNorm: affine", affine)
        super().__init__((self.num_channels,), eps, self.affine, self.affine, dtype, device)

    def forward(self, x: Array) -> Array:
        """Normalise each (sample, group) over its channels and positions.

        Parameters
        ----------
        x : array
            ``(N, num_channels, *)``.

        Returns
        -------
        array
            x's shape and dtype.
        """
        out, self._cache = group_norm_forward(x, self.num_groups, *self._affine(), eps=self.eps)
        return out

    def extra_repr(self) -> str:
        return f"{self.num_groups}, {self.num_channels}, eps={self.eps}, affine={self.affine}"
