"""The GPU path's kernels: compiled with CuPy from kernels/*.cu, launched through one wrapper each.

The modules, one job each; every name is importable from here:

- :mod:`fastconv._cuda_registry`: the kernel table (:data:`KERNELS`: each
  kernel's file and parameters) and the template instantiations (:data:`WINDOWS`;
  :func:`window_of` picks one for a launch);
- :mod:`fastconv._cuda_launcher`: reading the installed sources, compiling them
  (:class:`Launcher`, memoised per device and dtype; :class:`KernelCompileError`
  with the log), checked launches (:func:`launch_config`: grid and block;
  :func:`launch_into`) and the 32-bit in-plane limit (``PLANE_LIMIT``);
- this module: the default CuPy launcher and the wrappers of the 2-D convolution's
  and pools' kernels, of the depthwise convolution's (``im2col_into``,
  ``max_pool2d_forward``, ``depthwise_forward``, ...) and of the weight-gradient sum every
  convolution's backward ends with (``weight_sum``), one per kernel;
- the wrappers of the kernels added with later ops, in a module per kernel file
  (re-exported here): the 3-D convolution's columns
  (:mod:`fastconv._cuda_vol2col`), the 3-D pools (:mod:`fastconv._cuda_pool3d`),
  resizing (:mod:`fastconv._cuda_interpolate`), max unpooling and the adaptive
  max pool, forward and gradient (:mod:`fastconv._cuda_unpool`), and the convolution
  as an implicit matrix product, tiled in shared memory (:mod:`fastconv._cuda_conv_gemm`).

The wrappers are written against a :class:`Launcher` and its array module only,
so the same wrapper code runs on CuPy and, in the tests, on a CPU emulation of
the kernels. Each takes ``launcher=None`` for :func:`default_launcher`, looked up
here at call time (:func:`fastconv._cuda_launcher.resolved`; the tests replace it).
They refuse planes too large for the kernels' 32-bit in-plane arithmetic before
allocating anything. Nothing here imports CuPy until a GPU launch needs it.
"""

import math

import numpy

from . import _cuda_launcher
from ._cuda_launcher import BLOCK, INDEX_LIMIT, KERNEL_PACKAGE, MAX_BLOCKS, WARP
from ._cuda_launcher import KernelCompileError, Launcher, compile_options, kernel_dir
from ._cuda_launcher import kernel_source, launch_config, launch_into, resolved
from ._cuda_launcher import tiled_launch_config
from ._cuda_registry import CELLS_PER_THREAD, CTYPES, KERNELS, RUNTIME_WINDOW, TILES
from ._cuda_registry import UNROLLED_DTYPES
from ._cuda_registry import WINDOWS
from ._cuda_registry import kernel_files, kernel_name, kernel_windows
from ._cuda_registry import name_expressions, unrolled_windows, window_of
from ._cuda_vol2col import col2vol_into, vol2col_into, volume_args, volume_calls
from ._cuda_pool3d import avg_pool3d_backward, avg_pool3d_forward, max_pool3d_backward
from ._cuda_pool3d import max_pool3d_forward
from ._cuda_interpolate import interpolate_backward, interpolate_fits, interpolate_forward
from ._cuda_unpool import adaptive_max_pool2d_fits, adaptive_max_pool2d_gather
from ._cuda_unpool import adaptive_max_pool2d_outside, max_unpool2d_fits, max_unpool2d_gather
from ._cuda_unpool import adaptive_max_pool2d_forward, max_unpool2d_outside
from ._cuda_conv_gemm import (conv_gemm_fits, conv_gemm_into, conv_gemm_launch,
                              conv_input_grad_into)
from ._cuda_conv_gemm import (conv_input_grad_launch, conv_weight_grad_fits,
                              conv_weight_grad_into, conv_weight_grad_launch,
                              weight_grad_splits)

