"""The GPU convolution's prepared steps: what a call of one set of sizes does, settled once.

:mod:`fastconv._gpu.conv` runs a convolution's forward and backward as these steps. What
follows from the shapes, dtype, geometry, groups and bias alone is made on the first call
of those sizes and memoised with the launcher, device and TF32 setting it was made for:
the workspace plan (:func:`forward_plan`, :func:`backward_plan`, which need no device),
and per batch-chunk size every kernel launch (scalars, instantiation, grid and function:
:meth:`fastconv._cuda_launcher.Launcher.prepare`) and every product's cuBLAS arguments,
checked (:func:`fastconv._gpu.matmul.plan_matmul`, :func:`fastconv._gpu.bias.add_bias_call`
and :func:`~fastconv._gpu.bias.bias_grad_call`). The prepared calls take pointers, so the
arrays they are given are passed as they are, without reshaped views.

Which products are implicit, their columns read from the input and never written
(kernels/conv_gemm.cu), follows from the sizes too: dx of a stride-1 window
(:func:`implicit_input_grad_fits`), and with TF32 on a GPU with TF32 tensor cores
(:func:`tensor_cores`) the forward and dW and db (:func:`implicit_tf32_fits`).
"""

from __future__ import annotations

import functools
import math

import numpy

from .. import _cuda
from ..backend import accumulator_dtype
from ..workspace import Buffer
from .bias import add_bias_call, bias_grad_call, ones_like_device
from .matmul import plan_matmul


TF32_KERNEL = "conv_gemm_tf32_kernel"


def tensor_cores(launcher, tf32):
    """Whether float32 products run on the tensor cores in TF32: TF32 allowed, and the
    current device has them (compute capability 8.0+; earlier ones run cuBLAS's TF32 mode in
    FP32 too). Asks the launcher only where TF32 is allowed."""
    return tf32 and launcher.runs(TF32_KERNEL)


def _implicit_fits(w_shape, dtype, geometry, groups, input_grad):
    """float32, a 2-D window other than the identity's, no groups, within the implicit-product
    kernels' limits: groups would need a launch per group, and the identity needs no kernel
    at all."""
    return (dtype == numpy.float32 and len(geometry.out) == 2 and groups == 1
            and not geometry.is_identity
            and _cuda.conv_gemm_fits(w_shape, geometry, input_grad=input_grad))


def implicit_input_grad_fits(w_shape, dtype, geometry, groups):
    """Whether dx comes from an implicit-product kernel for filters of ``w_shape`` and
    ``dtype``: float32, a 2-D stride-1 window other than the identity's, no groups, within
    the kernels' limits.

    It replaces the column-gradient product, which writes the columns, and col2im, which
    reads them: two passes over memory about KH*KW times dx's size. On the CUDA cores in
    FP32, or on the tensor cores in TF32 where TF32 is allowed (:func:`tensor_cores`). The
    float16 and float64 products stay with cuBLAS, on tensor cores where the GPU has them
    for those dtypes. A strided window's input gradient is no stride-1 convolution of dout
    (its taps fall between dout's cells)."""
    return geometry.stride == (1, 1) and _implicit_fits(w_shape, dtype, geometry, groups, True)


# Memoised: asked by every call's forward and backward where TF32 is allowed
@functools.lru_cache(maxsize=256)
def implicit_tf32_fits(w_shape, dtype, geometry, groups, tensor_core_products):
    """Whether the forward, and dW and db, come from the implicit products on the tensor
    cores: float32 with ``tensor_core_products`` (:func:`tensor_cores`), a 2-D window other
    than the identity's, no groups, within the kernels' limits.

    Each replaces a pass that writes the columns (im2col) and a product that reads them:
    in TF32 both are bound by memory, together about twice the time of the implicit
    product, and no columns are written, held or read at all. On the CUDA cores the
    implicit products are bound by their multiply-adds, no faster than cuBLAS's, and the
    forward's held columns spare the backward its im2col: the explicit products stay."""
    return (tensor_core_products and _implicit_fits(w_shape, dtype, geometry, groups, False)
            and _cuda.conv_weight_grad_fits(w_shape, geometry))


def shared_weights_shape(w_shape, groups):
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


class ForwardSteps:
    """A forward's prepared steps (:func:`forward_steps`): per chunk the column kernel
    (none for an identity geometry) and the product; the bias's product at the end. Or,
    where the implicit product on the tensor cores takes the forward (``implicit``), that
    one launch for all the images, the bias added in it."""

    def __init__(self, x_shape, w_shape, dtype, has_bias, geometry, groups, implicit,
                 launcher):
        self.x_shape, self.geometry, self.groups = x_shape, geometry, groups
        self.launcher = launcher
        self.dtype = numpy.dtype(dtype)
        self.weights_shape = shared_weights_shape(w_shape, groups)
        self.out_shape = (x_shape[0], w_shape[0]) + geometry.out
        positions = math.prod(geometry.out)
        self.plan = forward_plan(x_shape, w_shape, self.dtype, geometry, groups, implicit)
        self.implicit = (_cuda.conv_gemm_launch(x_shape, w_shape, has_bias, geometry, dtype,
                                                launcher, tf32=True) if implicit else None)
        self.bias = None
        if has_bias and not implicit:  # the ones go where an empty array of the dtype is made
            ones = ones_like_device(launcher.xp.empty(0, dtype), positions)
            call = add_bias_call(x_shape[0], w_shape[0], positions, dtype,
                                 (ones.size, w_shape[0], math.prod(self.out_shape)))
            self.bias = ones, call

    @functools.cache  # one set of steps per chunk size: a batch has at most two
    def chunk(self, images):
        """The prepared steps of a chunk of ``images`` images."""
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
def forward_plan(x_shape, w_shape, dtype, geometry, groups, implicit=False):
    """A forward's workspace plan: the columns (none for an identity geometry, or where the
    ``implicit`` product takes the forward), and the weights copied per image where groups
    need it."""
    if implicit:
        return ()
    return _columns_plan(x_shape[1], geometry, groups, dtype) + _weights_plan(
        shared_weights_shape(w_shape, groups), dtype, x_shape[0], math.prod(geometry.out))


