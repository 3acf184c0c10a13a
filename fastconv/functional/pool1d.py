"""1-D max and average pooling, forward and backward: the 2-D pools over an image of height 1.

x (N, C, L) is viewed as (N, C, 1, L) and pooled by :mod:`fastconv.functional.pool` with a
window of height 1, so every rule of the 2-D pools holds (ties, NaN, ``ceil_mode``, the
divisor); max pooling's indices are positions in L.
"""

from __future__ import annotations

from typing import Any, ClassVar

from .. import _validate
from .._typing import Array
from ..shapes import window_geometry
from ._unit_height import UnitHeightCache, backward_1d, drop, lift, single
from .pool import avg_pool2d_backward, avg_pool2d_forward, max_pool2d_backward, max_pool2d_forward


@_validate.op_cache
class MaxPool1dCache(UnitHeightCache):
    """What :func:`max_pool1d_backward` needs: the 2-D max pool's cache.

    Examples
    --------
    >>> import numpy as np
    >>> max_pool1d_forward(np.zeros((1, 2, 4)), 2)[1].out_shape
    (1, 2, 2)
    """

    op: ClassVar[str] = "max_pool1d_forward"


@_validate.op_cache
class AvgPool1dCache(UnitHeightCache):
    """What :func:`avg_pool1d_backward` needs: the 2-D average pool's cache.

    Examples
    --------
    >>> import numpy as np
    >>> avg_pool1d_forward(np.zeros((1, 2, 4)), 2)[1].out_shape
    (1, 2, 2)
    """

    op: ClassVar[str] = "avg_pool1d_forward"


def _window(x: Array, kernel_size: Any, stride: Any, padding: Any, dilation: Any = 1,
            ceil_mode: Any = False) -> tuple[tuple[int, int], ...]:
    """Check x (N, C, L) and the 1-D window against it; return the 2-D (kernel, stride,
    padding, dilation)."""
    _validate.check_float(x, "x")  # first: what is no array is a TypeError
    _validate.check_ndim(x, 3, "x", "(N, C, L)")
    kernel = single(kernel_size, "kernel_size", 1)
    stride = kernel if stride is None else single(stride, "stride", 1)
    padding = single(padding, "padding", 0)
    if padding > kernel // 2:
        raise ValueError(f"padding {padding} must be at most half of kernel_size {kernel}")
    dilation = single(dilation, "dilation", 1)
    ceil_mode = _validate.check_bool("ceil_mode", ceil_mode)
    # the 1-D geometry: a window that does not fit is named by the length L, not the 2-D width
    window_geometry(x.shape, kernel, stride, padding, dilation, ceil_mode)
    return (1, kernel), (1, stride), (0, padding), (1, dilation)


