"""Whether NCCL can carry the GPU collectives here, and its name for a dtype."""

from __future__ import annotations

import warnings
from typing import Any

import numpy


def _nccl_unusable_reason(local_size: int, device_count: int) -> str | None:
    """None when NCCL can be used, else why not."""
    if local_size > device_count:
        return (f"{local_size} ranks share {device_count} GPU(s) on this node and NCCL "
                "needs one GPU per rank")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # CuPy warns on import when libnccl is missing
        try:
            from cupy.cuda import nccl
        except ImportError as exc:
            return f"cupy.cuda.nccl is not importable ({exc})"
    if not getattr(nccl, "available", False):
        return "CuPy cannot load libnccl (pip install nvidia-nccl-cu13)"
    return None


def _nccl_dtype(dtype: Any) -> int:
    """NCCL's code for a float16/32/64 ``dtype``; a TypeError for any other."""
    from cupy.cuda import nccl
    table = {numpy.dtype(numpy.float16): nccl.NCCL_FLOAT16,
             numpy.dtype(numpy.float32): nccl.NCCL_FLOAT32,
             numpy.dtype(numpy.float64): nccl.NCCL_FLOAT64}
    if dtype not in table:
        raise TypeError(f"NCCL exchange supports float16/32/64 arrays, got {dtype}")
    return table[dtype]


def _nccl_note_without_device() -> str:
    """How CuPy arrays would travel, for a process that has joined no job."""
    from ..backend import gpu_status
    available, reason = gpu_status()
    if not available:
        return f"no usable GPU ({reason})"
    unusable = _nccl_unusable_reason(0, 0)
    if unusable is not None:
        return f"staged through host memory ({unusable})"
    return "NCCL (cupy.cuda.nccl)"
