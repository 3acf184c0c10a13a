"""3-D pooling layers: MaxPool3d and AvgPool3d ((N, C, D, H, W), as PyTorch)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TypeAlias

from .._validate import check_bool
from ..functional._pooling import _divisor_override, window_settings
from ..functional.pool3d import (avg_pool3d_backward, avg_pool3d_forward, max_pool3d_backward,
                                 max_pool3d_forward)
from .pooling import _MaxPool
from .stateless import FunctionalLayer

IntOrTriple: TypeAlias = int | Sequence[int]  # one value for D, H and W, or one each


class MaxPool3d(_MaxPool):
    """Max pooling over D, H and W, as ``torch.nn.MaxPool3d``; ``stride`` defaults to
    ``kernel_size``.

    Ties send the gradient to the first maximum in (kd, kh, kw) order; NaN propagates. With
    ``return_indices`` ``forward`` returns ``(out, indices)``.

    Parameters
    ----------
    kernel_size : int or (int, int, int)
    stride : int or (int, int, int), optional
    padding : int or (int, int, int)
        At most half the kernel. Default 0.
    dilation : int or (int, int, int)
        Default 1.
    ceil_mode, return_indices : bool
        Default False.

    Raises
    ------
    TypeError, ValueError
        When built with settings that ``max_pool3d_forward`` refuses for any input (a size
        below 1, a padding over half the kernel, a flag that is not a bool).

    Examples
    --------
    >>> import numpy as np
    >>> pool = MaxPool3d(2)
    >>> out = pool.forward(np.arange(16.0).reshape(1, 1, 2, 2, 4))
    >>> out.reshape(-1), pool.backward(np.ones_like(out)).reshape(-1)[-4:]
    (array([13., 15.]), array([0., 1., 0., 1.]))
    """

    forward_fn = max_pool3d_forward
    backward_fn = max_pool3d_backward

    def __init__(self, kernel_size: IntOrTriple, stride: IntOrTriple | None = None,
                 padding: IntOrTriple = 0, dilation: IntOrTriple = 1, ceil_mode: bool = False,
                 return_indices: bool = False) -> None:
        window_settings(kernel_size, stride, padding, dilation, ceil_mode, 3)  # now, not at forward
        check_bool("return_indices", return_indices)
        super().__init__(kernel_size=kernel_size, stride=stride, padding=padding,
                         dilation=dilation, ceil_mode=ceil_mode, return_indices=return_indices)


class AvgPool3d(FunctionalLayer):
    """Average pooling over D, H and W, as ``torch.nn.AvgPool3d``; ``stride`` defaults to
    ``kernel_size``.

    Parameters
    ----------
    kernel_size : int or (int, int, int)
    stride : int or (int, int, int), optional
    padding : int or (int, int, int)
        Zeros, at most half the kernel. Default 0.
    ceil_mode : bool
        Default False.
    count_include_pad : bool
        Count the padding in the divisor. Default True.
    divisor_override : int, optional
        A fixed nonzero divisor.

    Raises
    ------
    TypeError, ValueError
        When built with settings that ``avg_pool3d_forward`` refuses for any input.

    Examples
    --------
    >>> import numpy as np
    >>> pool = AvgPool3d(2, divisor_override=4)
    >>> pool.forward(np.ones((1, 1, 2, 2, 2))).reshape(-1)
    array([2.])
    """

    forward_fn = avg_pool3d_forward
    backward_fn = avg_pool3d_backward

    def __init__(self, kernel_size: IntOrTriple, stride: IntOrTriple | None = None,
                 padding: IntOrTriple = 0, ceil_mode: bool = False,
                 count_include_pad: bool = True, divisor_override: int | None = None) -> None:
        window_settings(kernel_size, stride, padding, 1, ceil_mode, 3)  # now, not at forward
        check_bool("count_include_pad", count_include_pad)
        if divisor_override is not None:
            _divisor_override(divisor_override)
        super().__init__(kernel_size=kernel_size, stride=stride, padding=padding,
                         ceil_mode=ceil_mode, count_include_pad=count_include_pad,
                         divisor_override=divisor_override)
