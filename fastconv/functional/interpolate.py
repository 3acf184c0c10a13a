"""2-D resizing as ``torch.nn.functional.interpolate``, modes 'nearest' and 'bilinear', with the backward.

Both modes are separable: an output row reads T input rows (T = 1 for
nearest, 2 for bilinear) with weights, and the same along the columns. Each
axis's taps come from PyTorch's index rules (ATen's ``UpSample.h``: the
legacy 'nearest' index floor(dst * in/out) and bilinear's source position and
weights in the input's compute dtype, float32 for float32 and float16, as ATen's
CPU kernel computes them), computed once per call on the host for the O outputs of
the axis, so the same input cells are read as in PyTorch.

The backward is the adjoint, written as gathers too: for each input row, a
table holds the r-th output row that reads it and its weight (an entry with
no reader points one past the last output: a zero row). No scatter, no
atomics: every run gives the same bits; each input's terms add up in
increasing output order.

What runs where: this module validates, sizes the output and builds the tap
tables (on x's device), then dispatches once to the backend of the arrays'
device. :mod:`fastconv._cpu.interpolate` runs ``take`` gathers, H first, then
W, in the accumulator dtype (float32 for float16), the backward W first, then
H; :mod:`fastconv._gpu.interpolate` runs the CUDA kernels of
kernels/interpolate.cu, one thread per output element (forward) or per input
element (backward), with the same operations in the same order: the two give
the same bits.

The output size is ``size``, or floor(input size * ``scale_factor``); with a
scale factor, PyTorch's default ``recompute_scale_factor=None`` applies:
the positions use 1 / scale_factor, not in/out. An axis whose size stays is
copied, whatever the scale factor, as in PyTorch. An output too large to
allocate sensibly is refused before any table is built, by the rule of
:func:`fastconv.functional.adaptive_pool.check_output_size`.
"""

from __future__ import annotations

import math
from typing import Any, ClassVar, NamedTuple

import numpy

from .. import _backends, _validate
from .._typing import Array
from ..backend import accumulator_dtype, get_array_module
from ._axes import per_axis
from .adaptive_pool import check_output_size

MODES = ("nearest", "bilinear")


class _Taps(NamedTuple):
    """How one axis resamples (arrays on x's device).

    ``index`` and ``weight`` (T, O): output o reads input ``index[t, o]`` with
    ``weight[t, o]`` (None for nearest: weight 1). ``adjoint_index`` and
    ``adjoint_weight`` (M, I): input i is read by output ``adjoint_index[r, i]``
    with ``adjoint_weight[r, i]``; O (the appended zero row) where fewer than
    r + 1 outputs read it.
    """

    index: Any
    weight: Any
    adjoint_index: Any
    adjoint_weight: Any


@_validate.op_cache
class InterpolateCache:
    """What :func:`interpolate_backward` needs: x's shape and dtype, the output shape, each axis's taps.

    Attributes
    ----------
    x_shape, out_shape : tuple of int
        The input's and the output's shapes.
    dtype : numpy.dtype
        The input's dtype.
    taps : tuple
        The H and the W axis's taps (``_Taps``), None for an axis that is copied.

    Examples
    --------
    >>> import numpy as np
    >>> cache = interpolate_forward(np.zeros((1, 1, 2, 2)), size=(2, 4))[1]
    >>> cache.out_shape, cache.taps[0] is None
    ((1, 1, 2, 4), True)
    """

    op: ClassVar[str] = "interpolate_forward"
    x_shape: tuple[int, ...]
    dtype: Any
    out_shape: tuple[int, ...]
    taps: tuple[Any, ...]


def _nearest_index(size, out, scale, dtype):
    """(1, out): PyTorch's legacy 'nearest' source of each output, for inputs of ``dtype``.

    Twice the size halves the index; otherwise floor(o * ratio), the ratio being
    1 / scale_factor when one was given, else in/out, as ATen's CPU kernel computes it:
    the ratio and the product in float32 for float16 and float32 inputs, in float64 for
    float64 ones, and the product rounded to float32 before the floor (its ``floorf``).
    """
    o = numpy.arange(out)
    if out == 2 * size:
        return (o >> 1)[None]
    precision = numpy.float64 if dtype == numpy.float64 else numpy.float32
    ratio = precision(1.0 / scale) if scale else precision(size) / precision(out)
    real = (o.astype(precision) * ratio).astype(numpy.float32)
    return numpy.minimum(numpy.floor(real).astype(numpy.int64), size - 1)[None]


