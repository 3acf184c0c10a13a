"""Max and average pooling on the GPU: one CUDA kernel launch per pass (kernels/pool.cu).

Each output thread scans its window; each backward thread gathers the windows
that cover its input element (no atomics, the same bits every run). The
kernels read the padding implicitly, so they need no workspace: the plans are
empty and ``buffers`` goes unused. The same names as :mod:`fastconv._cpu.pool`,
and the same rules (ties, NaN, padding) as :mod:`fastconv.functional.pool`.
"""

from __future__ import annotations

from typing import Any

from .. import _cuda
from .._typing import Array, DTypeLike
from ..shapes import WindowGeometry


def pool_plan(x_shape: tuple[int, ...], geometry: WindowGeometry, dtype: DTypeLike) -> tuple[()]:
    """No workspace: the pooling kernels read the padding implicitly."""
    return ()


def avg_pool_backward_plan(x_shape: tuple[int, ...], geometry: WindowGeometry,
                       dtype: DTypeLike) -> tuple[()]:
    """No workspace: each input element gathers its own gradient."""
    return ()


def max_pool_forward(x: Array, geometry: WindowGeometry, buffers: Any) -> tuple[Array, Array]:
    """``(out, argmax)`` of max pooling, argmax the int32 kernel offset i*KW + j of each maximum."""
    return _cuda.max_pool2d_forward(x, geometry)


def max_pool_backward(dout: Array, argmax: Array, x_shape: tuple[int, ...],
                      geometry: WindowGeometry) -> Array:
    """The max-pool gradient: each input element sums the windows it won."""
    return _cuda.max_pool2d_backward(dout, argmax, x_shape, geometry)


def avg_pool_forward(x: Array, geometry: WindowGeometry, divisor: Array, buffers: Any) -> Array:
    """Average pooling: window sums over ``divisor`` (OH, OW), in the accumulator dtype."""
    return _cuda.avg_pool2d_forward(x, geometry, divisor)


def avg_pool_backward(dout: Array, divisor: Array, x_shape: tuple[int, ...],
                      geometry: WindowGeometry, buffers: Any) -> Array:
    """The average-pool gradient: each input element sums dout / divisor of its windows."""
    return _cuda.avg_pool2d_backward(dout, divisor, x_shape, geometry)
