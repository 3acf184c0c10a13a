"""3-D max and average pooling, forward and backward, on (N, C, D, H, W) arrays.

As ``torch.nn.functional.max_pool3d`` and ``avg_pool3d``, with every rule of the 2-D pools
(:mod:`fastconv.functional.pool`: -inf padding that never wins, ties to the first maximum in
row-major window order over (kd, kh, kw), NaN propagating with its gradient to the window's
first NaN, ``ceil_mode``'s last window, the divisor). The geometry is the one
:class:`fastconv.shapes.WindowGeometry` of every pool, with three spatial axes; on the CPU the
2-D pools' N-dimensional passes run them (:mod:`fastconv._cpu.pool`), on the GPU their own CUDA
kernels (:mod:`fastconv._gpu.pool3d`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar, TypeAlias

from .. import _validate
from .._typing import Array
from ._pooling import (WindowMaxCache, WindowMeanCache, avg_pool, avg_pool_backward, max_pool,
                       max_pool_backward, pool_geometry)

IntOrTriple: TypeAlias = int | Sequence[int]  # one value for D, H and W, or one each


@_validate.op_cache
class MaxPool3dCache(WindowMaxCache):
    """What :func:`max_pool3d_backward` needs: the input shape and dtype, the geometry and each
    window's argmax (its flat kernel offset (kd*KH + kh)*KW + kw, int32).

    Examples
    --------
    >>> import numpy as np
    >>> _, cache = max_pool3d_forward(np.zeros((1, 1, 2, 2, 2)), 2)
    >>> cache.op, cache.geometry.out
    ('max_pool3d_forward', (1, 1, 1))
    """

    op: ClassVar[str] = "max_pool3d_forward"


@_validate.op_cache
class AvgPool3dCache(WindowMeanCache):
    """What :func:`avg_pool3d_backward` needs: the input shape and dtype, the geometry and each
    window's divisor.

    Examples
    --------
    >>> import numpy as np
    >>> _, cache = avg_pool3d_forward(np.zeros((1, 1, 2, 2, 2)), 2)
    >>> cache.op, cache.divisor
    ('avg_pool3d_forward', array([[[8.]]]))
    """

    op: ClassVar[str] = "avg_pool3d_forward"


def max_pool3d_forward(x: Array, kernel_size: IntOrTriple, stride: IntOrTriple | None = None,
                       padding: IntOrTriple = 0, dilation: IntOrTriple = 1,
                       ceil_mode: bool = False, return_indices: bool = False) -> tuple:
    """Max pooling of ``x`` (N, C, D, H, W); returns ``(out, cache)``, or ``(out, indices, cache)``.

    As ``torch.nn.functional.max_pool3d``.

    Parameters
    ----------
    x : ndarray
        (N, C, D, H, W), float16/32/64, NumPy or CuPy; D, H and W at least 1.
    kernel_size : int or (int, int, int)
        (KD, KH, KW), each at least 1.
    stride : int or (int, int, int), optional
        Default kernel_size.
    padding : int or (int, int, int)
        -inf on both sides of each axis, at most half the kernel. Default 0.
    dilation : int or (int, int, int)
        Default 1.
    ceil_mode : bool
        Round the output size up, keeping a last window that starts inside the input or its
        left padding. Default False.
    return_indices : bool
        Also return the indices. Default False.

    Returns
    -------
    out : ndarray
        (N, C, OD, OH, OW), x's dtype.
    indices : ndarray
        With ``return_indices`` only: int64 (N, C, OD, OH, OW), the flat position
        ``(d * H + h) * W + w`` of each maximum in its input volume, as PyTorch's; -1 for a
        window of padding only.
    cache : MaxPool3dCache
        For :func:`max_pool3d_backward`.

    Raises
    ------
    TypeError, ValueError
        Naming the argument and the shapes: x not 5-D or not float, a malformed or
        out-of-range window argument, padding above half the kernel, a kernel larger than the
        padded input, a non-bool flag.

    Examples
    --------
    >>> import numpy as np
    >>> x = np.arange(8.0).reshape(1, 1, 2, 2, 2)
    >>> out, indices, cache = max_pool3d_forward(x, (2, 1, 2), return_indices=True)
    >>> out[0, 0], indices[0, 0]
    (array([[[5.],
            [7.]]]), array([[[5],
            [7]]]))
    """
    geometry = pool_geometry(x, kernel_size, stride, padding, dilation, ceil_mode, ndim=3)
    return max_pool(x, geometry, return_indices, MaxPool3dCache, "pool3d")


def max_pool3d_backward(dout: Array, cache: MaxPool3dCache) -> Array:
    """Gradient of :func:`max_pool3d_forward`: each window's gradient goes to its maximum.

    A cell that is the maximum of several (overlapping) windows sums their gradients.

    Parameters
    ----------
    dout : ndarray
        The gradient of the pooled output, shaped and typed like it.
    cache : MaxPool3dCache
        From :func:`max_pool3d_forward`.

    Returns
    -------
    ndarray
        dx (N, C, D, H, W), dout's dtype.

    Raises
    ------
    TypeError, ValueError
        A cache from another op; dout unlike the pooled output.

    Examples
    --------
    >>> import numpy as np
    >>> out, cache = max_pool3d_forward(np.arange(8.0).reshape(1, 1, 2, 2, 2), 2)
    >>> max_pool3d_backward(np.ones_like(out), cache).reshape(-1)
    array([0., 0., 0., 0., 0., 0., 0., 1.])
    """
    return max_pool_backward(dout, cache, MaxPool3dCache, "pool3d")


def avg_pool3d_forward(x: Array, kernel_size: IntOrTriple, stride: IntOrTriple | None = None,
                       padding: IntOrTriple = 0, ceil_mode: bool = False,
                       count_include_pad: bool = True,
                       divisor_override: int | None = None) -> tuple[Array, AvgPool3dCache]:
    """Average pooling of ``x`` (N, C, D, H, W); returns ``(out, cache)``.

    As ``torch.nn.functional.avg_pool3d``: zero padding, ``count_include_pad`` counts it in
    the divisor, and a ``ceil_mode`` window's divisor stops at the padded border.

    Parameters
    ----------
    x : ndarray
        (N, C, D, H, W), float16/32/64, NumPy or CuPy; D, H and W at least 1.
    kernel_size : int or (int, int, int)
        (KD, KH, KW), each at least 1.
    stride : int or (int, int, int), optional
        Default kernel_size.
    padding : int or (int, int, int)
        Zeros on both sides of each axis, at most half the kernel. Default 0.
    ceil_mode : bool
        Default False.
    count_include_pad : bool
        Count the padding in the divisor. Default True.
    divisor_override : int, optional
        Divide every window's sum by this nonzero int instead of its size.

    Returns
    -------
    out : ndarray
        (N, C, OD, OH, OW), x's dtype (float16 sums in float32).
    cache : AvgPool3dCache
        For :func:`avg_pool3d_backward`.

    Raises
    ------
    TypeError, ValueError
        Naming the argument and the shapes (as :func:`max_pool3d_forward`), or a zero or
        non-int ``divisor_override``.

    Examples
    --------
    >>> import numpy as np
    >>> out, cache = avg_pool3d_forward(np.arange(8.0).reshape(1, 1, 2, 2, 2), 2)
    >>> out
    array([[[[[3.5]]]]])
    """
    geometry = pool_geometry(x, kernel_size, stride, padding, 1, ceil_mode, ndim=3)
    return avg_pool(x, geometry, count_include_pad, divisor_override, AvgPool3dCache, "pool3d")


def avg_pool3d_backward(dout: Array, cache: AvgPool3dCache) -> Array:
    """Gradient of :func:`avg_pool3d_forward`: each window spreads dout / divisor evenly.

    Parameters
    ----------
    dout : ndarray
        The gradient of the pooled output, shaped and typed like it.
    cache : AvgPool3dCache
        From :func:`avg_pool3d_forward`.

    Returns
    -------
    ndarray
        dx (N, C, D, H, W), dout's dtype.

    Raises
    ------
    TypeError, ValueError
        A cache from another op; dout unlike the pooled output.

    Examples
    --------
    >>> import numpy as np
    >>> out, cache = avg_pool3d_forward(np.ones((1, 1, 2, 2, 2)), 2)
    >>> avg_pool3d_backward(np.ones_like(out), cache).reshape(-1)
    array([0.125, 0.125, 0.125, 0.125, 0.125, 0.125, 0.125, 0.125])
    """
    return avg_pool_backward(dout, cache, AvgPool3dCache, "pool3d")
