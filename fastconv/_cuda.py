"""The GPU path: compiles the CUDA kernels in kernels/*.cu with CuPy and launches them.

The kernel sources ship inside the package (``fastconv._kernels``) and are read
from the installed package, never from a source tree. Each (file, dtype) pair
is compiled lazily on first use with ``cupy.RawModule(code=..., options=...,
name_expressions=[...])`` and memoised per device; CuPy also caches the binary
on disk. A compile error raises :class:`KernelCompileError` with the log.

Every launch goes through :meth:`Launcher.launch`, which checks the arguments
against the kernel's parameter list in :data:`KERNELS` (count, dtypes,
C-contiguity) and passes every scalar as an explicit ``numpy.int64`` (CuPy
checks nothing, and would pack a wrong type silently). Grid and block sizes
are computed in one place, :func:`launch_config`.

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
MAX_BLOCKS = 65535  # grid cap: the kernels' grid-stride loops cover any larger problem
INDEX_LIMIT = 2**63 - 1  # every size and offset is a 64-bit idx_t inside the kernels
PLANE_LIMIT = 2**31  # ... but in-plane divisions are 32-bit (kernels/common.cuh)

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


class KernelCompileError(RuntimeError):
    """A kernel file failed to compile; the message carries the compiler log."""


def kernel_files():
    """The kernel source files, e.g. ``['im2col.cu', 'pool.cu']``."""
    return sorted({file for file, _ in KERNELS.values()})


def name_expressions(file, dtype):
    """The template instantiations of ``file`` for ``dtype``, e.g. ``im2col_kernel<float>``."""
    ctype = CTYPES[numpy.dtype(dtype)]
    return [f"{name}<{ctype}>" for name, (f, _) in KERNELS.items() if f == file]


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


def launch_config(threads, block=BLOCK, max_blocks=MAX_BLOCKS):
    """``(grid, block)`` for a grid-stride kernel over ``threads`` work items.

    The grid is capped at ``max_blocks``: each thread then loops, with a
    64-bit index, over every ``grid * block``-th item, so any size is covered
    and no launch dimension can overflow.
    """
    if threads < 1:
        raise ValueError(f"a launch needs at least one work item, got {threads}")
    return min(-(-threads // block), max_blocks), block


def _parameters(kernel):
    _, spec = KERNELS[kernel]
    return [tuple(p.split(":")) if ":" in p else (p, "int64") for p in spec.split()]


class Launcher:
    """Compiles and launches the kernels for one array module.

    ``xp`` is the array module of the arrays launched on (cupy on a GPU);
    ``module_class`` is called as ``cupy.RawModule(code=, options=,
    name_expressions=)``; ``compile_errors`` are the exceptions it raises for
    bad source. ``device_id()`` keys the module cache. ``block`` and
    ``max_blocks`` set the launch shape; ``poison`` fills new output arrays
    with NaN (or the smallest int) so an element a kernel misses cannot pass
    a test by luck. ``kernel_dir`` replaces the installed sources (tests).
    """

    def __init__(self, xp, module_class, *, options, compile_errors=(), device_id=lambda: 0,
                 kernel_dir=None, block=BLOCK, max_blocks=MAX_BLOCKS, poison=False):
        self.xp, self.module_class = xp, module_class
        self.options, self.compile_errors, self.device_id = tuple(options), compile_errors, device_id
        self.kernel_dir, self.block, self.max_blocks, self.poison = kernel_dir, block, max_blocks, poison
        self._modules = {}

    def module(self, file, dtype):
        """The compiled module of ``file`` for ``dtype`` on the current device (memoised)."""
        key = (file, numpy.dtype(dtype), self.device_id())
        if key not in self._modules:
            names = name_expressions(file, dtype)
            try:
                module = self.module_class(code=kernel_source(file, self.kernel_dir),
                                           options=self.options, name_expressions=names)
                module.compile()
            except self.compile_errors as exc:
                raise KernelCompileError(
                    f"{file} failed to compile for {numpy.dtype(dtype)} "
                    f"(options {self.options}):\n{exc}") from exc
            self._modules[key] = module
        return self._modules[key]

    def empty(self, shape, dtype):
        """A new C-contiguous array, poisoned when ``self.poison`` is set."""
        out = self.xp.empty(shape, dtype=dtype)
        if self.poison:
            out.fill(numpy.nan if out.dtype.kind == "f" else numpy.iinfo(out.dtype).min)
        return out

    def launch(self, kernel, threads, *args):
        """Check ``args`` against ``kernel``'s parameters and run it over ``threads`` items.

        Arrays must be this launcher's C-contiguous arrays of the declared
        dtype (``T``: one float dtype shared by all of them; ``acc``: its
        accumulator dtype); scalars must be
        ints and are passed as ``numpy.int64``. Nothing runs for zero items.
        """
        params = _parameters(kernel)
        if len(args) != len(params):
            raise TypeError(f"{kernel} takes {len(params)} arguments "
                            f"({', '.join(n for n, _ in params)}), got {len(args)}")
        dtype = next((getattr(a, "dtype", None) for a, (_, t) in zip(args, params) if t == "T"),
                     None)
        if dtype not in CTYPES:
            raise TypeError(f"{kernel} runs on float16, float32 or float64 arrays, got {dtype}")
        packed = tuple(self._check(kernel, name, kind, arg, dtype)
                       for arg, (name, kind) in zip(args, params))
        if threads == 0:
            return
        grid, block = launch_config(threads, self.block, self.max_blocks)
        function = self.module(KERNELS[kernel][0], dtype).get_function(
            f"{kernel}<{CTYPES[dtype]}>")
        function((grid,), (block,), packed)

    def _check(self, kernel, name, kind, arg, dtype):
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
            device_id=lambda: cupy.cuda.Device().id)
    return _default_launcher


def _window_args(geometry):
    """The kernels' window scalars; refuses planes too large for their 32-bit in-plane math."""
    (h, w), (oh, ow), (kh, kw) = geometry.size, geometry.out, geometry.kernel
    (sh, sw), (dh, dw) = geometry.stride, geometry.dilation
    (top, _), (left, _) = geometry.pads
    extents = (h * w, oh * ow, h + top + kh * dh, w + left + kw * dw, oh * sh, ow * sw, kh * kw)
    if max(extents) >= PLANE_LIMIT:
        raise ValueError(
            f"an image plane of {geometry} is too large for the CUDA kernels: planes "
            f"(H*W, OH*OW), their padded extents and the window (KH*KW, the int32 argmax) "
            f"must stay below 2**31 elements")
    return h, w, oh, ow, kh, kw, sh, sw, top, left, dh, dw


