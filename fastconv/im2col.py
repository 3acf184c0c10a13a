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
(the CUDA kernels), with the workspace the backend declares. :func:`im2col` and
:func:`col2im` are 2-D. :func:`im2col_into` and :func:`col2im_into` take the
geometry's 1 to 3 spatial axes on the CPU, in the same layout, e.g. (N, C, KD, KH,
KW, OD, OH, OW) in 3-D (the 3-D convolution's, :mod:`fastconv.functional.conv3d`),
and 2 on the GPU, whose im2col kernels are 2-D. They check every argument against
the others and the geometry before any work, and refuse an output that shares
memory with their input.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy

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
    ``im2col`` CUDA kernel. Every argument is checked before anything is written.
    The CPU also takes 1 or 3 spatial axes: (N, C, *size) into (N, C, *kernel, *out).

    Parameters
    ----------
    x : ndarray
        (N, C, H, W), float16/32/64, NumPy or CuPy.
    geometry : WindowGeometry
        From :func:`window_geometry` of x's shape (its size is x's H and W); 2-D on the GPU.
    out : ndarray
        (N, C, KH, KW, OH, OW) as ``geometry`` gives them, x's dtype and array type
        (device); writeable, not overlapping x nor itself in memory. Any strides.

    Returns
    -------
    ndarray
        ``out``.

    Raises
    ------
    TypeError
        Naming the argument: x or out not a float array, out of another dtype than x, a
        geometry that is not a :class:`WindowGeometry`.
    ValueError
        Naming the argument and the shapes: x not of the geometry's axes (4-D for a 2-D
        one) or size, a geometry not 2-D on the GPU, out of another shape than the columns
        of x, NumPy and CuPy arrays mixed, out read-only or sharing memory with x (or with
        itself).

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
    _check_images(x, "x", geometry)
    _check_output(out, "out", x, "x")
    _check_shape(out, "out", _cols_shape(x.shape, geometry),
                 f"x of shape {tuple(x.shape)} with this geometry")
    return _run_im2col(x, geometry, out)


def col2im_into(cols: Array, geometry: WindowGeometry, out: Array) -> Array:
    """Sum columns (N, C, KH, KW, OH, OW) back onto ``out`` (N, C, H, W); return ``out``.

    On the CPU, KH*KW strided slab adds per image, the batch split across
    threads; CuPy arrays go to the gather-style ``col2im`` CUDA kernel (no
    atomics, deterministic). Every argument is checked before anything is written.
    The CPU also takes 1 or 3 spatial axes: (N, C, *kernel, *out) onto (N, C, *size).

    Parameters
    ----------
    cols : ndarray
        (N, C, KH, KW, OH, OW) as ``geometry`` and out's (N, C) give them, float16/32/64,
        NumPy or CuPy.
    geometry : WindowGeometry
        From :func:`window_geometry` of out's shape (its size is out's H and W); 2-D on the
        GPU.
    out : ndarray
        (N, C, H, W), cols' dtype and array type (device); overwritten, so writeable and not
        overlapping cols nor itself in memory. Any strides.

    Returns
    -------
    ndarray
        ``out``.

    Raises
    ------
    TypeError
        Naming the argument: cols or out not a float array, of two dtypes, a geometry that
        is not a :class:`WindowGeometry`.
    ValueError
        Naming the argument and the shapes: out not of the geometry's axes (4-D for a 2-D
        one) or size, a geometry not 2-D on the GPU, cols of another shape than out's
        columns, NumPy and CuPy arrays mixed, out read-only or sharing memory with cols (or
        with itself).

    Examples
    --------
    >>> import numpy as np
    >>> g = window_geometry((1, 1, 1, 3), (1, 2), 1, 0, 1)
    >>> col2im_into(np.ones((1, 1, 1, 2, 1, 2)), g, np.empty((1, 1, 1, 3)))
    array([[[[1., 2., 1.]]]])
    """
    _validate.check_float(cols, "cols")
    _check_images(out, "out", geometry)
    _check_shape(cols, "cols", _cols_shape(out.shape, geometry),
                 f"out of shape {tuple(out.shape)} with this geometry")
    _check_output(out, "out", cols, "cols")
    return _run_col2im(cols, geometry, out)


def _run_im2col(x: Array, geometry: WindowGeometry, out: Array) -> Array:
    """:func:`im2col_into` on checked arguments: the backend's pass, with its workspace."""
    backend = _backends.backend_for(x, out).im2col
    plan = backend.im2col_plan(x.shape[1], geometry, x.dtype)
    with whole_batch(get_array_module(x), plan, x.shape[0]) as buffers:
        return backend.im2col_into(x, geometry, out, buffers)


def _run_col2im(cols: Array, geometry: WindowGeometry, out: Array) -> Array:
    """:func:`col2im_into` on checked arguments: the backend's pass, with its workspace."""
    backend = _backends.backend_for(cols, out).im2col
    plan = backend.col2im_plan(out.shape[1], geometry, cols.dtype)
    with whole_batch(get_array_module(cols), plan, out.shape[0]) as buffers:
        return backend.col2im_into(cols, geometry, out, buffers)


