"""Flattening many arrays into one contiguous buffer per (device, dtype) and back."""

from __future__ import annotations

import sys
from collections.abc import Mapping, Sequence
from typing import Any

import numpy

from .._typing import Array
from ..backend import device_of


def as_list(arrays: Mapping[str, Array] | Sequence[Array], name: str) -> list[Array]:
    """The arrays of a mapping (in sorted-key order, the same on every rank) or a sequence."""
    if isinstance(arrays, Mapping):
        return [arrays[k] for k in sorted(arrays)]
    if isinstance(arrays, (list, tuple)):
        return list(arrays)
    raise TypeError(f"{name} must be a mapping or a sequence of arrays, "
                    f"got {type(arrays).__name__}")


def group_by_dtype(arrays: Sequence[Any]) -> list[list[Array]]:
    """Lists of arrays sharing a device and dtype, in a fixed order (one buffer each)."""
    groups: dict[tuple[str, str], list[Array]] = {}
    for a in arrays:
        if not hasattr(a, "dtype") or not hasattr(a, "shape"):
            raise TypeError(f"expected NumPy or CuPy arrays, got {type(a).__name__}")
        groups.setdefault((device_of(a), a.dtype.str), []).append(a)
    return [groups[k] for k in sorted(groups)]


def flatten(arrays: Sequence[Array], scale: float | None = None, extra: float | None = None,
            like: Array | None = None) -> Array:
    """One contiguous buffer holding ``arrays`` (times ``scale``), plus ``extra`` at the end.

    Its device and dtype are the first array's, or ``like``'s when there is none.
    """
    reference = arrays[0] if arrays else like
    if reference is None:
        raise ValueError("flatten needs at least one array, or like= for the dtype")
    xp = sys.modules["cupy"] if device_of(reference) == "gpu" else numpy
    size = sum(a.size for a in arrays) + (extra is not None)
    buf = xp.empty(size, dtype=reference.dtype)
    offset = 0
    for a in arrays:
        view = buf[offset:offset + a.size]
        view[...] = a.reshape(-1)
        if scale is not None:
            view *= scale
        offset += a.size
    if extra is not None:
        buf[-1] = extra
    return buf


def unflatten_into(buf: Array, arrays: Sequence[Array]) -> None:
    """Copy consecutive slices of ``buf`` back into ``arrays`` (in place)."""
    offset = 0
    for a in arrays:
        a[...] = buf[offset:offset + a.size].reshape(a.shape)
        offset += a.size