__all__ = ["BLOCK", "CELLS_PER_THREAD", "CTYPES", "INDEX_LIMIT", "KERNEL_PACKAGE", "KERNELS",
           "MAX_BLOCKS", "RUNTIME_WINDOW", "UNROLLED_DTYPES", "WARP", "WINDOWS",
           "adaptive_max_pool2d_fits",
           "adaptive_max_pool2d_forward", "adaptive_max_pool2d_gather",
           "adaptive_max_pool2d_outside", "avg_pool2d_backward",
           "avg_pool2d_forward", "avg_pool3d_backward", "avg_pool3d_forward", "col2im_into",
           "col2vol_into", "column_launches", "compile_options", "conv_gemm_fits",
           "conv_gemm_into", "conv_gemm_launch", "conv_input_grad_into",
           "conv_input_grad_launch", "conv_weight_grad_fits", "conv_weight_grad_into",
           "conv_weight_grad_launch",
           "default_launcher",
           "depthwise_backward_data_into", "depthwise_fits", "depthwise_forward",
           "depthwise_weight_partials_into", "im2col_into",
           "interpolate_backward", "interpolate_fits", "interpolate_forward", "kernel_dir",
           "kernel_files", "kernel_name", "kernel_source", "kernel_windows",
           "KernelCompileError", "launch_config", "Launcher", "max_pool2d_backward",
           "max_pool2d_forward", "max_pool3d_backward", "max_pool3d_forward",
           "max_unpool2d_fits", "max_unpool2d_gather", "max_unpool2d_outside",
           "name_expressions", "TILES", "tiled_launch_config", "unrolled_windows", "vol2col_into",
           "volume_args", "volume_calls", "weight_grad_splits", "weight_sum", "weight_sum_launch",
           "window_of"]

_default_launcher = None


def default_launcher():
    """The CuPy launcher (created on first use; imports CuPy)."""
    global _default_launcher
    if _default_launcher is None:
        import cupy
        from cupy.cuda import compiler

        _default_launcher = Launcher(
            cupy, cupy.RawModule,
            options=compile_options(kernel_dir(), cupy.cuda.nvrtc.getVersion()),
            compile_errors=(compiler.CompileException,),
            device_id=lambda: cupy.cuda.Device().id, device_of=lambda array: array.device.id,
            capability=lambda: int(cupy.cuda.Device().compute_capability))
    return _default_launcher


def _window_args(geometry):
    """The kernels' window scalars; refuses planes too large for their 32-bit in-plane math."""
    (h, w), (oh, ow), (kh, kw) = geometry.size, geometry.out, geometry.kernel
    (sh, sw), (dh, dw) = geometry.stride, geometry.dilation
    (top, _), (left, _) = geometry.pads
    padded_h, padded_w = geometry.padded
    extents = (padded_h * padded_w, oh * ow, h + top + kh * dh, w + left + kw * dw,
               oh * sh + kh * dh, ow * sw + kw * dw, kh * kw)
    if max(extents) >= _cuda_launcher.PLANE_LIMIT:
        raise ValueError(
            f"an image plane of {geometry} is too large for the CUDA kernels: planes "
            f"(H*W, OH*OW), their padded extents and the window (KH*KW, the int32 argmax) "
            f"must stay below 2**31 elements")
    return h, w, oh, ow, kh, kw, sh, sw, top, left, dh, dw


def _column_calls(geometry, images, channels):
    """The (kernel, work, scalars) of im2col and of col2im over ``images`` x ``channels``
    planes of ``geometry``."""
    scalars = (images, channels, *_window_args(geometry))
    planes = images * channels
    return (("im2col_kernel", (planes, geometry.out[0] * geometry.out[1]), scalars),
            ("col2im_kernel", (planes, geometry.size[0] * geometry.size[1]), scalars))


def im2col_into(x, geometry, out, launcher=None):
    """Write the columns of ``x`` (N, C, H, W) into ``out`` (N, C, KH, KW, OH, OW), on the GPU.

    Raises
    ------
    ValueError
        ``out`` shares memory with ``x``, or a plane is too large for the kernels.
    """
    kernel, work, scalars = _column_calls(geometry, *x.shape[:2])[0]
    return launch_into(resolved(launcher), kernel, work, (x,), out, *scalars)


def col2im_into(cols, geometry, out, launcher=None):
    """Sum columns (N, C, KH, KW, OH, OW) onto ``out`` (N, C, H, W) on the GPU, gather-style.

    Raises
    ------
    ValueError
        ``out`` shares memory with ``cols``, or a plane is too large for the kernels.
    """
    kernel, work, scalars = _column_calls(geometry, *out.shape[:2])[1]
    return launch_into(resolved(launcher), kernel, work, (cols,), out, *scalars)


def column_launches(geometry, images, channels, dtype, launcher=None):
    """The prepared launches ``(im2col, col2im)`` of :func:`im2col_into` and
    :func:`col2im_into` (or, for three spatial axes, of :func:`vol2col_into` and
    :func:`col2vol_into`) over ``images`` images of ``channels`` channels of ``dtype``:
    ``im2col(x, cols)`` and ``col2im(cols, out)`` on C-contiguous arrays of those shapes,
    unchecked (:meth:`fastconv._cuda_launcher.Launcher.prepare`).

    Raises
    ------
    ValueError
        A plane (volume) too large for the kernels.
    """
    launcher = resolved(launcher)
    calls = (_column_calls if len(geometry.out) == 2 else volume_calls)(geometry, images,
                                                                         channels)
    return tuple(launcher.prepare(kernel, dtype, work, *scalars)
                 for kernel, work, scalars in calls)


