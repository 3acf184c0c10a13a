"""2-D and 3-D convolution on the CPU (NumPy): im2col and one stacked GEMM per batch chunk.

The code is written once for any number of spatial axes: below, KH*KW stands for the
kernel's size (KD*KH*KW in 3-D) and OH*OW for the output's.

Forward: the chunk's columns go into a workspace buffer (n, G, C/G*KH*KW + 1,
OH*OW) and ``numpy.matmul`` of the weights (G, F/G, C/G*KH*KW + 1) with them
gives the output already in contiguous NCHW order. The bias rides in the GEMMs
(Caffe's bias multiplier, folded into K): each group's columns end with a row
of ones and the weights with a bias column, so the forward GEMM adds b and the
dW GEMM yields db, where separate passes ``out += b`` and ``db = dout.sum(...)``
would cost a tenth of a small layer's time.

Backward: the forward's columns where it could hold them (its batch in one
chunk, every held buffer within the workspace limit: :meth:`fastconv.workspace.Workspace.keep`),
else recomputed into the workspace, so that the columns a network holds between
its passes stay within the limit.
dW and the column gradient are GEMMs; dx is col2im of the latter, summed from
whole stride-phase planes when the columns outnumber dout's rows.

A 1x1, stride-1, unpadded convolution skips im2col: the input is its own
column matrix, which has no row to spare for the bias, so the bias is added and
summed directly.

Each algorithm is an object with a ``plan`` (its workspace buffers), ``run(chunk,
buffers)`` and ``result()``, driven by :func:`fastconv.workspace.run_in_chunks`.
"""

from __future__ import annotations

import math
from typing import Any

import numpy

from .._typing import Array
from .._window_arrays import grouped as _grouped  # (n, C, ...) as (n, G, C/G, positions)
from ..backend import accumulator_dtype
from ..profiling import step
from ..shapes import WindowGeometry
from ..workspace import Buffer
from .im2col import col2im_into, col2im_plan, col2im_planes_into, col2im_planes_plan
from .im2col import im2col_into, im2col_plan


def forward(x: Array, w: Array, b: Array | None, geometry: WindowGeometry,
            groups: int) -> _PointwiseForward | _Im2colForward:
    """The forward algorithm of one call: pointwise for a 1x1 identity geometry, else im2col.

    Parameters
    ----------
    x : numpy.ndarray
        (N, C, *size), 1 to 3 spatial axes.
    w : numpy.ndarray
        (F, C/groups, *kernel).
    b : numpy.ndarray or None
        (F,).
    geometry : WindowGeometry
    groups : int

    Returns
    -------
    _PointwiseForward or _Im2colForward
        For :func:`fastconv.workspace.run_in_chunks`; its result is ``(out, columns)``, the
        columns a :class:`fastconv.workspace.Held` or None.

    Examples
    --------
    >>> from fastconv.shapes import window_geometry
    >>> from fastconv.workspace import run_in_chunks
    >>> x, w = numpy.ones((1, 1, 3, 3)), numpy.ones((1, 1, 2, 2))
    >>> out, held = run_in_chunks(forward(x, w, None, window_geometry(x.shape, 2, 1, 0, 1), 1),
    ...                           numpy, 1)
    >>> out
    array([[[[4., 4.],
             [4., 4.]]]])
    """
    if geometry.is_identity:
        return _PointwiseForward(x, w, b, groups)
    return _Im2colForward(x, w, b, geometry, groups)


def backward(dout: Array, cache: Any, needs_input_grad: bool = True) -> _Backward:
    """The backward algorithm of one call: pointwise, or im2col with dx by slab adds or from
    stride-phase planes.

    Parameters
    ----------
    dout : numpy.ndarray
        The output's gradient.
    cache : WindowConvCache
        A :class:`fastconv.functional.conv.ConvCache` or
        :class:`fastconv.functional.conv3d.Conv3dCache`.
    needs_input_grad : bool
        False computes dw and db only (dx is None).

    Returns
    -------
    _Backward
        For :func:`fastconv.workspace.run_in_chunks`; its result is ``(dx, dw, db)``.

    Examples
    --------
    >>> from fastconv.functional import conv2d_forward
    >>> from fastconv.workspace import run_in_chunks
    >>> out, cache = conv2d_forward(numpy.ones((1, 1, 3, 3)), numpy.ones((1, 1, 2, 2)))
    >>> dx, dw, db = run_in_chunks(backward(numpy.ones_like(out), cache), numpy, 1)
    >>> dx[0, 0]
    array([[1., 2., 1.],
           [2., 4., 2.],
           [1., 2., 1.]])
    """
    if cache.geometry.is_identity:
        return _PointwiseBackward(dout, cache, needs_input_grad)
    if needs_input_grad and _sums_planes(cache):
        return _PlanesBackward(dout, cache, needs_input_grad)
    return _Im2colBackward(dout, cache, needs_input_grad)


