"""The GPU path: compiles the CUDA kernels in kernels/*.cu with CuPy and launches them.

The kernel sources ship inside the package (``fastconv._kernels``) and are read
from the installed package, never from a source tree. Each (file, dtype) pair
is compiled lazily on first use with ``cupy.RawModule(code=..., options=...,
name_expressions=[...])`` and memoised per device in the process. A compile
error raises :class:`KernelCompileError` with the log.

CuPy's disk cache (``CUPY_CACHE_DIR``) depends on its version. CuPy 13.x and
14.0.x never reuse a module compiled with name expressions, which every
fastconv module is, from the disk cache: each process recompiles each file
for each dtype on first use (about 1 s each; benchmarks must warm up).
CuPy 14.1 and later store the lowered names with the binary, and a later
process loads it from the disk cache without compiling.

Every kernel is a template, instantiated for the common windows (:data:`WINDOWS`:
a K x K kernel with stride S and no dilation, unrolled at compile time; float16
and float32 only) and for any window (``<T, 0, 0>``, sizes read at run time);
:meth:`Launcher.launch` picks the instantiation from the window arguments.
It checks the arguments against the kernel's parameter list in :data:`KERNELS`
(count, dtypes, C-contiguity, device) and passes every scalar as an explicit
``numpy.int64`` (CuPy checks nothing, and would pack a wrong type silently).
The kernel function objects and parsed parameter lists are cached, so a
launch resolves nothing twice. Grid and block shapes are computed in one
place, :func:`launch_config`.

The kernel wrappers at the bottom (``im2col_into``, ``max_pool2d_forward``,
...), one per kernel, are what the GPU backend (:mod:`fastconv._gpu`) calls.
They are written against a :class:`Launcher` and its array module only, so
the same wrapper code runs on CuPy and, in the tests, on a CPU emulation of
the kernels. This module never imports CuPy until a GPU launch needs it.
"""

import hashlib
import importlib.resources
import numbers
from pathlib import Path

import numpy

from .backend import accumulator_dtype

KERNEL_PACKAGE = "fastconv._kernels"
BLOCK = 256
WARP = 32
MAX_BLOCKS = 65535  # grid cap per axis: the kernels' grid-stride loops cover any larger problem
INDEX_LIMIT = 2**63 - 1  # scalars, plane indices and plane offsets are 64-bit idx_t
PLANE_LIMIT = 2**31  # ... but everything inside one plane is 32-bit (kernels/common.cuh)

# The C type each supported dtype is instantiated with (fc_half: binary16
# storage, float arithmetic; see kernels/common.cuh).
CTYPES = {
    numpy.dtype(numpy.float16): "fc_half",
    numpy.dtype(numpy.float32): "float",
    numpy.dtype(numpy.float64): "double",
}

_WINDOW = "H W OH OW KH KW SH SW PT PL DH DW"

# Each kernel's file and parameters, in order: "name:T" is an array of the
# kernel's float dtype, "name:acc" an array of its accumulator dtype (float32
# for float16), "name:int32" an int32 array, a bare name an int64 scalar.
KERNELS = {
    "im2col_kernel": ("im2col.cu", f"x:T cols:T N C {_WINDOW}"),
    "col2im_kernel": ("im2col.cu", f"cols:T x:T N C {_WINDOW}"),
    "max_pool_forward_kernel": ("pool.cu", f"x:T out:T argmax:int32 NC {_WINDOW}"),
    "max_pool_backward_kernel": ("pool.cu", f"dout:T argmax:int32 dx:T NC {_WINDOW}"),
    "avg_pool_forward_kernel": ("pool.cu", f"x:T divisor:acc out:T NC {_WINDOW}"),
    "avg_pool_backward_kernel": ("pool.cu", f"dout:T divisor:acc dx:T NC {_WINDOW}"),
}

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
}
UNROLLED_DTYPES = (numpy.dtype(numpy.float16), numpy.dtype(numpy.float32))


def unrolled_windows(file, dtype):
    """The windows ``file``'s kernels have unrolled instantiations of for ``dtype``."""
    return WINDOWS[file] if numpy.dtype(dtype) in UNROLLED_DTYPES else ()


