"""The kernel table: each CUDA kernel's file and parameters, and its template instantiations.

Every kernel in kernels/*.cu is a template ``<T, K, S>``. A kernel with window
parameters (KH KW SH SW DH DW among them) is instantiated for any window
(``<T, 0, 0>``, sizes read at run time) and, in float16 and float32, for the
common windows of its file (:data:`WINDOWS`: K x K with stride S and no
dilation, unrolled at compile time); :func:`window_of` picks the instantiation
for a launch. A kernel without a window (a reduction over the outputs of
another) has the run-time instantiation only.

Nothing here imports CuPy or compiles anything: the launcher
(:mod:`fastconv._cuda_launcher`) and the tests read this table.
"""

import numpy

# The C type each supported dtype is instantiated with (fc_half: binary16
# storage, float arithmetic; see kernels/common.cuh).
CTYPES = {
    numpy.dtype(numpy.float16): "fc_half",
    numpy.dtype(numpy.float32): "float",
    numpy.dtype(numpy.float64): "double",
}

_WINDOW = "H W OH OW KH KW SH SW PT PL DH DW"
# A 3-D window: each axis's scalars in (D, H, W) order, PF the padding in front
_VOLUME = "D H W OD OH OW KD KH KW SD SH SW PF PT PL DD DH DW"
# The implicit product's: kernels/conv_gemm.cu's two kernels take the same arguments
_CONV_GEMM = f"x:T a:T b:T out:T N C M A_ROW A_OUTER FLIP has_bias {_WINDOW}"

# Each kernel's file and parameters, in order: "name:T" is an array of the
# kernel's float dtype, "name:acc" an array of its accumulator dtype (float32
# for float16), "name:int32" an int32 array, "name:i8" an int64 array (a
# bare name being an int64 scalar).
KERNELS = {
    "im2col_kernel": ("im2col.cu", f"x:T cols:T N C {_WINDOW}"),
    "col2im_kernel": ("im2col.cu", f"cols:T x:T N C {_WINDOW}"),
    "max_pool_forward_kernel": ("pool.cu", f"x:T out:T argmax:int32 NC {_WINDOW}"),
    "max_pool_backward_kernel": ("pool.cu", f"dout:T argmax:int32 dx:T NC {_WINDOW}"),
    "avg_pool_forward_kernel": ("pool.cu", f"x:T divisor:acc out:T NC {_WINDOW}"),
    "avg_pool_backward_kernel": ("pool.cu", f"dout:T divisor:acc dx:T NC {_WINDOW}"),
    "max_pool3d_forward_kernel": ("pool3d.cu", f"x:T out:T argmax:int32 NC {_VOLUME}"),
    "max_pool3d_backward_kernel": ("pool3d.cu", f"dout:T argmax:int32 dx:T NC {_VOLUME}"),
    "avg_pool3d_forward_kernel": ("pool3d.cu", f"x:T divisor:acc out:T NC {_VOLUME}"),
    "avg_pool3d_backward_kernel": ("pool3d.cu", f"dout:T divisor:acc dx:T NC {_VOLUME}"),
    "depthwise_forward_kernel": ("depthwise.cu", f"x:T w:T b:T out:T N C M has_bias {_WINDOW}"),
    "depthwise_backward_data_kernel": ("depthwise.cu", f"dout:T w:T dx:T N C M {_WINDOW}"),
    "depthwise_weight_partials_kernel": ("depthwise.cu",
                                         f"x:T dout:T partials:acc N C M accumulate {_WINDOW}"),
    "weight_sum_kernel": ("weight_sum.cu", "partials:acc dw:T db:T images F taps has_bias"),
    "vol2col_kernel": ("vol2col.cu", f"x:T cols:T N C {_VOLUME}"),
    "col2vol_kernel": ("vol2col.cu", f"cols:T x:T N C {_VOLUME}"),
    "interpolate_forward_kernel": ("interpolate.cu", "x:T rows:int32 row_weights:acc "
                                   "cols:int32 col_weights:acc out:T NC H W OH OW TH TW "
                                   "weighted_h weighted_w"),
    "interpolate_backward_kernel": ("interpolate.cu", "dout:T rows:int32 row_weights:acc "
                                    "cols:int32 col_weights:acc dx:T NC H W OH OW MH MW "
                                    "weighted_h weighted_w"),
    "max_unpool_check_kernel": ("unpool.cu", f"index:i8 outside:T NC {_WINDOW}"),
    "max_unpool_gather_kernel": ("unpool.cu", f"x:T index:i8 out:T NC {_WINDOW}"),
    "adaptive_max_check_kernel": ("unpool.cu", "index:i8 outside:T NC H W OH OW"),
    "adaptive_max_gather_kernel": ("unpool.cu", "dout:T index:i8 dx:T NC H W OH OW"),
    "adaptive_max_pool_forward_kernel": ("unpool.cu", "x:T out:T index:i8 NC H W OH OW"),
    "conv_gemm_kernel": ("conv_gemm.cu", _CONV_GEMM),
    "conv_gemm_tf32_kernel": ("conv_gemm.cu", _CONV_GEMM),
    "conv_weight_grad_tf32_kernel": ("conv_gemm.cu", "x:T dout:T partials:acc N C F splits "
                                     f"SPLIT has_bias {_WINDOW}"),
}

