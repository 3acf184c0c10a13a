"""Row-major batched matrix products over images and groups, as column-major cuBLAS calls.

The convolution's operands are C-contiguous 4-D arrays (images, groups, rows,
columns): the columns (n, G, C/G*KH*KW, OH*OW), the weights (1, G, F/G,
C/G*KH*KW), shared by every image, dout and the output (n, G, F/G, OH*OW).
:func:`matmul` computes ``out[i, g] = op(a[i, g]) @ op(b[i, g])`` for all of
them in as few :func:`fastconv._gpu.gemm.gemm` calls as the strides allow.

A row-major r x c matrix is, read column-major, its c x r transpose with
leading dimension c, so ``out = op(a) @ op(b)`` is ``out^T = op(b)^T @ op(a)^T``
in cuBLAS's terms: b is cuBLAS's A, a its B, and a transposed operand is a
flag, never a copy. The images x groups grid of matrices is one strided batch
when each operand's image stride is G times its group stride (always without
groups); otherwise (the weights, shared by the images, with groups) it is one
call per group batched over the images, or one per image batched over the
groups, whichever is fewer.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from typing import NamedTuple

from .._typing import Array
from .gemm import compute_type, prepare_gemm


def _grid(shape, images):
    """``(image stride, group stride)`` of a C-contiguous (images or 1, G, r, c) array of
    ``shape``, in elements; the image stride is 0 when one matrix per group serves every
    image."""
    per_group = shape[2] * shape[3]
    shared = shape[0] == 1 and images != 1
    return (0 if shared else shape[1] * per_group), per_group


def grid_calls(images: int, groups: int, grids: Sequence[tuple[int, int]]
               ) -> list[tuple[list[int], int, list[int]]]:
    """The strided batches that cover an ``images`` x ``groups`` grid of matrix products.

    Parameters
    ----------
    images, groups : int
        The grid's extent.
    grids : sequence of (int, int)
        Each operand's (image stride, group stride).

    Returns
    -------
    list of (offsets, batch, strides)
        One entry per cuBLAS call: each operand's first element, the batch
        size and each operand's stride within the batch.

    Examples
    --------
    >>> grid_calls(4, 1, [(6, 6), (0, 6), (6, 6)])
    [([0, 0, 0], 4, [6, 0, 6])]
    """
    if groups == 1 or images == 1 or all(image == groups * group for image, group in grids):
        strides = [group if groups > 1 else image for image, group in grids]
        return [([0] * len(grids), images * groups, strides)]
    if groups <= images:  # one call per group, batched over the images
        return [([g * group for _, group in grids], images, [image for image, _ in grids])
                for g in range(groups)]
    return [([i * image for image, _ in grids], groups, [group for _, group in grids])
            for i in range(images)]


class MatmulPlan(NamedTuple):
    """The cuBLAS calls of one :func:`matmul` (:func:`plan_matmul`): called with a, b and out
    (C-contiguous arrays of the planned shapes and dtypes), it runs them, unchecked."""

    calls: tuple  # ((GemmCall, offset of cuBLAS's A, of its B, of its C) per call)

    def __call__(self, a: Array, b: Array, out: Array) -> None:
        for call, offset_a, offset_b, offset_c in self.calls:  # cuBLAS's A is b, B a, C out
            call(_from(b, offset_a), _from(a, offset_b), _from(out, offset_c))


def plan_matmul(shape_a: tuple[int, ...], shape_b: tuple[int, ...],
                shape_out: tuple[int, ...], dtypes: tuple, *, transpose_a: bool = False,
                transpose_b: bool = False, accumulate: bool = False,
                out_columns: int | None = None) -> MatmulPlan:
    """The :class:`MatmulPlan` of :func:`matmul` for C-contiguous operands of these shapes and
    ``dtypes`` (a's, b's, out's), its products checked; the compute type is read now.

    Memoised per shapes, dtypes, flags and compute type: a training loop repeats the same
    few products, each planned once.

    Raises
    ------
    ValueError, TypeError
        As :func:`matmul`.
    """
    dtype_a, dtype_b, dtype_out = dtypes
    if dtype_a != dtype_b:
        raise TypeError(f"matmul: a {dtype_a} and b {dtype_b} must share a dtype")
    return _plan(tuple(shape_a), tuple(shape_b), tuple(shape_out), dtype_a, dtype_out,
                 bool(transpose_a), bool(transpose_b), bool(accumulate),
                 compute_type(dtype_a), out_columns)


@functools.lru_cache(maxsize=1024)
def _plan(shape_a, shape_b, shape_out, dtype, dtype_out, transpose_a, transpose_b, accumulate,
          compute, out_columns):
    """:func:`plan_matmul` for a compute type (its Raises)."""
    images = shape_out[0]
    for name, shape in (("a", shape_a), ("b", shape_b), ("out", shape_out)):
        if len(shape) != 4:
            raise ValueError(f"matmul: {name} must be a C-contiguous (images, groups, rows, "
                             f"columns) array, got shape {shape}")
        if shape[0] not in (1, images) or shape[1] != shape_out[1]:
            raise ValueError(f"matmul: {name} {shape} does not match out {shape_out}")
    op_a = shape_a[:1:-1] if transpose_a else shape_a[2:]
    op_b = shape_b[:1:-1] if transpose_b else shape_b[2:]
    _, groups, rows, row_length = shape_out
    cols = row_length if out_columns is None else out_columns
    if op_a[1] != op_b[0] or (op_a[0], op_b[1]) != (rows, cols) or cols > row_length:
        raise ValueError(f"matmul: op(a) {op_a} @ op(b) {op_b} is not out {shape_out[2:]}"
                         + ("" if out_columns is None else f" in its first {cols} columns"))
    grids = [_grid(shape, images) for shape in (shape_b, shape_a, shape_out)]
    sizes = [math.prod(shape) for shape in (shape_b, shape_a, shape_out)]
    calls = []
    for offsets, batch, (stride_b, stride_a, stride_out) in grid_calls(images, groups, grids):
        call = prepare_gemm("T" if transpose_b else "N", "T" if transpose_a else "N", cols,
                            rows, op_a[1], 1.0, shape_b[3], stride_b, shape_a[3], stride_a,
                            1.0 if accumulate else 0.0, row_length, stride_out, batch, compute,
                            (dtype, dtype_out),
                            tuple(size - offset for size, offset in zip(sizes, offsets)))
        calls.append((call, *offsets))
    return MatmulPlan(tuple(calls))


def matmul(a: Array, b: Array, out: Array, *, transpose_a: bool = False,
           transpose_b: bool = False, accumulate: bool = False,
           out_columns: int | None = None) -> Array:
    """``out[i, g] = op(a[i, g]) @ op(b[i, g])`` (``+=`` with ``accumulate``) through cuBLAS.

    Parameters
    ----------
    a, b : ndarray
        C-contiguous (images or 1, G, rows, columns) arrays of one dtype; an
        extent of 1 on the image axis shares the matrices with every image.
    out : ndarray
        C-contiguous (images, G, rows, columns), a's dtype or its accumulator
        dtype (float32 for float16: the products are summed in float32 either way).
    transpose_a, transpose_b : bool
        op transposes that operand (read in place, through cuBLAS's flag).
    accumulate : bool
        Add the products to ``out`` (beta = 1) instead of overwriting it.
    out_columns : int, optional
        The products fill only the first ``out_columns`` columns of each row of ``out``
        (cuBLAS's leading dimension is the whole row) and leave the rest as they are; by
        default they fill the rows.

    Returns
    -------
    ndarray
        ``out``.

    Raises
    ------
    ValueError
        Operands that are not C-contiguous 4-D arrays of fitting shapes.

    Examples
    --------
    >>> import numpy as np
    >>> a, b = np.ones((2, 1, 2, 3), np.float32), np.ones((1, 1, 3, 4), np.float32)
    >>> matmul(a, b, np.empty((2, 1, 2, 4), np.float32))[0, 0]
    array([[3., 3., 3., 3.],
           [3., 3., 3., 3.]], dtype=float32)
    """
    for name, array in (("a", a), ("b", b), ("out", out)):
        if not array.flags.c_contiguous:
            raise ValueError(f"matmul: {name} must be a C-contiguous (images, groups, rows, "
                             f"columns) array, got shape {array.shape}")
    plan_matmul(a.shape, b.shape, out.shape, (a.dtype, b.dtype, out.dtype),
                transpose_a=transpose_a, transpose_b=transpose_b, accumulate=accumulate,
                out_columns=out_columns)(a, b, out)
    return out


def _from(array, offset):
    """The flat buffer of C-contiguous ``array`` from element ``offset`` on, as gemm takes it:
    the array itself at 0 (gemm reads any C-contiguous array as its flat buffer, and a CuPy
    view costs the host about as much as the cuBLAS call's own checks)."""
    return array if offset == 0 else array.reshape(-1)[offset:]
