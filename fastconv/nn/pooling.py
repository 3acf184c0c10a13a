"""Pooling layers (NCHW, as PyTorch): max, average, adaptive average and adaptive max pooling,
and max unpooling."""

from __future__ import annotations

from typing import Any

from .._typing import Array, IntPair, Padding2d
from .._validate import check_bool
from ..functional._pooling import _divisor_override, pool_settings, window_settings
from ..functional.adaptive_pool import check_adaptive_output_size
from ..functional.pool import (adaptive_avg_pool2d_backward, adaptive_avg_pool2d_forward,
                               adaptive_max_pool2d_backward, adaptive_max_pool2d_forward,
                               avg_pool2d_backward, avg_pool2d_forward, max_pool2d_backward,
                               max_pool2d_forward)
from ..functional.unpool import max_unpool2d_backward, max_unpool2d_forward
from .stateless import FunctionalLayer


class _MaxPool(FunctionalLayer):
    """A max pool whose ``forward`` returns ``(out, indices)`` with ``return_indices``, as PyTorch's."""

    def forward(self, x: Array) -> Any:
        """Pool ``x``; keeps the cache for ``backward``.

        Parameters
        ----------
        x : array
            (N, C, H, W).

        Returns
        -------
        array or tuple of array
            The pooled maps; ``(out, indices)`` with ``return_indices``.
        """
        *outputs, self._cache = type(self).forward_fn(x, **self.options)
        return tuple(outputs) if len(outputs) > 1 else outputs[0]


class MaxPool2d(_MaxPool):
    """Max pooling (see :func:`fastconv.functional.max_pool2d_forward`).

    Ties send the gradient to the first maximum.

    Parameters
    ----------
    kernel_size : int or pair of int
        The window (KH, KW).
    stride : int or pair of int, optional
        Defaults to ``kernel_size``.
    padding : int or pair of int, default 0
        -inf padding on both sides of each axis.
    dilation : int or pair of int, default 1
        The spacing of the window's taps.
    ceil_mode : bool, default False
        Round the output size up, as PyTorch.
    return_indices : bool, default False
        ``forward`` returns ``(out, indices)``, for :class:`MaxUnpool2d`
        (last, after fastconv's ``ceil_mode``).

    Raises
    ------
    TypeError, ValueError
        When built with settings that ``max_pool2d_forward`` refuses for any input (a size
        below 1, a padding over half the kernel, a flag that is not a bool).

    Examples
    --------
    >>> import numpy as np
    >>> MaxPool2d(2).forward(np.arange(16.0).reshape(1, 1, 4, 4))[0, 0]
    array([[ 5.,  7.],
           [13., 15.]])
    """

    forward_fn = max_pool2d_forward
    backward_fn = max_pool2d_backward

    def __init__(self, kernel_size: IntPair, stride: IntPair | None = None, padding: IntPair = 0,
                 dilation: IntPair = 1, ceil_mode: bool = False,
                 return_indices: bool = False) -> None:
        window_settings(kernel_size, stride, padding, dilation, ceil_mode)  # now, not at forward
        check_bool("return_indices", return_indices)
        super().__init__(kernel_size=kernel_size, stride=stride, padding=padding,
                         dilation=dilation, ceil_mode=ceil_mode, return_indices=return_indices)


class AvgPool2d(FunctionalLayer):
    """Average pooling (see :func:`fastconv.functional.avg_pool2d_forward`).

    Parameters
    ----------
    kernel_size : int or pair of int
        The window (KH, KW).
    stride : int or pair of int, optional
        Defaults to ``kernel_size``.
    padding : int or pair of int, default 0
        Zero padding on both sides of each axis.
    ceil_mode : bool, default False
        Round the output size up, as PyTorch.
    count_include_pad : bool, default True
        Count the padded cells in the divisor.
    divisor_override : int, optional
        Divide every window's sum by this instead.

    Raises
    ------
    TypeError, ValueError
        When built with settings that ``avg_pool2d_forward`` refuses for any input.

    Examples
    --------
    >>> import numpy as np
    >>> AvgPool2d(2).forward(np.arange(16.0).reshape(1, 1, 4, 4))[0, 0]
    array([[ 2.5,  4.5],
           [10.5, 12.5]])
    """

    forward_fn = avg_pool2d_forward
    backward_fn = avg_pool2d_backward

    def __init__(self, kernel_size: IntPair, stride: IntPair | None = None, padding: IntPair = 0,
                 ceil_mode: bool = False, count_include_pad: bool = True,
                 divisor_override: int | None = None) -> None:
        window_settings(kernel_size, stride, padding, 1, ceil_mode)  # now, not at forward
        check_bool("count_include_pad", count_include_pad)
        if divisor_override is not None:
            _divisor_override(divisor_override)
        super().__init__(kernel_size=kernel_size, stride=stride, padding=padding,
                         ceil_mode=ceil_mode, count_include_pad=count_include_pad,
                         divisor_override=divisor_override)