def _weight_matrix(w, groups):
    """w (F, C/G, KH, KW) (or (F, C/G, KD, KH, KW)) as (G, F/G, C/G*KH*KW)."""
    return numpy.ascontiguousarray(w).reshape(groups, w.shape[0] // groups, w[0].size)


def _columns_plan(x, geometry, groups, bias_row):
    """The column buffer of one image, (G, C/G*KH*KW [+ 1], OH*OW), and what im2col needs."""
    rows = x.shape[1] // groups * math.prod(geometry.kernel) + bias_row
    columns = Buffer("cols", (groups, rows, math.prod(geometry.out)), x.dtype)
    return (columns,) + im2col_plan(x.shape[1], geometry, x.dtype)


def _columns(x, geometry, groups, buffers):
    """im2col of the chunk ``x`` into ``buffers["cols"]``; a last (bias) row of each group is ones.

    The im2col writes through a view of the N*G group slices as images of C/G
    channels, since the bias row leaves no view of the columns as N images of C.
    """
    n, channels = x.shape[:2]
    cols = buffers["cols"]
    taps = channels // groups * math.prod(geometry.kernel)
    images = (n * groups, channels // groups)
    padded = buffers.get("padded")
    im2col_into(x.reshape(images + x.shape[2:]), geometry,
                cols[:, :, :taps].reshape(images + geometry.kernel + geometry.out),
                {} if padded is None else {"padded": padded.reshape(images + geometry.padded)})
    cols[:, :, taps:] = 1
    return cols


class _PointwiseForward:
    """out = W @ x per group: a 1x1 (1x1x1), stride-1, unpadded kernel reads x as its own
    columns."""

    plan = ()

    def __init__(self, x, w, b, groups):
        self.x, self.b, self.groups = x, b, groups
        self.w_mat = _weight_matrix(w, groups)
        self.out = numpy.empty((x.shape[0], w.shape[0]) + x.shape[2:], dtype=x.dtype)

    def run(self, chunk, buffers):
        with step("layout copies"):
            cols = _grouped(self.x[chunk], self.groups)
        with step("GEMM out = W @ cols"):
            numpy.matmul(self.w_mat, cols, out=_grouped(self.out[chunk], self.groups))

    def result(self, workspace):
        if self.b is not None:
            with step("bias"):
                self.out += self.b.reshape((1, -1) + (1,) * (self.out.ndim - 2))
        return self.out, None


class _Im2colForward:
    """out = [W | b] @ [cols; 1] per chunk and group."""

    def __init__(self, x, w, b, geometry, groups):
        self.x, self.geometry, self.groups = x, geometry, groups
        w_mat = _weight_matrix(w, groups)
        if b is not None:
            w_mat = numpy.concatenate((w_mat, b.reshape(groups, -1, 1)), axis=2)
        self.w_mat = w_mat
        self.plan = _columns_plan(x, geometry, groups, bias_row=b is not None)
        self.out = numpy.empty((x.shape[0], w.shape[0]) + geometry.out, dtype=x.dtype)

    def run(self, chunk, buffers):
        cols = _columns(self.x[chunk], self.geometry, self.groups, buffers)
        with step("GEMM out = W @ cols"):
            numpy.matmul(self.w_mat, cols, out=_grouped(self.out[chunk], self.groups))

    def result(self, workspace):
        """The output, and the columns held for the backward where the workspace allows."""
        return self.out, workspace.keep("cols")


def _weight_grad_plan(dw, positions, dtype):
    """The buffers :func:`_add_weight_grad` uses for dw (G, F/G, K) over ``positions`` columns.

    The products are in dw's (accumulator) dtype: a float16 image's partial sum
    above 65504 would otherwise be inf before the sum over images cancels it.
    """
    groups, f_group, k = dw.shape
    if groups == 1:  # per-image products and their sum, once per call
        return (Buffer("dW product", (k, f_group), dw.dtype, per_image=False),
                Buffer("dW sum", (k, f_group), dw.dtype, per_image=False))
    return (Buffer("dout^T", (groups, positions, f_group), dtype),
            Buffer("dW products", (groups, k, f_group), dw.dtype))


def _add_weight_grad(dw, dout, cols, buffers):
    """dw (G, F/G, K) += the sum over images of dout[n] (G, F/G, L) @ cols[n]^T (G, L, K).

    dw is in the accumulator dtype (float32 for float16 columns), so the sum
    over images does not stall.
    """
    if dw.shape[0] == 1:
        # NumPy's stacked matmul runs a transposed operand several times slower
        # than BLAS does, so without groups each image is one 2-D GEMM,
        # cols[n] @ dout[n]^T = dW^T, whose transposed operand BLAS reads in place
        # (OpenBLAS runs it faster than dout[n] @ cols[n]^T when F is small).
        product, total = buffers["dW product"], buffers["dW sum"]
        total.fill(0)
        with step("GEMM dW = dout @ cols^T"):
            for image in range(cols.shape[0]):
                numpy.matmul(cols[image, 0], dout[image, 0].T, out=product, dtype=product.dtype)
                total += product
            dw[0] += total.T
        return
    with step("layout copies"):  # groups: dout transposed into a copy, output-sized
        dout_t = buffers["dout^T"]
        numpy.copyto(dout_t, dout.transpose(0, 1, 3, 2))
    with step("GEMM dW = dout @ cols^T"):
        products = numpy.matmul(cols, dout_t, out=buffers["dW products"], dtype=dw.dtype)
        dw += products.sum(axis=0, dtype=dw.dtype).transpose(0, 2, 1)


class _Backward:
    """What every backward algorithm keeps: dout per group, W^T, dW over the chunks, dx, db.

    With ``folds_bias`` the columns carry the ones row, so the dW GEMM's last
    column is db; otherwise db is dout summed directly.
    """

    folds_bias = False

    def __init__(self, dout, cache, needs_input_grad):
        x, w, groups = cache.x, cache.w, cache.groups
        self.needs_input_grad = needs_input_grad
        self.x, self.w, self.geometry, self.groups = x, w, cache.geometry, groups
        self.has_bias = cache.has_bias
        self.bias_column = self.folds_bias and self.has_bias
        with step("layout copies"):
            self.dout = _grouped(dout, groups)
            self.w_t = self._transposed_weights(w, groups)
        self.dw = numpy.zeros((groups, w.shape[0] // groups, w[0].size + self.bias_column),
                              dtype=accumulator_dtype(x.dtype))
        self.dx = numpy.empty(x.shape, dtype=x.dtype) if needs_input_grad else None
        self.plan = self._plan()

    @staticmethod
    def _transposed_weights(w, groups):
        """W^T per group, (G, C/G*KH*KW, F/G), contiguous."""
        return numpy.ascontiguousarray(_weight_matrix(w, groups).transpose(0, 2, 1))

    def result(self, workspace):
        dw, db = self.dw, None
        if self.bias_column:  # dout summed against the ones row
            db = numpy.ascontiguousarray(dw[:, :, -1]).reshape(-1).astype(self.x.dtype, copy=False)
            dw = dw[:, :, :-1]
        elif self.has_bias:
            with step("bias"):
                db = self.dout.sum(axis=(0, 3), dtype=dw.dtype).reshape(-1).astype(self.x.dtype)
        dw = numpy.ascontiguousarray(dw).reshape(self.w.shape).astype(self.x.dtype, copy=False)
        return self.dx, dw, db


class _PointwiseBackward(_Backward):
    """dW from x as the columns, dx = W^T @ dout."""

    def _plan(self):
        return _weight_grad_plan(self.dw, math.prod(self.x.shape[2:]), self.x.dtype)

    def run(self, chunk, buffers):
        with step("layout copies"):
            x_cols = _grouped(self.x[chunk], self.groups)
        _add_weight_grad(self.dw, self.dout[chunk], x_cols, buffers)
        if self.needs_input_grad:
            with step("GEMM dcols = W^T @ dout"):
                numpy.matmul(self.w_t, self.dout[chunk], out=_grouped(self.dx[chunk], self.groups))


class _Im2colBackward(_Backward):
    """Per chunk: the columns again, dW += dout @ cols^T, dcols = W^T @ dout, dx by slab col2im."""

    folds_bias = True

    def __init__(self, dout, cache, needs_input_grad):
        # The forward's columns when it could hold them: no im2col again, and no
        # column buffer in this plan (larger chunks).
        self.held = cache.columns
        self.columns = None if cache.columns is None else cache.columns.take()
        super().__init__(dout, cache, needs_input_grad)

    def _plan(self):
        positions = math.prod(self.geometry.out)
        columns = () if self.columns is not None else _columns_plan(
            self.x, self.geometry, self.groups, self.bias_column)
        data_grad = self._data_grad_plan() if self.needs_input_grad else ()
        return columns + _weight_grad_plan(self.dw, positions, self.x.dtype) + data_grad

    def _data_grad_plan(self):
        positions, channels = math.prod(self.geometry.out), self.x.shape[1]
        dcols = Buffer("dcols", self.w_t.shape[:2] + (positions,), self.x.dtype)
        return (dcols,) + col2im_plan(channels, self.geometry, self.x.dtype)

    def _add_data_grad(self, chunk, buffers):
        """dx[chunk] = col2im(W^T @ dout[chunk])."""
        with step("GEMM dcols = W^T @ dout"):
            dcols = numpy.matmul(self.w_t, self.dout[chunk], out=buffers["dcols"])
        m = dcols.shape[0]
        col2im_into(dcols.reshape((m, self.x.shape[1]) + self.geometry.kernel + self.geometry.out),
                    self.geometry, self.dx[chunk], buffers)

    def run(self, chunk, buffers):
        if self.columns is not None:
            cols = self.columns[chunk]
        else:
            cols = _columns(self.x[chunk], self.geometry, self.groups, buffers)
        _add_weight_grad(self.dw, self.dout[chunk], cols, buffers)
        if self.needs_input_grad:
            self._add_data_grad(chunk, buffers)

    def result(self, workspace):
        if self.held is not None:  # used: the memory goes back to the pool for the next call
            self.held.release()
        return super().result(workspace)


def _sums_planes(cache):
    """True where the backward sums plane-shaped columns (:class:`_PlanesBackward`) rather than slabs.

    The planes copy dout onto stride-phase planes and run the dcols GEMM over
    Hq*Wq positions instead of OH*OW, which pays when the columns they sum
    (C*KH*KW rows) outnumber dout's rows (F). Their zero columns stay zero
    only for finite weights (NaN * 0 is NaN), so a non-finite weight takes the
    slab adds and NaN stays where it belongs.
    """
    taps, w = math.prod(cache.geometry.kernel), cache.w
    return cache.x.shape[1] * taps > w.shape[0] and bool(numpy.isfinite(w).all())


class _PlanesBackward(_Im2colBackward):
    """The im2col backward with dx summed from stride-phase planes (col2im_planes_into)."""

    @staticmethod
    def _transposed_weights(w, groups):
        """W^T per group with its rows in (KH, KW, C/G) order: (G, KH*KW*C/G, F/G), contiguous
        ((KD, KH, KW, C/G) in 3-D).

        The plane layout of col2im_planes_into wants a kernel offset's channels adjacent.
        """
        f, c_group, *kernel = w.shape
        spatial = tuple(range(3, 3 + len(kernel)))
        per_group = w.reshape(groups, f // groups, c_group, *kernel).transpose(
            (0,) + spatial + (2, 1))
        return numpy.ascontiguousarray(per_group).reshape(
            groups, math.prod(kernel) * c_group, f // groups)

    def _data_grad_plan(self):
        phase_size = self.geometry.phase_size
        f, channels, dtype = self.w.shape[0], self.x.shape[1], self.x.dtype
        return (Buffer("dout planes", (f,) + phase_size, dtype),
                Buffer("dcols", self.w_t.shape[:2] + (math.prod(phase_size),), dtype)
                ) + col2im_planes_plan(channels, self.geometry, dtype)

    def _add_data_grad(self, chunk, buffers):
        """dx[chunk] from W^T @ dout placed on zeroed phase-size planes.

        Output (oh, ow) sits at plane position oh*Wq + ow (in 3-D (od*Hq + oh)*Wq + ow), so
        the dcols GEMM yields plane-shaped columns for col2im_planes_into.
        """
        n, groups, f_group, _ = self.dout[chunk].shape
        out, phase_size = self.geometry.out, self.geometry.phase_size
        with step("layout copies"):
            planes = buffers["dout planes"]
            for axis, o in enumerate(out):  # zero all but the windows' corner, each cell once
                planes[(slice(None), slice(None)) + tuple(slice(None, p) for p in out[:axis])
                       + (slice(o, None),)] = 0
            planes[(slice(None), slice(None)) + tuple(slice(None, o) for o in out)] = (
                self.dout[chunk].reshape((n, groups * f_group) + out))
        with step("GEMM dcols = W^T @ dout"):
            dcols = numpy.matmul(self.w_t, planes.reshape(n, groups, f_group,
                                                          math.prod(phase_size)),
                                 out=buffers["dcols"])
        col2im_planes_into(dcols, self.geometry, self.groups, self.dx[chunk], buffers)
