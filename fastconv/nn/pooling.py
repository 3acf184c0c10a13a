"""Pooling layers (NCHW, as PyTorch): max, average, adaptive average and adaptive max pooling,
and max unpooling."""

from ..functional.pool import (adaptive_avg_pool2d_backward, adaptive_avg_pool2d_forward,
                               adaptive_max_pool2d_backward, adaptive_max_pool2d_forward,
                               avg_pool2d_backward, avg_pool2d_forward, max_pool2d_backward,
                               max_pool2d_forward)
from ..functional.unpool import max_unpool2d_backward, max_unpool2d_forward
from .stateless import FunctionalLayer


class _MaxPool(FunctionalLayer):
    """A max pool whose ``forward`` returns ``(out, indices)`` with ``return_indices``, as PyTorch's."""

    def forward(self, x):
        """Pool ``x``; keeps the cache for ``backward``."""
        *outputs, self._cache = type(self).forward_fn(x, **self.options)
        return tuple(outputs) if len(outputs) > 1 else outputs[0]


class MaxPool2d(_MaxPool):
    """Max pooling; ``stride`` defaults to ``kernel_size``. Ties send the gradient to the first maximum.

    ``return_indices`` (last, after fastconv's ``ceil_mode``) makes ``forward``
    return ``(out, indices)`` for :class:`MaxUnpool2d`.
    """

    forward_fn = max_pool2d_forward
    backward_fn = max_pool2d_backward

    def __init__(self, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False,
                 return_indices=False):
        super().__init__(kernel_size=kernel_size, stride=stride, padding=padding,
                         dilation=dilation, ceil_mode=ceil_mode, return_indices=return_indices)


class AvgPool2d(FunctionalLayer):
    """Average pooling; ``stride`` defaults to ``kernel_size``; ``divisor_override`` fixes the divisor."""

    forward_fn = avg_pool2d_forward
    backward_fn = avg_pool2d_backward

    def __init__(self, kernel_size, stride=None, padding=0, ceil_mode=False,
                 count_include_pad=True, divisor_override=None):
        super().__init__(kernel_size=kernel_size, stride=stride, padding=padding,
                         ceil_mode=ceil_mode, count_include_pad=count_include_pad,
                         divisor_override=divisor_override)


class AdaptiveAvgPool2d(FunctionalLayer):
    """Average pooling to a fixed ``output_size`` (int or (OH, OW)) whatever the input size."""

    forward_fn = adaptive_avg_pool2d_forward
    backward_fn = adaptive_avg_pool2d_backward

    def __init__(self, output_size):
        super().__init__(output_size=output_size)


class AdaptiveMaxPool2d(_MaxPool):
    """Max pooling to a fixed ``output_size`` (int or (OH, OW)); ``return_indices`` as MaxPool2d's."""

    forward_fn = adaptive_max_pool2d_forward
    backward_fn = adaptive_max_pool2d_backward

    def __init__(self, output_size, return_indices=False):
        super().__init__(output_size=output_size, return_indices=return_indices)


class MaxUnpool2d(FunctionalLayer):
    """The values of a max pool put back at their indices in zero planes (``torch.nn.MaxUnpool2d``).

    ``forward(x, indices, output_size=None)`` takes the indices of a
    ``MaxPool2d(..., return_indices=True)`` with the same geometry; values
    sharing an index are summed (see :mod:`fastconv.functional.unpool`).
    """

    forward_fn = max_unpool2d_forward
    backward_fn = max_unpool2d_backward

    def __init__(self, kernel_size, stride=None, padding=0):
        super().__init__(kernel_size=kernel_size, stride=stride, padding=padding)

    def forward(self, x, indices, output_size=None):
        """Unpool ``x`` with ``indices``; keeps the cache for ``backward``."""
        out, self._cache = max_unpool2d_forward(x, indices, output_size=output_size,
                                                **self.options)
        return out
