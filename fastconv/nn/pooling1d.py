"""1-D pooling layers: MaxPool1d and AvgPool1d ((N, C, L), as PyTorch)."""

from __future__ import annotations

from .._validate import check_bool
from ..functional._pooling import window_settings
from ..functional.pool1d import (avg_pool1d_backward, avg_pool1d_forward, max_pool1d_backward,
                                 max_pool1d_forward)
from .pooling import _MaxPool
from .stateless import FunctionalLayer


class MaxPool1d(_MaxPool):
    """Max pooling over L (see :func:`fastconv.functional.max_pool1d_forward`).

    Ties send the gradient to the first maximum. With ``return_indices`` ``forward`` returns
    ``(out, indices)``, as PyTorch's.

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
    return_indices : bool, default False
        ``forward`` returns ``(out, indices)``, the positions in L of the maxima.

    Raises
    ------
    TypeError, ValueError
        When built with settings that ``max_pool1d_forward`` refuses for any input (a size
        below 1, a padding over half the kernel, a flag that is not a bool).

    Examples
    --------
    >>> import numpy as np
    >>> MaxPool1d(2).forward(np.array([[[1.0, 3.0, 2.0, 0.0]]]))
    array([[[3., 2.]]])
    >>> MaxPool1d(2, return_indices=True).forward(np.array([[[1.0, 3.0, 2.0, 0.0]]]))[1]
    array([[[1, 2]]])
    """

    forward_fn = max_pool1d_forward
    backward_fn = max_pool1d_backward

    def __init__(self, kernel_size: int, stride: int | None = None, padding: int = 0,
                 dilation: int = 1, ceil_mode: bool = False,
                 return_indices: bool = False) -> None:
        window_settings(kernel_size, stride, padding, dilation, ceil_mode, 1)  # now, not at forward
        check_bool("return_indices", return_indices)
        super().__init__(kernel_size=kernel_size, stride=stride, padding=padding,
                         dilation=dilation, ceil_mode=ceil_mode, return_indices=return_indices)


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

    Raises
    ------
    TypeError, ValueError
        When built with settings that ``avg_pool1d_forward`` refuses for any input.

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
        window_settings(kernel_size, stride, padding, 1, ceil_mode, 1)  # now, not at forward
        check_bool("count_include_pad", count_include_pad)
        super().__init__(kernel_size=kernel_size, stride=stride, padding=padding,
                         ceil_mode=ceil_mode, count_include_pad=count_include_pad)
