"""The convolution as an implicit matrix product (kernels/conv_gemm.cu): its wrappers,
re-exported from :mod:`fastconv._cuda`.

``conv_gemm_into`` computes a convolution's output, the product of a filter matrix with
the input's columns, without writing the columns: the kernel reads each column entry
from the input where the product needs it. The GPU backend computes with it the input
gradient of a stride-1 convolution, ``conv_input_grad_into``: that gradient is the
convolution of dout with the filters flipped and transposed, padded by what the forward's
padding leaves of the window, so it takes one kernel instead of the column-gradient
product and col2im, and the column gradient never exists in memory. The kernel reads the
filters in place, flipped and transposed by its indexing: the backward copies nothing.

Each takes ``tf32``: the product then runs on the tensor cores in TF32
(``conv_gemm_tf32_kernel``: float32 on a GPU of compute capability 8.0 or newer, each
entry rounded to TF32 as it is staged), where cuBLAS would run the explicit product on
them too.

Both are written against a :class:`fastconv._cuda.Launcher` and its array module only,
like every wrapper of :mod:`fastconv._cuda` (``launcher=None`` for its default). Both refuse,
before allocating or launching anything, problems the kernel's 32-bit arithmetic cannot
hold (:func:`conv_gemm_fits` says which).
"""

from __future__ import annotations

import functools
import math
from typing import Any

from . import _cuda_launcher
from ._cuda_launcher import launch_into, resolved
from ._typing import Array
from .shapes import WindowGeometry

# kernels/conv_gemm.cu's marker for a column or kernel offset outside the input sits at
# -2**30: every extent, padding and reach must stay below 2**29 so that no sum reaches it
_EXTENT_LIMIT = 2**29


def _scalars(channels: int, size, out, kernel, stride, pads, dilation) -> tuple[int, ...] | None:
    """The kernel's window scalars H W OH OW KH KW SH SW PT PL DH DW, or None where its
    32-bit arithmetic cannot hold the problem (``pads`` are the top and left paddings,
    negative where the window is cropped)."""
    (h, w), (oh, ow), (kh, kw) = size, out, kernel
    (sh, sw), (top, left), (dh, dw) = stride, pads, dilation
    reach = (h, w, oh * sh, ow * sw, kh * dh, kw * dw, abs(top), abs(left))
    if (max(reach) >= _EXTENT_LIMIT or oh * ow >= _cuda_launcher.PLANE_LIMIT
            or channels * max(h * w, kh * kw) >= _cuda_launcher.PLANE_LIMIT):
        return None
    return h, w, oh, ow, kh, kw, sh, sw, top, left, dh, dw


# Memoised per (channels, geometry): the backend asks whether the kernel fits before the
# wrapper launches it, and a training loop asks again every step (geometries are immutable).
@functools.lru_cache(maxsize=256)
def _forward_scalars(channels, geometry):
    """The scalars of the convolution ``geometry`` itself."""
    pads = tuple(before for before, _ in geometry.pads)
    return _scalars(channels, geometry.size, geometry.out, geometry.kernel, geometry.stride,
                    pads, geometry.dilation)


@functools.lru_cache(maxsize=256)
def _input_grad_scalars(filters, geometry):
    """The scalars of the input gradient of the stride-1 convolution ``geometry``: a
    convolution of dout (its output) back to the input's size, stride 1, the same
    dilation, each axis padded by D*(K-1) less the forward's padding before the input."""
    pads = tuple(d * (k - 1) - before for (before, _), k, d in
                 zip(geometry.pads, geometry.kernel, geometry.dilation))
    return _scalars(filters, geometry.out, geometry.size, geometry.kernel, (1, 1), pads,
                    geometry.dilation)


def _fitting_scalars(w_shape, geometry, input_grad):
    """The kernel's scalars for the convolution ``geometry`` with filters of ``w_shape``
    (F, C, KH, KW), or (``input_grad``) for its input gradient; None where the kernel's
    32-bit arithmetic cannot hold the problem: it also indexes the filters in 32 bits."""
    if math.prod(w_shape) >= _cuda_launcher.PLANE_LIMIT:
        return None
    if input_grad:
        return _input_grad_scalars(w_shape[0], geometry)
    return _forward_scalars(w_shape[1], geometry)


