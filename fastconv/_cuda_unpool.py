"""The wrappers of kernels/unpool.cu: max unpooling and the adaptive max-pool gradient as
gathers, and the adaptive max pool's forward.

Each op has a check (:func:`max_unpool2d_outside`, :func:`adaptive_max_pool2d_outside`:
whether some index is neither -1 nor a cell of its own window) and a gather
(:func:`max_unpool2d_gather`, :func:`adaptive_max_pool2d_gather`: one thread per output
cell sums, in the order of the input, the values sent to it from the windows holding it),
which is exact only where the check found nothing. :mod:`fastconv._gpu.unpool` chooses.
The forward (:func:`adaptive_max_pool2d_forward`) is one thread per pooled element.
Re-exported by :mod:`fastconv._cuda`; written against a :class:`fastconv._cuda.Launcher`
and its array module, like the other wrappers (``launcher=None`` for
:func:`fastconv._cuda.default_launcher`).
"""

from __future__ import annotations

from typing import Any

import numpy

from . import _cuda_launcher
from ._cuda_launcher import resolved
from ._typing import Array


def max_unpool2d_fits(x_shape: tuple[int, ...], out_size: tuple[int, int],
                      kernel: tuple[int, int], stride: tuple[int, int],
                      padding: tuple[int, int]) -> bool:
    """Whether the unpooling kernels take x (N, C, h, w) to (H, W) planes: the planes, the
    padded extents and the windows' reach stay below 2**31 (their 32-bit in-plane math)."""
    (h, w), (height, width) = x_shape[2:], out_size
    extents = (height * width, h * w, height + padding[0] + kernel[0],
               width + padding[1] + kernel[1], h * stride[0] + kernel[0],
               w * stride[1] + kernel[1])
    return max(extents) < _cuda_launcher.PLANE_LIMIT


def adaptive_max_pool2d_fits(x_shape: tuple[int, ...], out_shape: tuple[int, ...]) -> bool:
    """Whether the adaptive max pool's kernels (forward and gradient) take x (N, C, H, W)
    pooled to (N, C, OH, OW): both planes below 2**31 elements."""
    return max(x_shape[2] * x_shape[3], out_shape[2] * out_shape[3]) < _cuda_launcher.PLANE_LIMIT


def _unpool_scalars(x_shape, out_size, kernel, stride, padding):
    """NC and the window scalars of the unpooling kernels.

    Raises
    ------
    ValueError
        Planes too large for the kernels.
    """
    if not max_unpool2d_fits(x_shape, out_size, kernel, stride, padding):
        raise ValueError(f"unpooling x of shape {tuple(x_shape)} to {tuple(out_size)} is too "
                         f"large for the CUDA kernels: the planes, their padded extents and "
                         f"the windows' reach must stay below 2**31 elements")
    n, c, h, w = x_shape
    return (n * c, *out_size, h, w, *kernel, *stride, *padding, 1, 1)


def _adaptive_scalars(x_shape, out_shape):
    """NC, H, W, OH, OW of the adaptive max pool's kernels.

    Raises
    ------
    ValueError
        Planes too large for the kernels.
    """
    if not adaptive_max_pool2d_fits(x_shape, out_shape):
        raise ValueError(f"the adaptive max pool of x of shape {tuple(x_shape)} to "
                         f"{tuple(out_shape[2:])} is too large for the CUDA kernels: both "
                         f"planes must stay below 2**31 elements")
    return (x_shape[0] * x_shape[1], *x_shape[2:], *out_shape[2:])


def _any_outside(launcher, kernel, index, dtype, scalars):
    """Whether ``kernel`` flags an index of ``index`` (flags of ``dtype``, one per index)."""
    index = launcher.xp.ascontiguousarray(index)
    outside = launcher.empty(index.shape, dtype)
    launcher.launch(kernel, (scalars[0], index.shape[2] * index.shape[3]), index, outside,
                    *scalars)
    return bool(outside.any())


def _gather(launcher, kernel, values, index, out_shape, scalars):
    """``out_shape`` summed by ``kernel(values, index, out, *scalars)``, one thread per cell."""
    xp = launcher.xp
    values, index = xp.ascontiguousarray(values), xp.ascontiguousarray(index)
    out = launcher.empty(tuple(out_shape), values.dtype)
    launcher.launch(kernel, (scalars[0], out_shape[2] * out_shape[3]), values, index, out,
                    *scalars)
    return out


