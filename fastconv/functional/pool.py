"""2-D max and average pooling, forward and backward, and the rules of every max pool.

Max and average pooling validate their arguments, build the window geometry
and dispatch once to the backend of the arrays' device: :mod:`fastconv._cpu.pool`
(elementwise passes over the kernel offsets' slabs) or :mod:`fastconv._gpu.pool`
(the CUDA kernels); the fronts' machinery is shared with the 3-D pools
(:mod:`fastconv.functional._pooling`, :mod:`fastconv.functional.pool3d`). Pooling does not
chunk: its workspace, a padded copy on the CPU, is the size of the input. The adaptive pools
live in :mod:`fastconv.functional.adaptive_pool` (and are importable from here too).

Rules, the same on every path (CPU, GPU, reference):

* Max pooling pads with -inf and only input cells compete, so padding never
  wins (a window of -inf inputs picks its first input cell, as PyTorch).
* Ties: the gradient goes to the first maximum in row-major window order
  (the smallest kernel offset i*KW + j), as in PyTorch.
* NaN propagates: a window holding a NaN outputs NaN, and its gradient goes
  to the first NaN of the window (PyTorch picks the last; the output is the
  same). Adaptive max pooling follows both rules over its windows, and the 3-D
  max pool over (kd, kh, kw).
* ``ceil_mode`` adds a last window if it starts inside the input or its left
  padding (PyTorch's rule), even one that overhangs the padded input by up to
  stride - 1 (a kernel that long still gives one window); for average
  pooling, as in PyTorch, the divisor counts the padding only up to the
  padded border (``count_include_pad``), never the part of a ceil-mode
  window beyond it.
"""

from __future__ import annotations

from typing import ClassVar

from .. import _validate
from .._typing import Array, IntPair
from ._pooling import (WindowMaxCache, WindowMeanCache, avg_pool, avg_pool_backward, max_pool,
                       max_pool_backward, pool_geometry)
# re-exported: max unpooling takes the pools' arguments; the indices of a 2-D argmax; the
# adaptive pools, which lived here
from ._pooling import flat_indices as _flat_indices, pool_arguments  # noqa: F401
from .adaptive_pool import (AdaptiveAvgPoolCache, AdaptiveMaxPoolCache,  # noqa: F401
                            adaptive_avg_pool2d_backward, adaptive_avg_pool2d_forward,
                            adaptive_max_pool2d_backward, adaptive_max_pool2d_forward)


@_validate.op_cache
class MaxPoolCache(WindowMaxCache):
    """What :func:`max_pool2d_backward` needs: the input shape and dtype, geometry and argmax
    offsets (int32 i*KW + j).

    Examples
    --------
    >>> import numpy as np
    >>> _, cache = max_pool2d_forward(np.array([[[[1.0, 3.0], [4.0, 2.0]]]]), 2)
    >>> cache.op, cache.argmax
    ('max_pool2d_forward', array([[[[2]]]], dtype=int32))
    """

    op: ClassVar[str] = "max_pool2d_forward"


@_validate.op_cache
class AvgPoolCache(WindowMeanCache):
    """What :func:`avg_pool2d_backward` needs: the input shape and dtype, geometry and divisors.

    Examples
    --------
    >>> import numpy as np
    >>> _, cache = avg_pool2d_forward(np.ones((1, 1, 3, 3)), 2, 1, 1, count_include_pad=False)
    >>> cache.divisor
    array([[1., 2., 2., 1.],
           [2., 4., 4., 2.],
           [2., 4., 4., 2.],
           [1., 2., 2., 1.]])
    """

    op: ClassVar[str] = "avg_pool2d_forward"


def max_pool2d_forward(x: Array, kernel_size: IntPair, stride: IntPair | None = None,
                       padding: IntPair = 0, dilation: IntPair = 1, ceil_mode: bool = False,
                       return_indices: bool = False) -> tuple:
    """Max pooling of ``x`` (N, C, H, W); return ``(out, cache)``, or ``(out, indices, cache)``.

    As ``torch.nn.functional.max_pool2d``, with the rules of this module's doc.

    Parameters
    ----------
    x : ndarray
        (N, C, H, W), float16/32/64, NumPy or CuPy; H and W at least 1.
    kernel_size : int or (int, int)
    stride : int or (int, int), optional
        Default kernel_size.
    padding : int or (int, int)
        -inf on both sides, at most half the kernel. Default 0.
    dilation : int or (int, int)
        Spreads the window. Default 1.
    ceil_mode : bool
        Keep a last partial window. Default False.
    return_indices : bool
        Also return the indices. Default False.

    Returns
    -------
    out : ndarray
        (N, C, OH, OW), x's dtype.
    indices : ndarray
        With ``return_indices`` only: int64, the flat position ``h * W + w`` of each maximum
        in its input plane, as PyTorch's; -1 for a window of padding only.
    cache : MaxPoolCache
        For :func:`max_pool2d_backward`.

    Raises
    ------
    TypeError, ValueError
        Naming the argument and the shapes.

    Examples
    --------
    >>> import numpy as np
    >>> x = np.array([[[[1.0, 3.0, 2.0], [4.0, 0.0, 4.0]]]])
    >>> out, indices, _ = max_pool2d_forward(x, 2, stride=1, return_indices=True)
    >>> out, indices
    (array([[[[4., 4.]]]]), array([[[[3, 5]]]]))
    """
    geometry = pool_geometry(x, kernel_size, stride, padding, dilation, ceil_mode)
    return max_pool(x, geometry, return_indices, MaxPoolCache, "pool")


