"""1-D pooling layers: MaxPool1d and AvgPool1d ((N, C, L), as PyTorch)."""

from __future__ import annotations

from ..functional.pool1d import (avg_pool1d_backward, avg_pool1d_forward, max_pool1d_backward,
                                 max_pool1d_forward)
from .stateless import FunctionalLayer


class MaxPool1d(FunctionalLayer):
    """Max pooling over L (see :func:`fastconv.functional.max_pool1d_forward`).

    Ties send the gradient to the first maximum.

    Parameters
    ----------
    kernel_size : int
        The window.
    stride : int, optional
        Defaults to ``kernel_size``.
    padding : int, default 0
        -inf padding on both ends.
    dilation : int, default 1
        The spacing of the window's taps.
    ceil_mode : bool, default False
        Round the output size up, as PyTorch.

    Examples
    --------
    >>> import numpy as np
    >>> MaxPool1d(2).forward(np.array([[[1.0, 3.0, 2.0, 0.0]]]))
    array([[[3., 2.]]])
    """

    forward_fn = max_pool1d_forward
    backward_fn = max_pool1d_backward

    def __init__(self, kernel_size: int, stride: int | None = None, padding: int = 0,
                 dilation: int = 1, ceil_mode: bool = False) -> None:
        super().__init__(kernel_size=kernel_size, stride=stride, padding=padding,
                         dilation=dilation, ceil_mode=ceil_mode)


class AvgPool1d(FunctionalLayer):
    """Average pooling over L (see :func:`fastconv.functional.avg_pool1d_forward`).

    Parameters
    ----------
    kernel_size : int
        The window.
    stride : int, optional
        Defaults to ``kernel_size``.
    padding : int, default 0
        Zero padding on both ends.
    ceil_mode : bool, default False
        Round the output size up, as PyTorch.
    count_include_pad : bool, default True
        Count the padded cells in the divisor.

    Examples
    --------
    >>> import numpy as np
    >>> AvgPool1d(2).forward(np.array([[[1.0, 3.0, 2.0, 0.0]]]))
    array([[[2., 1.]]])
    """

    forward_fn = avg_pool1d_forward
    backward_fn = avg_pool1d_backward

    def __init__(self, kernel_size: int, stride: int | None = None, padding: int = 0,
                 ceil_mode: bool = False, count_include_pad: bool = True) -> None:
        super().__init__(kernel_size=kernel_size, stride=stride, padding=padding,
                         ceil_mode=ceil_mode, count_include_pad=count_include_pad)
