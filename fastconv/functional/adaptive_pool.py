"""2-D adaptive average and adaptive max pooling, forward and backward.

The windows are PyTorch's adaptive ones: along an axis of size n pooled to o outputs, window i
spans [floor(i*n/o), ceil((i+1)*n/o)), so adjacent windows may share a cell. Adaptive average
pooling is the same array code on both devices: it sums rows, then columns. Adaptive max
pooling, with the max-pool rules (ties to the first maximum, NaN propagating;
:mod:`fastconv.functional.pool`), runs on each device's backend: :mod:`fastconv._cpu.unpool`
scans the windows with ``take`` gathers folded by :mod:`fastconv._window_max` and sums the
gradient in a scatter-add; :mod:`fastconv._gpu.unpool` runs CUDA kernels, one thread per
pooled element scanning its window, and for the gradient gathers over the adaptive windows
holding each cell. Both give the same maxima, indices and gradients.

The windows' bounds are computed as arrays, in integer arithmetic (no per-window Python
loop), and the sums loop over whichever is fewer: the windows (few long ones, one reduction
each) or the cells of the longest window (many short ones, one gather over every window per
cell). An output size that no device would allocate sensibly is refused by
:func:`check_output_size` before any of that.
"""

from __future__ import annotations

import math
import numbers
from typing import ClassVar

import numpy

from .. import _backends, _validate
from .._cuda_launcher import PLANE_LIMIT
from .._typing import Array
from ..backend import accumulator_dtype, get_array_module
from ._axes import per_axis

#: The whole output (N * C * OH * OW) must stay below this many elements: the bound of max
#: unpooling's output (:mod:`fastconv.functional.unpool`), whose positions are int64.
OUTPUT_LIMIT = 2**62

_BOUNDS_BLOCK = 1 << 20  # windows per block of the bounds' arithmetic: 8 MiB temporaries


@_validate.op_cache
class AdaptiveMaxPoolCache:
    """What :func:`adaptive_max_pool2d_backward` needs: the input shape and dtype, the maxima's
    indices.

    Examples
    --------
    >>> import numpy as np
    >>> _, cache = adaptive_max_pool2d_forward(np.array([[[[1.0, 5.0, 2.0]]]]), (1, 2))
    >>> cache.indices
    array([[[[1, 1]]]])
    """

    op: ClassVar[str] = "adaptive_max_pool2d_forward"
    x_shape: tuple[int, ...]
    dtype: numpy.dtype
    indices: Array


@_validate.op_cache
class AdaptiveAvgPoolCache:
    """What :func:`adaptive_avg_pool2d_backward` needs: the input shape and dtype, the windows'
    bounds along H (``rows``) and W (``columns``), (OH, 2) and (OW, 2) int64 host arrays of
    ``[start, end)``.

    Examples
    --------
    >>> import numpy as np
    >>> _, cache = adaptive_avg_pool2d_forward(np.ones((1, 1, 3, 4)), (2, 1))
    >>> cache.rows.tolist(), cache.columns.tolist()
    ([[0, 2], [1, 3]], [[0, 4]])
    """

    op: ClassVar[str] = "adaptive_avg_pool2d_forward"
    x_shape: tuple[int, ...]
    dtype: numpy.dtype
    rows: numpy.ndarray
    columns: numpy.ndarray


def check_output_size(argument: str, plane: tuple[int, int],
                      x_shape: tuple[int, ...] | None = None) -> None:
    """Refuse, before any work, an output too large to allocate sensibly.

    The rule of the ops whose output size is an argument (the adaptive pools, resizing): each
    output plane (OH * OW) below 2**31 elements, the bound of the CUDA kernels' planes
    (:mod:`fastconv._cuda_launcher`), kept on the CPU too so that both devices take the same
    sizes; and the whole output (N * C * OH * OW) below 2**62, as max unpooling's.

    Parameters
    ----------
    argument : str
        What sized the output, for the error, e.g. ``"output_size=4"``.
    plane : (int, int)
        (OH, OW); without ``x_shape``, the least they can be (a layer's settings, checked
        when it is built; ``argument`` then says so).
    x_shape : tuple of int, optional
        The input's (N, C, H, W): the whole output is checked too, and named.

    Raises
    ------
    ValueError
        Naming ``argument``, the output's shape and x's.

    Examples
    --------
    >>> check_output_size("output_size=10**9", (10**9, 10**9), (1, 1, 4, 4))  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ValueError: output_size=10**9 gives the output shape (1, 1, 1000000000, 1000000000) for x ...
    """
    shape = tuple(plane) if x_shape is None else tuple(x_shape[:2]) + tuple(plane)
    if plane[0] * plane[1] < PLANE_LIMIT and math.prod(shape) < OUTPUT_LIMIT:
        return
    given = (f"output planes of {tuple(plane)}" if x_shape is None else
             f"the output shape {shape} for x of shape {tuple(x_shape)}")
    raise ValueError(f"{argument} gives {given}, too large: each output plane (OH*OW) must stay "
                     f"below 2**31 elements (as the CUDA kernels' planes, on either device) "
                     f"and the whole output (N*C*OH*OW) below 2**62")


