"""Whether NCCL can carry the GPU collectives here, its name for a dtype, and its unique id
as rank 0 sends it to the other ranks."""

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


_NCCL_UNIQUE_ID_BYTES = 128  # sizeof(ncclUniqueId)
# How rank 0's ``nccl.get_unique_id()`` spelled the id, sent ahead of it: bytes (CuPy 14+),
# or a tuple of C chars (CuPy 13), signed or unsigned as the platform's char is; or no id.
_UID_NONE, _UID_BYTES, _UID_SIGNED_CHARS, _UID_UNSIGNED_CHARS = range(4)


def _encode_unique_id(uid: Any) -> tuple[int, numpy.ndarray]:
    """How ``nccl.get_unique_id()`` spelled ``uid`` (a ``_UID_*`` code) and its 128 bytes."""
    if isinstance(uid, bytes):
        form, raw = _UID_BYTES, numpy.frombuffer(uid, dtype=numpy.uint8)
    elif isinstance(uid, tuple):
        # A negative char means the platform's char is signed (x86-64); none, and reading
        # the values as unsigned chars gives them back either way.
        signed = any(v < 0 for v in uid)
        form = _UID_SIGNED_CHARS if signed else _UID_UNSIGNED_CHARS
        raw = numpy.array(uid, dtype=numpy.int8 if signed else numpy.uint8).view(numpy.uint8)
    else:
        raise TypeError(f"nccl.get_unique_id() returned a {type(uid).__name__}; "
                        "expected bytes (CuPy 14+) or a tuple of ints (CuPy 13)")
    if raw.size != _NCCL_UNIQUE_ID_BYTES:
        raise ValueError(f"nccl.get_unique_id() returned {raw.size} values; an NCCL unique "
                         f"id has {_NCCL_UNIQUE_ID_BYTES}")
    return form, raw


def _decode_unique_id(form: int, raw: numpy.ndarray) -> bytes | tuple[int, ...]:
    """The id as rank 0's ``nccl.get_unique_id()`` returned it, from :func:`_encode_unique_id`.

    Rank 0's spelling decides, not this rank's CuPy version: the ranks of a job run one
    CuPy, whose ``NcclCommunicator`` takes what its ``get_unique_id`` returns (bytes in
    14+, a tuple of chars in 13), and only rank 0 can tell a signed char from an unsigned.
    """
    if form == _UID_BYTES:
        return raw.tobytes()
    chars = raw.view(numpy.int8) if form == _UID_SIGNED_CHARS else raw
    return tuple(int(v) for v in chars)


def _empty_message() -> numpy.ndarray:
    """The message rank 0 sends the others: byte 0 how its CuPy spelled the unique id (a
    ``_UID_*`` code, ``_UID_NONE`` for no id), bytes 1-128 the id."""
    return numpy.zeros(1 + _NCCL_UNIQUE_ID_BYTES, dtype=numpy.uint8)


def _unique_id_message() -> tuple[numpy.ndarray, Exception | None]:
    """Rank 0's message with a new unique id, and None; or, where it cannot make one, the
    message saying so and the failure (rank 0 raises it once every rank has the message)."""
    message = _empty_message()
    try:
        from cupy.cuda import nccl
        message[0], message[1:] = _encode_unique_id(nccl.get_unique_id())
    except Exception as exc:  # message[0] stays _UID_NONE: every rank raises
        return message, exc
    return message, None


def _communicator(message: numpy.ndarray, world_size: int, rank: int) -> Any:
    """This rank's ``NcclCommunicator`` from rank 0's message; a RuntimeError where it holds
    no id."""
    if message[0] == _UID_NONE:
        raise RuntimeError("rank 0 could not make the NCCL unique id (its message says why)")
    from cupy.cuda import nccl
    return nccl.NcclCommunicator(world_size, _decode_unique_id(message[0], message[1:]), rank)
