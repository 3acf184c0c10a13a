"""2-D max unpooling, forward and backward: the values of a max pool put back where they came from.

:func:`max_unpool2d_forward` takes a pooled x and the indices of
``max_pool2d_forward(..., return_indices=True)`` (or of
``adaptive_max_pool2d_forward``) and writes each value at its index in a
zero output plane, as ``torch.nn.functional.max_unpool2d``. The writing is a
scatter-add on the backend of the arrays' device (:mod:`fastconv._cpu.unpool`: a
``bincount``; :mod:`fastconv._gpu.unpool`: gather kernels, one thread per output cell
over the pooling windows that hold it, and a sort-based scatter for indices outside
their own window), deterministic on both and with the same bits; the backward is a
gather, the same array code on both devices.

Where PyTorch differs, on purpose:

* Two values with one index (overlapping windows that share a maximum) are
  summed, in the order of x. PyTorch writes one of them: on the CPU the
  last, on the GPU whichever thread runs last. The sum is the adjoint of the
  backward's gather (which PyTorch computes the same way), so forward and
  backward stay consistent and every run gives the same bits.
* Index -1, which fastconv's max pool gives a window of padding only, is
  skipped (its value, -inf, goes nowhere); PyTorch refuses it.
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

from .. import _backends, _validate
from .._typing import Array, IntPair, Padding2d
from ..backend import get_array_module, is_array
from .pool import pool_arguments


@_validate.op_cache
class MaxUnpoolCache:
    """What :func:`max_unpool2d_backward` needs: x's shape and dtype, the indices, the output shape.

    Attributes
    ----------
    x_shape, out_shape : tuple of int
        The pooled input's and the unpooled output's shapes.
    dtype : numpy.dtype
        x's dtype.
    indices : array
        The indices, int64, x's shape.
    skips : bool
        Whether an index is -1.

    Examples
    --------
    >>> import numpy as np
    >>> max_unpool2d_forward(np.ones((1, 1, 1, 2)), np.array([[[[3, 0]]]]), 2)[1].out_shape
    (1, 1, 2, 4)
    """

    op: ClassVar[str] = "max_unpool2d_forward"
    x_shape: tuple[int, ...]
    dtype: Any
    indices: Array
    out_shape: tuple[int, ...]
    skips: bool


def _output_size(x_shape, kernel, stride, padding, output_size):
    """(H, W) of the unpooled planes: PyTorch's default, or ``output_size`` within its range.

    The default inverts the pooling size formula, (n - 1) * s + k - 2 * p;
    ``output_size`` may differ from it by less than the stride (the sizes a
    max pool of this geometry maps to the same x, ``ceil_mode`` included).
    """
    default = tuple((n - 1) * s + k - 2 * p
                    for n, k, s, p in zip(x_shape[2:], kernel, stride, padding))
    if output_size is None:
        size = default
    else:
        if not isinstance(output_size, (tuple, list)) or len(output_size) not in (2, 4):
            raise TypeError(f"output_size must be (H, W) or (N, C, H, W), got {output_size!r}")
        if len(output_size) == 4 and tuple(output_size[:2]) != tuple(x_shape[:2]):
            raise ValueError(f"output_size {tuple(output_size)} has another (N, C) than x of "
                             f"shape {tuple(x_shape)}")
        size = _validate.pair(tuple(output_size[-2:]), "output_size")
        for axis, n, d, s in zip(("height", "width"), size, default, stride):
            if not d - s < n < d + s:
                raise ValueError(
                    f"output_size {tuple(output_size)}: the {axis} must be in ({d - s}, {d + s}) "
                    f"(exclusive) for x of shape {tuple(x_shape)}, kernel_size={kernel}, "
                    f"stride={stride}, padding={padding}; the default is {default}")
    if min(size) < 1:
        raise ValueError(f"the unpooled size {size} is empty for x of shape {tuple(x_shape)}, "
                         f"kernel_size={kernel}, stride={stride}, padding={padding}")
    if math.prod(x_shape[:2]) * math.prod(size) >= 2**62:
        # the positions of every plane must stay int64 indices (a stride of 10**30 asks this)
        raise ValueError(f"the unpooled size {size} is too large for x of shape "
                         f"{tuple(x_shape)}, kernel_size={kernel}, stride={stride}, "
                         f"padding={padding}: N*C*H*W must stay below 2**62")
    return size


def _check_indices(x, indices, plane):
    """indices: an int64 array of x's shape and device, each in [0, plane) or -1.

    Returns whether some index is -1 (a value to skip).
    """
    if not is_array(indices):
        raise TypeError(f"indices must be an int64 array, got {type(indices).__name__}")
    get_array_module(x, indices)
    if indices.dtype.kind != "i" or indices.dtype.itemsize != 8:
        raise TypeError(f"indices must be int64 (as max_pool2d_forward returns them), "
                        f"got {indices.dtype}")
    if tuple(indices.shape) != tuple(x.shape):
        raise ValueError(f"indices has shape {tuple(indices.shape)} but x has shape "
                         f"{tuple(x.shape)}; they must match")
    bad = (indices < -1) | (indices >= plane)
    if bool(bad.any()):
        raise ValueError(f"index {int(indices[bad][0])} is out of range for output planes of "
                         f"{plane} cells (indices must be in [0, {plane}), or -1 to skip)")
    return bool((indices == -1).any())


def max_unpool2d_forward(x: Array, indices: Array, kernel_size: IntPair,
                         stride: IntPair | None = None, padding: Padding2d = 0,
                         output_size: Any = None) -> tuple[Array, MaxUnpoolCache]:
    """Put each value of ``x`` (N, C, h, w) at its index in a zero (N, C, H, W); ``(out, cache)``.

    As ``torch.nn.functional.max_unpool2d``, except that values sharing an
    index are summed (PyTorch keeps one) and index -1 is skipped (PyTorch
    refuses it); see the module notes.

    Parameters
    ----------
    x : ndarray
        (N, C, h, w), float16/32/64: the pooled values.
    indices : ndarray of int64
        x's shape: each value's flat position ``row * W + column`` in its
        output plane, as ``max_pool2d_forward(..., return_indices=True)``
        returns them; -1 to skip a value.
    kernel_size, stride, padding : int or (int, int)
        The max pool's; ``stride`` defaults to ``kernel_size``. They give the
        default output size (h - 1) * stride + kernel_size - 2 * padding.
    output_size : (int, int) or (N, C, H, W), optional
        (H, W), within the stride of the default per axis (as PyTorch); the
        input shape of the max pool, for a pool whose size formula rounded.

    Returns
    -------
    out : ndarray
        (N, C, H, W), x's dtype, zero where no value went.
    cache : MaxUnpoolCache
        For :func:`max_unpool2d_backward`.

    Raises
    ------
    TypeError
        A non-float x, indices not an int64 array, a malformed size argument.
    ValueError
        x not 4-D, indices of another shape or out of range, an output size
        out of its range or empty, a negative padding.

    Examples
    --------
    >>> import numpy as np
    >>> from fastconv.functional import max_pool2d_forward
    >>> x = np.array([[[[1.0, 2.0, 3.0, 4.0], [8.0, 7.0, 6.0, 5.0]]]])
    >>> pooled, indices, _ = max_pool2d_forward(x, 2, return_indices=True)
    >>> max_unpool2d_forward(pooled, indices, 2)[0]
    array([[[[0., 0., 0., 0.],
             [8., 0., 6., 0.]]]])
    """
    kernel, step, pad = pool_arguments(x, kernel_size, stride, padding)
    height, width = _output_size(x.shape, kernel, step, pad, output_size)
    skips = _check_indices(x, indices, height * width)
    backend = _backends.backend_for(x, indices)
    out = backend.unpool.max_unpool2d(x, indices, (height, width), kernel, step, pad)
    return out, MaxUnpoolCache(x.shape, x.dtype, indices, tuple(out.shape), skips)


def max_unpool2d_backward(dout: Array, cache: MaxUnpoolCache) -> Array:
    """Gradient of :func:`max_unpool2d_forward`: each value's dout is dout at its index.

    Parameters
    ----------
    dout : ndarray
        The gradient of the unpooled output, (N, C, H, W) in its dtype.
    cache : MaxUnpoolCache
        From :func:`max_unpool2d_forward`.

    Returns
    -------
    ndarray
        dx (N, C, h, w), dout's dtype; 0 for a skipped value (index -1).

    Raises
    ------
    TypeError, ValueError
        A cache not from max_unpool2d_forward; dout unlike the unpooled output.

    Examples
    --------
    >>> import numpy as np
    >>> out, cache = max_unpool2d_forward(np.ones((1, 1, 1, 2)), np.array([[[[3, 0]]]]), 2)
    >>> max_unpool2d_backward(np.arange(8.0).reshape(1, 1, 2, 4), cache)
    array([[[[3., 0.]]]])
    """
    _validate.check_cache(cache, MaxUnpoolCache, "max_unpool2d_forward")
    _validate.check_dout(dout, cache.out_shape, cache.dtype)
    xp = get_array_module(dout, cache.indices)
    n, c, h, w = cache.x_shape
    index = cache.indices.reshape(n * c, h * w)
    planes = dout.reshape(n * c, cache.out_shape[2] * cache.out_shape[3])
    if not cache.skips:
        return xp.take_along_axis(planes, index, axis=1).reshape(cache.x_shape)
    dx = xp.take_along_axis(planes, xp.maximum(index, 0), axis=1)  # -1 reads cell 0 ...
    dx[index < 0] = 0  # ... and gets nothing
    return dx.reshape(cache.x_shape)
