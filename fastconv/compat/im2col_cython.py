"""The CS231n ``im2col_cython`` extension's functions, backed by fastconv instead of Cython.

The course's ``cs231n/im2col_cython.pyx`` no longer compiles with Cython 3
(``Cannot assign type 'double' to 'int'``: ``/`` became true division), and
the C file shipped with it does not build on Python 3.11 (``longintrepr.h: No
such file or directory``). A student whose build fails changes the import at
the top of ``cs231n/fast_layers.py`` to::

    from fastconv.compat.im2col_cython import col2im_cython, im2col_cython
    from fastconv.compat.im2col_cython import col2im_6d_cython

and the course's own fast layers run unchanged. Same names, arguments and
array layouts as the extension, for float32 and float64 (float16 too), NumPy
or CuPy:

- ``im2col_cython(x, field_height, field_width, padding, stride)``: x (N, C,
  H, W) -> cols (C*field_height*field_width, out_h*out_w*N) with
  ``cols[(c*field_height + i)*field_width + j, (oh*out_w + ow)*N + n] =
  x_padded[n, c, oh*stride + i, ow*stride + j]``;
- ``col2im_cython(cols, N, C, H, W, field_height, field_width, padding,
  stride)``: its adjoint, (N, C, H, W), overlapping windows summed;
- ``col2im_6d_cython(cols, N, C, H, W, HH, WW, pad, stride)``: the adjoint for
  columns shaped (C, HH, WW, N, out_h, out_w), the layout of the course's
  ``conv_backward_strides``.

Differences: the extension numbers the rows ``i*field_height + j`` within a
channel, which is the layout above only for square fields (a non-square field
overwrites rows); here it holds for every field. Results are new contiguous
arrays (the extension returns a view into its padded buffer when padding > 0).
"""

from __future__ import annotations

from .._typing import Array
from ..im2col import col2im, im2col
from ..shapes import conv_output_size

__all__ = ["im2col_cython", "col2im_cython", "col2im_6d_cython"]


def _out_size(H: int, W: int, field_height: int, field_width: int, padding: int,
              stride: int) -> tuple[int, int]:
    return (conv_output_size(H, field_height, stride, padding),
            conv_output_size(W, field_width, stride, padding))


def _check_shape(cols: Array, expected: tuple[int, ...], name: str) -> None:
    if tuple(cols.shape) != expected:
        raise ValueError(f"{name}: cols has shape {tuple(cols.shape)}, expected {expected} "
                         f"for these image, field, padding and stride sizes")


def im2col_cython(x: Array, field_height: int, field_width: int, padding: int,
                  stride: int) -> Array:
    """Columns (C*field_height*field_width, out_h*out_w*N) of x (N, C, H, W), zero padded.

    Parameters
    ----------
    x : ndarray
        (N, C, H, W), float16/32/64.
    field_height, field_width, padding, stride : int
        The field, the zero padding of each side and the step.

    Returns
    -------
    ndarray
        x's dtype; rows (c, i, j), columns (oh, ow, n), as the module doc says.

    Raises
    ------
    TypeError, ValueError
        Arguments fastconv's im2col refuses, naming them.

    Examples
    --------
    >>> import numpy as np
    >>> im2col_cython(np.arange(8.0).reshape(2, 1, 2, 2), 2, 2, 0, 1)[:, 1]
    array([4., 5., 6., 7.])
    """
    cols = im2col(x, (field_height, field_width), stride=stride, padding=padding)
    n, k, positions = cols.shape
    return cols.transpose(1, 2, 0).reshape(k, positions * n)


def col2im_cython(cols: Array, N: int, C: int, H: int, W: int, field_height: int,
                  field_width: int, padding: int, stride: int) -> Array:
    """The adjoint of :func:`im2col_cython`: sums each column entry back into (N, C, H, W).

    Parameters
    ----------
    cols : ndarray
        (C*field_height*field_width, out_h*out_w*N), float16/32/64.
    N, C, H, W : int
        The image shape.
    field_height, field_width, padding, stride : int
        As for :func:`im2col_cython`.

    Returns
    -------
    ndarray
        (N, C, H, W) in cols' dtype.

    Raises
    ------
    ValueError
        When cols' shape does not fit the sizes.

    Examples
    --------
    >>> import numpy as np
    >>> col2im_cython(np.ones((4, 4)), 1, 1, 3, 3, 2, 2, 0, 1)[0, 0]
    array([[1., 2., 1.],
           [2., 4., 2.],
           [1., 2., 1.]])
    """
    out_h, out_w = _out_size(H, W, field_height, field_width, padding, stride)
    k = C * field_height * field_width
    _check_shape(cols, (k, out_h * out_w * N), "col2im_cython")
    folded = cols.reshape(k, out_h * out_w, N).transpose(2, 0, 1)
    return col2im(folded, (N, C, H, W), (field_height, field_width), stride=stride,
                  padding=padding)


def col2im_6d_cython(cols: Array, N: int, C: int, H: int, W: int, HH: int, WW: int, pad: int,
                     stride: int) -> Array:
    """The adjoint for columns (C, HH, WW, N, out_h, out_w): sums them into (N, C, H, W).

    Parameters
    ----------
    cols : ndarray
        (C, HH, WW, N, out_h, out_w), float16/32/64; HH x WW is the field.
    N, C, H, W : int
        The image shape.
    HH, WW, pad, stride : int
        The field, the zero padding of each side and the step.

    Returns
    -------
    ndarray
        (N, C, H, W) in cols' dtype.

    Raises
    ------
    ValueError
        When cols' shape does not fit the sizes.

    Examples
    --------
    >>> import numpy as np
    >>> col2im_6d_cython(np.ones((1, 2, 2, 1, 2, 2)), 1, 1, 3, 3, 2, 2, 0, 1)[0, 0]
    array([[1., 2., 1.],
           [2., 4., 2.],
           [1., 2., 1.]])
    """
    out_h, out_w = _out_size(H, W, HH, WW, pad, stride)
    _check_shape(cols, (C, HH, WW, N, out_h, out_w), "col2im_6d_cython")
    folded = cols.transpose(3, 0, 1, 2, 4, 5).reshape(N, C * HH * WW, out_h * out_w)
    return col2im(folded, (N, C, H, W), (HH, WW), stride=stride, padding=pad)
