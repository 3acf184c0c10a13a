"""im2col and col2im: sliding windows as a matrix, and back.

Column layout, shared by the CPU backend, the CUDA kernels and the reference
loops: for an input of shape (N, C, H, W) and a KH x KW kernel with output
size OH x OW, the columns have shape (N, C, KH, KW, OH, OW), i.e.
(N, C*KH*KW, OH*OW) as a matrix per image:

    cols[n, c*KH*KW + i*KW + j, oh*OW + ow]
        = x_padded[n, c, oh*sh + i*dh, ow*sw + j*dw]

so one matrix product ``w.reshape(F, C*KH*KW) @ cols[n]`` gives image n's
output already in (F, OH*OW) order, i.e. contiguous NCHW.

The functions here validate and dispatch once, to :mod:`fastconv._cpu.im2col`
(one strided copy; KH*KW vectorised slab adds) or :mod:`fastconv._gpu.im2col`
(the CUDA kernels), with the workspace the backend declares. They are 2-D; the
same layout in 3-D, (N, C, KD, KH, KW, OD, OH, OW), is the 3-D convolution's
(:mod:`fastconv.functional.conv3d`).
"""

from __future__ import annotations

from collections.abc import Sequence

from . import _backends, _validate
from ._typing import Array, IntPair
from ._window_arrays import pad_into, window_view
from .backend import get_array_module
from .shapes import WindowGeometry, window_geometry
from .workspace import whole_batch

__all__ = ["im2col", "col2im", "im2col_into", "col2im_into", "pad_input", "window_view",
           "window_geometry"]


def pad_input(x: Array, geometry: WindowGeometry, value: float = 0) -> Array:
    """``x`` (N, C, H, W) padded to ``geometry.padded`` with ``value``, as a new array.

    Parameters
    ----------
    x : ndarray
        (N, C, *size), NumPy or CuPy.
    geometry : WindowGeometry
        x's windows.
    value : float
        What the border holds. Default 0.

    Returns
    -------
    ndarray
        (N, C, *geometry.padded); ``x`` itself when the geometry does not pad.

    Examples
    --------
    >>> import numpy as np
    >>> x = np.ones((1, 1, 1, 2))
    >>> pad_input(x, window_geometry(x.shape, 1, 1, (0, 1), 1), -1.0)
    array([[[[-1.,  1.,  1., -1.]]]])
    """
    if geometry.padded == geometry.size:
        return x
    padded = get_array_module(x).empty(x.shape[:2] + geometry.padded, dtype=x.dtype)
    return pad_into(x, geometry, value, padded)


def im2col_into(x: Array, geometry: WindowGeometry, out: Array) -> Array:
    """Write the columns of ``x`` (N, C, H, W) into ``out`` (N, C, KH, KW, OH, OW); return ``out``.

    On the CPU the batch is split across threads; CuPy arrays go to the
    ``im2col`` CUDA kernel.

    Parameters
    ----------
    x : ndarray
        (N, C, H, W).
    geometry : WindowGeometry
        A 2-D one, from :func:`window_geometry` of x's shape.
    out : ndarray
        (N, C, KH, KW, OH, OW), x's dtype and device; not overlapping x.

    Returns
    -------
    ndarray
        ``out``.

    Examples
    --------
    >>> import numpy as np
    >>> x = np.arange(3.0).reshape(1, 1, 1, 3)
    >>> out = np.empty((1, 1, 1, 2, 1, 2))
    >>> im2col_into(x, window_geometry(x.shape, (1, 2), 1, 0, 1), out)[0, 0, 0]
    array([[[0., 1.]],
    <BLANKLINE>
           [[1., 2.]]])
    """
    backend = _backends.backend_for(x, out).im2col
    plan = backend.im2col_plan(x.shape[1], geometry, x.dtype)
    with whole_batch(get_array_module(x), plan, x.shape[0]) as buffers:
        return backend.im2col_into(x, geometry, out, buffers)


def col2im_into(cols: Array, geometry: WindowGeometry, out: Array) -> Array:
    """Sum columns (N, C, KH, KW, OH, OW) back onto ``out`` (N, C, H, W); return ``out``.

    On the CPU, KH*KW strided slab adds per image, the batch split across
    threads; CuPy arrays go to the gather-style ``col2im`` CUDA kernel (no
    atomics, deterministic).

    Parameters
    ----------
    cols : ndarray
        (N, C, KH, KW, OH, OW).
    geometry : WindowGeometry
        A 2-D one, from :func:`window_geometry` of out's shape.
    out : ndarray
        (N, C, H, W), cols' dtype and device; overwritten.

    Returns
    -------
    ndarray
        ``out``.

    Examples
    --------
    >>> import numpy as np
    >>> g = window_geometry((1, 1, 1, 3), (1, 2), 1, 0, 1)
    >>> col2im_into(np.ones((1, 1, 1, 2, 1, 2)), g, np.empty((1, 1, 1, 3)))
    array([[[[1., 2., 1.]]]])
    """
    backend = _backends.backend_for(cols, out).im2col
    plan = backend.col2im_plan(out.shape[1], geometry, cols.dtype)
    with whole_batch(get_array_module(cols), plan, out.shape[0]) as buffers:
        return backend.col2im_into(cols, geometry, out, buffers)