def _output_pair(output_size: object) -> tuple[int | None, int | None]:
    """``output_size`` as (OH, OW), each an int >= 1 or, in a pair, None (that input size)."""
    if not isinstance(output_size, (tuple, list)):
        return _positive(_validate.pair(output_size, "output_size"), output_size)
    sizes = per_axis(output_size, "output_size")
    if not all(s is None or (isinstance(s, numbers.Integral) and not isinstance(s, bool))
               for s in sizes):
        raise TypeError(f"output_size must be an int or a pair of ints (None in the pair keeps "
                        f"that input size), got {output_size!r}")
    return _positive(tuple(None if s is None else int(s) for s in sizes), output_size)


def _positive(sizes, output_size):
    """``sizes``, refused unless each is None or at least 1."""
    if any(s is not None and s < 1 for s in sizes):
        raise ValueError(f"output_size must be >= 1, got {output_size!r}")
    return sizes


def check_adaptive_output_size(output_size: object) -> tuple[int | None, int | None]:
    """Check an adaptive pool's ``output_size`` without an input, as a layer is built.

    Parameters
    ----------
    output_size : int or (int or None, int or None)
        (OH, OW), each at least 1; None in the pair keeps that input size.

    Returns
    -------
    (int or None, int or None)
        (OH, OW) as Python ints, None where the input's size stays.

    Raises
    ------
    TypeError, ValueError
        A malformed or out-of-range ``output_size``, or one whose planes are too large for any
        input (:func:`check_output_size`, None counting as 1).

    Examples
    --------
    >>> check_adaptive_output_size([4, None])
    (4, None)
    """
    oh, ow = sizes = _output_pair(output_size)
    keeps = " (None counted as 1)" if None in sizes else ""
    check_output_size(f"output_size={output_size!r}{keeps}", (oh or 1, ow or 1))
    return sizes


def _adaptive_bounds(size: int, out_size: int) -> numpy.ndarray:
    """(out_size, 2) int64: PyTorch's adaptive windows [floor(i*size/out), ceil((i+1)*size/out)).

    With size = q * out + r, i * size / out is i * q + i * r / out: exact in int64 for any
    array's size, since i * r < out**2 stays below 2**62 (:func:`check_output_size`). Built
    in blocks of windows, so that the table is the only array of its length.
    """
    q, r = divmod(size, out_size)
    bounds = numpy.empty((out_size, 2), dtype=numpy.int64)
    for first in range(0, out_size, _BOUNDS_BLOCK):
        i = numpy.arange(first, min(first + _BOUNDS_BLOCK, out_size), dtype=numpy.int64)
        block = bounds[first:first + i.size]
        block[:, 0] = i * q + (i * r) // out_size
        i += 1
        block[:, 1] = i * q - (-i * r) // out_size  # the ceiling, as -floor(-a / out)
    return bounds


def _readers(bounds: numpy.ndarray, size: int) -> numpy.ndarray:
    """(size, 2) int64: for each cell along the axis, the range [first, last + 1) of the
    windows of ``bounds`` holding it (the windows cover the axis, so never empty).

    Both the windows' starts and their ends increase with the window (not strictly).
    """
    cells = numpy.arange(size, dtype=numpy.int64)
    first = numpy.searchsorted(bounds[:, 1], cells, side="right")
    after_last = numpy.searchsorted(bounds[:, 0], cells, side="right")
    return numpy.stack([first, after_last], axis=1)


def _window_sums(a: Array, axis: int, bounds: numpy.ndarray, dtype) -> Array:
    """The sums of ``a`` in ``dtype`` over the windows ``bounds`` (O, 2) along ``axis``: a's
    shape with O along ``axis``.

    Few long windows (global pooling) take one reduction each; many short ones (an output
    larger than the input) one gather over all of them per cell offset, for the windows that
    long: a Python loop of at most min(O, longest window) steps either way. Each window adds
    its cells in increasing order.
    """
    xp = get_array_module(a)
    starts, lengths = bounds[:, 0], bounds[:, 1] - bounds[:, 0]
    longest = int(lengths.max())
    before = (slice(None),) * axis
    if len(bounds) <= longest:
        shape = list(a.shape)
        shape[axis] = len(bounds)
        out = xp.empty(shape, dtype=dtype)
        for o, (start, end) in enumerate(bounds.tolist()):
            out[before + (slice(o, o + 1),)] = a[before + (slice(start, end),)].sum(
                axis=axis, dtype=dtype, keepdims=True)
        return out
    out = a.take(xp.asarray(starts), axis=axis).astype(dtype, copy=False)
    for k in range(1, longest):
        live = lengths > k
        if live.all():
            out += a.take(xp.asarray(starts + k), axis=axis)
        else:  # a shorter window reads its last cell again, and the mask leaves that out
            cells = numpy.minimum(starts + k, starts + lengths - 1)
            xp.copyto(out, out + a.take(xp.asarray(cells), axis=axis),
                      where=_along(live, axis, xp))
    return out


