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

from collections.abc import Sequence

from .._typing import Array
from .gemm import compute_type, gemm


def _grid(array, images):
    """``(image stride, group stride)`` of a C-contiguous (images or 1, G, r, c) array, in
    elements; the image stride is 0 when one matrix per group serves every image."""
    per_group = array.shape[2] * array.shape[3]
    shared = array.shape[0] == 1 and images != 1
    return (0 if shared else array.shape[1] * per_group), per_group


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


def _check(a, b, out, shape_a, shape_b):
    images = out.shape[0]
    for name, array in (("a", a), ("b", b), ("out", out)):
        if array.ndim != 4 or not array.flags.c_contiguous:
            raise ValueError(f"matmul: {name} must be a C-contiguous (images, groups, rows, "
                             f"columns) array, got shape {array.shape}")
        if array.shape[0] not in (1, images) or array.shape[1] != out.shape[1]:
            raise ValueError(f"matmul: {name} {array.shape} does not match out {out.shape}")
    if shape_a[1] != shape_b[0] or (shape_a[0], shape_b[1]) != out.shape[2:]:
        raise ValueError(f"matmul: op(a) {shape_a} @ op(b) {shape_b} is not out {out.shape[2:]}")


def matmul(a: Array, b: Array, out: Array, *, transpose_a: bool = False,
           transpose_b: bool = False, accumulate: bool = False) -> Array:
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
    shape_a = a.shape[:1:-1] if transpose_a else a.shape[2:]
    shape_b = b.shape[:1:-1] if transpose_b else b.shape[2:]
    _check(a, b, out, shape_a, shape_b)
    images, groups, rows, cols = out.shape
    flats = [array.reshape(-1) for array in (b, a, out)]  # cuBLAS's A, B, C
    grids = [_grid(array, images) for array in (b, a, out)]
    compute = compute_type(a.dtype)
    for offsets, batch, (stride_b, stride_a, stride_out) in grid_calls(images, groups, grids):
        gemm_b, gemm_a, gemm_out = (flat[offset:] for flat, offset in zip(flats, offsets))
        gemm("T" if transpose_b else "N", "T" if transpose_a else "N", cols, rows, shape_a[1],
             1.0, gemm_b, b.shape[3], stride_b, gemm_a, a.shape[3], stride_a,
             1.0 if accumulate else 0.0, gemm_out, cols, stride_out, batch, compute)
    return out
