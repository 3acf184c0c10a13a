"""2-D and 3-D convolution on the GPU (CuPy): the column CUDA kernels, products in cuBLAS.

One code path serves both, as on the CPU: the column kernels are ``im2col`` and ``col2im``
(kernels/im2col.cu) for two spatial axes, ``vol2col`` and ``col2vol`` (kernels/vol2col.cu)
for three, each reading the zero padding implicitly (no padded copy of the input). Below,
KH*KW stands for the kernel's size and OH*OW for the output positions in either.

Forward: the column kernel writes a chunk's columns into a workspace buffer
(n, G, C/G*KH*KW, OH*OW), and one strided-batched cuBLAS call multiplies the
weights (G, F/G, C/G*KH*KW), shared by the images through a zero batch stride,
with them, writing the output in contiguous NCHW order. With groups, shared
weights have no single batch stride: they are copied per image into the
workspace when that copy is no larger than the columns, else the product takes
one call per group or per image, whichever is fewer. The bias is then added
by one more product over the batch, b times a row of ones (:mod:`fastconv._gpu.bias`).

The forward holds its columns for the backward where the batch ran in one chunk and
the held buffers stay within the workspace limit (:meth:`fastconv.workspace.Workspace.keep`,
as on the CPU): one im2col pass per layer fewer, a layer's columns (about KH*KW times its
input) held between its passes.

Backward, per chunk: the held columns, else the columns again; dW as per-image products dout @ cols^T
into partials (n, G, F/G, C/G*KH*KW + 1) in the accumulator dtype (float32 for float16,
so no partial is rounded to float16), accumulated over the chunks in place by the
GEMM; no product over all the images' positions exists, since dout's images are not
adjacent along its positions. The last slot of each filter's row takes the image's bias
gradient, dout times a column of ones (:mod:`fastconv._gpu.bias`). Then the
column gradient W^T @ dout, written into the columns' buffer (they are used by
then), and dx by the gather-style ``col2im`` or ``col2vol`` kernel (each input
element sums what it contributed to, in ascending kernel-offset order: no atomics,
the same bits every run). At the end one kernel sums the partials over the images
in ascending order and rounds dw and db once (kernels/weight_sum.cu, the depthwise
path's too). Transposed operands are cuBLAS flags, never copies. A 1x1 (1x1x1),
stride-1, unpadded convolution skips the kernels: the input is its own column matrix
and dx the column gradient.

A 2-D depthwise convolution (groups == C) takes neither: :mod:`fastconv._gpu.depthwise`
runs it on direct kernels (:func:`forward` and :func:`backward` dispatch to it).

The code is written against the arrays' module ``xp``, the kernels'
:class:`fastconv._cuda.Launcher` and :func:`fastconv._gpu.gemm.gemm`, so the
tests run it on NumPy arrays with the kernels emulated on the CPU and the
products in the NumPy model of cuBLAS. Each algorithm is an object with a
``plan`` (its workspace buffers), ``run(chunk, buffers)`` and ``result()``,
driven by :func:`fastconv.workspace.run_in_chunks`.
"""

from __future__ import annotations

import functools
import math
from typing import Any

import numpy

from .. import _cuda
from .._typing import Array
from .._window_arrays import grouped, ungrouped
from ..backend import accumulator_dtype, get_array_module
from ..shapes import WindowGeometry
from ..workspace import Buffer, chunk_of
from .bias import add_bias, bias_grad_partials_into
from .depthwise import DepthwiseBackward, DepthwiseForward, runs_depthwise
from .gemm import get_tf32
from .matmul import matmul


