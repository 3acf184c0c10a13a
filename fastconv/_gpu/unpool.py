"""Max unpooling and the adaptive max pool on the GPU: gathers, the scatter kept for indices
outside their windows, and the adaptive forward on one thread per pooled element.

The same names as :mod:`fastconv._cpu.unpool`, the same sums: each cell adds the values sent
to it in the order of the input, in float64, rounded once (the CPU's bincount), so both
devices give the same bits. The kernels (kernels/unpool.cu, through :mod:`fastconv._cuda`)
first check that every index is -1 or a cell of its own window, then one thread per output
cell sums what the windows holding it send: no sort, no atomics. Indices that fail the check,
and planes too large for the kernels' 32-bit in-plane arithmetic, go through the sort-based
scatter (:mod:`.scatter`), which sums in the same order. The adaptive forward's threads
each scan one window in row-major order under the max-pool rules (the first maximum, the
first NaN), the CPU path's maxima and indices. Written against the arrays' module and the
wrappers, so the tests run it on NumPy arrays with the kernels emulated.
"""

from __future__ import annotations

from .. import _cuda
from .._typing import Array
from .scatter import scatter_add


def _scattered(values: Array, indices: Array, out_shape: tuple[int, ...]) -> Array:
    """``values`` (N, C, h, w) sent to their ``indices`` in zero planes of ``out_shape``."""
    planes, size = out_shape[0] * out_shape[1], values.shape[2] * values.shape[3]
    out = scatter_add(values.reshape(planes, size), indices.reshape(planes, size),
                      out_shape[2] * out_shape[3])
    return out.reshape(out_shape)


def max_unpool2d(x: Array, indices: Array, out_size: tuple[int, int], kernel: tuple[int, int],
                 stride: tuple[int, int], padding: tuple[int, int]) -> Array:
    """x (N, C, h, w) sent to its ``indices`` (in [0, H*W) or -1) in zero (N, C, H, W) planes,
    ``out_size`` (H, W); ``kernel``, ``stride``, ``padding``: the max pool's windows."""
    window = (out_size, kernel, stride, padding)
    if (_cuda.max_unpool2d_fits(x.shape, *window)
            and not _cuda.max_unpool2d_outside(indices, x.dtype, *window)):
        return _cuda.max_unpool2d_gather(x, indices, *window)
    # PyTorch takes any index in range, not only one inside its own window (indices of a
    # dilated pool, of another geometry, a user's own), and the gather searches only the
    # windows holding each cell: such indices, and planes beyond the kernels' 32-bit
    # in-plane arithmetic, go through the sort-based scatter, which any index suits.
    return _scattered(x, indices, x.shape[:2] + tuple(out_size))


def adaptive_max_pool2d_backward(dout: Array, indices: Array, x_shape: tuple[int, ...]) -> Array:
    """dx (``x_shape``): each dout (N, C, OH, OW) added at its index in its plane of x."""
    # The indices are the adaptive forward's own, each in its window; the check costs one
    # pass over them and keeps a cache whose indices were changed as correct as the scatter.
    if (_cuda.adaptive_max_pool2d_fits(x_shape, dout.shape)
            and not _cuda.adaptive_max_pool2d_outside(indices, dout.dtype, x_shape)):
        return _cuda.adaptive_max_pool2d_gather(dout, indices, x_shape)
    return _scattered(dout, indices, tuple(x_shape))


def adaptive_max_pool2d_forward(x: Array, rows: list[tuple[int, int]],
                                columns: list[tuple[int, int]]) -> tuple[Array, Array]:
    """``(out, indices)``: the maximum of x (N, C, H, W) over each adaptive window (``rows``,
    ``columns``: the windows' bounds along H and W) and its flat index h * W + w, int64."""
    # The kernel computes the same bounds from (H, OH) and (W, OW); the wrapper refuses
    # planes beyond its 32-bit in-plane arithmetic before allocating.
    return _cuda.adaptive_max_pool2d_forward(x, (len(rows), len(columns)))