def max_unpool2d_outside(indices: Array, dtype: Any, out_size: tuple[int, int],
                         kernel: tuple[int, int], stride: tuple[int, int],
                         padding: tuple[int, int], launcher: Any = None) -> bool:
    """Whether an index of ``indices`` (N, C, h, w), int64 in [0, H*W) or -1, lies outside its
    own window: the max pool's window (``kernel``, ``stride``, ``padding``) of its position
    over the (H, W) = ``out_size`` planes; -1 is never outside. ``dtype``: x's.

    Raises
    ------
    ValueError
        Planes too large for the kernels.
    """
    launcher = resolved(launcher)
    scalars = _unpool_scalars(indices.shape, out_size, kernel, stride, padding)
    return _any_outside(launcher, "max_unpool_check_kernel", indices, numpy.dtype(dtype),
                        scalars)


def max_unpool2d_gather(x: Array, indices: Array, out_size: tuple[int, int],
                        kernel: tuple[int, int], stride: tuple[int, int],
                        padding: tuple[int, int], launcher: Any = None) -> Array:
    """Max unpooling on the GPU: (N, C, H, W), each cell the sum of the x whose index is that
    cell, in the order of x, in float64 rounded once to x's dtype; 0 where none is.

    Only the windows holding a cell are searched: every index must be -1 or inside its own
    window (:func:`max_unpool2d_outside` False).

    Raises
    ------
    ValueError
        Planes too large for the kernels.
    """
    launcher = resolved(launcher)
    scalars = _unpool_scalars(x.shape, out_size, kernel, stride, padding)
    return _gather(launcher, "max_unpool_gather_kernel", x, indices,
                   x.shape[:2] + tuple(out_size), scalars)


def adaptive_max_pool2d_outside(indices: Array, dtype: Any, x_shape: tuple[int, ...],
                                launcher: Any = None) -> bool:
    """Whether an index of ``indices`` (N, C, OH, OW) is neither -1 nor a cell of its own
    adaptive window over the (H, W) planes of x (``x_shape``). ``dtype``: dout's.

    Raises
    ------
    ValueError
        Planes too large for the kernels.
    """
    launcher = resolved(launcher)
    scalars = _adaptive_scalars(x_shape, indices.shape)
    return _any_outside(launcher, "adaptive_max_check_kernel", indices, numpy.dtype(dtype),
                        scalars)


def adaptive_max_pool2d_gather(dout: Array, indices: Array, x_shape: tuple[int, ...],
                               launcher: Any = None) -> Array:
    """The adaptive max pool's gradient on the GPU: dx (``x_shape``), each cell the sum of the
    dout whose index is that cell, in the order of dout, in float64 rounded once.

    Only the adaptive windows holding a cell are searched: every index must be -1 or inside
    its own window (:func:`adaptive_max_pool2d_outside` False).

    Raises
    ------
    ValueError
        Planes too large for the kernels.
    """
    launcher = resolved(launcher)
    scalars = _adaptive_scalars(x_shape, dout.shape)
    return _gather(launcher, "adaptive_max_gather_kernel", dout, indices, x_shape, scalars)


def adaptive_max_pool2d_forward(x: Array, output_size: tuple[int, int],
                                launcher: Any = None) -> tuple[Array, Array]:
    """The adaptive max pool on the GPU: ``(out, indices)``, (N, C, OH, OW) for
    ``output_size`` (OH, OW), out of x's dtype, indices int64 (the flat ``h * W + w`` of each
    maximum in its plane).

    One thread per pooled element scans its adaptive window in row-major order: ties keep
    the first maximum, the first NaN wins; out holds the winning cell's own bits.

    Raises
    ------
    ValueError
        Planes too large for the kernel (:func:`adaptive_max_pool2d_fits`), before allocating.
    """
    launcher = resolved(launcher)
    out_shape = tuple(x.shape[:2]) + tuple(output_size)
    scalars = _adaptive_scalars(x.shape, out_shape)
    x = launcher.xp.ascontiguousarray(x)
    out = launcher.empty(out_shape, x.dtype)
    indices = launcher.empty(out_shape, numpy.int64)
    launcher.launch("adaptive_max_pool_forward_kernel", (scalars[0], out_shape[2] * out_shape[3]),
                    x, out, indices, *scalars)
    return out, indices
