"""Flattening many arrays into one contiguous buffer per (device, dtype) and back."""

import sys
from collections.abc import Mapping

import numpy

from ..backend import device_of


def as_list(arrays, name):
    """The arrays of a mapping (in sorted-key order, the same on every rank) or a sequence."""
    if isinstance(arrays, Mapping):
        return [arrays[k] for k in sorted(arrays)]
    if isinstance(arrays, (list, tuple)):
        return list(arrays)
    raise TypeError(f"{name} must be a mapping or a sequence of arrays, "
                    f"got {type(arrays).__name__}")


def group_by_dtype(arrays):
    """Lists of arrays sharing a device and dtype, in a fixed order (one buffer each)."""
    groups = {}
    for a in arrays:
        if not hasattr(a, "dtype") or not hasattr(a, "shape"):
            raise TypeError(f"expected NumPy or CuPy arrays, got {type(a).__name__}")
        groups.setdefault((device_of(a), a.dtype.str), []).append(a)
    return [groups[k] for k in sorted(groups)]


def flatten(arrays, scale=None, extra=None, like=None):
    """One contiguous buffer holding ``arrays`` (times ``scale``), plus ``extra`` at the end."""
    like = arrays[0] if arrays else like
    xp = sys.modules["cupy"] if device_of(like) == "gpu" else numpy
    size = sum(a.size for a in arrays) + (extra is not None)
    buf = xp.empty(size, dtype=like.dtype)
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


def unflatten_into(buf, arrays):
    """Copy consecutive slices of ``buf`` back into ``arrays`` (in place)."""
    offset = 0
    for a in arrays:
        a[...] = buf[offset:offset + a.size].reshape(a.shape)
        offset += a.size
