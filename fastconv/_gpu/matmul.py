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
from collections.abc import Sequence
from typing import NamedTuple

from .._typing import Array
from .gemm import compute_type, gemm


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


class _GemmCall(NamedTuple):
    """One :func:`fastconv._gpu.gemm.gemm` call of a :func:`matmul`, in cuBLAS's terms (its
    A is matmul's b, its B matmul's a, its C out), each operand's ``offset`` into its flat
    buffer; alpha is 1."""

    transa: str
    transb: str
    m: int
    n: int
    k: int
    offset_a: int
    lda: int
    stride_a: int
    offset_b: int
    ldb: int
    stride_b: int
    beta: float
    offset_c: int
    ldc: int
    stride_c: int
    batch: int
    compute: str


# The products of a training loop repeat: each (shapes, flags, compute type) is planned once.
@functools.lru_cache(maxsize=1024)
def _gemm_calls(shape_a, shape_b, shape_out, transpose_a, transpose_b, accumulate, compute,
                out_columns):
    """The gemm calls of one :func:`matmul` of arrays of these shapes (its Raises)."""
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
    return tuple(
        _GemmCall("T" if transpose_b else "N", "T" if transpose_a else "N", cols, rows, op_a[1],
                  offset_b, shape_b[3], stride_b, offset_a, shape_a[3], stride_a,
                  1.0 if accumulate else 0.0, offset_out, row_length, stride_out, batch, compute)
        for (offset_b, offset_a, offset_out), batch, (stride_b, stride_a, stride_out)
        in grid_calls(images, groups, grids))


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
    calls = _gemm_calls(a.shape, b.shape, out.shape, bool(transpose_a), bool(transpose_b),
                        bool(accumulate), compute_type(a.dtype), out_columns)
    for call in calls:  # cuBLAS's A is b, its B a, its C out
        gemm(call.transa, call.transb, call.m, call.n, call.k, 1.0, _from(b, call.offset_a),
             call.lda, call.stride_a, _from(a, call.offset_b), call.ldb, call.stride_b,
             call.beta, _from(out, call.offset_c), call.ldc, call.stride_c, call.batch,
             call.compute)
    return out


def _from(array, offset):
    """The flat buffer of C-contiguous ``array`` from element ``offset`` on, as gemm takes it:
    the array itself at 0 (gemm reads any C-contiguous array as its flat buffer, and a CuPy
    view costs the host about as much as the cuBLAS call's own checks)."""
    return array if offset == 0 else array.reshape(-1)[offset:]
