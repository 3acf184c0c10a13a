"""3-D convolution on the GPU (CuPy): the vol2col and col2vol CUDA kernels, cuBLAS for the
products.

The ``vol2col`` kernel (kernels/vol2col.cu, :func:`fastconv._cuda.vol2col_into`) writes a
chunk's columns (n, G, C/G*KD*KH*KW, OD*OH*OW) into a workspace buffer, one thread per output
position, reading the zero padding implicitly (no padded copy of the input). The backward sums
the column gradient back with the gather-style ``col2vol`` kernel: each input element adds the
entries of the windows covering it in ascending kernel-offset order, so no atomics and the same
bits every run. The products are the 2-D GPU convolution's (:mod:`.conv`):
strided-batched cuBLAS GEMMs through :func:`fastconv._gpu.matmul.matmul`, the weights shared by
the images (or copied per image with groups, by the same rule), dW as per-image partials in
the accumulator dtype summed once at the end, dx = col2vol(W^T @ dout); the forward holds its
columns for the backward within the workspace limit, by the same rule as well. A 1x1x1, stride-1,
unpadded convolution skips the kernels: the input is its own column matrix.

Written against the arrays' module and the kernels' launcher, so the tests run it on NumPy
arrays (the kernels on the CPU emulator, the products in the NumPy model of cuBLAS). Each
algorithm is an object with a ``plan``, ``run(chunk, buffers)`` and ``result(workspace)``,
driven by :func:`fastconv.workspace.run_in_chunks`.
"""

from __future__ import annotations

import math
from typing import Any

from .. import _cuda
from .._typing import Array
from .._window_arrays import Buffers, grouped
from ..backend import accumulator_dtype, get_array_module
from ..shapes import WindowGeometry
from .._kept_memory import Held
from ..workspace import Buffer, Workspace
from .conv import _weight_matrix, _weights, _weights_plan
from .matmul import matmul


def forward(x: Array, w: Array, b: Array | None, geometry: WindowGeometry,
            groups: int) -> _Forward:
    """The forward algorithm of one call.

    Parameters
    ----------
    x : cupy.ndarray
        (N, C, D, H, W).
    w : cupy.ndarray
        (F, C/groups, KD, KH, KW).
    b : cupy.ndarray or None
        (F,).
    geometry : WindowGeometry
        Three spatial axes.
    groups : int

    Returns
    -------
    _Forward
        For :func:`fastconv.workspace.run_in_chunks`; its result is ``(out, columns)``, the
        columns a :class:`fastconv.workspace.Held` or None.

    Examples
    --------
    A 1x1x1 window launches no kernel, so it runs on NumPy arrays without a GPU:

    >>> import numpy
    >>> from fastconv.shapes import window_geometry
    >>> from fastconv.workspace import run_in_chunks
    >>> x, w = numpy.ones((1, 2, 1, 1, 2)), numpy.ones((1, 2, 1, 1, 1))
    >>> out, _ = run_in_chunks(forward(x, w, None, window_geometry(x.shape, 1, 1, 0, 1), 1),
    ...                        numpy, 1)
    >>> out
    array([[[[[2., 2.]]]]])
    """
    return _Forward(x, w, b, geometry, groups)


def backward(dout: Array, cache: Any, needs_input_grad: bool = True) -> _Backward:
    """The backward algorithm of one call; its result is ``(dx, dw, db)``.

    Parameters
    ----------
    dout : cupy.ndarray
        The output's gradient (N, F, OD, OH, OW).
    cache : Conv3dCache
        From :func:`fastconv.functional.conv3d.conv3d_forward`.
    needs_input_grad : bool
        False computes dw and db only (dx is None).

    Returns
    -------
    _Backward
        For :func:`fastconv.workspace.run_in_chunks`.

    Examples
    --------
    A 1x1x1 window launches no kernel, so it runs on NumPy arrays without a GPU:

    >>> import numpy
    >>> from fastconv.functional.conv3d import conv3d_forward
    >>> from fastconv.workspace import run_in_chunks
    >>> out, cache = conv3d_forward(numpy.ones((1, 1, 2, 1, 2)), numpy.full((1, 1, 1, 1, 1), 3.0))
    >>> dx, dw, db = run_in_chunks(backward(numpy.ones_like(out), cache), numpy, 1)
    >>> dx.reshape(-1), dw.reshape(-1), db
    (array([3., 3., 3., 3.]), array([4.]), None)
    """
    return _Backward(dout, cache, needs_input_grad)


def _columns_plan(x: Array, geometry: WindowGeometry, groups: int) -> tuple[Buffer, ...]:
    """The column buffer of one image, (G, C/G*KD*KH*KW, OD*OH*OW); nothing for a 1x1x1
    identity."""
    if geometry.is_identity:
        return ()
    rows = x.shape[1] // groups * math.prod(geometry.kernel)
    return (Buffer("cols", (groups, rows, math.prod(geometry.out)), x.dtype),)


def _as_images(cols: Array, channels: int, geometry: WindowGeometry) -> Array:
    """The column buffer (n, G, C/G*K, L) as the window layout (n, C, *kernel, *out)."""
    return cols.reshape((cols.shape[0], channels) + geometry.kernel + geometry.out)