def forward(x: Array, w: Array, b: Array | None, geometry: WindowGeometry,
            groups: int) -> _Forward | DepthwiseForward:
    """The forward algorithm of one call; its result is ``(out, columns)``.

    A 2-D depthwise convolution (groups == C, where
    :func:`fastconv._gpu.depthwise.runs_depthwise`) runs on the depthwise kernels; any
    other on the column kernel and the products (the columns are x itself for an identity
    geometry), the columns a :class:`fastconv.workspace.Held` where they could be kept.

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
    if len(geometry.out) == 2 and runs_depthwise(x, w, geometry, groups):
        # C tiny products of K = KH*KW through cuBLAS, after KH*KW copies of the input,
        # cost far more than reading each window once in a direct kernel
        return DepthwiseForward(x, w, b, geometry)
    return _Forward(x, w, b, geometry, groups)


def backward(dout: Array, cache: Any, needs_input_grad: bool = True
             ) -> _Backward | DepthwiseBackward:
    """The backward algorithm of one call, on the path its forward took; its result is
    ``(dx, dw, db)``.

    ``cache`` is the forward's (:class:`fastconv.functional.conv.ConvCache` or
    :class:`fastconv.functional.conv3d.Conv3dCache`). Without ``needs_input_grad`` it
    computes dw and db only (dx is None).

    Examples
    --------
    A 1x1x1 window needs no columns: its workspace is each image's partials alone, dw's
    (F, C*KD*KH*KW) and a slot per filter for db:

    >>> import numpy
    >>> from fastconv.functional.conv3d import conv3d_forward
    >>> out, cache = conv3d_forward(numpy.ones((1, 2, 2, 1, 2)), numpy.ones((3, 2, 1, 1, 1)))
    >>> [(buffer.name, buffer.shape) for buffer in backward(numpy.ones_like(out), cache).plan]
    [('partials', (1, 3, 3))]
    """
    if len(cache.geometry.out) == 2 and runs_depthwise(cache.x, cache.w, cache.geometry,
                                                       cache.groups):
        return DepthwiseBackward(dout, cache, needs_input_grad)
    return _Backward(dout, cache, needs_input_grad)


def _takes_implicit_input_grad(w, geometry, groups):
    """Whether dx comes from the implicit-product kernel: float32 products in FP32, a 2-D
    stride-1 window other than the identity's, no groups, within the kernel's limits.

    The kernel multiplies on the CUDA cores; the products it replaces run on tensor cores
    in float16, and in float32 with TF32 allowed (and in float64 on GPUs with FP64 tensor
    cores), which beats it even with col2im after them. A strided window's input gradient
    is no stride-1 convolution of dout (its taps fall between dout's cells); groups would
    need a launch per group, and the identity needs no kernel at all."""
    return _implicit_input_grad_fits(w.shape, w.dtype, geometry, groups, get_tf32())


# Memoised: every backward asks, and a training loop asks with the same sizes every step
@functools.lru_cache(maxsize=256)
def _implicit_input_grad_fits(w_shape, dtype, geometry, groups, tf32):
    """:func:`_takes_implicit_input_grad` for filters of ``w_shape`` and ``dtype``, TF32
    allowed or not."""
    return (dtype == numpy.float32 and not tf32 and len(geometry.out) == 2
            and geometry.stride == (1, 1) and groups == 1 and not geometry.is_identity
            and _cuda.conv_gemm_fits(w_shape, geometry, input_grad=True))


def _weight_matrix(w, groups):
    """w (F, C/G, KH, KW) as (1, G, F/G, C/G*KH*KW): one matrix per group, shared by the images."""
    return get_array_module(w).ascontiguousarray(w).reshape(1, groups, w.shape[0] // groups,
                                                            math.prod(w.shape[1:]))


def _columns_plan(x, geometry, groups):
    """The column buffer of one image, (G, C/G*KH*KW, OH*OW); none for an identity geometry."""
    if geometry.is_identity:
        return ()
    rows = x.shape[1] // groups * math.prod(geometry.kernel)
    return (Buffer("cols", (groups, rows, math.prod(geometry.out)), x.dtype),)


def _weights_plan(w_mat, images, positions):
    """The weights copied per image, (G, F/G, C/G*KH*KW), where groups would otherwise split
    each product into one cuBLAS call per group or per image (shared weights have no single
    batch stride) and the copy is no larger than the columns it multiplies (F/G <= OH*OW)."""
    groups, f_group = w_mat.shape[1:3]
    if groups == 1 or images == 1 or f_group > positions:
        return ()
    return (Buffer("weights", w_mat.shape[1:], w_mat.dtype),)


def _weights(w_mat, chunk, buffers):
    """The chunk's weights: shared by the images, or their per-image copy (written by the
    first chunk, the largest; later chunks use part of it)."""
    weights = buffers.get("weights")
    if weights is None:
        return w_mat
    if chunk.start == 0:
        get_array_module(weights).copyto(weights, w_mat)
    return weights


def _columns(x, geometry, groups, buffers):
    """The columns of the chunk ``x``: the column kernel's in ``buffers["cols"]``, or x itself."""
    if geometry.is_identity:
        return grouped(x, groups)
    cols = buffers["cols"]
    images = _as_images(cols, x.shape[1], geometry)
    if len(geometry.out) == 2:
        _cuda.im2col_into(x, geometry, images)
    else:
        _cuda.vol2col_into(x, geometry, images)
    return cols


def _sum_columns(dcols, geometry, dx):
    """dx = the column gradient summed onto the input, by the gather-style column kernel."""
    images = _as_images(dcols, dx.shape[1], geometry)
    if len(geometry.out) == 2:
        _cuda.col2im_into(images, geometry, dx)
    else:
        _cuda.col2vol_into(images, geometry, dx)


def _as_images(cols, channels, geometry):
    """The column buffer (n, G, C/G*KH*KW, OH*OW) as the kernels' (n, C, *kernel, *out)."""
    return cols.reshape((cols.shape[0], channels) + geometry.kernel + geometry.out)