# The kernels built for some dtypes only, and which: every other kernel is built for each
# dtype of CTYPES. TF32 rounds float32; float16 and float64 have their own products.
DTYPES = {"conv_gemm_tf32_kernel": (numpy.dtype(numpy.float32),),
          "conv_weight_grad_tf32_kernel": (numpy.dtype(numpy.float32),)}

# The kernels that need a GPU of at least this compute capability (major * 10 + minor),
# and why: the launcher refuses them on an older one, where their instructions trap.
_TF32 = (80, "TF32 tensor cores (mma.sync and cvt.rna.tf32)")
CAPABILITY = {"conv_gemm_tf32_kernel": _TF32, "conv_weight_grad_tf32_kernel": _TF32}

# The kernels whose threads take several adjacent cells of a row, and how many: the 2-D
# pools' backward, a pair each (fc_pairs, kernels/common.cuh). A launch has ceil(W / n)
# threads per row; every other kernel one thread per item.
CELLS_PER_THREAD = {"max_pool_backward_kernel": 2, "avg_pool_backward_kernel": 2}

# The kernels that compute a matrix product in tiles, and their tiles' (rows, columns,
# reduction slice, threads): FC_TILE_M, FC_TILE_N, FC_TILE_K and FC_TILE_THREADS of the
# kernel's file. A launch over ``(rows, columns)`` has a block of that many threads per
# tile (:func:`fastconv._cuda_launcher.tiled_launch_config`), every other kernel one thread
# per item.
TILES = {kernel: (64, 128, 8, 128) for kernel in
         ("conv_gemm_kernel", "conv_gemm_tf32_kernel", "conv_weight_grad_tf32_kernel")}

# The windows each file's kernels are instantiated for, as (K, S): a K x K
# kernel, stride S on both axes, no dilation, unrolled at compile time. Any
# other window runs on the (0, 0) instantiation, which reads them at run time,
# and so does every window in float64: double precision serves gradient
# checks, where index arithmetic is not the cost, and each instantiation adds
# compile time to every process that uses its file.
RUNTIME_WINDOW = (0, 0)
WINDOWS = {
    "im2col.cu": ((1, 2), (3, 1), (3, 2), (5, 1), (5, 2)),  # 1x1/1 without padding: no im2col
    "pool.cu": ((2, 2), (3, 1), (3, 2)),
    "pool3d.cu": ((2, 2), (3, 2)),  # K x K x K: the 3-D CNNs' downsampling pools
    "depthwise.cu": ((3, 1), (3, 2), (5, 1), (5, 2)),  # MobileNet's and EfficientNet's
    "vol2col.cu": ((3, 1), (3, 2)),  # K x K x K: C3D's and the 3-D ResNets' windows
    "unpool.cu": ((2, 2), (3, 1), (3, 2)),  # the max pools' of pool.cu, whose indices it takes
    "conv_gemm.cu": ((3, 1), (5, 1)),  # the input gradients of 3x3 and 5x5 stride-1 layers
}
UNROLLED_DTYPES = (numpy.dtype(numpy.float16), numpy.dtype(numpy.float32))


def unrolled_windows(file, dtype):
    """The windows ``file``'s kernels have unrolled instantiations of for ``dtype``."""
    return WINDOWS[file] if numpy.dtype(dtype) in UNROLLED_DTYPES else ()


def kernel_files():
    """The kernel source files, e.g. ``['depthwise.cu', 'im2col.cu', 'pool.cu']``."""
    return sorted({file for file, _ in KERNELS.values()})


