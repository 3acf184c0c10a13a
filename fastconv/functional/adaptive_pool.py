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
"""

from __future__ import annotations

from typing import ClassVar

import numpy

from .. import _backends, _validate
from .._typing import Array
from ..backend import accumulator_dtype, get_array_module
from ._axes import per_axis


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
    bounds along H (``rows``) and W (``columns``).

    Examples
    --------
    >>> import numpy as np
    >>> _, cache = adaptive_avg_pool2d_forward(np.ones((1, 1, 3, 4)), (2, 1))
    >>> cache.rows, cache.columns
    ([(0, 2), (1, 3)], [(0, 4)])
    """

    op: ClassVar[str] = "adaptive_avg_pool2d_forward"
    x_shape: tuple[int, ...]
    dtype: numpy.dtype
    rows: list[tuple[int, int]]
    columns: list[tuple[int, int]]


def _adaptive_bounds(size: int, out_size: int) -> list[tuple[int, int]]:
    """PyTorch's adaptive windows: [floor(i*size/out), ceil((i+1)*size/out))."""
    return [((i * size) // out_size, -(-((i + 1) * size) // out_size)) for i in range(out_size)]


def _adaptive_windows(x: Array, output_size: object, op: str
                      ) -> tuple[list[tuple[int, int]], list[tuple[int, int]]]:
    """Check an adaptive pool's x and ``output_size``; the windows' bounds along H and along W."""
    _validate.check_ndim(x, 4, "x", "(N, C, H, W)")
    _validate.check_float(x, "x")
    if isinstance(output_size, (tuple, list)):  # None in the pair keeps that input size
        output_size = tuple(x.shape[2 + a] if s is None else s
                            for a, s in enumerate(per_axis(output_size, "output_size")))
    oh, ow = _validate.pair(output_size, "output_size")
    if oh < 1 or ow < 1:
        raise ValueError(f"output_size must be >= 1, got {output_size!r}")
    h, w = x.shape[2:]
    if h < 1 or w < 1:  # no window to pool over (PyTorch refuses too)
        raise ValueError(f"{op} needs a height and width of at least 1, "
                         f"got x shape {tuple(x.shape)}")
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
        ``output_size``.

    Examples
    --------
    >>> import numpy as np
    >>> out, cache = adaptive_avg_pool2d_forward(np.arange(6.0).reshape(1, 1, 2, 3), (1, None))
    >>> out
    array([[[[1.5, 2.5, 3.5]]]])
    """
    rows, columns = _adaptive_windows(x, output_size, "adaptive_avg_pool2d")
    xp = get_array_module(x)
    (n, c, _, w), oh, ow = x.shape, len(rows), len(columns)
    acc = accumulator_dtype(x.dtype)  # float16 sums in float32
    pooled_rows = xp.empty((n, c, oh, w), dtype=acc)
    for o, (start, end) in enumerate(rows):
        pooled_rows[:, :, o] = x[:, :, start:end].sum(axis=2, dtype=acc) / (end - start)
    out = xp.empty((n, c, oh, ow), dtype=x.dtype)
    for o, (start, end) in enumerate(columns):
        out[..., o] = pooled_rows[..., start:end].sum(axis=3) / (end - start)
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
    drows = xp.zeros((n, c, len(cache.rows), w), dtype=dout.dtype)
    for o, (start, end) in enumerate(cache.columns):
        drows[..., start:end] += dout[..., o:o + 1] / (end - start)
    dx = xp.zeros(cache.x_shape, dtype=dout.dtype)
    for o, (start, end) in enumerate(cache.rows):
        dx[:, :, start:end] += drows[:, :, o:o + 1] / (end - start)
    return dx


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
        x not 4-D or with no height or width, an output size below 1, or an
        ``output_size`` sequence not of length 2.
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