def _check_image(x: Array, name: str) -> None:
    _validate.check_float(x, name)  # first: what is no array is a TypeError
    _validate.check_ndim(x, 4, name, "(N, C, H, W)")


def _cols_shape(x_shape: Sequence[int], geometry: WindowGeometry) -> tuple[int, ...]:
    """The columns' shape (N, C, KH, KW, OH, OW) of images of ``x_shape`` in ``geometry``."""
    return tuple(x_shape[:2]) + geometry.kernel + geometry.out


def _check_shape(a: Array, name: str, expected: tuple[int, ...], needs: str) -> None:
    """Refuse ``a`` unless its shape is ``expected``, which ``needs`` (a phrase) asks for."""
    if tuple(a.shape) != tuple(expected):
        raise ValueError(f"{name} has shape {tuple(a.shape)} but {needs} needs {tuple(expected)}")


_LAYOUTS = {1: "(N, C, L)", 2: "(N, C, H, W)", 3: "(N, C, D, H, W)"}


def _check_images(x: Array, name: str, geometry: object) -> None:
    """Refuse images ``x`` (named ``name``) that are not float arrays of ``geometry``'s axes
    and size, or a ``geometry`` that is no :class:`WindowGeometry` or, on the GPU, not 2-D."""
    if not isinstance(geometry, WindowGeometry):
        raise TypeError(f"geometry must be a WindowGeometry (from window_geometry), got "
                        f"{type(geometry).__name__}")
    layout = _LAYOUTS.get(geometry.ndim, "(N, C, *size)")
    _validate.check_float(x, name)  # first: what is no array is a TypeError
    _validate.check_ndim(x, geometry.ndim + 2, name, f"{layout} for a {geometry.ndim}-D geometry")
    if geometry.ndim != 2 and get_array_module(x) is not numpy:
        # the GPU backend's im2col and col2im kernels index (H, W) planes only
        raise ValueError(f"on the GPU the geometry must be 2-D, for {name} (N, C, H, W); got "
                         f"{name} of shape {tuple(x.shape)} and {geometry}")
    # the passes read the images' extent from the geometry alone, so one built for another
    # size would read or write past the images' borders
    if geometry.size != tuple(x.shape[2:]):
        raise ValueError(f"geometry is for images of size {geometry.size} but {name} has shape "
                         f"{tuple(x.shape)}; build it with window_geometry({name}.shape, ...)")


def _check_output(out: Array, name: str, source: Array, source_name: str) -> None:
    """Refuse an output ``out`` that the pass reading ``source`` could not write exactly.

    It must be a float array of ``source``'s array type and dtype, writeable, and share no
    memory with ``source`` or with itself. Its shape is the caller's to check.
    """
    _validate.check_float(out, name)
    xp, out_xp = get_array_module(source), get_array_module(out)
    if out_xp is not xp:
        raise ValueError(
            f"{name} is a {out_xp.__name__} array but {source_name} is a {xp.__name__} one "
            f"(shapes {tuple(out.shape)} and {tuple(source.shape)}); move them to one device "
            f"first with fastconv.to_device")
    if out.dtype != source.dtype:
        # the passes would cast silently into another dtype's output
        raise TypeError(f"{name} is {out.dtype} but {source_name} is {source.dtype}: {name} "
                        f"must be {source.dtype}")
    if xp is numpy and not out.flags.writeable:
        raise ValueError(f"{name} (shape {tuple(out.shape)}) is read-only")
    # The passes read the source while writing the output (col2im even adds onto the output
    # in place), so shared memory changes the result. Bounds only, as the GPU launch checks:
    # cheap, and an interleaved pair that does not truly overlap gets a refusal, not a wrong
    # result.
    if xp.may_share_memory(out, source):
        raise ValueError(f"{name} overlaps {source_name} in memory (shapes {tuple(out.shape)} "
                         f"and {tuple(source.shape)}); pass a separate output array")
    if _may_overlap_itself(out):
        raise ValueError(f"{name} (shape {tuple(out.shape)}, strides {tuple(out.strides)}) "
                         f"has elements that share memory, so it cannot hold every result; "
                         f"pass an array without repeated elements")


def _may_overlap_itself(a: Array) -> bool:
    """Whether two elements of ``a`` may be one memory location (False: they never are).

    Sufficient, not exact: the axes of more than one element, by increasing stride, must
    each step past the whole extent of the axes before them, as every slice or transpose of
    a contiguous array does; a stride of 0 (broadcasting) never does.
    """
    if a.size == 0:
        return False
    extent = a.itemsize
    axes = sorted((abs(s), n) for n, s in zip(a.shape, a.strides) if n > 1)
    for stride, size in axes:
        if stride < extent:
            return True
        extent += stride * (size - 1)
    return False


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
    _run_im2col(x, geometry, cols)
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
    _check_shape(cols, "cols", (n, c * kh * kw, oh * ow),
                 f"x_shape {tuple(x_shape)} with this kernel")
    xp = get_array_module(cols)
    out = xp.empty(tuple(x_shape), dtype=cols.dtype)
    _run_col2im(cols.reshape(n, c, kh, kw, oh, ow), geometry, out)
    return out