class _Forward:
    """out = W @ cols per chunk and group, then the bias in one pass."""

    def __init__(self, x, w, b, geometry, groups):
        xp = get_array_module(x)
        self.x, self.b, self.geometry, self.groups = x, b, geometry, groups
        self.w_mat = _weight_matrix(w, groups)
        self.plan = _columns_plan(x, geometry, groups) + _weights_plan(
            self.w_mat, x.shape[0], math.prod(geometry.out))
        self.out = xp.empty((x.shape[0], w.shape[0]) + geometry.out, dtype=x.dtype)

    def run(self, chunk, buffers):
        cols = _columns(chunk_of(self.x, chunk), self.geometry, self.groups, buffers)
        weights = _weights(self.w_mat, chunk, buffers)
        matmul(weights, cols, grouped(chunk_of(self.out, chunk), self.groups))

    def result(self, workspace):
        """The output, and the columns held for the backward where the workspace allows."""
        if self.b is not None:
            add_bias(self.out, self.b)
        return self.out, None if self.geometry.is_identity else workspace.keep("cols")


class _Backward:
    """Per chunk: the columns, dW partials += dout @ cols^T and the bias slots += dout's
    sums, then (unless the implicit-product kernel takes it at the end, for all the
    images) dx from W^T @ dout and col2im; at the end dw and db from the partials."""

    def __init__(self, dout, cache, needs_input_grad):
        xp = get_array_module(dout, cache.x)
        # The forward's columns when it could hold them: no im2col again, no column buffer in
        # this plan; the column gradient overwrites them once dW has used them.
        self.held = cache.columns
        self.columns = None if cache.columns is None else cache.columns.take()
        self.x, self.w, self.geometry, self.groups = cache.x, cache.w, cache.geometry, cache.groups
        self.needs_input_grad, self.has_bias = needs_input_grad, cache.has_bias
        self.implicit_input_grad = needs_input_grad and _takes_implicit_input_grad(
            self.w, self.geometry, self.groups)
        self.dout_images, self.dout = dout, grouped(dout, self.groups)
        self.w_mat = _weight_matrix(self.w, self.groups)
        self.dx = xp.empty(self.x.shape, dtype=self.x.dtype) if needs_input_grad else None
        self.plan = self._plan()

    def _plan(self):
        """The partials of one image (its dW, and its db in each filter's last slot, which
        stays unused without a bias), the columns, and the weights for dx where copied per
        image."""
        groups, f_group, taps = self.w_mat.shape[1:]
        plan = (Buffer("partials", (groups, f_group, taps + 1),
                       accumulator_dtype(self.x.dtype)),)
        if self.columns is None:
            plan += _columns_plan(self.x, self.geometry, self.groups)
        if self.needs_input_grad and not self.implicit_input_grad:
            plan += _weights_plan(self.w_mat, self.x.shape[0], self.dout.shape[3])
        return plan

    def run(self, chunk, buffers):
        if self.columns is not None:
            cols = chunk_of(self.columns, chunk)
        else:
            cols = _columns(chunk_of(self.x, chunk), self.geometry, self.groups, buffers)
        dout, partials = chunk_of(self.dout, chunk), buffers["partials"]
        # Partials i sum image i of every chunk: the first chunk, the largest, writes every
        # image's, later ones add to theirs.
        accumulate = chunk.start > 0
        matmul(dout, cols, partials, transpose_b=True, accumulate=accumulate,
               out_columns=self.w_mat.shape[3])
        if self.has_bias:
            bias_grad_partials_into(chunk_of(self.dout_images, chunk), ungrouped(partials),
                                    accumulate)
        if self.needs_input_grad and not self.implicit_input_grad:
            self._data_grad(chunk, dout, cols, _weights(self.w_mat, chunk, buffers))

    def _data_grad(self, chunk, dout, cols, weights):
        """dx[chunk]: W^T @ dout straight into dx (identity), else into the used columns'
        buffer, summed onto dx by the column kernel."""
        dx = chunk_of(self.dx, chunk)
        if self.geometry.is_identity:
            matmul(weights, dout, grouped(dx, self.groups), transpose_a=True)
            return
        matmul(weights, dout, cols, transpose_a=True)
        _sum_columns(cols, self.geometry, dx)

    def result(self, workspace):
        """dx, dw and db: dw and db are the partials summed, in one launch."""
        if self.held is not None:  # used: the memory goes back to CuPy's pool
            self.held.release()
        if self.implicit_input_grad:  # needs no workspace: one launch for all the images
            _cuda.conv_input_grad_into(self.dout_images, self.w, self.geometry, self.dx)
        dw, db = _cuda.weight_sum(ungrouped(workspace.buffers["partials"]), self.w.shape,
                                  self.x.dtype, self.has_bias)
        return self.dx, dw, db
