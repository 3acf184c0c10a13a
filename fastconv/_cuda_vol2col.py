"""The 3-D convolution's column kernels (kernels/vol2col.cu): one wrapper each, re-exported
from :mod:`fastconv._cuda`.

``vol2col_into`` writes the columns (N, C, KD, KH, KW, OD, OH, OW) of an input (N, C, D, H,
W), the taps in the padding as zeros, without a padded copy; ``col2vol_into`` sums columns
back onto the input's shape, gather-style: each input element adds the entries copied from
it in kernel-offset order, so no atomics and the same bits every run. Both are written
against a :class:`fastconv._cuda.Launcher` and its array module only, like every wrapper of
:mod:`fastconv._cuda` (``launcher=None`` for :func:`fastconv._cuda.default_launcher`). Both
refuse, before allocating or launching anything, volumes too large for the kernels' 32-bit
in-volume arithmetic (:func:`volume_args`).
"""

from __future__ import annotations

import math
from typing import Any

from . import _cuda_launcher
from ._cuda_launcher import launch_into, resolved
from ._typing import Array
from .shapes import WindowGeometry


def volume_args(geometry: WindowGeometry) -> tuple[int, ...]:
    """The kernels' window scalars, D H W OD OH OW KD KH KW SD SH SW PF PT PL DD DH DW.

    Parameters
    ----------
    geometry : WindowGeometry
        Three spatial axes.

    Returns
    -------
    tuple of int

    Raises
    ------
    ValueError
        A volume (D*H*W, OD*OH*OW, the padded extent), an axis's reach into the padding or
        the window (KD*KH*KW) at or beyond :data:`fastconv._cuda_launcher.PLANE_LIMIT`
        elements (looked up at call time).

    Examples
    --------
    >>> from fastconv.shapes import window_geometry
    >>> volume_args(window_geometry((1, 1, 4, 5, 6), 3, (1, 1, 2), 1, 1))
    (4, 5, 6, 4, 5, 3, 3, 3, 3, 1, 1, 2, 1, 1, 1, 1, 1, 1)
    """
    fronts = tuple(before for before, _ in geometry.pads)
    # the kernels' int32 tap positions: o*S - P + k*D (fc_for_each_tap), d + P (fc_covering)
    reach = [n + before + k * d for n, before, k, d in
             zip(geometry.size, fronts, geometry.kernel, geometry.dilation)]
    reach += [o * s + k * d for o, s, k, d in
              zip(geometry.out, geometry.stride, geometry.kernel, geometry.dilation)]
    extents = (math.prod(geometry.padded), math.prod(geometry.out), math.prod(geometry.kernel))
    if max(*extents, *reach) >= _cuda_launcher.PLANE_LIMIT:
        raise ValueError(
            f"a volume of {geometry} is too large for the CUDA kernels: volumes (D*H*W, "
            f"OD*OH*OW), their padded extents and the window (KD*KH*KW) must stay below "
            f"2**31 elements")
    return (geometry.size + geometry.out + geometry.kernel + geometry.stride + fronts
            + geometry.dilation)


def vol2col_into(x: Array, geometry: WindowGeometry, out: Array, launcher: Any = None) -> Array:
    """Write the columns of ``x`` (N, C, D, H, W) into ``out`` (N, C, KD, KH, KW, OD, OH, OW).

    One thread per output position writes its window's KD*KH*KW entries.

    Parameters
    ----------
    x : cupy.ndarray
        The input; a strided one is copied contiguous first.
    geometry : WindowGeometry
        Three spatial axes.
    out : cupy.ndarray
        x's dtype; written through a copy when not C-contiguous.
    launcher : Launcher, optional
        :func:`fastconv._cuda.default_launcher` when None.

    Returns
    -------
    cupy.ndarray
        ``out``.

    Raises
    ------
    ValueError
        ``out`` shares memory with ``x``, or a volume is too large for the kernels.
    """
    kernel, work, scalars = volume_calls(geometry, *x.shape[:2])[0]
    return launch_into(resolved(launcher), kernel, work, (x,), out, *scalars)


def col2vol_into(cols: Array, geometry: WindowGeometry, out: Array, launcher: Any = None) -> Array:
    """Sum columns (N, C, KD, KH, KW, OD, OH, OW) onto ``out`` (N, C, D, H, W), gather-style.

    One thread per input element adds, in ascending (kd, kh, kw), the entries of the
    windows covering it, and writes it once.

    Parameters
    ----------
    cols : cupy.ndarray
        The columns; strided ones are copied contiguous first.
    geometry : WindowGeometry
        Three spatial axes.
    out : cupy.ndarray
        cols' dtype; written through a copy when not C-contiguous.
    launcher : Launcher, optional
        :func:`fastconv._cuda.default_launcher` when None.

    Returns
    -------
    cupy.ndarray
        ``out``.

    Raises
    ------
    ValueError
        ``out`` shares memory with ``cols``, or a volume is too large for the kernels.
    """
    kernel, work, scalars = volume_calls(geometry, *out.shape[:2])[1]
    return launch_into(resolved(launcher), kernel, work, (cols,), out, *scalars)


def volume_calls(geometry: WindowGeometry, images: int, channels: int
                 ) -> tuple[tuple[str, tuple[int, int], tuple[int, ...]], ...]:
    """The (kernel, work, scalars) of :func:`vol2col_into` and of :func:`col2vol_into` over
    ``images`` x ``channels`` volumes of ``geometry`` (:func:`volume_args`' Raises).

    Examples
    --------
    >>> from fastconv.shapes import window_geometry
    >>> [(kernel, work) for kernel, work, _ in
    ...  volume_calls(window_geometry((2, 3, 4, 4, 4), 3, 1, 1, 1), 2, 3)]
    [('vol2col_kernel', (6, 64)), ('col2vol_kernel', (6, 64))]
    """
    scalars = (images, channels, *volume_args(geometry))
    planes = images * channels
    return (("vol2col_kernel", (planes, math.prod(geometry.out)), scalars),
            ("col2vol_kernel", (planes, math.prod(geometry.size)), scalars))
