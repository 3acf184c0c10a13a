"""Per-sample normalisation layers: LayerNorm over trailing dims, GroupNorm over channel groups.

Unlike batchnorm they keep no running statistics: training and eval mode
compute the same thing, so the layers have no buffers. Their params are
``gamma`` (ones) and ``beta`` (zeros), as PyTorch's ``weight`` and ``bias``,
each left out when the layer is built without it (``elementwise_affine``,
``bias``, ``affine``).
"""

import numpy

from .._validate import check_bool, check_int
from ..functional.normalization import (group_norm_backward, group_norm_forward,
                                        layer_norm_backward, layer_norm_forward)
from .init import constant
from .module import Module


class _Normalization(Module):
    """Optional learnable ``gamma``/``beta`` of ``param_shape`` around one functional op pair."""

    backward_fn = None

    def __init__(self, param_shape, eps, scale, shift, dtype, device):
        super().__init__()
        self.eps = eps
        if scale:
            self.add_param("gamma", constant(param_shape, 1.0, dtype, device))
        if shift:
            self.add_param("beta", constant(param_shape, 0.0, dtype, device))
        self._cache = None

    def _affine(self):
        """(gamma, beta), None for a parameter the layer does not have."""
        return self.params.get("gamma"), self.params.get("beta")

    def backward(self, dout):
        """dL/dx; stores dL/dgamma and dL/dbeta for the parameters the layer has."""
        dx, dgamma, dbeta = type(self).backward_fn(dout, self._take_cache())
        for name, grad in (("gamma", dgamma), ("beta", dbeta)):
            if grad is not None:
                self.grads[name] = grad
        return dx


class LayerNorm(_Normalization):
    """Layer normalisation over the trailing ``normalized_shape`` dims, as ``torch.nn.LayerNorm``.

    ``normalized_shape`` is an int (the last dim, e.g. D for (N, D) features)
    or a tuple of the trailing dims (e.g. (C, H, W) for a whole feature map).
    ``elementwise_affine=False`` gives no params; ``bias=False`` no ``beta``.
    """

    backward_fn = layer_norm_backward

    def __init__(self, normalized_shape, eps=1e-5, elementwise_affine=True, bias=True,
                 dtype=numpy.float32, device=None):
        dims = (normalized_shape,) if not isinstance(normalized_shape, (tuple, list)) \
            else tuple(normalized_shape)
        self.normalized_shape = tuple(check_int(f"LayerNorm: normalized_shape[{i}]", d, 1)
                                      for i, d in enumerate(dims))
        if not self.normalized_shape:
            raise ValueError("LayerNorm: normalized_shape must name at least one dim")
        self.elementwise_affine = check_bool("LayerNorm: elementwise_affine", elementwise_affine)
        bias = check_bool("LayerNorm: bias", bias)  # as PyTorch's: only with elementwise_affine
        super().__init__(self.normalized_shape, eps, self.elementwise_affine,
                         self.elementwise_affine and bias, dtype, device)

    def forward(self, x):
        """Normalise each sample over its trailing ``normalized_shape`` values."""
        out, self._cache = layer_norm_forward(x, self.normalized_shape, *self._affine(),
                                              eps=self.eps)
        return out

    def extra_repr(self):
        return (f"{self.normalized_shape}, eps={self.eps}, "
                f"elementwise_affine={self.elementwise_affine}")


class GroupNorm(_Normalization):
    """Group normalisation of (N, C, *) in ``num_groups`` channel groups (``torch.nn.GroupNorm``).

    ``affine=False`` gives no params.
    """

    backward_fn = group_norm_backward

    def __init__(self, num_groups, num_channels, eps=1e-5, affine=True, dtype=numpy.float32,
                 device=None):
        self.num_groups = check_int("GroupNorm: num_groups", num_groups, 1)
        self.num_channels = check_int("GroupNorm: num_channels", num_channels, 1)
        if num_channels % num_groups:
            raise ValueError(f"GroupNorm: num_groups={num_groups} must divide "
                             f"num_channels={num_channels}")
        self.affine = check_bool("GroupNorm: affine", affine)
        super().__init__((self.num_channels,), eps, self.affine, self.affine, dtype, device)

    def forward(self, x):
        """Normalise each (sample, group) over its channels and positions."""
        out, self._cache = group_norm_forward(x, self.num_groups, *self._affine(), eps=self.eps)
        return out

    def extra_repr(self):
        return f"{self.num_groups}, {self.num_channels}, eps={self.eps}, affine={self.affine}"