def conv_gemm_fits(w_shape: tuple[int, ...], geometry: WindowGeometry,
                   input_grad: bool = False) -> bool:
    """Whether the implicit-product kernel takes the 2-D convolution ``geometry`` with
    filters of ``w_shape`` (F, C, KH, KW), or (``input_grad``) its input gradient: every
    extent of the window below 2**29, and each image's input, the reduction (C*KH*KW, or
    F*KH*KW for the input gradient) and the filters below 2**31 elements.

    Examples
    --------
    >>> from fastconv.shapes import window_geometry
    >>> conv_gemm_fits((64, 64, 3, 3), window_geometry((32, 64, 32, 32), 3, 3, 1, 1))
    True
    >>> conv_gemm_fits((1, 2**30, 1, 1), window_geometry((1, 2**30, 2, 2), 1, 1, 0, 1))
    False
    """
    return _fitting_scalars(tuple(w_shape), geometry, input_grad) is not None


def _launch(launcher, x, filters, bias, out, scalars, flipped, tf32):
    """out (N, M, OH, OW) = the filters times x's columns (+ bias): ``filters`` (M, C, KH, KW)
    themselves, or (``flipped``) the forward's (F, M, KH, KW) flipped along both window axes
    and transposed, read in place (kernels/conv_gemm.cu's A_ROW, A_OUTER and FLIP); on the
    tensor cores in TF32 where ``tf32``."""
    has_bias = bias is not None
    sources = (x, filters, bias if has_bias else filters)  # the bias is not read without one
    kernel, work, packed = _call(x.shape, filters.shape, has_bias, scalars, flipped, tf32)
    return launch_into(launcher, kernel, work, sources, out, *packed)


def _call(x_shape, filters_shape, has_bias, scalars, flipped, tf32):
    """The (kernel, work, scalars) of :func:`_launch` for operands of these shapes."""
    n, c = x_shape[:2]
    taps = scalars[4] * scalars[5]
    if flipped:
        m, a_row, a_outer = filters_shape[1], taps, filters_shape[1] * taps
    else:
        m, a_row, a_outer = filters_shape[0], math.prod(filters_shape[1:]), taps
    positions = scalars[2] * scalars[3]
    return ("conv_gemm_tf32_kernel" if tf32 else "conv_gemm_kernel", (m, n * positions),
            (n, c, m, a_row, a_outer, int(flipped), int(has_bias), *scalars))


def _refuse(what, geometry, w_shape):
    raise ValueError(f"{what} of {geometry} with filters {tuple(w_shape)} is too large for the "
                     f"implicit-product kernel: window extents must stay below 2**29, and "
                     f"each image's input, the reduction (C*KH*KW) and the filters below "
                     f"2**31 elements")


def conv_gemm_into(x: Array, w: Array, b: Array | None, geometry: WindowGeometry, out: Array,
                   launcher: Any = None, tf32: bool = False) -> Array:
    """Write the convolution of ``x`` (N, C, H, W) with ``w`` (F, C, KH, KW) (+ ``b`` (F,))
    into ``out`` (N, F, OH, OW), on the GPU, without a column matrix; return ``out``.

    Each output element sums its window's taps in (c, kh, kw) order, then adds the bias;
    with ``tf32``, on the tensor cores, each x and w entry rounded to TF32.

    Raises
    ------
    TypeError
        ``tf32`` on arrays other than float32.
    ValueError
        ``out`` shares memory with an input, the problem is too large for the kernel
        (:func:`conv_gemm_fits`), or ``tf32`` on a GPU older than compute capability 8.0.
    """
    launcher = resolved(launcher)
    return _launch(launcher, x, w, b, out, _checked_forward_scalars(w.shape, geometry),
                   flipped=False, tf32=tf32)


def conv_gemm_launch(x_shape: tuple[int, ...], w_shape: tuple[int, ...], has_bias: bool,
                     geometry: WindowGeometry, dtype: Any, launcher: Any = None,
                     tf32: bool = False) -> Any:
    """The prepared launch of :func:`conv_gemm_into` for ``x`` of ``x_shape`` and filters of
    ``w_shape`` in ``dtype``: ``launch(x, w, b, out)`` on C-contiguous arrays, unchecked
    (``w`` again for ``b`` without a bias: it is not read).

    Raises
    ------
    TypeError, ValueError
        As :func:`conv_gemm_into`, for the sizes.
    """
    scalars = _checked_forward_scalars(tuple(w_shape), geometry)
    kernel, work, packed = _call(x_shape, w_shape, has_bias, scalars, False, tf32)
    return resolved(launcher).prepare(kernel, dtype, work, *packed)


