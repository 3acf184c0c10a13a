"""1-D pooling layers: MaxPool1d and AvgPool1d ((N, C, L), as PyTorch)."""

from ..functional.pool1d import (avg_pool1d_backward, avg_pool1d_forward, max_pool1d_backward,
                                 max_pool1d_forward)
from .stateless import FunctionalLayer


class MaxPool1d(FunctionalLayer):
    """Max pooling over L; ``stride`` defaults to ``kernel_size``. Ties send the gradient to
    the first maximum."""

    forward_fn = max_pool1d_forward
    backward_fn = max_pool1d_backward

    def __init__(self, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False):
        super().__init__(kernel_size=kernel_size, stride=stride, padding=padding,
                         dilation=dilation, ceil_mode=ceil_mode)


class AvgPool1d(FunctionalLayer):
    """Average pooling over L; ``stride`` defaults to ``kernel_size``."""

    forward_fn = avg_pool1d_forward
    backward_fn = avg_pool1d_backward

    def __init__(self, kernel_size, stride=None, padding=0, ceil_mode=False,
                 count_include_pad=True):
        super().__init__(kernel_size=kernel_size, stride=stride, padding=padding,
                         ceil_mode=ceil_mode, count_include_pad=count_include_pad)
