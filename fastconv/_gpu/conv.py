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

Each call's steps are settled once per size: what follows from the shapes, dtype, geometry,
groups and bias alone (the buffers, every launch's scalars and grid, every product's
cuBLAS arguments, checked) is prepared on the first call of those sizes and memoised with
the launcher, device and TF32 setting it was prepared for (:class:`_ForwardSteps`,
:class:`_BackwardSteps`). A call then checks its arrays' device once and runs the
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

import functools
import math
from typing import Any

import numpy

from .. import _cuda
from .._typing import Array
from .._window_arrays import grouped
from ..backend import accumulator_dtype, get_array_module
from ..shapes import WindowGeometry
from ..workspace import Buffer, chunk_of
from .bias import add_bias_call, bias_grad_call, bias_slots, ones_like_device
from .depthwise import DepthwiseBackward, DepthwiseForward, runs_depthwise
from .gemm import get_tf32
from .matmul import plan_matmul


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


def _takes_implicit_input_grad(w, geometry, groups):
    """Whether dx comes from the implicit-product kernel: float32 products in FP32, a 2-D
    stride-1 window other than the identity's, no groups, within the kernel's limits.

    The kernel multiplies on the CUDA cores; the products it replaces run on tensor cores
    in float16, and in float32 with TF32 allowed (and in float64 on GPUs with FP64 tensor
    cores), which beats it even with col2im after them. A strided window's input gradient
    is no stride-1 convolution of dout (its taps fall between dout's cells); groups would
    need a launch per group, and the identity needs no kernel at all."""
    return _implicit_input_grad_fits(w.shape, w.dtype, geometry, groups, get_tf32())


def _implicit_input_grad_fits(w_shape, dtype, geometry, groups, tf32):
    """:func:`_takes_implicit_input_grad` for filters of ``w_shape`` and ``dtype``, TF32
    allowed or not."""
    return (dtype == numpy.float32 and not tf32 and len(geometry.out) == 2
            and geometry.stride == (1, 1) and groups == 1 and not geometry.is_identity
            and _cuda.conv_gemm_fits(w_shape, geometry, input_grad=True))


def _device_checked(launcher, **arrays):
    """The current device, after refusing any of ``arrays`` (None skipped) on another: the
    prepared launches and products run on the current device, where another's addresses
    are not its memory."""
    device = launcher.device_id()
    for name, array in arrays.items():
        if array is not None:
            launcher.check_device("conv", name, array, device)
    return device


