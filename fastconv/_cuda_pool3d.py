"""The 3-D pooling kernels (kernels/pool3d.cu): one wrapper each, re-exported from
:mod:`fastconv._cuda`.

Max and average pooling of (N, C, D, H, W) arrays, forward and backward, one launch each:
a thread per output element scans its window, a thread per input element gathers the
windows covering it (no atomics, the same bits every run). Each goes through the
:class:`fastconv._cuda.Launcher` (``launcher=None`` for :func:`fastconv._cuda.default_launcher`)
and refuses, before allocating anything, volumes too large for the kernels' 32-bit in-volume
arithmetic (:func:`fastconv._cuda_vol2col.volume_args`; the window's size bounds the int32
argmax too).
"""

from __future__ import annotations

import math
from typing import Any

import numpy

from ._cuda_launcher import resolved
from ._cuda_vol2col import volume_args
from ._typing import Array
from .shapes import WindowGeometry


def _forward(launcher: Any, kernel: str, x: Array, geometry: WindowGeometry,
             *per_window_and_outputs: Array) -> None:
    """Run ``kernel(x, *arrays, NC, window...)`` over the output positions of ``x``."""
    planes = x.shape[0] * x.shape[1]
    launcher.launch(kernel, (planes, math.prod(geometry.out)), x, *per_window_and_outputs,
                    planes, *volume_args(geometry))


def _backward(launcher: Any, kernel: str, dout: Array, per_window: Array,
              x_shape: tuple[int, ...], geometry: WindowGeometry) -> Array:
    """dx of shape ``x_shape`` from ``kernel(dout, per_window, dx, NC, window...)``."""
    dout = launcher.xp.ascontiguousarray(dout)
    args = volume_args(geometry)  # refuse a volume too large before allocating
    dx = launcher.empty(tuple(x_shape), dout.dtype)
    planes = x_shape[0] * x_shape[1]
    launcher.launch(kernel, (planes, math.prod(x_shape[2:])), dout, per_window, dx, planes,
                    *args)
    return dx


def max_pool3d_forward(x: Array, geometry: WindowGeometry,
                       launcher: Any = None) -> tuple[Array, Array]:
    """3-D max pooling on the GPU: ``(out, argmax)``.

    Parameters
    ----------
    x : cupy.ndarray
        (N, C, D, H, W); a strided one is copied contiguous first.
    geometry : WindowGeometry
        Three spatial axes.
    launcher : Launcher, optional
        :func:`fastconv._cuda.default_launcher` when None.

    Returns
    -------
    out : cupy.ndarray
        (N, C, OD, OH, OW), x's dtype: each window's first maximum (the first NaN).
    argmax : cupy.ndarray
        int32, out's shape: the flat kernel offset (kd*KH + kh)*KW + kw of each maximum, 0
        for a window of padding only.

    Raises
    ------
    ValueError
        A volume too large for the kernels.
    """
    launcher = resolved(launcher)
    x = launcher.xp.ascontiguousarray(x)
    volume_args(geometry)  # refuse a volume too large before allocating
    shape = x.shape[:2] + geometry.out
    out, argmax = launcher.empty(shape, x.dtype), launcher.empty(shape, numpy.int32)
    _forward(launcher, "max_pool3d_forward_kernel", x, geometry, out, argmax)
    return out, argmax


def max_pool3d_backward(dout: Array, argmax: Array, x_shape: tuple[int, ...],
                        geometry: WindowGeometry, launcher: Any = None) -> Array:
    """The 3-D max-pool gradient on the GPU, gather-style: each input element sums, in
    ascending kernel offset, the dout of the windows whose maximum it was.

    Parameters
    ----------
    dout, argmax : cupy.ndarray
        (N, C, OD, OH, OW): the output's gradient and :func:`max_pool3d_forward`'s argmax.
    x_shape : tuple of int
    geometry : WindowGeometry
    launcher : Launcher, optional
        :func:`fastconv._cuda.default_launcher` when None.

    Returns
    -------
    cupy.ndarray
        dx, ``x_shape``, dout's dtype (float16 summed in float32, rounded once).

    Raises
    ------
    ValueError
        A volume too large for the kernels.
    """
    launcher = resolved(launcher)
    return _backward(launcher, "max_pool3d_backward_kernel", dout, argmax, x_shape, geometry)


def avg_pool3d_forward(x: Array, geometry: WindowGeometry, divisor: Array,
                       launcher: Any = None) -> Array:
    """3-D average pooling on the GPU: each window's sum, in ascending kernel offset, over its
    divisor.

    Parameters
    ----------
    x : cupy.ndarray
        (N, C, D, H, W); a strided one is copied contiguous first.
    geometry : WindowGeometry
    divisor : cupy.ndarray
        (OD, OH, OW), C-contiguous, in the accumulator dtype (float32 for float16).
    launcher : Launcher, optional
        :func:`fastconv._cuda.default_launcher` when None.

    Returns
    -------
    cupy.ndarray
        (N, C, OD, OH, OW), x's dtype.

    Raises
    ------
    ValueError
        A volume too large for the kernels.
    """
    launcher = resolved(launcher)
    x = launcher.xp.ascontiguousarray(x)
    volume_args(geometry)  # refuse a volume too large before allocating
    out = launcher.empty(x.shape[:2] + geometry.out, x.dtype)
    _forward(launcher, "avg_pool3d_forward_kernel", x, geometry, divisor, out)
    return out


def avg_pool3d_backward(dout: Array, divisor: Array, x_shape: tuple[int, ...],
                        geometry: WindowGeometry, launcher: Any = None) -> Array:
    """The 3-D average-pool gradient on the GPU, gather-style: each input element sums, in
    ascending kernel offset, dout / divisor of the windows containing it.

    Parameters
    ----------
    dout : cupy.ndarray
        (N, C, OD, OH, OW).
    divisor : cupy.ndarray
        (OD, OH, OW), as the forward's.
    x_shape : tuple of int
    geometry : WindowGeometry
    launcher : Launcher, optional
        :func:`fastconv._cuda.default_launcher` when None.

    Returns
    -------
    cupy.ndarray
        dx, ``x_shape``, dout's dtype (float16 summed in float32, rounded once).

    Raises
    ------
    ValueError
        A volume too large for the kernels.
    """
    launcher = resolved(launcher)
    return _backward(launcher, "avg_pool3d_backward_kernel", dout, divisor, x_shape, geometry)