def _linear_taps(size, out, scale, align_corners, dtype):
    """``(index, weight)``, each (2, out): PyTorch's bilinear sources and weights, in ``dtype``.

    ATen's ``area_pixel_compute_source_index`` and ``guard_index_and_lambda``:
    with ``align_corners`` the corners map onto each other, ratio (in-1)/(out-1);
    else pixel centres do, ratio 1 / scale_factor (or in/out), and a position
    left of the first centre clamps to 0. The far cell's weight is the
    fractional part, clamped to [0, 1]; the last cell has no right neighbour
    and reads itself twice.
    """
    t = dtype.type
    o = numpy.arange(out).astype(dtype)
    if align_corners:
        real = (t(size - 1) / t(out - 1) if out > 1 else t(0)) * o
    else:
        ratio = t(1.0 / scale) if scale else t(size) / t(out)
        real = numpy.maximum(ratio * (o + t(0.5)) - t(0.5), t(0))
    # ATen floors with floorf, so even a float64 position is rounded to float32 first
    first = numpy.minimum(numpy.floor(real.astype(numpy.float32)).astype(numpy.int64), size - 1)
    far = numpy.clip(real - first.astype(dtype), t(0), t(1))
    return numpy.stack([first, first + (first < size - 1)]), numpy.stack([t(1) - far, far])


def _adjoint(index, weight, size):
    """The (M, size) adjoint tables of an axis's taps (see :class:`_Taps`), M the most readers."""
    taps, out = index.shape
    source = index.T.reshape(-1)  # output-major, so readers come in increasing output order
    order = numpy.argsort(source, kind="stable")
    source = source[order]
    rank = numpy.arange(source.size) - numpy.searchsorted(source, source)
    adjoint_index = numpy.full((int(rank.max()) + 1, size), out)
    adjoint_index[rank, source] = numpy.repeat(numpy.arange(out), taps)[order]
    if weight is None:
        return adjoint_index, None
    adjoint_weight = numpy.zeros(adjoint_index.shape, weight.dtype)
    adjoint_weight[rank, source] = weight.T.reshape(-1)[order]
    return adjoint_index, adjoint_weight


def _axis_taps(size, out, scale, mode, align_corners, dtype, xp):
    """The :class:`_Taps` of one axis on x's device; None when the axis keeps its size."""
    if out == size:  # PyTorch copies such an axis, even under a scale factor other than 1
        return None
    if mode == "nearest":
        index, weight = _nearest_index(size, out, scale, dtype), None
    else:
        index, weight = _linear_taps(size, out, scale, align_corners, dtype)
    arrays = (index, weight) + _adjoint(index, weight, size)
    return _Taps(*(None if a is None else xp.asarray(a) for a in arrays))


def _sizes_or_scales(size, scale_factor):
    """``(sizes, scales)``: the (OH, OW) ints of ``size`` or the per-axis floats of
    ``scale_factor``, the other None; validated as PyTorch's (exactly one of them)."""
    if (size is None) == (scale_factor is None):
        given = "both" if size is not None else "neither"
        raise ValueError(f"give exactly one of size and scale_factor, got {given} "
                         f"(size={size!r}, scale_factor={scale_factor!r})")
    if size is not None:
        return tuple(_validate.check_int("size", s, 1) for s in per_axis(size, "size")), None
    return None, tuple(_validate.check_real("scale_factor", s, 0.0, float("inf"),
                                            low_open=True, high_open=True)
                       for s in per_axis(scale_factor, "scale_factor"))


def _argument(size, scale_factor):
    """What sized the output, for the errors."""
    return f"size={size!r}" if size is not None else f"scale_factor={scale_factor!r}"


def check_resize(size: Any = None, scale_factor: Any = None, mode: str = "nearest",
                 align_corners: bool | None = None) -> None:
    """Check a resize's settings without an input, as :class:`fastconv.nn.Upsample` is built.

    The checks of :func:`interpolate_forward` that need no x, the size of the output
    included: an input is at least 1x1, so ``scale_factor`` gives planes of at least
    floor(scale) per axis (:func:`fastconv.functional.adaptive_pool.check_output_size`).

    Parameters
    ----------
    size, scale_factor, mode, align_corners
        As :func:`interpolate_forward` takes them.

    Raises
    ------
    TypeError, ValueError
        As :func:`interpolate_forward` would for any input.

    Examples
    --------
    >>> check_resize(size=2, scale_factor=2)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ValueError: give exactly one of size and scale_factor, got both ...
    """
    _check_mode(mode, align_corners)
    sizes, scales = _sizes_or_scales(size, scale_factor)
    if scales is None:
        check_output_size(_argument(size, scale_factor), sizes)
    else:
        sh, sw = scales
        check_output_size(f"{_argument(size, scale_factor)} (on a 1x1 input)",
                          (max(int(sh), 1), max(int(sw), 1)))


def _output_size(x_shape, size, scale_factor):
    """(OH, OW) and the per-axis scale factors (None without), validated as PyTorch's, and
    refused before any work when too large (:func:`check_output_size`)."""
    sizes, scales = _sizes_or_scales(size, scale_factor)
    if scales is None:
        out, scales = sizes, (None, None)
    else:
        real = [n * s for n, s in zip(x_shape[2:], scales)]  # floor, in float64, as PyTorch
        if not all(map(math.isfinite, real)):
            raise ValueError(f"scale_factor={scale_factor!r} gives an output size past the "
                             f"largest float for x of shape {tuple(x_shape)}")
        out = tuple(int(v) for v in real)
        if min(out) < 1:
            raise ValueError(f"scale_factor={scale_factor!r} gives the empty output size {out} "
                             f"for x of shape {tuple(x_shape)}")
    check_output_size(_argument(size, scale_factor), out, tuple(x_shape))
    return out, scales