class KernelCompileError(RuntimeError):
    """A kernel file failed to compile; the message carries the compiler log."""


def kernel_files():
    """The kernel source files, e.g. ``['im2col.cu', 'pool.cu']``."""
    return sorted({file for file, _ in KERNELS.values()})


def kernel_name(kernel, dtype, window=RUNTIME_WINDOW):
    """The name expression of ``kernel`` for ``dtype`` and ``window`` (a ``(K, S)`` of
    :data:`WINDOWS` or :data:`RUNTIME_WINDOW`), e.g. ``im2col_kernel<float, 3, 1>``."""
    k, s = window
    return f"{kernel}<{CTYPES[numpy.dtype(dtype)]}, {k}, {s}>"


def name_expressions(file, dtype):
    """Every template instantiation of ``file`` for ``dtype``, the run-time window's first."""
    windows = (RUNTIME_WINDOW,) + unrolled_windows(file, dtype)
    return [kernel_name(name, dtype, window) for name, (f, _) in KERNELS.items() if f == file
            for window in windows]


def kernel_dir():
    """The directory of the installed kernel sources (package data of fastconv._kernels)."""
    return Path(str(importlib.resources.files(KERNEL_PACKAGE)))


def kernel_source(file, directory=None):
    """The CUDA C source text of one kernel file, from the installed package by default."""
    return ((directory or kernel_dir()) / file).read_text(encoding="utf-8")


def compile_options(directory, nvrtc_version=None):
    """The NVRTC options fastconv passes (CuPy appends -arch, -ftz and more at run time).

    The kernels include ``common.cuh`` from ``directory``; CuPy's disk cache
    is keyed by the source and the options only, so a hash of the header is
    passed as a define, and a changed header is never served a stale binary.
    NVRTC 12.8+ (``nvrtc_version`` as (major, minor)) gets ``--pch`` from
    CuPy, whose notices would fill the log of a clean compile;
    ``--pch-messages=false`` (that version's option) silences them.
    """
    header = hashlib.sha256((Path(directory) / "common.cuh").read_bytes()).hexdigest()[:16]
    options = ("-std=c++17", f"-I{directory}", f"-DFC_COMMON_CUH_SHA256={header}")
    if nvrtc_version is not None and tuple(nvrtc_version) >= (12, 8):
        options += ("--pch-messages=false",)
    return options