def _checked_forward_scalars(w_shape, geometry):
    """The convolution's window scalars (:func:`_fitting_scalars`), or its refusal."""
    scalars = _fitting_scalars(w_shape, geometry, False)
    if scalars is None:
        _refuse("a convolution", geometry, w_shape)
    return scalars


def conv_input_grad_into(dout: Array, w: Array, geometry: WindowGeometry, dx: Array,
                         launcher: Any = None, tf32: bool = False) -> Array:
    """Write the input gradient of a stride-1 convolution into ``dx`` (N, C, H, W), on the
    GPU, from ``dout`` (N, F, OH, OW) and its filters ``w`` (F, C, KH, KW); return ``dx``.

    It is the convolution of dout with the filters flipped along both window axes and
    transposed, (C, F, KH, KW), padded by D*(K-1) less the forward's padding on each
    axis: element (c, h, w) sums dout times the weight of every window covering it,
    in (f, kh, kw) order of the flipped filters; with ``tf32``, on the tensor cores, each
    dout and w entry rounded to TF32.

    Raises
    ------
    TypeError
        ``tf32`` on arrays other than float32.
    ValueError
        A stride other than 1, ``dx`` sharing memory with an input, a problem too
        large for the kernel (:func:`conv_gemm_fits` with ``input_grad``), or ``tf32`` on a
        GPU older than compute capability 8.0.
    """
    launcher = resolved(launcher)
    return _launch(launcher, dout, w, None, dx, _checked_input_grad_scalars(w.shape, geometry),
                   flipped=True, tf32=tf32)


def conv_input_grad_launch(dout_shape: tuple[int, ...], w_shape: tuple[int, ...],
                           geometry: WindowGeometry, dtype: Any, launcher: Any = None,
                           tf32: bool = False) -> Any:
    """The prepared launch of :func:`conv_input_grad_into` for ``dout`` of ``dout_shape`` and
    filters of ``w_shape`` in ``dtype``: ``launch(dout, w, w, dx)`` on C-contiguous arrays,
    unchecked (the second ``w`` stands for the bias, not read).

    Raises
    ------
    TypeError, ValueError
        As :func:`conv_input_grad_into`, for the sizes.
    """
    scalars = _checked_input_grad_scalars(tuple(w_shape), geometry)
    kernel, work, packed = _call(dout_shape, w_shape, False, scalars, True, tf32)
    return resolved(launcher).prepare(kernel, dtype, work, *packed)


def _checked_input_grad_scalars(w_shape, geometry):
    """The input gradient's window scalars (:func:`_fitting_scalars`), or its refusal."""
    if geometry.stride != (1, 1):
        raise ValueError(f"conv_input_grad_into takes a stride-1 convolution, got {geometry}")
    scalars = _fitting_scalars(w_shape, geometry, True)
    if scalars is None:
        _refuse("the input gradient", geometry, w_shape)
    return scalars


# The weight gradient's columns per split: about 512 (64 slices of 8), at most 64 splits, so
# that S3's 32,768 columns take 64 splits of 5 column tiles (577 kernel offsets and the
# bias's): 320 blocks, more than two per SM of an H100, and the partials, 64 x F x
# (C*KH*KW + 1) floats, about 9 MB.
SPLIT_COLUMNS, MAX_SPLITS = 512, 64


def weight_grad_splits(columns: int) -> tuple[int, int]:
    """``(splits, split)``: how many splits the weight gradient's ``columns`` (images x
    output positions) take, and the columns of each, a multiple of 8 (the last one's fewer;
    none empty).

    Examples
    --------
    >>> weight_grad_splits(32 * 32 * 32), weight_grad_splits(100), weight_grad_splits(0)
    ((64, 512), (1, 104), (1, 8))
    """
    splits = max(1, min(MAX_SPLITS, math.ceil(columns / SPLIT_COLUMNS)))
    split = max(8, math.ceil(columns / splits / 8) * 8)
    return max(1, math.ceil(columns / split)), split