class AdaptiveAvgPool2d(FunctionalLayer):
    """Average pooling to a fixed output size, whatever the input size.

    Parameters
    ----------
    output_size : int or pair of int
        (OH, OW); 1 is global average pooling.

    Raises
    ------
    TypeError, ValueError
        When built with an ``output_size`` that is malformed, below 1, or too large for any
        input (:func:`fastconv.functional.adaptive_pool.check_output_size`).

    Examples
    --------
    >>> import numpy as np
    >>> AdaptiveAvgPool2d(1).forward(np.arange(8.0).reshape(1, 2, 2, 2)).ravel()
    array([1.5, 5.5])
    """

    forward_fn = adaptive_avg_pool2d_forward
    backward_fn = adaptive_avg_pool2d_backward

    def __init__(self, output_size: IntPair) -> None:
        check_adaptive_output_size(output_size)  # refused now, not at forward
        super().__init__(output_size=output_size)


class AdaptiveMaxPool2d(_MaxPool):
    """Max pooling to a fixed output size, whatever the input size.

    Parameters
    ----------
    output_size : int or pair of int
        (OH, OW).
    return_indices : bool, default False
        ``forward`` returns ``(out, indices)``, as :class:`MaxPool2d`'s.

    Raises
    ------
    TypeError, ValueError
        As :class:`AdaptiveAvgPool2d`, and for a ``return_indices`` that is not a bool.

    Examples
    --------
    >>> import numpy as np
    >>> AdaptiveMaxPool2d(1).forward(np.arange(8.0).reshape(1, 2, 2, 2)).ravel()
    array([3., 7.])
    """

    forward_fn = adaptive_max_pool2d_forward
    backward_fn = adaptive_max_pool2d_backward

    def __init__(self, output_size: IntPair, return_indices: bool = False) -> None:
        check_adaptive_output_size(output_size)  # refused now, not at forward
        check_bool("return_indices", return_indices)
        super().__init__(output_size=output_size, return_indices=return_indices)


class MaxUnpool2d(FunctionalLayer):
    """The values of a max pool put back at their indices in zero planes (``torch.nn.MaxUnpool2d``).

    ``forward(x, indices, output_size=None)`` takes the indices of a
    ``MaxPool2d(..., return_indices=True)`` with the same geometry; values
    sharing an index are summed (see :mod:`fastconv.functional.unpool`).

    Parameters
    ----------
    kernel_size : int or pair of int
        The pool's window.
    stride : int or pair of int, optional
        The pool's stride; defaults to ``kernel_size``.
    padding : int or pair of int, default 0
        The pool's padding.

    Examples
    --------
    >>> import numpy as np
    >>> x = np.array([[[[1.0, 3.0], [2.0, 0.0]]]])
    >>> out, indices = MaxPool2d(2, return_indices=True).forward(x)
    >>> MaxUnpool2d(2).forward(out, indices)[0, 0]
    array([[0., 3.],
           [0., 0.]])
    """

    forward_fn = max_unpool2d_forward
    backward_fn = max_unpool2d_backward

    def __init__(self, kernel_size: IntPair, stride: IntPair | None = None,
                 padding: Padding2d = 0) -> None:
        pool_settings(kernel_size, stride, padding)  # refused now, not at the first forward
        super().__init__(kernel_size=kernel_size, stride=stride, padding=padding)

    # It takes the indices too: not a drop-in for a one-input layer's forward.
    def forward(self, x: Array, indices: Array,  # type: ignore[override]
                output_size: Any = None) -> Array:
        """Unpool ``x`` with ``indices``; keeps the cache for ``backward``.

        Parameters
        ----------
        x : array
            (N, C, h, w): the pooled values.
        indices : array
            Their flat indices in each (H, W) plane, int64, as the pool returned them.
        output_size : sequence of int, optional
            (H, W), or a shape ending in them; defaults to the pool's inverse.

        Returns
        -------
        array
            (N, C, H, W).
        """
        out, self._cache = max_unpool2d_forward(x, indices, output_size=output_size,
                                                **self.options)
        return out
