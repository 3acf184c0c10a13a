"""3-D max and average pooling on the GPU: one CUDA kernel launch per pass (kernels/pool3d.cu).

The 2-D pools' design (:mod:`fastconv._gpu.pool`) with a depth axis: each output thread
scans its window, each backward thread gathers the windows that cover its input element,
in ascending kernel offset (no atomics, the same bits every run). The kernels read the
padding implicitly, so they need no workspace: the plans are :mod:`fastconv._gpu.pool`'s,
empty, and ``buffers`` goes unused. The same names as :mod:`fastconv._cpu.pool`, and the
same rules (ties, NaN, padding) as :mod:`fastconv.functional.pool3d`.
"""

from __future__ import annotations

from typing import Any

from .. import _cuda
from .._typing import Array
from ..shapes import WindowGeometry
from .pool import avg_pool_backward_plan, pool_plan

__all__ = ["avg_pool_backward", "avg_pool_forward", "max_pool_backward", "max_pool_forward",
           "avg_pool_backward_plan", "pool_plan"]


def max_pool_forward(x: Array, geometry: WindowGeometry, buffers: Any) -> tuple[Array, Array]:
    """``(out, argmax)`` of max pooling, argmax the int32 flat kernel offset
    (kd*KH + kh)*KW + kw of each maximum."""
    return _cuda.max_pool3d_forward(x, geometry)


def max_pool_backward(dout: Array, argmax: Array, x_shape: tuple[int, ...],
                      geometry: WindowGeometry) -> Array:
    """The max-pool gradient: each input element sums the windows it won."""
    return _cuda.max_pool3d_backward(dout, argmax, x_shape, geometry)


def avg_pool_forward(x: Array, geometry: WindowGeometry, divisor: Array, buffers: Any) -> Array:
    """Average pooling: window sums over ``divisor`` (OD, OH, OW), in the accumulator dtype."""
    return _cuda.avg_pool3d_forward(x, geometry, divisor)


def avg_pool_backward(dout: Array, divisor: Array, x_shape: tuple[int, ...],
                      geometry: WindowGeometry, buffers: Any) -> Array:
    """The average-pool gradient: each input element sums dout / divisor of its windows."""
    return _cuda.avg_pool3d_backward(dout, divisor, x_shape, geometry)
