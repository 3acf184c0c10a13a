"""Per-sample normalisation layers: LayerNorm over trailing dims, GroupNorm over channel groups.

Unlike batchnorm they keep no running statistics: training and eval mode
compute the same thing, so the layers have params (``gamma`` ones, ``beta``
zeros) and no buffers.
"""

import numpy

from .._validate import check_int
from ..functional.normalization import (groupnorm_backward, groupnorm_forward,
                                        layernorm_backward, layernorm_forward)
from .init import constant
from .module import Module


class _Normalization(Module):
    """Learnable ``gamma``/``beta`` of ``param_shape`` around one functional op pair."""

    backward_fn = None

    def __init__(self, param_shape, eps, dtype, device):
        super().__init__()
        self.eps = eps
        self.add_param("gamma", constant(param_shape, 1.0, dtype, device))
        self.add_param("beta", constant(param_shape, 0.0, dtype, device))
        self._cache = None

    def backward(self, dout):
        """dL/dx; stores dL/dgamma and dL/dbeta."""
        dx, self.grads["gamma"], self.grads["beta"] = type(self).backward_fn(
            dout, self._take_cache())
        return dx


class LayerNorm(_Normalization):
    """Layer normalisation over the trailing ``normalized_shape`` dims, as ``torch.nn.LayerNorm``.

    ``normalized_shape`` is an int (the last dim, e.g. D for (N, D) features)
    or a tuple of the trailing dims (e.g. (C, H, W) for a whole feature map).
    """

    backward_fn = layernorm_backward

    def __init__(self, normalized_shape, eps=1e-5, dtype=numpy.float32, device=None):
        dims = (normalized_shape,) if not isinstance(normalized_shape, (tuple, list)) \
            else tuple(normalized_shape)
        self.normalized_shape = tuple(check_int(f"LayerNorm: normalized_shape[{i}]", d, 1)
                                      for i, d in enumerate(dims))
        if not self.normalized_shape:
            raise ValueError("LayerNorm: normalized_shape must name at least one dim")
        super().__init__(self.normalized_shape, eps, dtype, device)

    def forward(self, x):
        """Normalise each sample over its trailing ``normalized_shape`` values."""
        p = self.params
        out, self._cache = layernorm_forward(x, p["gamma"], p["beta"], eps=self.eps)
        return out

    def extra_repr(self):
        return f"{self.normalized_shape}, eps={self.eps}"


class GroupNorm(_Normalization):
    """Group normalisation of (N, C, *) in ``num_groups`` channel groups (``torch.nn.GroupNorm``)."""

    backward_fn = groupnorm_backward

    def __init__(self, num_groups, num_channels, eps=1e-5, dtype=numpy.float32, device=None):
        self.num_groups = check_int("GroupNorm: num_groups", num_groups, 1)
        self.num_channels = check_int("GroupNorm: num_channels", num_channels, 1)
        if num_channels % num_groups:
            raise ValueError(f"GroupNorm: num_groups={num_groups} must divide "
                             f"num_channels={num_channels}")
        super().__init__((self.num_channels,), eps, dtype, device)

    def forward(self, x):
        """Normalise each (sample, group) over its channels and positions."""
        p = self.params
        out, self._cache = groupnorm_forward(x, self.num_groups, p["gamma"], p["beta"],
                                             eps=self.eps)
        return out

    def extra_repr(self):
        return f"{self.num_groups}, {self.num_channels}, eps={self.eps}"
