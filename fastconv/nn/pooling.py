"""Pooling layers: MaxPool2d, AvgPool2d and AdaptiveAvgPool2d (NCHW, as PyTorch)."""

from ..functional.pool import (adaptive_avg_pool2d_backward, adaptive_avg_pool2d_forward,
                               avg_pool2d_backward, avg_pool2d_forward, max_pool2d_backward,
                               max_pool2d_forward)
from .stateless import FunctionalLayer


class MaxPool2d(FunctionalLayer):
    """Max pooling; ``stride`` defaults to ``kernel_size``. Ties send the gradient to the first maximum."""

    forward_fn = max_pool2d_forward
    backward_fn = max_pool2d_backward

    def __init__(self, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False):
        super().__init__(kernel_size=kernel_size, stride=stride, padding=padding,
                         dilation=dilation, ceil_mode=ceil_mode)


class AvgPool2d(FunctionalLayer):
    """Average pooling; ``stride`` defaults to ``kernel_size``."""

    forward_fn = avg_pool2d_forward
    backward_fn = avg_pool2d_backward

    def __init__(self, kernel_size, stride=None, padding=0, ceil_mode=False,
                 count_include_pad=True):
        super().__init__(kernel_size=kernel_size, stride=stride, padding=padding,
                         ceil_mode=ceil_mode, count_include_pad=count_include_pad)


class AdaptiveAvgPool2d(FunctionalLayer):
    """Average pooling to a fixed ``output_size`` (int or (OH, OW)) whatever the input size."""

    forward_fn = adaptive_avg_pool2d_forward
    backward_fn = adaptive_avg_pool2d_backward

    def __init__(self, output_size):
        super().__init__(output_size=output_size)