def _pool_forward(launcher, kernel, x, geometry, *per_window_and_outputs):
    """Run ``kernel(x, *arrays, NC, window...)`` over the output positions of ``x``."""
    planes = x.shape[0] * x.shape[1]
    launcher.launch(kernel, (planes, geometry.out[0] * geometry.out[1]), x,
                    *per_window_and_outputs, planes, *_window_args(geometry))


def max_pool2d_forward(x, geometry, launcher=None):
    """Max pooling on the GPU: ``(out, argmax)``, argmax the int32 kernel offset kh*KW + kw."""
    launcher = resolved(launcher)
    x = launcher.xp.ascontiguousarray(x)
    _window_args(geometry)  # refuse a plane too large before allocating
    shape = x.shape[:2] + geometry.out
    out, argmax = launcher.empty(shape, x.dtype), launcher.empty(shape, numpy.int32)
    _pool_forward(launcher, "max_pool_forward_kernel", x, geometry, out, argmax)
    return out, argmax


def _pool_backward(launcher, kernel, dout, per_window, x_shape, geometry):
    """dx of shape ``x_shape`` from ``kernel(dout, per_window, dx, NC, window...)``, gather-style,
    a thread per :data:`CELLS_PER_THREAD` adjacent inputs of a row."""
    launcher = resolved(launcher)
    dout = launcher.xp.ascontiguousarray(dout)
    args = _window_args(geometry)
    dx = launcher.empty(tuple(x_shape), dout.dtype)
    planes, row_threads = x_shape[0] * x_shape[1], -(-x_shape[3] // CELLS_PER_THREAD[kernel])
    launcher.launch(kernel, (planes, x_shape[2] * row_threads), dout, per_window, dx, planes,
                    *args)
    return dx


def max_pool2d_backward(dout, argmax, x_shape, geometry, launcher=None):
    """Max-pool gradient on the GPU, gather-style: each input sums the windows it won."""
    return _pool_backward(launcher, "max_pool_backward_kernel", dout, argmax, x_shape, geometry)


def avg_pool2d_forward(x, geometry, divisor, launcher=None):
    """Average pooling on the GPU: window sums divided by ``divisor`` (OH, OW)."""
    launcher = resolved(launcher)
    x = launcher.xp.ascontiguousarray(x)
    _window_args(geometry)  # refuse a plane too large before allocating
    out = launcher.empty(x.shape[:2] + geometry.out, x.dtype)
    _pool_forward(launcher, "avg_pool_forward_kernel", x, geometry, divisor, out)
    return out


def avg_pool2d_backward(dout, divisor, x_shape, geometry, launcher=None):
    """Average-pool gradient on the GPU, gather-style: each input sums dout / divisor."""
    return _pool_backward(launcher, "avg_pool_backward_kernel", dout, divisor, x_shape, geometry)


def depthwise_fits(filters, geometry):
    """Whether the depthwise kernels take ``filters`` filters with ``geometry``'s window: an
    image's weight partials (F, KH*KW + 1) are one plane of their 32-bit in-plane math."""
    kh, kw = geometry.kernel
    return filters * (kh * kw + 1) < _cuda_launcher.PLANE_LIMIT


def _depthwise_scalars(x_shape, filters, geometry):
    """N, C and M (the filters per channel), then the window scalars of a depthwise launch.

    Raises
    ------
    ValueError
        A plane, or the filters' partials, too large for the kernels.
    """
    if not depthwise_fits(filters, geometry):
        raise ValueError(f"{filters} filters of {geometry.kernel} are too many for the depthwise "
                         f"kernels: F*(KH*KW + 1) must stay below 2**31")
    n, c = x_shape[:2]
    return (n, c, filters // c) + _window_args(geometry)


def depthwise_forward(x, w, b, geometry, launcher=None):
    """Depthwise convolution on the GPU: x (N, C, H, W), w (C*M, 1, KH, KW), b (C*M,) or None.

    Each filter f reads input channel f // M; one thread per output element sums its
    window's taps, then adds the bias.

    Raises
    ------
    ValueError
        A plane too large for the kernels.
    """
    launcher = resolved(launcher)
    xp = launcher.xp
    x, w = xp.ascontiguousarray(x), xp.ascontiguousarray(w)
    n, c, m, *window = _depthwise_scalars(x.shape, w.shape[0], geometry)
    out = launcher.empty((n, w.shape[0]) + geometry.out, x.dtype)
    bias = w if b is None else xp.ascontiguousarray(b)  # not read without a bias
    launcher.launch("depthwise_forward_kernel", (out.shape[0] * out.shape[1], out[0, 0].size),
                    x, w, bias, out, n, c, m, int(b is not None), *window)
    return out


def depthwise_backward_data_into(dout, w, geometry, out, launcher=None):
    """The input gradient (N, C, H, W) of a depthwise convolution into ``out``, gather-style:
    each input element sums dout times the weights of the windows covering it.

    Raises
    ------
    ValueError
        ``out`` shares memory with ``dout`` or ``w``, or a plane is too large for the kernels.
    """
    launcher = resolved(launcher)
    scalars = _depthwise_scalars(out.shape, w.shape[0], geometry)
    return launch_into(launcher, "depthwise_backward_data_kernel",
                       (out.shape[0] * out.shape[1], out[0, 0].size), (dout, w), out, *scalars)


def depthwise_weight_partials_into(x, dout, geometry, partials, accumulate, launcher=None):
    """Each image's weight and bias gradient sums into ``partials`` (N, F, KH*KW + 1), in the
    accumulator dtype: slot kh*KW + kw for that tap, the last for the bias; with
    ``accumulate`` added to what the slots hold.

    Raises
    ------
    ValueError
        A non-contiguous ``partials``, or a plane too large for the kernels.
    """
    launcher = resolved(launcher)
    xp = launcher.xp
    x, dout = xp.ascontiguousarray(x), xp.ascontiguousarray(dout)
    scalars = _depthwise_scalars(x.shape, dout.shape[1], geometry)
    launcher.launch("depthwise_weight_partials_kernel", (x.shape[0], partials[0].size), x, dout,
                    partials, *scalars[:3], int(accumulate), *scalars[3:])
    return partials


def weight_sum(partials, w_shape, dtype, has_bias, launcher=None):
    """``(dw, db)`` of ``dtype`` from a convolution's per-image partial sums, on the GPU
    (kernels/weight_sum.cu).

    ``partials`` (images, F, taps + 1), in ``dtype``'s accumulator dtype, hold per filter
    the sums of each weight tap (taps = ``prod(w_shape[1:])``) and, last, of the bias;
    each slot is summed over the images in ascending order and rounded once. dw has shape
    ``w_shape``; db is None without ``has_bias`` (the last slot is then not read).

    Raises
    ------
    ValueError
        ``partials`` of another shape than ``w_shape`` implies, or a filter's taps + 1 too
        many for the kernel's 32-bit slot index.
    """
    filters, taps = w_shape[0], math.prod(w_shape[1:])
    if partials.ndim != 3 or partials.shape[1:] != (filters, taps + 1):
        raise ValueError(f"weight_sum: partials {partials.shape} are not (images, "
                         f"{filters}, {taps + 1}) for weights {tuple(w_shape)}")
    launcher = resolved(launcher)
    kernel, work, scalars = _weight_sum_call(partials.shape[0], w_shape, has_bias)
    dw = launcher.empty(tuple(w_shape), dtype)
    db = launcher.empty((filters,), dtype) if has_bias else None
    launcher.launch(kernel, work, partials, dw, dw if db is None else db, *scalars)
    return dw, db


def weight_sum_launch(images, w_shape, dtype, has_bias, launcher=None):
    """The prepared launch of :func:`weight_sum` for ``images`` images' partials:
    ``launch(partials, dw, db)`` (``db`` is ``dw`` without ``has_bias``, and not written) on
    C-contiguous arrays of the shapes it takes and returns, unchecked.

    Raises
    ------
    ValueError
        As :func:`weight_sum`, for the filters.
    """
    kernel, work, scalars = _weight_sum_call(images, w_shape, has_bias)
    return resolved(launcher).prepare(kernel, dtype, work, *scalars)


def _weight_sum_call(images, w_shape, has_bias):
    """The (kernel, work, scalars) of :func:`weight_sum`; refuses too many taps per filter."""
    filters, taps = w_shape[0], math.prod(w_shape[1:])
    if taps + 1 >= _cuda_launcher.PLANE_LIMIT:
        raise ValueError(f"weight_sum: the filters of weights {tuple(w_shape)} have too many "
                         f"taps for the CUDA kernel: each filter's taps + 1 must stay below "
                         f"2**31")
    return "weight_sum_kernel", (filters, taps + 1), (images, filters, taps, int(has_bias))