def _check_image(x: Array, name: str) -> None:
    _validate.check_ndim(x, 4, name, "(N, C, H, W)")
    _validate.check_float(x, name)


def im2col(x: Array, kernel_size: IntPair, stride: IntPair = 1, padding: object = 0,
           dilation: IntPair = 1) -> Array:
    """Unfold an (N, C, H, W) array into columns of shape (N, C*KH*KW, OH*OW).

    Row ``c*KH*KW + i*KW + j`` of image n holds kernel offset (i, j) of
    channel c at every output position ``oh*OW + ow`` (see the module doc).
    Equivalent to ``torch.nn.functional.unfold`` reshaped to three axes.

    Parameters
    ----------
    x : ndarray
        (N, C, H, W), float16/32/64, NumPy or CuPy.
    kernel_size, stride, dilation : int or (int, int)
    padding : int, (int, int) or ((int, int), (int, int))
        Zero padding.

    Returns
    -------
    ndarray
        C-contiguous (N, C*KH*KW, OH*OW), in x's dtype and on x's device.

    Raises
    ------
    TypeError, ValueError
        Naming the argument and x's shape: x not 4-D or not float, a malformed window
        argument, a kernel larger than the padded input.

    Examples
    --------
    >>> import numpy as np
    >>> im2col(np.arange(4.0).reshape(1, 1, 2, 2), 2)
    array([[[0.],
            [1.],
            [2.],
            [3.]]])
    """
    _check_image(x, "x")
    geometry = window_geometry(x.shape, kernel_size, stride, padding, dilation)
    xp = get_array_module(x)
    n, c = x.shape[:2]
    (kh, kw), (oh, ow) = geometry.kernel, geometry.out
    cols = xp.empty((n, c, kh, kw, oh, ow), dtype=x.dtype)
    im2col_into(x, geometry, cols)
    return cols.reshape(n, c * kh * kw, oh * ow)


def col2im(cols: Array, x_shape: Sequence[int], kernel_size: IntPair, stride: IntPair = 1,
           padding: object = 0, dilation: IntPair = 1) -> Array:
    """Fold columns (N, C*KH*KW, OH*OW) back to an (N, C, H, W) image, summing overlaps.

    The adjoint of :func:`im2col` (not its inverse): each input element
    receives the sum of every column entry that was copied from it. This is
    the data gradient of a convolution.

    Parameters
    ----------
    cols : ndarray
        (N, C*KH*KW, OH*OW), float16/32/64.
    x_shape : tuple of int
        The image shape (N, C, H, W).
    kernel_size, stride, padding, dilation
        As for :func:`im2col`.

    Returns
    -------
    ndarray
        (N, C, H, W), in cols' dtype and on its device.

    Raises
    ------
    TypeError, ValueError
        A non-float ``cols``, an ``x_shape`` that is not 4 ints, a malformed window argument,
        or cols of another shape than ``x_shape`` and the window give.

    Examples
    --------
    >>> import numpy as np
    >>> col2im(np.ones((1, 4, 4)), (1, 1, 3, 3), 2)
    array([[[[1., 2., 1.],
             [2., 4., 2.],
             [1., 2., 1.]]]])
    """
    _validate.check_float(cols, "cols")
    if not isinstance(x_shape, (tuple, list)) or len(x_shape) != 4:
        raise ValueError(f"x_shape must be the image shape (N, C, H, W), got {x_shape!r}")
    x_shape = tuple(_validate.check_int("x_shape entries", n, 0) for n in x_shape)
    geometry = window_geometry(tuple(x_shape), kernel_size, stride, padding, dilation)
    n, c = x_shape[:2]
    (kh, kw), (oh, ow) = geometry.kernel, geometry.out
    expected = (n, c * kh * kw, oh * ow)
    if tuple(cols.shape) != expected:
        raise ValueError(
            f"cols has shape {tuple(cols.shape)} but x_shape {tuple(x_shape)} with this kernel "
            f"needs {expected}")
    xp = get_array_module(cols)
    out = xp.empty(tuple(x_shape), dtype=cols.dtype)
    col2im_into(cols.reshape(n, c, kh, kw, oh, ow), geometry, out)
    return out
