"""A convolution's bias on the GPU: cuBLAS products with a vector of ones (Caffe's bias multiplier).

The forward adds ``b[f]`` at every output position; the backward sums dout over the
positions for ``db[f]``. Both are matrix products with a vector of ones: the forward a
rank-1 product ``b @ ones^T`` added onto each image's output (beta = 1), the backward
``dout_i @ ones`` per image, written into the slot its weight-gradient partials keep for
the bias, so one weight-sum kernel rounds dw and db together (kernels/weight_sum.cu). One
cuBLAS call each, batched over the images, in place of a CuPy broadcast add and a CuPy
reduction, whose host work per call is several times a cuBLAS call's.

The products run in FP32 for float16 and float32 (float32 accumulation, never TF32: a
bias is added exactly, and its gradient is a sum, not a product worth tensor cores) and
in FP64 for float64. Written against the arrays' module and
:func:`fastconv._gpu.gemm.gemm`, so the tests run it on NumPy arrays through the NumPy
model of cuBLAS.
"""

from __future__ import annotations

import contextlib
import math
from typing import Any

import numpy

from .._typing import Array
from ..backend import get_array_module
from .gemm import GemmCall, check_buffers, prepare_gemm

# (array module, device, dtype) -> the longest vector of ones made so far there
_ones: dict = {}


def _exact_compute(dtype):
    """The compute type of the bias products: float32 accumulation, float64 for float64."""
    return "64F" if numpy.dtype(dtype) == numpy.float64 else "32F"


def ones_like_device(like: Array, length: int) -> Array:
    """A 1-D array of at least ``length`` ones of ``like``'s dtype, on ``like``'s device.

    Made once per array module, device and dtype and kept for the process (as long as the
    largest output plane asked for: 200 KB for a float32 224 x 224 plane), so that a call
    adds no allocation and no fill; a longer request replaces it with a longer one.

    Examples
    --------
    >>> ones_like_device(numpy.zeros(2, numpy.float32), 3)[:3]
    array([1., 1., 1.], dtype=float32)
    """
    xp = get_array_module(like)
    device = getattr(like, "device", None)  # a CuPy device is a context; NumPy's a string
    key = (xp, getattr(device, "id", device), like.dtype)
    ones = _ones.get(key)
    if ones is None or ones.size < length:
        # CuPy allocates on the current device: enter the array's
        on_device: Any = device if hasattr(device, "__enter__") else contextlib.nullcontext()
        with on_device:
            ones = _ones[key] = xp.ones(length, dtype=like.dtype)
    return ones


def add_bias(out: Array, b: Array) -> None:
    """``out[i, f, ...] += b[f]`` in place, for C-contiguous ``out`` (N, F, *positions).

    One strided-batched product over the images: in cuBLAS's column-major terms each
    image's output is a positions x F matrix, and b (F,) times a column of ones is added
    onto it (beta = 1), one rounding per element as an add.

    Examples
    --------
    >>> out = numpy.zeros((2, 3, 2), numpy.float32)
    >>> add_bias(out, numpy.array([1, 2, 3], numpy.float32))
    >>> out[1]
    array([[1., 1.],
           [2., 2.],
           [3., 3.]], dtype=float32)
    """
    images, filters = out.shape[:2]
    positions = math.prod(out.shape[2:])
    bias = get_array_module(b).ascontiguousarray(b)
    ones = ones_like_device(out, positions)
    check_buffers(ones, bias, out)
    add_bias_call(images, filters, positions, out.dtype, (ones.size, bias.size, out.size))(
        ones, bias, out)


def add_bias_call(images: int, filters: int, positions: int, dtype: Any,
                  sizes: tuple[int, int, int]) -> GemmCall:
    """The product of :func:`add_bias` for an output (images, filters, positions) of ``dtype``,
    prepared: called as ``call(ones, b, out)`` on C-contiguous arrays of ``sizes`` elements
    (a vector of at least ``positions`` ones, b, out), unchecked."""
    return prepare_gemm("N", "N", positions, filters, 1, 1.0, positions, 0, 1, 0, 1.0,
                        positions, filters * positions, images, _exact_compute(dtype),
                        (numpy.dtype(dtype), numpy.dtype(dtype)), sizes)


def bias_grad_partials_into(dout: Array, partials: Array, accumulate: bool) -> None:
    """Each image's bias gradient into the last slot of its weight-gradient partials.

    ``dout`` (n, F, *positions), C-contiguous; ``partials`` (n, F, slots), C-contiguous,
    in the accumulator dtype: slot ``slots - 1`` of filter f gets dout[i, f] summed over
    its positions (added to what it holds with ``accumulate``), the other slots are left
    alone. One strided-batched product over the images: a row of ones times each image's
    dout, a 1 x F matrix whose leading dimension is the partials' row.

    Examples
    --------
    >>> partials = numpy.zeros((1, 2, 3), numpy.float32)
    >>> bias_grad_partials_into(numpy.ones((1, 2, 4), numpy.float32), partials, False)
    >>> partials[0]
    array([[0., 0., 4.],
           [0., 0., 4.]], dtype=float32)
    """
    images, filters = dout.shape[:2]
    positions, slots = math.prod(dout.shape[2:]), partials.shape[-1]
    ones = ones_like_device(dout, positions)
    check_buffers(ones, dout, partials)
    call = bias_grad_call(images, filters, positions, slots, dout.dtype, partials.dtype,
                          accumulate, (ones.size, dout.size, partials.size))
    call(ones, dout, bias_slots(partials))


def bias_grad_call(images: int, filters: int, positions: int, slots: int, dtype: Any,
                   partials_dtype: Any, accumulate: bool,
                   sizes: tuple[int, int, int]) -> GemmCall:
    """The product of :func:`bias_grad_partials_into` for dout (images, filters, positions)
    of ``dtype`` and partials of ``slots`` per filter, prepared: called as
    ``call(ones, dout, bias_slots(partials))`` on C-contiguous arrays of ``sizes`` elements
    (the ones, dout, the whole partials), unchecked."""
    ones, dout, partials = sizes
    return prepare_gemm("N", "N", 1, filters, positions, 1.0, 1, 0, positions,
                        filters * positions, 1.0 if accumulate else 0.0, slots, filters * slots,
                        images, _exact_compute(dtype),
                        (numpy.dtype(dtype), numpy.dtype(partials_dtype)),
                        (ones, dout, partials - (slots - 1)))


def bias_slots(partials: Array) -> Array:
    """The flat buffer of C-contiguous partials (..., slots) from the first bias slot on."""
    return partials.reshape(-1)[partials.shape[-1] - 1:]