def _shared_weights_shape(w_shape, groups):
    """w (F, C/G, KH, KW) as the product's (1, G, F/G, C/G*KH*KW): one matrix per group,
    shared by the images (the array is passed as it is: cuBLAS reads a pointer)."""
    return (1, groups, w_shape[0] // groups, math.prod(w_shape[1:]))


def _columns_plan(channels, geometry, groups, dtype):
    """The column buffer of one image, (G, C/G*KH*KW, OH*OW); none for an identity geometry."""
    if geometry.is_identity:
        return ()
    rows = channels // groups * math.prod(geometry.kernel)
    return (Buffer("cols", (groups, rows, math.prod(geometry.out)), dtype),)


def _weights_plan(weights_shape, dtype, images, positions):
    """The weights copied per image, (G, F/G, C/G*KH*KW), where groups would otherwise split
    each product into one cuBLAS call per group or per image (shared weights have no single
    batch stride) and the copy is no larger than the columns it multiplies (F/G <= OH*OW)."""
    groups, f_group = weights_shape[1:3]
    if groups == 1 or images == 1 or f_group > positions:
        return ()
    return (Buffer("weights", weights_shape[1:], dtype),)


def _weights(w, weights_shape, chunk, buffers):
    """The chunk's weights: w, shared by the images, or their per-image copy (written by
    the first chunk, the largest; later chunks use part of it)."""
    weights = buffers.get("weights")
    if weights is None:
        return w
    if chunk.start == 0:
        get_array_module(weights).copyto(weights, w.reshape(weights_shape))
    return weights


class _Steps:
    """What a call of one set of sizes does, prepared: the workspace plan, and the prepared
    launches and products of each chunk size (made on first use, kept)."""

    def __init__(self):
        self._chunks: dict[int, Any] = {}

    def chunk(self, images):
        """The prepared steps of a chunk of ``images`` images."""
        steps = self._chunks.get(images)
        if steps is None:
            steps = self._chunks[images] = self._prepare(images)
        return steps

    def _prepare(self, images):
        """The prepared steps of a chunk of ``images`` images, made anew (each subclass's)."""
        raise NotImplementedError


class _ForwardSteps(_Steps):
    """A forward's prepared steps (:func:`_forward_steps`): per chunk the column kernel
    (none for an identity geometry) and the product; the bias's product at the end."""

    def __init__(self, x_shape, w_shape, dtype, has_bias, geometry, groups, launcher):
        super().__init__()
        self.x_shape, self.geometry, self.groups = x_shape, geometry, groups
        self.launcher = launcher
        self.dtype = numpy.dtype(dtype)
        self.weights_shape = _shared_weights_shape(w_shape, groups)
        self.out_shape = (x_shape[0], w_shape[0]) + geometry.out
        positions = math.prod(geometry.out)
        self.plan = _forward_plan(x_shape, w_shape, self.dtype, geometry, groups)
        self.bias = None
        if has_bias:  # the vector of ones goes where an empty array of the dtype is made
            ones = ones_like_device(launcher.xp.empty(0, dtype), positions)
            call = add_bias_call(x_shape[0], w_shape[0], positions, dtype,
                                 (ones.size, w_shape[0], math.prod(self.out_shape)))
            self.bias = ones, call

    def _prepare(self, images):
        groups, f_group, rows = self.weights_shape[1:]
        positions = math.prod(self.geometry.out)
        im2col = None
        if not self.geometry.is_identity:
            im2col = _cuda.column_launches(self.geometry, images, self.x_shape[1], self.dtype,
                                           self.launcher)[0]
        shared = not any(buffer.name == "weights" for buffer in self.plan)
        weights = self.weights_shape if shared else (images,) + self.weights_shape[1:]
        product = plan_matmul(weights, (images, groups, rows, positions),
                              (images, groups, f_group, positions),
                              (self.dtype, self.dtype, self.dtype))
        return im2col, product


# Memoised: a training loop's layers repeat their sizes every step
@functools.lru_cache(maxsize=256)
def _forward_plan(x_shape, w_shape, dtype, geometry, groups):
    """A forward's workspace plan: the columns (none for an identity geometry), and the
    weights copied per image where groups need it."""
    return _columns_plan(x_shape[1], geometry, groups, dtype) + _weights_plan(
        _shared_weights_shape(w_shape, groups), dtype, x_shape[0], math.prod(geometry.out))


@functools.lru_cache(maxsize=256)
def _forward_steps(x_shape, w_shape, dtype, has_bias, geometry, groups, launcher, device,
                   tf32):
    """The :class:`_ForwardSteps` of these sizes on ``launcher``'s ``device``, TF32 allowed
    or not (the products' compute type)."""
    return _ForwardSteps(x_shape, w_shape, dtype, has_bias, geometry, groups, launcher)


class _Forward:
    """out = W @ cols per chunk and group, then the bias in one pass."""

    def __init__(self, x, w, b, geometry, groups):
        xp = get_array_module(x)
        self.x, self.w, self.b = (None if a is None else xp.ascontiguousarray(a)
                                  for a in (x, w, b))
        self.geometry, self.groups = geometry, groups
        self.plan = _forward_plan(x.shape, w.shape, x.dtype, geometry, groups)
        self.out = xp.empty((x.shape[0], w.shape[0]) + geometry.out, dtype=x.dtype)
        self._steps = None

    @property
    def steps(self):
        """The prepared steps, on the current device: looked up at the first launch, after
        the arrays' device is checked (the plan needs neither)."""
        if self._steps is None:
            launcher = _cuda.default_launcher()
            device = _device_checked(launcher, x=self.x, w=self.w, b=self.b)
            self._steps = _forward_steps(self.x.shape, self.w.shape, self.x.dtype,
                                         self.b is not None, self.geometry, self.groups,
                                         launcher, device, get_tf32())
        return self._steps

    def run(self, chunk, buffers):
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
        """The output, and the columns held for the backward where the workspace allows."""
        if self.steps.bias is not None:
            ones, add_bias = self.steps.bias
            add_bias(ones, self.b, self.out)
        return self.out, None if self.geometry.is_identity else workspace.keep("cols")


class _BackwardSteps(_Steps):
    """A backward's prepared steps (:func:`_backward_steps`): per chunk the column kernel
    (unless the forward's columns are held), the dW product and the bias gradient's into
    the partials (writing them in the first chunk, adding in later ones), and dx's product
    and column kernel (unless the implicit-product kernel takes dx at the end); at the end
    that kernel and the weight sum."""

    def __init__(self, x_shape, w_shape, dtype, has_bias, geometry, groups, held,
                 needs_input_grad, launcher, tf32):
        super().__init__()
        self.x_shape, self.w_shape, self.geometry = x_shape, w_shape, geometry
        self.dtype, self.launcher, self.held = numpy.dtype(dtype), launcher, held
        self.has_bias, self.needs_input_grad = has_bias, needs_input_grad
        self.weights_shape = _shared_weights_shape(w_shape, groups)
        positions = math.prod(geometry.out)
        self.plan, self.implicit_input_grad = _backward_plan(
            x_shape, w_shape, self.dtype, geometry, groups, held, needs_input_grad, tf32)
        self.ones = (ones_like_device(launcher.xp.empty(0, dtype), positions) if has_bias
                     else None)
        self.input_grad = (_cuda.conv_input_grad_launch(
            (x_shape[0], w_shape[0]) + geometry.out, w_shape, geometry, dtype, launcher)
            if self.implicit_input_grad else None)

    @functools.cache
    def weight_sum(self, images):
        """The prepared weight sum over ``images`` images' partials."""
        return _cuda.weight_sum_launch(images, self.w_shape, self.dtype, self.has_bias,
                                       self.launcher)

    def _prepare(self, images):
        groups, f_group, taps = self.weights_shape[1:]
        positions = math.prod(self.geometry.out)
        channels, filters = self.x_shape[1], self.w_shape[0]
        acc = accumulator_dtype(self.dtype)
        columns = (images, groups, taps, positions)
        dout, partials = (images, groups, f_group, positions), (images, groups, f_group, taps + 1)
        im2col, col2im = (None, None) if self.geometry.is_identity else _cuda.column_launches(
            self.geometry, images, channels, self.dtype, self.launcher)
        # [first chunk, later chunks]: partials i sum image i of every chunk, so the first
        # chunk, the largest, writes every image's and later ones add to theirs
        weight_grad = [plan_matmul(dout, columns, partials, (self.dtype, self.dtype, acc),
                                   transpose_b=True, accumulate=accumulate, out_columns=taps)
                       for accumulate in (False, True)]
        bias_grad = None
        if self.has_bias:
            sizes = (self.ones.size, images * filters * positions,
                     images * filters * (taps + 1))
            bias_grad = [bias_grad_call(images, filters, positions, taps + 1, self.dtype, acc,
                                        accumulate, sizes) for accumulate in (False, True)]
        data_grad = None
        if self.needs_input_grad and not self.implicit_input_grad:
            shared = not any(buffer.name == "weights" for buffer in self.plan)
            weights = self.weights_shape if shared else (images,) + self.weights_shape[1:]
            # W^T @ dout: into dx itself for an identity geometry, else into the used columns
            target = ((images, groups, channels // groups, positions)
                      if self.geometry.is_identity else columns)
            data_grad = plan_matmul(weights, dout, target, (self.dtype,) * 3,
                                    transpose_a=True)
        if self.held:  # the forward's columns: no column kernel
            im2col = None
        return im2col, col2im, weight_grad, bias_grad, data_grad


@functools.lru_cache(maxsize=256)
def _backward_plan(x_shape, w_shape, dtype, geometry, groups, held, needs_input_grad, tf32):
    """A backward's workspace plan, and whether the implicit-product kernel takes dx: the
    partials of one image (its dW, and its db in each filter's last slot, which stays
    unused without a bias), the columns unless the forward's are ``held``, and the weights
    for dx where copied per image."""
    weights_shape = _shared_weights_shape(w_shape, groups)
    _, groups, f_group, taps = weights_shape
    implicit_input_grad = needs_input_grad and _implicit_input_grad_fits(
        tuple(w_shape), dtype, geometry, groups, tf32)
    plan = (Buffer("partials", (groups, f_group, taps + 1), accumulator_dtype(dtype)),)
    if not held:
        plan += _columns_plan(x_shape[1], geometry, groups, dtype)
    if needs_input_grad and not implicit_input_grad:
        plan += _weights_plan(weights_shape, dtype, x_shape[0], math.prod(geometry.out))
    return plan, implicit_input_grad


# Memoised: a training loop's layers repeat their sizes every step
@functools.lru_cache(maxsize=256)
def _backward_steps(x_shape, w_shape, dtype, has_bias, geometry, groups, held,
                    needs_input_grad, launcher, device, tf32):
    """The :class:`_BackwardSteps` of these sizes on ``launcher``'s ``device``, the
    forward's columns ``held`` or not, TF32 allowed or not."""
    return _BackwardSteps(x_shape, w_shape, dtype, has_bias, geometry, groups, held,
                          needs_input_grad, launcher, tf32)


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
        self.x, self.w, self.dout = (xp.ascontiguousarray(a) for a in (cache.x, cache.w, dout))
        self.cache, self.needs_input_grad, self.tf32 = cache, needs_input_grad, get_tf32()
        self.plan, _ = _backward_plan(self.x.shape, self.w.shape, self.x.dtype, cache.geometry,
                                      cache.groups, self.columns is not None, needs_input_grad,
                                      self.tf32)
        self.dx = xp.empty(self.x.shape, dtype=self.x.dtype) if needs_input_grad else None
        self._steps = None

    @property
    def steps(self):
        """The prepared steps, on the current device: looked up at the first launch, after
        the arrays' device is checked (the plan needs neither)."""
        if self._steps is None:
            launcher = _cuda.default_launcher()
            device = _device_checked(launcher, dout=self.dout, x=self.x, w=self.w)
            cache = self.cache
            self._steps = _backward_steps(self.x.shape, self.w.shape, self.x.dtype,
                                          cache.has_bias, cache.geometry, cache.groups,
                                          self.columns is not None, self.needs_input_grad,
                                          launcher, device, self.tf32)
        return self._steps

    def run(self, chunk, buffers):
        im2col, col2im, weight_grad, bias_grad, data_grad = self.steps.chunk(
            chunk.stop - chunk.start)
        if self.columns is not None:
            cols = chunk_of(self.columns, chunk)
        elif im2col is None:  # an identity geometry: x is its own columns
            cols = chunk_of(self.x, chunk)
        else:
            cols = buffers["cols"]
            im2col(chunk_of(self.x, chunk), cols)
        dout, partials = chunk_of(self.dout, chunk), buffers["partials"]
        later = chunk.start > 0
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
        if self.steps.input_grad is not None:  # needs no workspace: one launch for all images
            self.steps.input_grad(self.dout, self.w, self.w, self.dx)
        partials, steps = workspace.buffers["partials"], self.steps
        dw = steps.launcher.empty(tuple(self.w.shape), self.x.dtype)
        db = steps.launcher.empty((self.w.shape[0],), self.x.dtype) if steps.has_bias else None
        steps.weight_sum(partials.shape[0])(partials, dw, dw if db is None else db)
        return self.dx, dw, db