def max_pool1d_forward(x: Array, kernel_size: int | tuple[int],
                       stride: int | tuple[int] | None = None, padding: int | tuple[int] = 0,
                       dilation: int | tuple[int] = 1, ceil_mode: bool = False,
                       return_indices: bool = False) -> tuple[Any, ...]:
    """Max pooling of ``x`` (N, C, L); returns ``(out, cache)``, or ``(out, indices, cache)``.

    As ``torch.nn.functional.max_pool1d``, with the rules of
    :func:`fastconv.functional.pool.max_pool2d_forward` (-inf padding, ties to the first
    maximum, NaN propagates).

    Parameters
    ----------
    x : ndarray
        (N, C, L), float16/32/64, NumPy or CuPy.
    kernel_size : int or (int,)
        The window.
    stride : int or (int,), optional
        Default kernel_size.
    padding : int or (int,)
        At most half the kernel. Default 0.
    dilation : int or (int,)
        Default 1.
    ceil_mode, return_indices : bool
        Round the output size up, as PyTorch; also return the indices. Default False.

    Returns
    -------
    out : ndarray
        (N, C, OL).
    indices : ndarray
        With ``return_indices``: int64 (N, C, OL), the position in L of each maximum (-1 for
        a window of padding only).
    cache : MaxPool1dCache
        For :func:`max_pool1d_backward`.

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
    kernel, step, pads, spacing = _window(x, kernel_size, stride, padding, dilation, ceil_mode)
    result = max_pool2d_forward(lift(x), kernel, step, pads, spacing, ceil_mode, return_indices)
    out = drop(result[0])
    cache = MaxPool1dCache(result[-1], out.shape, out.dtype)
    if len(result) == 3:
        return out, drop(result[1]), cache
    return out, cache


def max_pool1d_backward(dout: Array, cache: MaxPool1dCache) -> Array:
    """Gradient of :func:`max_pool1d_forward`: each window's gradient goes to its maximum.

    Parameters
    ----------
    dout : array
        (N, C, OL): the gradient of the output, in its dtype.
    cache : MaxPool1dCache
        From :func:`max_pool1d_forward`.

    Returns
    -------
    array
        dx (N, C, L).

    Raises
    ------
    TypeError, ValueError
        A cache from another op; dout unlike the forward's output.

    Examples
    --------
    >>> import numpy as np
    >>> out, cache = max_pool1d_forward(np.array([[[1.0, 3.0, 2.0, 0.0]]]), 2)
    >>> max_pool1d_backward(np.ones((1, 1, 2)), cache)
    array([[[0., 1., 1., 0.]]])
    """
    return backward_1d(dout, cache, MaxPool1dCache, max_pool2d_backward)


def avg_pool1d_forward(x: Array, kernel_size: int | tuple[int],
                       stride: int | tuple[int] | None = None, padding: int | tuple[int] = 0,
                       ceil_mode: bool = False, count_include_pad: bool = True
                       ) -> tuple[Array, AvgPool1dCache]:
    """Average pooling of ``x`` (N, C, L); returns ``(out, cache)``.

    As ``torch.nn.functional.avg_pool1d``, with the divisor rule of
    :func:`fastconv.functional.pool.avg_pool2d_forward`.

    Parameters
    ----------
    x : ndarray
        (N, C, L), float16/32/64, NumPy or CuPy.
    kernel_size : int or (int,)
        The window.
    stride : int or (int,), optional
        Default kernel_size.
    padding : int or (int,)
        Zeros, at most half the kernel. Default 0.
    ceil_mode : bool
        Round the output size up, as PyTorch. Default False.
    count_include_pad : bool
        Count the padding in the divisor. Default True.

    Returns
    -------
    out : ndarray
        (N, C, OL).
    cache : AvgPool1dCache
        For :func:`avg_pool1d_backward`.

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
    kernel, step, pads, _ = _window(x, kernel_size, stride, padding, ceil_mode=ceil_mode)
    out, cache = avg_pool2d_forward(lift(x), kernel, step, pads, ceil_mode, count_include_pad)
    out = drop(out)
    return out, AvgPool1dCache(cache, out.shape, out.dtype)


def avg_pool1d_backward(dout: Array, cache: AvgPool1dCache) -> Array:
    """Gradient of :func:`avg_pool1d_forward`: each window spreads dout / divisor evenly.

    Parameters
    ----------
    dout : array
        (N, C, OL): the gradient of the output, in its dtype.
    cache : AvgPool1dCache
        From :func:`avg_pool1d_forward`.

    Returns
    -------
    array
        dx (N, C, L).

    Raises
    ------
    TypeError, ValueError
        A cache from another op; dout unlike the forward's output.

    Examples
    --------
    >>> import numpy as np
    >>> out, cache = avg_pool1d_forward(np.zeros((1, 1, 4)), 2)
    >>> avg_pool1d_backward(np.ones((1, 1, 2)), cache)
    array([[[0.5, 0.5, 0.5, 0.5]]])
    """
    return backward_1d(dout, cache, AvgPool1dCache, avg_pool2d_backward)