def max_pool2d_backward(dout: Array, cache: MaxPoolCache) -> Array:
    """Gradient of :func:`max_pool2d_forward`: each window's gradient goes to its argmax.

    Parameters
    ----------
    dout : ndarray
        The gradient of the pooled output, shaped and typed like it.
    cache : MaxPoolCache

    Returns
    -------
    ndarray
        dx (N, C, H, W), dout's dtype; a cell that is the maximum of several windows sums
        their gradients.

    Raises
    ------
    TypeError, ValueError
        A cache from another op; dout unlike the pooled output.

    Examples
    --------
    >>> import numpy as np
    >>> out, cache = max_pool2d_forward(np.array([[[[1.0, 3.0, 2.0]]]]), (1, 2), stride=1)
    >>> max_pool2d_backward(np.ones_like(out), cache)
    array([[[[0., 2., 0.]]]])
    """
    return max_pool_backward(dout, cache, MaxPoolCache, "pool")


def avg_pool2d_forward(x: Array, kernel_size: IntPair, stride: IntPair | None = None,
                       padding: IntPair = 0, ceil_mode: bool = False,
                       count_include_pad: bool = True,
                       divisor_override: int | None = None) -> tuple[Array, AvgPoolCache]:
    """Average pooling of ``x`` (N, C, H, W); return ``(out, cache)``.

    As ``torch.nn.functional.avg_pool2d``: zero padding (at most half the
    kernel), ``count_include_pad`` counts it in the divisor, ``ceil_mode``
    keeps a last partial window whose divisor stops at the padded border.

    Parameters
    ----------
    x : ndarray
        (N, C, H, W), float16/32/64, NumPy or CuPy; H and W at least 1.
    kernel_size : int or (int, int)
    stride : int or (int, int), optional
        Default kernel_size.
    padding : int or (int, int)
        Default 0.
    ceil_mode : bool
        Default False.
    count_include_pad : bool
        Count the padding in the divisor. Default True.
    divisor_override : int, optional
        A nonzero int that divides every window sum instead, whatever the window holds
        (``count_include_pad`` then changes nothing).

    Returns
    -------
    out : ndarray
        (N, C, OH, OW), x's dtype (float16 sums in float32).
    cache : AvgPoolCache
        For :func:`avg_pool2d_backward`.

    Raises
    ------
    TypeError, ValueError
        Naming the argument and the shapes.

    Examples
    --------
    >>> import numpy as np
    >>> avg_pool2d_forward(np.ones((1, 1, 2, 2)), 2, divisor_override=2)[0]
    array([[[[2.]]]])
    """
    geometry = pool_geometry(x, kernel_size, stride, padding, 1, ceil_mode)
    return avg_pool(x, geometry, count_include_pad, divisor_override, AvgPoolCache, "pool")


def avg_pool2d_backward(dout: Array, cache: AvgPoolCache) -> Array:
    """Gradient of :func:`avg_pool2d_forward`: each window spreads dout / divisor evenly.

    Parameters
    ----------
    dout : ndarray
        The gradient of the pooled output, shaped and typed like it.
    cache : AvgPoolCache

    Returns
    -------
    ndarray
        dx (N, C, H, W), dout's dtype.

    Raises
    ------
    TypeError, ValueError
        A cache from another op; dout unlike the pooled output.

    Examples
    --------
    >>> import numpy as np
    >>> out, cache = avg_pool2d_forward(np.ones((1, 1, 2, 4)), 2)
    >>> avg_pool2d_backward(np.ones_like(out), cache)
    array([[[[0.25, 0.25, 0.25, 0.25],
             [0.25, 0.25, 0.25, 0.25]]]])
    """
    return avg_pool_backward(dout, cache, AvgPoolCache, "pool")