def _launch_into(launcher, kernel, threads, source, out, *scalars):
    """Run ``kernel(source, out, *scalars)``; a non-contiguous ``out`` is written through a copy."""
    source = launcher.xp.ascontiguousarray(source)
    target = out if out.flags.c_contiguous else launcher.empty(out.shape, out.dtype)
    launcher.launch(kernel, threads, source, target, *scalars)
    if target is not out:
        out[...] = target
    return out


def im2col_into(x, geometry, out, launcher=None):
    """Columns of ``x`` (N, C, H, W) into ``out`` (N, C, KH, KW, OH, OW), on the GPU."""
    launcher = launcher or default_launcher()
    n, c = x.shape[:2]
    oh, ow = geometry.out
    return _launch_into(launcher, "im2col_kernel", n * c * oh * ow, x, out,
                        n, c, *_window_args(geometry))


def col2im_into(cols, geometry, out, launcher=None):
    """Gather-style sum of columns (N, C, KH, KW, OH, OW) onto ``out`` (N, C, H, W), on the GPU."""
    launcher = launcher or default_launcher()
    n, c = out.shape[:2]
    return _launch_into(launcher, "col2im_kernel", out.size, cols, out,
                        n, c, *_window_args(geometry))


def max_pool2d_forward(x, geometry, launcher=None):
    """Max pooling on the GPU: ``(out, argmax)``, argmax the int32 kernel offset kh*KW + kw."""
    launcher = launcher or default_launcher()
    x = launcher.xp.ascontiguousarray(x)
    shape = x.shape[:2] + geometry.out
    out, argmax = launcher.empty(shape, x.dtype), launcher.empty(shape, numpy.int32)
    launcher.launch("max_pool_forward_kernel", out.size, x, out, argmax,
                    shape[0] * shape[1], *_window_args(geometry))
    return out, argmax


def _pool_backward(launcher, kernel, dout, per_window, x_shape, geometry):
    """dx of shape ``x_shape`` from ``kernel(dout, per_window, dx, NC, window...)``, gather-style."""
    launcher = launcher or default_launcher()
    dout = launcher.xp.ascontiguousarray(dout)
    dx = launcher.empty(tuple(x_shape), dout.dtype)
    launcher.launch(kernel, dx.size, dout, per_window, dx,
                    x_shape[0] * x_shape[1], *_window_args(geometry))
    return dx


def max_pool2d_backward(dout, argmax, x_shape, geometry, launcher=None):
    """Max-pool gradient on the GPU, gather-style: each input sums the windows it won."""
    return _pool_backward(launcher, "max_pool_backward_kernel", dout, argmax, x_shape, geometry)


def avg_pool2d_forward(x, geometry, divisor, launcher=None):
    """Average pooling on the GPU: window sums divided by ``divisor`` (OH, OW)."""
    launcher = launcher or default_launcher()
    x = launcher.xp.ascontiguousarray(x)
    out = launcher.empty(x.shape[:2] + geometry.out, x.dtype)
    launcher.launch("avg_pool_forward_kernel", out.size, x, divisor, out,
                    x.shape[0] * x.shape[1], *_window_args(geometry))
    return out


def avg_pool2d_backward(dout, divisor, x_shape, geometry, launcher=None):
    """Average-pool gradient on the GPU, gather-style: each input sums dout / divisor."""
    return _pool_backward(launcher, "avg_pool_backward_kernel", dout, divisor, x_shape, geometry)