def _columns(x: Array, geometry: WindowGeometry, groups: int, buffers: Buffers) -> Array:
    """The columns of the chunk ``x``: the vol2col kernel's in ``buffers["cols"]``, or x."""
    if geometry.is_identity:
        return grouped(x, groups)
    cols = buffers["cols"]
    _cuda.vol2col_into(x, geometry, _as_images(cols, x.shape[1], geometry),
                       _cuda.default_launcher())
    return cols


class _Forward:
    """out = W @ cols per chunk and group, then the bias in one pass."""

    def __init__(self, x: Array, w: Array, b: Array | None, geometry: WindowGeometry,
                 groups: int) -> None:
        self.x, self.b, self.geometry, self.groups = x, b, geometry, groups
        self.w_mat = _weight_matrix(w, groups)
        self.plan = _columns_plan(x, geometry, groups) + _weights_plan(
            self.w_mat, x.shape[0], math.prod(geometry.out))
        self.out = get_array_module(x).empty((x.shape[0], w.shape[0]) + geometry.out, x.dtype)

    def run(self, chunk: slice, buffers: Buffers) -> None:
        cols = _columns(self.x[chunk], self.geometry, self.groups, buffers)
        matmul(_weights(self.w_mat, chunk, buffers), cols, grouped(self.out[chunk], self.groups))

    def result(self, workspace: Workspace) -> tuple[Array, Held | None]:
        """The output, and the columns held for the backward where the workspace allows (as
        in :mod:`.conv`)."""
        if self.b is not None:
            bias = self.b.reshape((1, -1) + (1,) * len(self.geometry.out))
            get_array_module(self.out).add(self.out, bias, out=self.out)
        return self.out, None if self.geometry.is_identity else workspace.keep("cols")


class _Backward:
    """Per chunk: the columns, dW partials += dout @ cols^T, then dx = col2vol(W^T @ dout);
    at the end dw from the partials and db from dout."""

    def __init__(self, dout: Array, cache: Any, needs_input_grad: bool) -> None:
        x, self.geometry, self.groups = cache.x, cache.geometry, cache.groups
        self.x, self.w, self.has_bias = x, cache.w, cache.has_bias
        self.dout = grouped(dout, self.groups)
        self.w_mat = _weight_matrix(self.w, self.groups)
        xp = get_array_module(dout, x)
        # the forward's columns when it could hold them (none in this plan); the column
        # gradient overwrites them once dW has used them
        self.held = cache.columns
        self.columns = None if cache.columns is None else cache.columns.take()
        self.dx = xp.empty(x.shape, dtype=x.dtype) if needs_input_grad else None
        # the dW partials of the images, a workspace buffer once a chunk runs (none for N=0)
        self.partials = xp.zeros((0,) + self.w_mat.shape[1:], accumulator_dtype(x.dtype))
        # the partials of one image in the accumulator dtype (float32 for float16)
        self.plan: tuple[Buffer, ...] = (Buffer(
            "dW partials", self.w_mat.shape[1:], accumulator_dtype(x.dtype)),)
        if self.columns is None:
            self.plan += _columns_plan(x, self.geometry, self.groups)
        if needs_input_grad:
            self.plan += _weights_plan(self.w_mat, x.shape[0], self.dout.shape[3])

    def run(self, chunk: slice, buffers: Buffers) -> None:
        if self.columns is not None:
            cols = self.columns[chunk]
        else:
            cols = _columns(self.x[chunk], self.geometry, self.groups, buffers)
        dout = self.dout[chunk]
        # Slot i of the partials sums image i of every chunk: the first chunk, the
        # largest, writes every slot, later ones add to theirs (a shorter chunk's buffer
        # holds only its first slots, so the sum at the end takes the first chunk's).
        if chunk.start == 0:
            self.partials = buffers["dW partials"]
        matmul(dout, cols, buffers["dW partials"], transpose_b=True, accumulate=chunk.start > 0)
        if self.dx is None:  # no input gradient asked for
            return
        weights, dx = _weights(self.w_mat, chunk, buffers), self.dx[chunk]
        if self.geometry.is_identity:  # the column gradient is dx
            matmul(weights, dout, grouped(dx, self.groups), transpose_a=True)
            return
        dcols = matmul(weights, dout, cols, transpose_a=True)  # into the used columns' buffer
        _cuda.col2vol_into(_as_images(dcols, dx.shape[1], self.geometry), self.geometry, dx,
                           _cuda.default_launcher())

    def result(self, workspace: Workspace) -> tuple[Array | None, Array, Array | None]:
        """dx, dw and db, each summed in the accumulator dtype and rounded once."""
        if self.held is not None:  # used: the memory goes back to the array module's pool
            self.held.release()
        dtype, acc = self.x.dtype, accumulator_dtype(self.x.dtype)
        dw = self.partials.sum(axis=0, dtype=acc).reshape(self.w.shape).astype(dtype, copy=False)
        db = None
        if self.has_bias:
            db = self.dout.sum(axis=(0, 3), dtype=acc).reshape(-1).astype(dtype, copy=False)
        return self.dx, dw, db
