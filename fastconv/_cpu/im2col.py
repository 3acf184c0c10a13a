"""im2col and col2im on the CPU: one strided view and one copy; one vectorised add per offset.

The column layout is :mod:`fastconv.im2col`'s, in any number of spatial axes: (N, C, KH, KW,
OH, OW) in 2-D, (N, C, KD, KH, KW, OD, OH, OW) in 3-D. The passes are
:mod:`fastconv._window_arrays`' (in any number of spatial axes): im2col never uses fancy
indexing (each image is padded into a workspace buffer, viewed as its windows and copied);
col2im never uses ``np.add.at`` (each kernel offset is one strided slab of the padded image,
added with one ``+=``). Here the batch is split across threads
(:mod:`fastconv._cpu.threads`), each image being independent, so the results are bitwise those
of one thread.

:func:`col2im_planes_into` is the CPU's faster col2im for a convolution's backward, from
columns laid out on whole stride-phase planes.

Each function's buffers are declared by its ``*_plan`` function and come from the caller's
:class:`fastconv.workspace.Workspace`, sized to the chunk.
"""

from __future__ import annotations

import itertools
import math

import numpy

from .. import _window_arrays
from .._typing import Array, DTypeLike
from .._window_arrays import Buffers, padded_plan
from ..backend import accumulator_dtype
from ..profiling import step
from ..shapes import WindowGeometry
from ..workspace import Buffer
from .threads import over_batch

_IMAGES = (slice(None), slice(None))


def im2col_plan(channels: int, geometry: WindowGeometry, dtype: DTypeLike) -> tuple[Buffer, ...]:
    """The buffers of :func:`im2col_into` per image: the padded image.

    Examples
    --------
    >>> from fastconv.shapes import window_geometry
    >>> [b.shape for b in im2col_plan(2, window_geometry((1, 2, 4, 4), 3, 1, 1, 1), "float32")]
    [(2, 6, 6)]
    """
    return padded_plan(channels, geometry, dtype)


def im2col_into(x: Array, geometry: WindowGeometry, out: Array, buffers: Buffers) -> Array:
    """Write the columns of ``x`` (N, C, *size) into ``out`` (N, C, *kernel, *out); return ``out``.

    Parameters
    ----------
    x : numpy.ndarray
        The images, 1 to 3 spatial axes.
    geometry : WindowGeometry
    out : numpy.ndarray
        The columns, written in place.
    buffers : mapping
        The workspace buffers of :func:`im2col_plan` for x's batch.

    Examples
    --------
    >>> import numpy
    >>> from fastconv.shapes import window_geometry
    >>> x = numpy.arange(3.0).reshape(1, 1, 3)
    >>> im2col_into(x, window_geometry(x.shape, 2, 1, 0, 1), numpy.empty((1, 1, 2, 2)), {})[0, 0]
    array([[0., 1.],
           [1., 2.]])
    """
    with step("im2col"):
        return _window_arrays.im2col_into(x, geometry, out, buffers, over_batch)


def col2im_plan(channels: int, geometry: WindowGeometry, dtype: DTypeLike) -> tuple[Buffer, ...]:
    """The buffers of :func:`col2im_into` per image: the padded image the slabs add into.

    float16 columns add into a float32 image even where the geometry does not pad, rounded
    once into ``out``.

    Examples
    --------
    >>> from fastconv.shapes import window_geometry
    >>> col2im_plan(2, window_geometry((1, 2, 4, 4), 3, 1, 0, 1), "float32")
    ()
    >>> [b.dtype for b in col2im_plan(2, window_geometry((1, 2, 4, 4), 3, 1, 0, 1), "float16")]
    [dtype('float32')]
    """
    # A float16 running sum overflows past 65504 before a later term cancels it (and stalls
    # at 2048); the GPU's col2im sums in float32 too.
    acc = accumulator_dtype(dtype)
    if acc != numpy.dtype(dtype):
        return (Buffer("col2im padded", (channels,) + geometry.padded, acc),)
    return padded_plan(channels, geometry, dtype, name="col2im padded")


def col2im_into(cols: Array, geometry: WindowGeometry, out: Array, buffers: Buffers) -> Array:
    """Sum columns (N, C, *kernel, *out) back onto ``out`` (N, C, *size); return ``out``.

    Each kernel offset is one strided slab of the padded image (``out`` itself when there is
    no padding), added with one vectorised ``+=``; the padding border is then cropped away.

    Parameters
    ----------
    cols : numpy.ndarray
        The columns.
    geometry : WindowGeometry
    out : numpy.ndarray
        The images, overwritten.
    buffers : mapping
        The workspace buffers of :func:`col2im_plan` for the batch.

    Examples
    --------
    >>> import numpy
    >>> from fastconv.shapes import window_geometry
    >>> g = window_geometry((1, 1, 3), 2, 1, 0, 1)
    >>> col2im_into(numpy.ones((1, 1, 2, 2)), g, numpy.empty((1, 1, 3)), {})
    array([[[1., 2., 1.]]])
    """
    with step("col2im"):
        return _window_arrays.col2im_into(cols, geometry, out, buffers, over_batch)


