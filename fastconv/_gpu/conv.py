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

The input gradient of a float32 2-D stride-1 convolution without groups is a convolution of
dout itself: an implicit product (kernels/conv_gemm.cu) computes it without the column
gradient or col2im, in one launch at the end. With TF32 allowed on a GPU with TF32 tensor
cores that kernel runs on them, and it takes every float32 2-D forward without groups too
(one launch, the bias in it), and a third implicit product dW and db (one launch, its
splits' partials summed by the weight sum): no columns are written. In TF32 the explicit
products are bound by memory, the columns' writing and reading
(:mod:`fastconv._gpu.conv_steps`, :func:`~fastconv._gpu.conv_steps.implicit_tf32_fits`).

A 2-D depthwise convolution (groups == C) takes neither: :mod:`fastconv._gpu.depthwise`
runs it on direct kernels (:func:`forward` and :func:`backward` dispatch to it).

Each call's steps are settled once per size: what follows from the shapes, dtype, geometry,
groups and bias alone (the buffers, every launch's scalars and grid, every product's
cuBLAS arguments, checked) is prepared on the first call of those sizes and memoised with
the launcher, device and TF32 setting it was prepared for
(:mod:`fastconv._gpu.conv_steps`). A call then checks its arrays' device once and runs the
prepared launches and products on them and on the buffers it makes: a training loop's
repeated calls check and derive nothing twice, and pass no CuPy view they can avoid (each
costs the host about as much as a launch's own checks).

The code is written against the arrays' module ``xp``, the kernels'
:class:`fastconv._cuda.Launcher` and :func:`fastconv._gpu.gemm.prepare_gemm`, so the
tests run it on NumPy arrays with the kernels emulated on the CPU and the
products in the NumPy model of cuBLAS. Each algorithm is an object with a
``plan`` (its workspace buffers), ``run(chunk, buffers)`` and ``result()``,
driven by :func:`fastconv.workspace.run_in_chunks`.
"""

from __future__ import annotations

from typing import Any

from .. import _cuda
from .._typing import Array
from ..backend import accumulator_dtype, get_array_module
from ..shapes import WindowGeometry
from ..workspace import chunk_of
from .bias import bias_slots
from .conv_steps import (backward_plan, backward_steps, forward_plan, forward_steps,
                         implicit_tf32_fits, tensor_cores)
from .depthwise import DepthwiseBackward, DepthwiseForward, runs_depthwise
from .gemm import get_tf32


def forward(x: Array, w: Array, b: Array | None, geometry: WindowGeometry,
            groups: int) -> _Forward | DepthwiseForward:
    """The forward algorithm of one call; its result is ``(out, columns)``.

    A 2-D depthwise convolution (groups == C, where
    :func:`fastconv._gpu.depthwise.runs_depthwise`) runs on the depthwise kernels; any
    other on the column kernel and the products (the columns are x itself for an identity
    geometry), the columns a :class:`fastconv.workspace.Held` where they could be kept.

    Examples
    --------
    A 1x1x1 window needs no column buffer (x is its own columns); a 3x3 one buffers each
    image's (C*KH*KW, OH*OW):

    >>> import numpy
    >>> from fastconv.shapes import window_geometry
    >>> x, w = numpy.ones((1, 2, 1, 1, 2)), numpy.ones((1, 2, 1, 1, 1))
    >>> forward(x, w, None, window_geometry(x.shape, 1, 1, 0, 1), 1).plan
    ()
    >>> x, w = numpy.ones((1, 2, 4, 4)), numpy.ones((3, 2, 3, 3))
    >>> [(buffer.name, buffer.shape) for buffer in
    ...  forward(x, w, None, window_geometry(x.shape, 3, 1, 0, 1), 1).plan]
    [('cols', (1, 18, 4))]
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


def _on_current_device(**arrays):
    """``(launcher, device)``: the default launcher and the current device, after refusing
    any of ``arrays`` (None skipped) on another. The prepared launches and products run on
    the current device, where another's addresses are not its memory."""
    launcher = _cuda.default_launcher()
    device = launcher.device_id()
    for name, array in arrays.items():
        if array is not None:
            launcher.check_device("conv", name, array, device)
    return launcher, device


def _weights(w, weights_shape, chunk, buffers):
    """The chunk's weights: w, shared by the images, or their per-image copy (written by
    the first chunk, the largest; later chunks use part of it)."""
    weights = buffers.get("weights")
    if weights is None:
        return w
    if chunk.start == 0:
        get_array_module(weights).copyto(weights, w.reshape(weights_shape))
    return weights


class _Forward:
    """out = W @ cols per chunk and group, then the bias in one pass; or out from the
    implicit product on the tensor cores, the bias added in it, in one launch at the end."""

    def __init__(self, x, w, b, geometry, groups):
        xp = get_array_module(x)
        self.x, self.w, self.b = (None if a is None else xp.ascontiguousarray(a)
                                  for a in (x, w, b))
        self.geometry, self.groups, self.tf32 = geometry, groups, get_tf32()
        # the device is asked for its tensor cores only where TF32 is allowed
        self.implicit = self.tf32 and implicit_tf32_fits(
            tuple(w.shape), x.dtype, geometry, groups,
            tensor_cores(_cuda.default_launcher(), self.tf32))
        self.plan = forward_plan(x.shape, w.shape, x.dtype, geometry, groups, self.implicit)
        self.out = xp.empty((x.shape[0], w.shape[0]) + geometry.out, dtype=x.dtype)
        self._steps = None

    @property
    def steps(self):
        """The prepared steps, on the current device: looked up at the first launch, after
        the arrays' device is checked (the plan needs neither)."""
        if self._steps is None:
            launcher, device = _on_current_device(x=self.x, w=self.w, b=self.b)
            self._steps = forward_steps(self.x.shape, self.w.shape, self.x.dtype,
                                        self.b is not None, self.geometry, self.groups,
                                        self.implicit, launcher, device, self.tf32)
        return self._steps

    def run(self, chunk, buffers):
        if self.implicit:  # needs no workspace: one launch for all images, at the end
            return
        im2col, product = self.steps.chunk(chunk.stop - chunk.start)
        x = chunk_of(self.x, chunk)
        if im2col is None:  # an identity geometry: x is its own columns
            cols = x
        else:
            cols = buffers["cols"]
            im2col(x, cols)
        product(_weights(self.w, self.steps.weights_shape, chunk, buffers), cols,
                chunk_of(self.out, chunk))

    def result(self, workspace):
        """The output, and the columns held for the backward where the workspace allows
        (none where x is its own or none were written)."""
        if self.implicit:
            self.steps.implicit(self.x, self.w, self.w if self.b is None else self.b, self.out)
            return self.out, None
        if self.steps.bias is not None:
            ones, add_bias = self.steps.bias
            add_bias(ones, self.b, self.out)
        return self.out, None if self.geometry.is_identity else workspace.keep("cols")


class _Backward:
    """Per chunk: the columns, dW partials += dout @ cols^T and the bias slots += dout's
    sums (unless the implicit product on the tensor cores writes the partials at the end),
    then (unless the implicit-product kernel takes it at the end, for all the images) dx
    from W^T @ dout and col2im; at the end dw and db from the partials."""

    def __init__(self, dout, cache, needs_input_grad):
        xp = get_array_module(dout, cache.x)
        # The forward's columns when it could hold them: no im2col again, no column buffer in
        # this plan; the column gradient overwrites them once dW has used them.
        self.held = cache.columns
        self.columns = None if cache.columns is None else cache.columns.take()
        self.x, self.w, self.dout = (xp.ascontiguousarray(a) for a in (cache.x, cache.w, dout))
        self.cache, self.needs_input_grad, self.tf32 = cache, needs_input_grad, get_tf32()
        # held columns are cheaper to read than to gather again; the device is asked for its
        # tensor cores only where TF32 is allowed
        self.implicit_weight_grad = self.tf32 and self.columns is None and implicit_tf32_fits(
            tuple(self.w.shape), self.x.dtype, cache.geometry, cache.groups,
            tensor_cores(_cuda.default_launcher(), self.tf32))
        self.plan, _ = backward_plan(self.x.shape, self.w.shape, self.x.dtype, cache.geometry,
                                     cache.groups, self.columns is not None, needs_input_grad,
                                     self.implicit_weight_grad)
        self.dx = xp.empty(self.x.shape, dtype=self.x.dtype) if needs_input_grad else None
        self._steps = None

    @property
    def steps(self):
        """The prepared steps, on the current device: looked up at the first launch, after
        the arrays' device is checked (the plan needs neither)."""
        if self._steps is None:
            launcher, device = _on_current_device(dout=self.dout, x=self.x, w=self.w)
            cache = self.cache
            self._steps = backward_steps(self.x.shape, self.w.shape, self.x.dtype,
                                         cache.has_bias, cache.geometry, cache.groups,
                                         self.columns is not None, self.needs_input_grad,
                                         self.implicit_weight_grad, launcher, device,
                                         self.tf32)
        return self._steps

    def run(self, chunk, buffers):
        im2col, col2im, weight_grad, bias_grad, data_grad = self.steps.chunk(
            chunk.stop - chunk.start)
        if self.columns is not None:
            cols = chunk_of(self.columns, chunk)
        elif self.cache.geometry.is_identity:  # x is its own columns
            cols = chunk_of(self.x, chunk)
        else:  # written for dW, or (the implicit product taking dW) scratch for dx
            cols = buffers["cols"] if "cols" in buffers else None
            if im2col is not None:
                im2col(chunk_of(self.x, chunk), cols)
        dout = chunk_of(self.dout, chunk)
        if weight_grad is not None:  # else the implicit product's, at the end
            partials, later = buffers["partials"], chunk.start > 0
            weight_grad[later](dout, cols, partials)
            if bias_grad is not None:
                bias_grad[later](self.steps.ones, dout, bias_slots(partials))
        if data_grad is not None:
            weights = _weights(self.w, self.steps.weights_shape, chunk, buffers)
            dx = chunk_of(self.dx, chunk)
            if col2im is None:  # an identity geometry: W^T @ dout is dx
                data_grad(weights, dout, dx)
            else:  # into the used columns' buffer, summed onto dx by the column kernel
                data_grad(weights, dout, cols)
                col2im(cols, dx)

    def result(self, workspace):
        """dx, dw and db: dw and db are the partials summed, in one launch."""
        if self.held is not None:  # used: the memory goes back to CuPy's pool
            self.held.release()
        steps = self.steps
        if steps.input_grad is not None:  # needs no workspace: one launch for all images
            steps.input_grad(self.dout, self.w, self.w, self.dx)
        if steps.weight_grad is not None:  # the implicit product: one partial per split
            launch, splits = steps.weight_grad
            _, _, filters, taps = steps.weights_shape
            partials = steps.launcher.empty((splits, filters, taps + 1),
                                            accumulator_dtype(self.x.dtype))
            launch(self.x, self.dout, partials)
        else:
            partials = workspace.buffers["partials"]
        dw = steps.launcher.empty(tuple(self.w.shape), self.x.dtype)
        db = steps.launcher.empty((self.w.shape[0],), self.x.dtype) if steps.has_bias else None
        steps.weight_sum(partials.shape[0])(partials, dw, dw if db is None else db)
        return self.dx, dw, db