def launch_config(planes, plane_size, block=BLOCK, max_blocks=MAX_BLOCKS):
    """The 2-D ``(grid, block)`` 3-tuples of a kernel over ``planes`` planes of ``plane_size``.

    Threads along x take the positions of a plane, along y the planes. A
    block is ``block`` threads wide when a plane fills it; a smaller plane
    gets a block as wide as the plane rounded up to a warp, and the rest of
    the threads go to further planes, so few threads idle. Each grid axis is
    capped at ``max_blocks`` (y at most 65535, the hardware's limit): the
    kernels' grid-stride loops, with a 64-bit plane index, cover any size.
    """
    if planes < 1 or plane_size < 1:
        raise ValueError(f"a launch needs at least one work item, got {planes} planes "
                         f"of {plane_size}")
    width = min(block, -(-plane_size // WARP) * WARP)
    height = block // width
    grid = (min(-(-plane_size // width), max_blocks), min(-(-planes // height), max_blocks, 65535))
    return grid + (1,), (width, height, 1)


def _parse(spec):
    return tuple(tuple(p.split(":")) if ":" in p else (p, "int64") for p in spec.split())


def _window_positions(params):
    """Where (KH, KW), (SH, SW) and (DH, DW) are among a kernel's parameters."""
    names = [name for name, _ in params]
    return [(names.index(f"{x}H"), names.index(f"{x}W")) for x in "KSD"]


# Parsed once: [(name, kind)] per kernel, and where its window scalars are.
_PARAMETERS = {kernel: _parse(spec) for kernel, (_, spec) in KERNELS.items()}
_WINDOW_AT = {kernel: _window_positions(params) for kernel, params in _PARAMETERS.items()}


def _parameters(kernel):
    return list(_PARAMETERS[kernel])


def window_of(file, dtype, kernel, stride, dilation):
    """The instantiation of ``file``'s kernels for a window: ``(K, S)`` or :data:`RUNTIME_WINDOW`.

    A window of :func:`unrolled_windows` for that file and dtype, given as a
    square ``kernel`` (KH, KW), equal ``stride`` (SH, SW) and ``dilation``
    (1, 1), gets its unrolled instantiation; every other window the run-time one.
    """
    window = (kernel[0], stride[0])
    if (tuple(kernel) == (window[0],) * 2 and tuple(stride) == (window[1],) * 2
            and tuple(dilation) == (1, 1) and window in unrolled_windows(file, dtype)):
        return window
    return RUNTIME_WINDOW


class Launcher:
    """Compiles and launches the kernels for one array module.

    ``xp`` is the array module of the arrays launched on (cupy on a GPU);
    ``module_class`` is called as ``cupy.RawModule(code=, options=,
    name_expressions=)``; ``compile_errors`` are the exceptions it raises for
    bad source. ``device_id()`` is the current device; it keys the module
    and function caches, and ``device_of(array)``, when given, must match it
    for every array launched on. ``block`` and ``max_blocks`` set the launch
    shape; ``specialize=False`` runs every window on the run-time
    instantiation (tests compare the two); ``poison`` fills new output
    arrays with NaN (or the smallest int) so an element a kernel misses
    cannot pass a test by luck. ``kernel_dir`` replaces the installed
    sources (tests).
    """

    def __init__(self, xp, module_class, *, options, compile_errors=(), device_id=lambda: 0,
                 device_of=None, kernel_dir=None, block=BLOCK, max_blocks=MAX_BLOCKS,
                 specialize=True, poison=False):
        self.xp, self.module_class = xp, module_class
        self.options, self.compile_errors, self.device_id = tuple(options), compile_errors, device_id
        self.device_of, self.kernel_dir, self.specialize = device_of, kernel_dir, specialize
        self.block, self.max_blocks, self.poison = block, max_blocks, poison
        self._modules = {}
        self._functions = {}

    def module(self, file, dtype):
        """The compiled module of ``file`` for ``dtype`` on the current device (memoised)."""
        return self._module(file, numpy.dtype(dtype), self.device_id())

    def _module(self, file, dtype, device):
        key = (file, dtype, device)
        if key not in self._modules:
            names = name_expressions(file, dtype)
            try:
                module = self.module_class(code=kernel_source(file, self.kernel_dir),
                                           options=self.options, name_expressions=names)
                module.compile()
            except self.compile_errors as exc:
                raise KernelCompileError(
                    f"{file} failed to compile for {dtype} "
                    f"(options {self.options}):\n{exc}") from exc
            self._modules[key] = module
        return self._modules[key]

    def function(self, kernel, dtype, window, device):
        """The kernel function of one instantiation on ``device`` (memoised: CuPy builds a
        new function object on every ``get_function``)."""
        key = (device, dtype, kernel, window)
        function = self._functions.get(key)
        if function is None:
            module = self._module(KERNELS[kernel][0], dtype, device)
            function = self._functions[key] = module.get_function(
                kernel_name(kernel, dtype, window))
        return function

    def empty(self, shape, dtype):
        """A new C-contiguous array, poisoned when ``self.poison`` is set."""
        out = self.xp.empty(shape, dtype=dtype)
        if self.poison:
            out.fill(numpy.nan if out.dtype.kind == "f" else numpy.iinfo(out.dtype).min)
        return out

    def launch(self, kernel, work, *args):
        """Check ``args`` against ``kernel``'s parameters and run it over ``work``.

        ``work`` is ``(planes, plane_size)``: one thread per item of each plane
        (:func:`launch_config`); nothing runs when either is zero. Arrays must
        be this launcher's C-contiguous arrays of the declared dtype (``T``: one
        float dtype shared by all of them; ``acc``: its accumulator dtype) on
        the current device; scalars must be ints and are passed as
        ``numpy.int64``.

        Raises
        ------
        TypeError
            A wrong argument count, dtype or type.
        ValueError
            A non-contiguous array, one on another device, a scalar beyond 64 bits.
        """
        params = _PARAMETERS[kernel]
        if len(args) != len(params):
            raise TypeError(f"{kernel} takes {len(params)} arguments "
                            f"({', '.join(n for n, _ in params)}), got {len(args)}")
        dtype = next((getattr(a, "dtype", None) for a, (_, t) in zip(args, params) if t == "T"),
                     None)
        if dtype not in CTYPES:
            raise TypeError(f"{kernel} runs on float16, float32 or float64 arrays, got {dtype}")
        device = self.device_id()
        packed = tuple(self._check(kernel, name, kind, arg, dtype, device)
                       for arg, (name, kind) in zip(args, params))
        planes, plane_size = work
        if planes == 0 or plane_size == 0:
            return
        window = RUNTIME_WINDOW
        if self.specialize:
            window = window_of(KERNELS[kernel][0], dtype, *([args[i] for i in pair]
                                                            for pair in _WINDOW_AT[kernel]))
        grid, block = launch_config(planes, plane_size, self.block, self.max_blocks)
        self.function(kernel, dtype, window, device)(grid, block, packed)

    def _check(self, kernel, name, kind, arg, dtype, device=None):
        if kind == "int64":
            if isinstance(arg, bool) or not isinstance(arg, numbers.Integral):
                raise TypeError(f"{kernel} argument {name} must be an int, got {arg!r}")
            if not -INDEX_LIMIT <= int(arg) <= INDEX_LIMIT:
                raise ValueError(f"{kernel} argument {name}={arg} does not fit in 64 bits")
            return numpy.int64(arg)
        if kind == "T":
            expected = dtype
        elif kind == "acc":
            expected = accumulator_dtype(dtype)
        else:
            expected = numpy.dtype(kind)
        if not isinstance(arg, self.xp.ndarray):
            raise TypeError(f"{kernel} argument {name} must be a {self.xp.__name__} array, "
                            f"got {type(arg).__name__}")
        if arg.dtype != expected:
            raise TypeError(f"{kernel} argument {name} has dtype {arg.dtype}, expected {expected}")
        if not arg.flags.c_contiguous:
            raise ValueError(f"{kernel} argument {name} (shape {arg.shape}) must be C-contiguous")
        if self.device_of is not None and self.device_of(arg) != device:
            # a kernel runs on the current device and would read another's memory address
            raise ValueError(
                f"{kernel} argument {name} is on device {self.device_of(arg)} but the current "
                f"device is {device}: launch inside `with cupy.cuda.Device("
                f"{self.device_of(arg)}):`")
        return arg


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
            device_id=lambda: cupy.cuda.Device().id, device_of=lambda array: array.device.id)
    return _default_launcher


def _window_args(geometry):
    """The kernels' window scalars; refuses planes too large for their 32-bit in-plane math."""
    (h, w), (oh, ow), (kh, kw) = geometry.size, geometry.out, geometry.kernel
    (sh, sw), (dh, dw) = geometry.stride, geometry.dilation
    (top, _), (left, _) = geometry.pads
    padded_h, padded_w = geometry.padded
    extents = (padded_h * padded_w, oh * ow, h + top + kh * dh, w + left + kw * dw,
               oh * sh + kh * dh, ow * sw + kw * dw, kh * kw)
    if max(extents) >= PLANE_LIMIT:
        raise ValueError(
            f"an image plane of {geometry} is too large for the CUDA kernels: planes "
            f"(H*W, OH*OW), their padded extents and the window (KH*KW, the int32 argmax) "
            f"must stay below 2**31 elements")
    return h, w, oh, ow, kh, kw, sh, sw, top, left, dh, dw


def _launch_into(launcher, kernel, work, source, out, *scalars):
    """Run ``kernel(source, out, *scalars)``; a non-contiguous ``out`` is written through a copy."""
    if launcher.xp.may_share_memory(source, out):
        # the kernels read their input through the non-coherent cache (const __restrict__):
        # writes to it during the launch make the result undefined on a GPU
        raise ValueError(f"{kernel}: the output overlaps the input in memory (shapes "
                         f"{out.shape} and {source.shape}); pass a separate output array")
    source = launcher.xp.ascontiguousarray(source)
    target = out if out.flags.c_contiguous else launcher.empty(out.shape, out.dtype)
    launcher.launch(kernel, work, source, target, *scalars)
    if target is not out:
        out[...] = target
    return out


def im2col_into(x, geometry, out, launcher=None):
    """Write the columns of ``x`` (N, C, H, W) into ``out`` (N, C, KH, KW, OH, OW), on the GPU.

    Raises
    ------
    ValueError
        ``out`` shares memory with ``x``, or a plane is too large for the kernels.
    """
    launcher = launcher or default_launcher()
    n, c = x.shape[:2]
    args = _window_args(geometry)
    return _launch_into(launcher, "im2col_kernel", (n * c, geometry.out[0] * geometry.out[1]),
                        x, out, n, c, *args)


def col2im_into(cols, geometry, out, launcher=None):
    """Sum columns (N, C, KH, KW, OH, OW) onto ``out`` (N, C, H, W) on the GPU, gather-style.

    Raises
    ------
    ValueError
        ``out`` shares memory with ``cols``, or a plane is too large for the kernels.
    """
    launcher = launcher or default_launcher()
    n, c = out.shape[:2]
    args = _window_args(geometry)
    return _launch_into(launcher, "col2im_kernel", (n * c, geometry.size[0] * geometry.size[1]),
                        cols, out, n, c, *args)


def _pool_forward(launcher, kernel, x, geometry, *per_window_and_outputs):
    """Run ``kernel(x, *arrays, NC, window...)`` over the output positions of ``x``."""
    planes = x.shape[0] * x.shape[1]
    launcher.launch(kernel, (planes, geometry.out[0] * geometry.out[1]), x,
                    *per_window_and_outputs, planes, *_window_args(geometry))


def max_pool2d_forward(x, geometry, launcher=None):
    """Max pooling on the GPU: ``(out, argmax)``, argmax the int32 kernel offset kh*KW + kw."""
    launcher = launcher or default_launcher()
    x = launcher.xp.ascontiguousarray(x)
    _window_args(geometry)  # refuse a plane too large before allocating
    shape = x.shape[:2] + geometry.out
    out, argmax = launcher.empty(shape, x.dtype), launcher.empty(shape, numpy.int32)
    _pool_forward(launcher, "max_pool_forward_kernel", x, geometry, out, argmax)
    return out, argmax


def _pool_backward(launcher, kernel, dout, per_window, x_shape, geometry):
    """dx of shape ``x_shape`` from ``kernel(dout, per_window, dx, NC, window...)``, gather-style."""
    launcher = launcher or default_launcher()
    dout = launcher.xp.ascontiguousarray(dout)
    args = _window_args(geometry)
    dx = launcher.empty(tuple(x_shape), dout.dtype)
    planes = x_shape[0] * x_shape[1]
    launcher.launch(kernel, (planes, x_shape[2] * x_shape[3]), dout, per_window, dx, planes, *args)
    return dx


def max_pool2d_backward(dout, argmax, x_shape, geometry, launcher=None):
    """Max-pool gradient on the GPU, gather-style: each input sums the windows it won."""
    return _pool_backward(launcher, "max_pool_backward_kernel", dout, argmax, x_shape, geometry)


def avg_pool2d_forward(x, geometry, divisor, launcher=None):
    """Average pooling on the GPU: window sums divided by ``divisor`` (OH, OW)."""
    launcher = launcher or default_launcher()
    x = launcher.xp.ascontiguousarray(x)
    _window_args(geometry)  # refuse a plane too large before allocating
    out = launcher.empty(x.shape[:2] + geometry.out, x.dtype)
    _pool_forward(launcher, "avg_pool_forward_kernel", x, geometry, divisor, out)
    return out


def avg_pool2d_backward(dout, divisor, x_shape, geometry, launcher=None):
    """Average-pool gradient on the GPU, gather-style: each input sums dout / divisor."""
    return _pool_backward(launcher, "avg_pool_backward_kernel", dout, divisor, x_shape, geometry)