def kernel_name(kernel, dtype, window=RUNTIME_WINDOW):
    """The name expression of ``kernel`` for ``dtype`` and ``window`` (a ``(K, S)`` of
    :data:`WINDOWS` or :data:`RUNTIME_WINDOW`), e.g. ``im2col_kernel<float, 3, 1>``."""
    k, s = window
    return f"{kernel}<{CTYPES[numpy.dtype(dtype)]}, {k}, {s}>"


def _parse(spec):
    return tuple(tuple(p.split(":")) if ":" in p else (p, "int64") for p in spec.split())


def _window_positions(params):
    """Where (KH, KW), (SH, SW) and (DH, DW) are among a kernel's parameters, each led by
    its depth's (KD, SD, DD) in a 3-D window; None for a kernel without a window."""
    names = [name for name, _ in params]
    if "KH" not in names:
        return None
    axes = "DHW" if "KD" in names else "HW"
    return [tuple(names.index(f"{x}{axis}") for axis in axes) for x in "KSD"]


def _first_scalar(kernel, params):
    """Where a kernel's scalars start: every kernel takes its arrays first."""
    kinds = [kind for _, kind in params]
    first = kinds.index("int64") if "int64" in kinds else len(kinds)
    if any(kind != "int64" for kind in kinds[first:]):
        raise ValueError(f"{kernel} takes an array after a scalar: {KERNELS[kernel][1]}")
    return first


def _first_typed(params):
    """Where a kernel's first ``T`` array is, whose dtype picks the instantiation; None for a
    kernel without one."""
    return next((i for i, (_, kind) in enumerate(params) if kind == "T"), None)


# Parsed once: [(name, kind)] per kernel, where its scalars start, where its first T array
# and its window scalars are.
PARAMETERS = {kernel: _parse(spec) for kernel, (_, spec) in KERNELS.items()}
FIRST_SCALAR = {kernel: _first_scalar(kernel, params) for kernel, params in PARAMETERS.items()}
FIRST_TYPED = {kernel: _first_typed(params) for kernel, params in PARAMETERS.items()}
WINDOW_AT = {kernel: _window_positions(params) for kernel, params in PARAMETERS.items()}


def _parameters(kernel):
    return list(PARAMETERS[kernel])


def builds_for(kernel, dtype):
    """Whether ``kernel`` is built for ``dtype`` (:data:`DTYPES`)."""
    return numpy.dtype(dtype) in DTYPES.get(kernel, CTYPES)


def kernel_windows(kernel, dtype):
    """The instantiations of ``kernel`` for ``dtype``: the run-time window's first, then the
    unrolled windows of its file (none for a kernel without a window); none at all for a
    dtype it is not built for (:data:`DTYPES`)."""
    if not builds_for(kernel, dtype):
        return ()
    if WINDOW_AT[kernel] is None:
        return (RUNTIME_WINDOW,)
    return (RUNTIME_WINDOW,) + unrolled_windows(KERNELS[kernel][0], dtype)


def name_expressions(file, dtype):
    """Every template instantiation of ``file`` for ``dtype``, each kernel's run-time
    window first."""
    return [kernel_name(name, dtype, window) for name, (f, _) in KERNELS.items() if f == file
            for window in kernel_windows(name, dtype)]


def window_of(file, dtype, kernel, stride, dilation):
    """The instantiation of ``file``'s kernels for a window: ``(K, S)`` or :data:`RUNTIME_WINDOW`.

    A window of :func:`unrolled_windows` for that file and dtype, given as a
    square ``kernel`` (KH, KW), equal ``stride`` (SH, SW) and ``dilation``
    (1, 1), gets its unrolled instantiation; every other window the run-time one.
    A 3-D window, (KD, KH, KW) and so on, must be a cube with one stride.
    """
    window, axes = (kernel[0], stride[0]), len(kernel)
    if (tuple(kernel) == (window[0],) * axes and tuple(stride) == (window[1],) * axes
            and tuple(dilation) == (1,) * axes and window in unrolled_windows(file, dtype)):
        return window
    return RUNTIME_WINDOW


def launch_window(kernel, dtype, args):
    """The instantiation a launch of ``kernel`` with ``args`` runs (:func:`window_of` of
    its window scalars; the run-time window for a kernel without one)."""
    positions = WINDOW_AT[kernel]
    if positions is None:
        return RUNTIME_WINDOW
    return window_of(KERNELS[kernel][0], dtype, *([args[i] for i in pair] for pair in positions))