def conv_weight_grad_fits(w_shape: tuple[int, ...], geometry: WindowGeometry) -> bool:
    """Whether the implicit weight-gradient kernel takes the 2-D convolution ``geometry``
    with filters of ``w_shape`` (F, C, KH, KW): the forward's limits
    (:func:`conv_gemm_fits`), and each image's dout, F*OH*OW, below 2**31 elements.

    Examples
    --------
    >>> from fastconv.shapes import window_geometry
    >>> conv_weight_grad_fits((64, 64, 3, 3), window_geometry((32, 64, 32, 32), 3, 1, 1, 1))
    True
    """
    return (conv_gemm_fits(w_shape, geometry)
            and w_shape[0] * math.prod(geometry.out) < _cuda_launcher.PLANE_LIMIT)


def _weight_grad_call(x_shape, w_shape, has_bias, geometry):
    """The (kernel, work, scalars, splits) of the weight gradient for these shapes, or its
    refusal."""
    scalars = _checked_forward_scalars(tuple(w_shape), geometry)
    (n, c), f = x_shape[:2], w_shape[0]
    positions = scalars[2] * scalars[3]
    if f * positions >= _cuda_launcher.PLANE_LIMIT:
        raise ValueError(f"dout of {(n, f) + geometry.out} is too large for the implicit "
                         f"weight gradient: F*OH*OW must stay below 2**31 elements")
    splits, split = weight_grad_splits(n * positions)
    tiles = math.ceil((c * scalars[4] * scalars[5] + int(has_bias)) / 128)
    return ("conv_weight_grad_tf32_kernel", (f, splits * tiles * 128),
            (n, c, f, splits, split, int(has_bias), *scalars), splits)


def conv_weight_grad_launch(x_shape: tuple[int, ...], w_shape: tuple[int, ...],
                            has_bias: bool, geometry: WindowGeometry, dtype: Any,
                            launcher: Any = None) -> tuple[Any, int]:
    """The prepared launch of :func:`conv_weight_grad_into` for ``x`` of ``x_shape`` and
    filters of ``w_shape`` in ``dtype``, and its number of splits: ``launch(x, dout,
    partials)`` on C-contiguous arrays, unchecked.

    Raises
    ------
    TypeError, ValueError
        As :func:`conv_weight_grad_into`, for the sizes.
    """
    kernel, work, packed, splits = _weight_grad_call(x_shape, w_shape, has_bias, geometry)
    return resolved(launcher).prepare(kernel, dtype, work, *packed), splits


def conv_weight_grad_into(x: Array, dout: Array, geometry: WindowGeometry, partials: Array,
                          has_bias: bool, launcher: Any = None) -> Array:
    """Write the weight gradient of the convolution ``geometry`` of ``x`` (N, C, H, W) with
    ``dout`` (N, F, OH, OW) into ``partials`` (splits, F, C*KH*KW + 1), float32, on the
    tensor cores in TF32; return ``partials``.

    ``partials[s, f, k]`` sums dout times the columns im2col would write (read from x where
    the product needs them, each entry rounded to TF32) over the columns (images x
    positions) of split ``s`` (:func:`weight_grad_splits`), and ``partials[s, f, -1]`` sums
    dout there where ``has_bias``: the splits summed in order
    (:func:`fastconv._cuda.weight_sum`) are dw and db.

    Raises
    ------
    TypeError
        Arrays other than float32.
    ValueError
        ``partials`` of another shape or sharing memory with an input, a problem too
        large for the kernel, or a GPU older than compute capability 8.0.
    """
    w_shape = (dout.shape[1], x.shape[1]) + geometry.kernel
    kernel, work, packed, splits = _weight_grad_call(x.shape, w_shape, has_bias, geometry)
    expected = (splits, w_shape[0], math.prod(w_shape[1:]) + 1)
    if tuple(partials.shape) != expected:
        raise ValueError(f"partials must have shape {expected} for x {tuple(x.shape)} and "
                         f"dout {tuple(dout.shape)}, got {tuple(partials.shape)}")
    return launch_into(resolved(launcher), kernel, work, (x, dout), partials, *packed)