def _along(values: numpy.ndarray, axis: int, xp) -> Array:
    """A host vector with one value per window, on the device, shaped to broadcast along
    ``axis`` (2 or 3) of an (N, C, *, *) array."""
    values = xp.asarray(values)
    return values.reshape(-1, 1) if axis == 2 else values


def _window_means(a: Array, axis: int, bounds: numpy.ndarray, dtype) -> Array:
    """The means of ``a`` over the windows ``bounds`` along ``axis``, summed in ``dtype``."""
    sums = _window_sums(a, axis, bounds, dtype)
    sums /= _along((bounds[:, 1] - bounds[:, 0]).astype(dtype), axis, get_array_module(a))
    return sums


def _adaptive_windows(x: Array, output_size: object, op: str
                      ) -> tuple[numpy.ndarray, numpy.ndarray]:
    """Check an adaptive pool's x and ``output_size``; the windows' bounds along H and along W,
    (OH, 2) and (OW, 2) int64 host arrays."""
    _validate.check_float(x, "x")  # first: what is no array is a TypeError
    _validate.check_ndim(x, 4, "x", "(N, C, H, W)")
    sizes = _output_pair(output_size)
    h, w = x.shape[2:]
    if h < 1 or w < 1:  # no window to pool over (PyTorch refuses too)
        raise ValueError(f"{op} needs a height and width of at least 1, "
                         f"got x shape {tuple(x.shape)}")
    oh, ow = (n if s is None else s for s, n in zip(sizes, (h, w)))
    check_output_size(f"output_size={output_size!r}", (oh, ow), tuple(x.shape))
    return _adaptive_bounds(h, oh), _adaptive_bounds(w, ow)


def adaptive_avg_pool2d_forward(x: Array, output_size: object
                                ) -> tuple[Array, AdaptiveAvgPoolCache]:
    """Average ``x`` (N, C, H, W) over adaptive windows to (OH, OW); return ``(out, cache)``.

    As ``torch.nn.functional.adaptive_avg_pool2d``: window i spans
    [floor(i*H/OH), ceil((i+1)*H/OH)). ``output_size=1`` is global average pooling.

    Parameters
    ----------
    x : ndarray
        (N, C, H, W), float16/32/64 (float16 sums in float32), H and W at least 1.
    output_size : int or (int or None, int or None)
        (OH, OW), each at least 1; None in the pair keeps that input size.

    Returns
    -------
    out : ndarray
        (N, C, OH, OW), x's dtype.
    cache : AdaptiveAvgPoolCache
        For :func:`adaptive_avg_pool2d_backward`.

    Raises
    ------
    ValueError, TypeError
        x not 4-D, not float or with no height or width; a malformed or out-of-range
        ``output_size``, or an output too large (:func:`check_output_size`).

    Examples
    --------
    >>> import numpy as np
    >>> out, cache = adaptive_avg_pool2d_forward(np.arange(6.0).reshape(1, 1, 2, 3), (1, None))
    >>> out
    array([[[[1.5, 2.5, 3.5]]]])
    """
    rows, columns = _adaptive_windows(x, output_size, "adaptive_avg_pool2d")
    acc = accumulator_dtype(x.dtype)  # float16 sums in float32
    pooled_rows = _window_means(x, 2, rows, acc)  # (N, C, OH, W)
    out = _window_means(pooled_rows, 3, columns, acc).astype(x.dtype, copy=False)
    return out, AdaptiveAvgPoolCache(x.shape, x.dtype, rows, columns)


