"""1-D max and average pooling, forward and backward: the 2-D pools over an image of height 1.

x (N, C, L) is viewed as (N, C, 1, L) and pooled by :mod:`fastconv.functional.pool` with a
window of height 1, so every rule of the 2-D pools holds (ties, NaN, ``ceil_mode``, the
divisor); max pooling's indices are positions in L.
"""

from typing import ClassVar

from .. import _validate
from ._unit_height import UnitHeightCache, backward_1d, drop, lift, single
from .pool import avg_pool2d_backward, avg_pool2d_forward, max_pool2d_backward, max_pool2d_forward


@_validate.op_cache
class MaxPool1dCache(UnitHeightCache):
    """What :func:`max_pool1d_backward` needs: the 2-D max pool's cache."""

    op: ClassVar[str] = "max_pool1d_forward"


@_validate.op_cache
class AvgPool1dCache(UnitHeightCache):
    """What :func:`avg_pool1d_backward` needs: the 2-D average pool's cache."""

    op: ClassVar[str] = "avg_pool1d_forward"


def _window(x, kernel_size, stride, padding):
    """Check x (N, C, L) and the 1-D window; return the 2-D (kernel, stride, padding)."""
    _validate.check_ndim(x, 3, "x", "(N, C, L)")
    kernel = single(kernel_size, "kernel_size", 1)
    stride = kernel if stride is None else single(stride, "stride", 1)
    padding = single(padding, "padding", 0)
    if padding > kernel // 2:
        raise ValueError(f"padding {padding} must be at most half of kernel_size {kernel}")
    return (1, kernel), (1, stride), (0, padding)


def max_pool1d_forward(x, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False,
                       return_indices=False):
    """Max pooling of ``x`` (N, C, L); returns ``(out, cache)``, or ``(out, indices, cache)``.

    As ``torch.nn.functional.max_pool1d``, with the rules of
    :func:`fastconv.functional.pool.max_pool2d_forward` (-inf padding, ties to the first
    maximum, NaN propagates).

    Parameters
    ----------
    x : ndarray
        (N, C, L), float16/32/64, NumPy or CuPy.
    kernel_size : int or (int,)
    stride : int or (int,), optional
        Default kernel_size.
    padding : int or (int,)
        At most half the kernel. Default 0.
    dilation : int or (int,)
        Default 1.
    ceil_mode, return_indices : bool
        Default False.

    Returns
    -------
    out : ndarray
        (N, C, OL).
    indices : ndarray
        With ``return_indices``: int64 (N, C, OL), the position in L of each maximum (-1 for
        a window of padding only).
    cache : MaxPool1dCache

    Raises
    ------
    TypeError, ValueError
        Naming the argument and the shapes.

    Examples
    --------
    >>> import numpy as np
    >>> out, idx, cache = max_pool1d_forward(np.array([[[1., 3, 2, 5, 4]]]), 2, return_indices=True)
    >>> out, idx
    (array([[[3., 5.]]]), array([[[1, 3]]]))
    """
    kernel, stride, padding = _window(x, kernel_size, stride, padding)
    dilation = (1, single(dilation, "dilation", 1))
    result = max_pool2d_forward(lift(x), kernel, stride, padding, dilation,
                                ceil_mode, return_indices)
    out = drop(result[0])
    cache = MaxPool1dCache(result[-1], out.shape, out.dtype)
    if len(result) == 3:
        return out, drop(result[1]), cache
    return out, cache


def max_pool1d_backward(dout, cache):
    """Gradient of :func:`max_pool1d_forward`: each window's gradient goes to its maximum."""
    return backward_1d(dout, cache, MaxPool1dCache, max_pool2d_backward)


def avg_pool1d_forward(x, kernel_size, stride=None, padding=0, ceil_mode=False,
                       count_include_pad=True):
    """Average pooling of ``x`` (N, C, L); returns ``(out, cache)``.

    As ``torch.nn.functional.avg_pool1d``, with the divisor rule of
    :func:`fastconv.functional.pool.avg_pool2d_forward`.

    Parameters
    ----------
    x : ndarray
        (N, C, L), float16/32/64, NumPy or CuPy.
    kernel_size : int or (int,)
    stride : int or (int,), optional
        Default kernel_size.
    padding : int or (int,)
        Zeros, at most half the kernel. Default 0.
    ceil_mode : bool
        Default False.
    count_include_pad : bool
        Count the padding in the divisor. Default True.

    Returns
    -------
    out : ndarray
        (N, C, OL).
    cache : AvgPool1dCache

    Raises
    ------
    TypeError, ValueError
        Naming the argument and the shapes.

    Examples
    --------
    >>> import numpy as np
    >>> out, cache = avg_pool1d_forward(np.array([[[1., 3, 2, 6]]]), 2)
    >>> out
    array([[[2., 4.]]])
    """
    kernel, stride, padding = _window(x, kernel_size, stride, padding)
    out, cache = avg_pool2d_forward(lift(x), kernel, stride, padding, ceil_mode,
                                    count_include_pad)
    out = drop(out)
    return out, AvgPool1dCache(cache, out.shape, out.dtype)


def avg_pool1d_backward(dout, cache):
    """Gradient of :func:`avg_pool1d_forward`: each window spreads dout / divisor evenly."""
    return backward_1d(dout, cache, AvgPool1dCache, avg_pool2d_backward)