def _check_mode(mode, align_corners):
    """``align_corners`` as a bool for ``mode``; PyTorch's rule: None for 'nearest', default False."""
    if not isinstance(mode, str) or mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    if align_corners is None:
        return False
    align_corners = _validate.check_bool("align_corners", align_corners)
    if mode == "nearest":
        raise ValueError("align_corners applies to mode='bilinear' only; leave it None for "
                         "mode='nearest' (as PyTorch)")
    return align_corners


def interpolate_forward(x: Array, size: Any = None, scale_factor: Any = None,
                        mode: str = "nearest", align_corners: bool | None = None
                        ) -> tuple[Array, InterpolateCache]:
    """Resize ``x`` (N, C, H, W) to ``size`` or by ``scale_factor``; return ``(out, cache)``.

    As ``torch.nn.functional.interpolate`` on 4-D input with its default
    ``recompute_scale_factor`` (see the module notes): 'nearest' is PyTorch's
    legacy rule, source floor(dst * in/out); 'bilinear' weighs the two nearest
    cells per axis, pixel centres aligned (``align_corners=False``, the
    default) or corner cells aligned (True).

    Parameters
    ----------
    x : ndarray
        (N, C, H, W), float16/32/64, H and W at least 1.
    size : int or (int, int), optional
        (OH, OW), each at least 1.
    scale_factor : float or (float, float), optional
        Per axis, > 0; the output size is floor(H * scale), floor(W * scale).
        Give exactly one of ``size`` and ``scale_factor``.
    mode : {'nearest', 'bilinear'}, default 'nearest'
        The interpolation.
    align_corners : bool, optional
        'bilinear' only (None means False); must be None for 'nearest'.

    Returns
    -------
    out : ndarray
        (N, C, OH, OW), x's dtype (float16 is computed in float32).
    cache : InterpolateCache
        For :func:`interpolate_backward`.

    Raises
    ------
    ValueError
        x not 4-D or empty in H or W; both or neither of size and
        scale_factor, a size below 1, a scale factor that is not > 0 or gives
        an empty output, an output too large (planes of 2**31 elements or more:
        :func:`fastconv.functional.adaptive_pool.check_output_size`), a size or
        scale sequence not of length 2; an unknown mode, align_corners with 'nearest'.
    TypeError
        A non-float x, a non-int size, a non-real scale factor, a non-bool align_corners.

    Examples
    --------
    >>> import numpy as np
    >>> x = np.array([[[[0.0, 1.0]]]])
    >>> interpolate_forward(x, scale_factor=2)[0]
    array([[[[0., 0., 1., 1.],
             [0., 0., 1., 1.]]]])
    >>> interpolate_forward(x, size=(1, 4), mode="bilinear")[0]
    array([[[[0.  , 0.25, 0.75, 1.  ]]]])
    """
    _validate.check_float(x, "x")  # first: what is no array is a TypeError
    _validate.check_ndim(x, 4, "x", "(N, C, H, W)")
    align_corners = _check_mode(mode, align_corners)
    if min(x.shape[2:]) < 1:
        raise ValueError(f"x must have a height and width of at least 1, got shape "
                         f"{tuple(x.shape)}")
    out_size, scales = _output_size(x.shape, size, scale_factor)
    xp = get_array_module(x)
    work = accumulator_dtype(x.dtype)  # float16 in float32, as PyTorch
    taps = tuple(_axis_taps(n, o, s, mode, align_corners, work, xp)
                 for n, o, s in zip(x.shape[2:], out_size, scales))
    out = _backends.backend_for(x).interpolate.interpolate_forward(x, taps)
    return out, InterpolateCache(tuple(x.shape), x.dtype, tuple(out.shape), taps)


def interpolate_backward(dout: Array, cache: InterpolateCache) -> Array:
    """Gradient of :func:`interpolate_forward`: each input sums the weighted dout of its readers.

    Parameters
    ----------
    dout : ndarray
        The gradient of the resized output, (N, C, OH, OW) in its dtype.
    cache : InterpolateCache
        The forward's cache.

    Returns
    -------
    dx : ndarray
        The input's shape (N, C, H, W), in dout's dtype.

    Raises
    ------
    TypeError, ValueError
        The cache of another op; a dout of another shape or dtype than the resized output.

    Examples
    --------
    >>> import numpy as np
    >>> out, cache = interpolate_forward(np.zeros((1, 1, 1, 2)), size=(1, 4), mode="bilinear")
    >>> interpolate_backward(np.ones((1, 1, 1, 4)), cache)
    array([[[[2., 2.]]]])
    """
    _validate.check_cache(cache, InterpolateCache, "interpolate_forward")
    _validate.check_dout(dout, cache.out_shape, cache.dtype)
    return _backends.backend_for(dout).interpolate.interpolate_backward(dout, cache.taps,
                                                                         cache.x_shape)
