"""The front-ends' dtype leniency in the backward pass: promote as NumPy would, then call the op.

fastconv's ops refuse a ``dout`` whose dtype is not the forward output's. The
NumPy code the front-ends replace took any and let NumPy promote: the
course's float32 ``dout`` into a float64 ``relu`` cache gave float64, the
book's float64 upstream gradient through a float32 ``Pooling`` gave float64.
The front-ends wrap each op's cache with the dtype of the forward's output;
their backward promotes ``dout`` and, where that dtype is wider, every float
array of the op's cache to the common dtype, and calls the op's own backward,
whose checks stay as they are.
"""

import dataclasses
from typing import ClassVar

import numpy

from .._validate import op_cache
from ..backend import get_array_module, is_array


@op_cache
class LenientCache:
    """An op's cache and the dtype of that op's output."""

    op: ClassVar[str] = "a fastconv.compat forward"
    cache: object
    dtype: object


def lenient(out, cache):
    """``(out, cache)`` of an op, the cache wrapped for :func:`lenient_backward`."""
    return out, LenientCache(cache, out.dtype)


def _widened(value, dtype):
    """``value`` with every float array and float dtype in it promoted with ``dtype``.

    Op caches (dataclasses) are rebuilt field by field, nested ones too
    (spatial batchnorm holds the cache of its rows); integer arrays such as
    max pooling's argmax, shapes and flags are kept.
    """
    if dataclasses.is_dataclass(value):
        return dataclasses.replace(value, **{
            f.name: _widened(getattr(value, f.name), dtype) for f in dataclasses.fields(value)})
    if is_array(value) and value.dtype.kind == "f":
        return value.astype(numpy.result_type(value.dtype, dtype), copy=False)
    if isinstance(value, numpy.dtype) and value.kind == "f":
        return numpy.result_type(value, dtype)
    return value


def lenient_backward(op_backward, dout, cache):
    """``op_backward(dout, op_cache)`` after promoting ``dout`` and the cache to one dtype.

    A cache that :func:`lenient` did not wrap goes to the op unchanged, for
    the op's own checks to judge.
    """
    if not isinstance(cache, LenientCache):
        return op_backward(dout, cache)
    inner = cache.cache
    if is_array(dout) and dout.dtype != cache.dtype:
        dtype = get_array_module(dout).result_type(dout.dtype, cache.dtype)
        dout = dout.astype(dtype, copy=False)
        if dtype != cache.dtype:
            inner = _widened(inner, dtype)
    return op_backward(dout, inner)
