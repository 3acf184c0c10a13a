"""im2col and col2im on the GPU: one CUDA kernel launch each (kernels/im2col.cu).

The kernels read the zero padding implicitly and write packed outputs, so they
need no workspace: the plans are empty and ``buffers`` goes unused. The same
names as :mod:`fastconv._cpu.im2col`, so the fronts call either alike.
"""

from __future__ import annotations

from typing import Any

from .. import _cuda
from .._typing import Array, DTypeLike
from ..shapes import WindowGeometry


def im2col_plan(channels: int, geometry: WindowGeometry, dtype: DTypeLike) -> tuple[()]:
    """No workspace: the im2col kernel reads the padding as zeros."""
    return ()


def im2col_into(x: Array, geometry: WindowGeometry, out: Array, buffers: Any) -> Any:
    """Write the columns of ``x`` (N, C, H, W) into ``out`` (N, C, KH, KW, OH, OW)."""
    return _cuda.im2col_into(x, geometry, out)


def col2im_plan(channels: int, geometry: WindowGeometry, dtype: DTypeLike) -> tuple[()]:
    """No workspace: the gather-style col2im kernel writes each input element once."""
    return ()


def col2im_into(cols: Array, geometry: WindowGeometry, out: Array, buffers: Any) -> Any:
    """Sum columns (N, C, KH, KW, OH, OW) back onto ``out`` (N, C, H, W): each input element
    gathers what it contributed to (no atomics, the same bits every run)."""
    return _cuda.col2im_into(cols, geometry, out)