@functools.lru_cache(maxsize=256)
def forward_steps(x_shape, w_shape, dtype, has_bias, geometry, groups, implicit, launcher,
                  device, tf32):
    """The :class:`ForwardSteps` of these sizes on ``launcher``'s ``device``, the implicit
    product taking the forward or not, TF32 allowed or not (the products' compute type)."""
    return ForwardSteps(x_shape, w_shape, dtype, has_bias, geometry, groups, implicit,
                        launcher)


class BackwardSteps:
    """A backward's prepared steps (:func:`backward_steps`): per chunk the column kernel
    (unless the forward's columns are held), the dW product and the bias gradient's into
    the partials (writing them in the first chunk, adding in later ones), and dx's product
    and column kernel (unless the implicit-product kernel takes dx at the end); at the end
    that kernel and the weight sum. Where the implicit product on the tensor cores takes
    dW and db (``implicit_weight_grad``), no chunk has a column kernel or a dW product:
    that one launch writes the partials of its splits at the end."""

    def __init__(self, x_shape, w_shape, dtype, has_bias, geometry, groups, held,
                 needs_input_grad, implicit_weight_grad, launcher, tf32):
        self.x_shape, self.w_shape, self.geometry = x_shape, w_shape, geometry
        self.dtype, self.launcher, self.held = numpy.dtype(dtype), launcher, held
        self.has_bias, self.needs_input_grad = has_bias, needs_input_grad
        self.weights_shape = shared_weights_shape(w_shape, groups)
        positions = math.prod(geometry.out)
        self.plan, self.implicit_input_grad = backward_plan(
            x_shape, w_shape, self.dtype, geometry, groups, held, needs_input_grad,
            implicit_weight_grad)
        self.weight_grad = (_cuda.conv_weight_grad_launch(x_shape, w_shape, has_bias, geometry,
                                                          dtype, launcher)
                            if implicit_weight_grad else None)  # (launch, splits)
        self.ones = (ones_like_device(launcher.xp.empty(0, dtype), positions)
                     if has_bias and not implicit_weight_grad else None)
        self.input_grad = (_cuda.conv_input_grad_launch(
            (x_shape[0], w_shape[0]) + geometry.out, w_shape, geometry, dtype, launcher,
            tf32=tensor_cores(launcher, tf32)) if self.implicit_input_grad else None)

    @functools.cache
    def weight_sum(self, images):
        """The prepared weight sum over ``images`` images' partials."""
        return _cuda.weight_sum_launch(images, self.w_shape, self.dtype, self.has_bias,
                                       self.launcher)

    @functools.cache  # one set of steps per chunk size: a batch has at most two
    def chunk(self, images):
        """The prepared steps of a chunk of ``images`` images."""
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
        weight_grad = bias_grad = None
        if self.weight_grad is None:
            weight_grad = [plan_matmul(dout, columns, partials, (self.dtype, self.dtype, acc),
                                       transpose_b=True, accumulate=accumulate,
                                       out_columns=taps)
                           for accumulate in (False, True)]
        if self.has_bias and self.weight_grad is None:
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
        if self.held or self.weight_grad is not None:  # no columns to write for dW
            im2col = None
        return im2col, col2im, weight_grad, bias_grad, data_grad


@functools.lru_cache(maxsize=256)
def backward_plan(x_shape, w_shape, dtype, geometry, groups, held, needs_input_grad,
                  implicit_weight_grad=False):
    """A backward's workspace plan, and whether the implicit-product kernel takes dx: the
    partials of one image (its dW, and its db in each filter's last slot, which stays
    unused without a bias) unless the ``implicit_weight_grad`` product writes them; the
    columns unless the forward's are ``held`` or nothing needs them (that product, and dx
    from the implicit kernel or without col2im); and the weights for dx where copied per
    image."""
    weights_shape = shared_weights_shape(w_shape, groups)
    _, groups, f_group, taps = weights_shape
    implicit_input_grad = needs_input_grad and implicit_input_grad_fits(
        tuple(w_shape), dtype, geometry, groups)
    explicit_input_grad = needs_input_grad and not implicit_input_grad
    plan = ()
    if not implicit_weight_grad:
        plan += (Buffer("partials", (groups, f_group, taps + 1), accumulator_dtype(dtype)),)
    if not held and (explicit_input_grad or not implicit_weight_grad):
        plan += _columns_plan(x_shape[1], geometry, groups, dtype)
    if explicit_input_grad:
        plan += _weights_plan(weights_shape, dtype, x_shape[0], math.prod(geometry.out))
    return plan, implicit_input_grad


# Memoised: a training loop's layers repeat their sizes every step
@functools.lru_cache(maxsize=256)
def backward_steps(x_shape, w_shape, dtype, has_bias, geometry, groups, held,
                   needs_input_grad, implicit_weight_grad, launcher, device, tf32):
    """The :class:`BackwardSteps` of these sizes on ``launcher``'s ``device``, the
    forward's columns ``held`` or not, the implicit product taking dW or not, TF32 allowed
    or not."""
    return BackwardSteps(x_shape, w_shape, dtype, has_bias, geometry, groups, held,
                         needs_input_grad, implicit_weight_grad, launcher, tf32)