def _plane_taps(geometry: WindowGeometry) -> list[tuple[tuple[int, ...], int]]:
    """Per kernel offset: its stride phase (one index per axis) and its shift inside the
    flattened phase plane."""
    phase_size = geometry.phase_size
    plane_strides = [math.prod(phase_size[axis + 1:]) for axis in range(geometry.ndim)]
    return [(tuple(o * d % s for o, s, d in zip(offset, geometry.stride, geometry.dilation)),
             sum((o * d // s) * plane_stride for o, s, d, plane_stride in
                 zip(offset, geometry.stride, geometry.dilation, plane_strides)))
            for offset in geometry.kernel_offsets()]


def _phase_length(channels: int, geometry: WindowGeometry) -> int:
    """Length of one image's phase row: its C planes plus the largest shift spilling past them."""
    return (channels * math.prod(geometry.phase_size)
            + max(shift for _, shift in _plane_taps(geometry)))


def col2im_planes_plan(channels: int, geometry: WindowGeometry,
                       dtype: DTypeLike) -> tuple[Buffer, ...]:
    """The buffers of :func:`col2im_planes_into` per image.

    Every stride phase's planes (with room for the shifted adds; float32 for float16
    columns, as :func:`col2im_plan`'s image), and for a stride above 1 the padded image the
    phases interleave into.

    Examples
    --------
    >>> from fastconv.shapes import window_geometry
    >>> g = window_geometry((1, 2, 5, 5), 3, 2, 1, 1)
    >>> [b.shape for b in col2im_planes_plan(2, g, "float32")]
    [(2, 2, 37), (2, 8, 8)]
    """
    stride, phase_size = geometry.stride, geometry.phase_size
    plan: tuple[Buffer, ...] = (Buffer("phases", stride + (_phase_length(channels, geometry),),
                                       accumulator_dtype(dtype)),)
    if any(s != 1 for s in stride):
        interleaved = tuple(q * s for q, s in zip(phase_size, stride))
        plan += (Buffer("interleaved", (channels,) + interleaved, dtype),)
    return plan


def col2im_planes_into(dcols: Array, geometry: WindowGeometry, groups: int, out: Array,
                       buffers: Buffers) -> Array:
    """col2im from columns laid out on whole stride-phase planes, onto ``out`` (N, C, *size).

    ``dcols`` (N, G, K*C/G, Q) with K the kernel's size and Q the size of
    ``geometry.phase_size`` (Hq*Wq in 2-D): per group, the rows of kernel offset (i, j) are
    its C/G channels' planes, in which column oh*Wq + ow holds window (oh, ow) and every other
    column is zero. Offset (i, j) lands in phase (i*dh % sh, j*dw % sw) shifted by
    (i*dh // sh)*Wq + j*dw // sw (in 3-D alike, with a depth term), so each offset is a single
    add of a group's planes: rows of C/G*Q elements, where the slab adds of
    :func:`col2im_into` have rows of OW and NumPy spends most of their time per row. The
    phases are then interleaved back into the padded image (nothing to interleave for stride
    1) and cropped. The zero columns spill only zeros into the next plane, so they must be
    exactly zero (finite weights).

    Parameters
    ----------
    dcols : numpy.ndarray
        The plane-shaped column gradient.
    geometry : WindowGeometry
    groups : int
    out : numpy.ndarray
        dx, overwritten.
    buffers : mapping
        The workspace buffers of :func:`col2im_planes_plan` for the batch.

    Returns
    -------
    numpy.ndarray
        ``out``.

    Examples
    --------
    >>> import numpy
    >>> from fastconv.shapes import window_geometry
    >>> g = window_geometry((1, 1, 3), 2, 1, 0, 1)  # Q = 3: windows at 0 and 1, then a zero
    >>> dcols = numpy.array([[[[1.0, 1.0, 0.0], [1.0, 1.0, 0.0]]]])
    >>> buffers = {"phases": numpy.empty((1, 1, 4))}
    >>> col2im_planes_into(dcols, g, 1, numpy.empty((1, 1, 3)), buffers)
    array([[[1., 2., 1.]]])
    """
    n, channels = out.shape[:2]
    stride, phase_size = geometry.stride, geometry.phase_size
    plane = math.prod(phase_size)
    group_size = channels // groups * plane
    taps = _plane_taps(geometry)
    phases, interleaved = buffers["phases"], buffers.get("interleaved")

    def add_planes(batch: slice) -> None:
        rows = dcols[batch].reshape(-1, groups, len(taps), group_size)
        sums = phases[batch]
        sums.fill(0)
        for group in range(groups):
            for tap, (phase, shift) in enumerate(taps):
                start = group * group_size + shift
                sums[(slice(None),) + phase + (slice(start, start + group_size),)] += (
                    rows[:, group, tap])
        on_planes = sums[..., :channels * plane].reshape((-1,) + stride + (channels,)
                                                         + phase_size)
        if interleaved is None:  # stride 1: the one phase is the padded image
            padded = on_planes[(slice(None),) + (0,) * geometry.ndim]
        else:
            padded = interleaved[batch]
            for phase in itertools.product(*(range(s) for s in stride)):
                padded[_IMAGES + tuple(slice(a, None, s) for a, s in zip(phase, stride))] = (
                    on_planes[(slice(None),) + phase])
        out[batch] = padded[_IMAGES + geometry.interior]

    with step("col2im"):
        over_batch(add_planes, n, dcols.nbytes, passes=groups * len(taps))
    return out