def adaptive_avg_pool2d_backward(dout: Array, cache: AdaptiveAvgPoolCache) -> Array:
    """Gradient of :func:`adaptive_avg_pool2d_forward`: each window spreads its dout evenly.

    Parameters
    ----------
    dout : ndarray
        The gradient of the pooled output, shaped and typed like it.
    cache : AdaptiveAvgPoolCache

    Returns
    -------
    ndarray
        dx (N, C, H, W), dout's dtype.

    Raises
    ------
    TypeError, ValueError
        A cache from another op; dout unlike the pooled output.

    Examples
    --------
    >>> import numpy as np
    >>> out, cache = adaptive_avg_pool2d_forward(np.ones((1, 1, 2, 2)), 1)
    >>> adaptive_avg_pool2d_backward(np.ones_like(out), cache)
    array([[[[0.25, 0.25],
             [0.25, 0.25]]]])
    """
    _validate.check_cache(cache, AdaptiveAvgPoolCache, "adaptive_avg_pool2d_forward")
    n, c, h, w = cache.x_shape
    _validate.check_dout(dout, (n, c, len(cache.rows), len(cache.columns)), cache.dtype)
    xp = get_array_module(dout)
    # The adjoint of each mean: a cell's gradient sums dout / length over the windows holding
    # it, a window sum over the windows, W first, then H (the forward's order reversed).
    lengths = [(b[:, 1] - b[:, 0]).astype(dout.dtype) for b in (cache.rows, cache.columns)]
    drows = _window_sums(dout / _along(lengths[1], 3, xp), 3, _readers(cache.columns, w),
                         dout.dtype)
    drows /= _along(lengths[0], 2, xp)
    return _window_sums(drows, 2, _readers(cache.rows, h), dout.dtype)


def adaptive_max_pool2d_forward(x: Array, output_size: object,
                                return_indices: bool = False) -> tuple:
    """Max of ``x`` (N, C, H, W) over adaptive windows to (OH, OW); return ``(out, cache)``.

    As ``torch.nn.functional.adaptive_max_pool2d``: window i spans
    [floor(i*H/OH), ceil((i+1)*H/OH)) (adjacent windows may share a cell).
    Ties go to the first maximum in row-major window order and NaN propagates,
    its gradient going to the window's first NaN (PyTorch: the last), as in
    :func:`fastconv.functional.pool.max_pool2d_forward`.

    Parameters
    ----------
    x : ndarray
        (N, C, H, W), float16/32/64, H and W at least 1.
    output_size : int or (int or None, int or None)
        (OH, OW), each at least 1; None in the pair keeps that input size.
    return_indices : bool
        Also return the indices (int64, like ``out``): the flat position
        ``h * W + w`` of each maximum in its input plane, as PyTorch's (and
        as :func:`max_unpool2d_forward` takes them).

    Returns
    -------
    out : ndarray
        (N, C, OH, OW), x's dtype.
    indices : ndarray
        With ``return_indices`` only.
    cache : AdaptiveMaxPoolCache
        For :func:`adaptive_max_pool2d_backward`.

    Raises
    ------
    ValueError
        x not 4-D or with no height or width, an output size below 1, an output
        too large (:func:`check_output_size`), or an ``output_size`` sequence not
        of length 2.
    TypeError
        A non-float x, a malformed ``output_size``, a non-bool ``return_indices``.

    Examples
    --------
    >>> import numpy as np
    >>> x = np.array([[[[1.0, 5.0, 2.0], [0.0, 3.0, 4.0]]]])
    >>> out, indices, cache = adaptive_max_pool2d_forward(x, (1, 2), return_indices=True)
    >>> out, indices
    (array([[[[5., 5.]]]]), array([[[[1, 1]]]]))
    """
    rows, columns = _adaptive_windows(x, output_size, "adaptive_max_pool2d")
    return_indices = _validate.check_bool("return_indices", return_indices)
    backend = _backends.backend_for(x)
    out, indices = backend.unpool.adaptive_max_pool2d_forward(x, rows, columns)
    cache = AdaptiveMaxPoolCache(x.shape, x.dtype, indices)
    return (out, indices, cache) if return_indices else (out, cache)


def adaptive_max_pool2d_backward(dout: Array, cache: AdaptiveMaxPoolCache) -> Array:
    """Gradient of :func:`adaptive_max_pool2d_forward`: each window's dout goes to its maximum.

    A cell that is the maximum of two windows sums both, in window order (a
    deterministic scatter-add on both devices).

    Parameters
    ----------
    dout : ndarray
        The gradient of the pooled output, (N, C, OH, OW) in its dtype.
    cache : AdaptiveMaxPoolCache

    Returns
    -------
    ndarray
        dx (N, C, H, W), dout's dtype.

    Raises
    ------
    TypeError, ValueError
        A cache not from adaptive_max_pool2d_forward; dout unlike the pooled output.

    Examples
    --------
    >>> import numpy as np
    >>> out, cache = adaptive_max_pool2d_forward(np.array([[[[1.0, 5.0, 2.0]]]]), (1, 2))
    >>> adaptive_max_pool2d_backward(np.ones((1, 1, 1, 2)), cache)
    array([[[[0., 2., 0.]]]])
    """
    _validate.check_cache(cache, AdaptiveMaxPoolCache, "adaptive_max_pool2d_forward")
    _validate.check_dout(dout, cache.indices.shape, cache.dtype)
    backend = _backends.backend_for(dout, cache.indices)
    return backend.unpool.adaptive_max_pool2d_backward(dout, cache.indices, cache.x_shape)
