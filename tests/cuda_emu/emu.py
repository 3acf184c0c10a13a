"""EmuModule: ``cupy.RawModule``'s interface over CUDA kernels compiled for the CPU.

The kernel source is compiled unchanged by g++ with ``cuda_emu.h`` force-included,
into a shared library cached under ``build/cuda_emu/`` (keyed by a hash of the
source, the headers, the kernel names and the flags), and loaded with ctypes.
Launches take NumPy arrays where CuPy takes CuPy arrays and are checked more
strictly than CuPy checks them, because a wrong launch on a GPU fails silently:
the argument count, pointer versus scalar, the byte size of every scalar (CuPy
packs a Python int as 64 bits), each array's element size and kind, that
arrays are C-contiguous, and that const parameters are not the only writers.
float and half kernels run with the CPU's flush-to-zero and denormals-are-zero
modes on (x86), as CuPy's ``-ftz=true`` makes the GPU treat float subnormals.

``FC_EMU_SANITIZE=1`` in the environment builds with AddressSanitizer and
UBSan (the process must then run with the ASan runtime preloaded; see
tests/test_cuda_sanitizers.py); an ASan report fails the launch with
MemoryError naming the CUDA thread, a UBSan report aborts the process.
"""

import ctypes
import hashlib
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy

HERE = Path(__file__).resolve().parent
HEADER = HERE / "cuda_emu.h"
BUILD_DIR = HERE.parents[1] / "build" / "cuda_emu"

FLAGS = ["-std=c++20", "-O1", "-g", "-fPIC", "-shared", "-Wall", "-Wextra", "-Werror"]
# -O0 under the sanitizers: optimising the instrumented, unrolled kernel templates takes g++
# several times as long (the build, not the run, dominates the sanitized test pass)
SANITIZE_FLAGS = ["-O0", "-fsanitize=address,undefined", "-fsanitize-recover=address",
                  "-fno-sanitize-recover=undefined", "-fno-omit-frame-pointer"]
# for a file whose kernels synchronise a block's threads: one std::thread per CUDA thread
COOPERATIVE_FLAGS = ["-DFC_EMU_COOPERATIVE", "-pthread"]
STATUS = {1: "unknown kernel", 2: "launch configuration out of the hardware limits",
          3: "AddressSanitizer report"}


class EmuBuildError(RuntimeError):
    """g++ rejected the kernel source; the message holds its log."""


def require_kernel_tools(*tools):
    """Skip the calling test when a build tool (g++) is missing, or fail when
    FASTCONV_REQUIRE_KERNEL_CHECKS=1 (CI sets it: the kernel checks must not vanish)."""
    import pytest

    missing = [tool for tool in tools if shutil.which(tool) is None]
    if missing:
        message = f"{', '.join(missing)} not found: the CUDA kernels cannot be emulated"
        if os.environ.get("FASTCONV_REQUIRE_KERNEL_CHECKS") == "1":
            pytest.fail(f"FASTCONV_REQUIRE_KERNEL_CHECKS=1 but {message}")
        pytest.skip(message)


def sanitizing():
    """True when FC_EMU_SANITIZE=1 asks for ASan/UBSan builds."""
    return os.environ.get("FC_EMU_SANITIZE") == "1"


def _include_dirs(options):
    dirs = [opt[2:] for opt in options if opt.startswith("-I")]
    return [Path(d) for d in dirs]


def build_library(code, options, name_expressions, sanitize):
    """Build (or find in the cache) the shared library of one kernel source; return its path."""
    include_dirs = _include_dirs(options)
    flags = FLAGS + (SANITIZE_FLAGS if sanitize else [])
    if "__syncthreads" in code:  # a block's threads must run at once (cuda_emu.h)
        flags += COOPERATIVE_FLAGS
    digest = hashlib.sha256()
    for part in [code, HEADER.read_text(), *name_expressions, *flags, *map(str, include_dirs)]:
        digest.update(part.encode() + b"\0")
    for directory in include_dirs:
        for header in sorted(directory.glob("*.cuh")):
            digest.update(header.read_bytes())
    target = BUILD_DIR / f"{digest.hexdigest()[:24]}.so"
    if target.exists():
        return target
    BUILD_DIR.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=BUILD_DIR) as tmp:
        (Path(tmp) / "kernel.cu").write_text(code)
        entries = "".join(f"    FC_EMU_ENTRY({name})\n" for name in name_expressions)
        shim = Path(tmp) / "shim.cpp"
        shim.write_text(f'#include "kernel.cu"\nFC_EMU_TABLE(\n{entries})\n')
        output = Path(tmp) / "module.so"
        command = (["g++", *flags, "-include", str(HEADER)]
                   + [f"-I{d}" for d in include_dirs] + [str(shim), "-o", str(output)])
        result = subprocess.run(command, capture_output=True, text=True)
        if result.returncode != 0:
            raise EmuBuildError(f"g++ failed to build the emulated kernels:\n{result.stderr}")
        os.replace(output, target)  # atomic: concurrent builders cannot see half a file
    return target


class EmuModule:
    """A compiled kernel file; ``cupy.RawModule(code=, options=, name_expressions=)``'s interface.

    Options other than ``-I<dir>`` (NVRTC flags) do not apply to g++ and are
    ignored. Only the kernels named in ``name_expressions`` can be launched,
    and of those only the ones in ``only`` when it is given (a quicker build).
    ``reversed_order`` runs blocks and threads last to first, so a kernel
    whose result depends on the order threads run in is caught.
    """

    def __init__(self, code, options=(), name_expressions=(), sanitize=None,
                 reversed_order=False, only=None):
        self.name_expressions = tuple(n for n in name_expressions if only is None or n in only)
        self.reversed_order = reversed_order
        self.sanitize = sanitizing() if sanitize is None else sanitize
        self.path = build_library(code, tuple(options), self.name_expressions, self.sanitize)
        self._lib = ctypes.CDLL(str(self.path))
        self._lib.fc_emu_launch.restype = ctypes.c_int
        self._lib.fc_emu_launch.argtypes = [ctypes.c_char_p, ctypes.POINTER(ctypes.c_uint),
                                            ctypes.POINTER(ctypes.c_uint), ctypes.c_int,
                                            ctypes.c_int, ctypes.POINTER(ctypes.c_void_p)]
        self._lib.fc_emu_can_flush_denormals.restype = ctypes.c_int

    def compile(self, log_stream=None):
        """Nothing to do: the module was built when it was created (CuPy compiles lazily)."""

    def get_function(self, name):
        """The kernel ``name`` (one of the name expressions), ready to launch."""
        if name not in self.name_expressions:
            raise ValueError(f"{name!r} is not among this module's name expressions "
                             f"{self.name_expressions}")
        return EmuFunction(self._lib, name, self.reversed_order)


class EmuFunction:
    """One kernel; call it as a CuPy RawKernel: ``f(grid, block, args)``."""

    def __init__(self, lib, name, reversed_order=False):
        self._lib, self.name, self.reversed_order = lib, name, reversed_order
        arity, sizes = ctypes.c_int(), ctypes.POINTER(ctypes.c_size_t)()
        kinds, elements = ctypes.c_char_p(), ctypes.c_char_p()
        lib.fc_emu_describe(name.encode(), ctypes.byref(arity), ctypes.byref(sizes),
                            ctypes.byref(kinds), ctypes.byref(elements))
        self.arity = arity.value
        self.sizes = [sizes[i] for i in range(self.arity)]
        self.kinds = kinds.value.decode()
        self.elements = elements.value.decode()
        # as the GPU under CuPy's -ftz=true: single precision flushes subnormals (cuda_emu.h)
        element_type = name.partition("<")[2].split(",")[0].strip(" >")
        self.flushes_denormals = (bool(lib.fc_emu_can_flush_denormals())
                                  and element_type in ("float", "fc_half"))

    def __call__(self, grid, block, args, shared_mem=0, stream=None):
        if shared_mem:
            raise ValueError("dynamic shared memory is not emulated")
        grid, block = _dim3(grid, "grid"), _dim3(block, "block")
        if len(args) != self.arity:
            raise TypeError(f"{self.name} takes {self.arity} arguments, got {len(args)}")
        keep, pointers = [], (ctypes.c_void_p * self.arity)()
        for i, (arg, kind, element, size) in enumerate(
                zip(args, self.kinds, self.elements, self.sizes)):
            holder = self._marshal(i, arg, kind, element, size)
            keep.append(holder)
            pointers[i] = ctypes.addressof(holder)
        status = self._lib.fc_emu_launch(
            self.name.encode(), (ctypes.c_uint * 3)(*grid), (ctypes.c_uint * 3)(*block),
            int(self.reversed_order), int(self.flushes_denormals), pointers)
        if status == 3:
            raise MemoryError(f"{self.name}: AddressSanitizer reported an invalid access "
                              "(report and failing CUDA thread on stderr)")
        if status:
            raise RuntimeError(f"{self.name} grid={grid} block={block}: "
                               f"{STATUS.get(status, status)}")

    def _marshal(self, i, arg, kind, element, size):
        where = f"{self.name} argument {i}"
        if kind in "pP":
            if not isinstance(arg, numpy.ndarray):
                raise TypeError(f"{where} must be an array (pointer parameter), "
                                f"got {type(arg).__name__}")
            if not arg.flags.c_contiguous:
                raise ValueError(f"{where} is not C-contiguous (strides {arg.strides})")
            if kind == "P" and not arg.flags.writeable:
                raise ValueError(f"{where} is written by the kernel but is read-only")
            if arg.itemsize != size or _element(arg.dtype) != element:
                raise TypeError(f"{where} has dtype {arg.dtype}, the kernel expects "
                                f"{size}-byte {_ELEMENT_NAMES[element]} elements")
            return ctypes.c_void_p(arg.ctypes.data)
        if isinstance(arg, numpy.ndarray) or not isinstance(arg, numpy.generic):
            raise TypeError(f"{where} must be a NumPy scalar of {size} bytes (CuPy would pack "
                            f"a Python {type(arg).__name__} as 8 bytes), got {arg!r}")
        if arg.itemsize != size or (kind == "f") != (arg.dtype.kind == "f"):
            raise TypeError(f"{where} is {arg.dtype}, the kernel expects a {size}-byte "
                            f"{'float' if kind == 'f' else 'integer'}")
        return ctypes.create_string_buffer(arg.tobytes(), size)


_ELEMENT_NAMES = {"f": "floating-point", "i": "integer", "o": "half (binary16 storage)"}


def _element(dtype):
    if dtype.kind == "f":
        return "o" if dtype.itemsize == 2 else "f"
    return "i" if dtype.kind in "iu" else "?"


def _dim3(value, name):
    value = (value,) if isinstance(value, int) else tuple(value)
    if not 1 <= len(value) <= 3 or not all(isinstance(v, int) and v >= 1 for v in value):
        raise ValueError(f"{name} must be 1 to 3 positive ints, got {value!r}")
    return value + (1,) * (3 - len(value))


def kernels_under_test():
    """The kernel sources the emulation tests run: FC_EMU_KERNEL_DIR (a mutant copy, see
    mutants.py) or else the installed package's."""
    from fastconv import _cuda

    override = os.environ.get("FC_EMU_KERNEL_DIR")
    return Path(override) if override else _cuda.kernel_dir()


def emu_launcher(*, block=None, max_blocks=None, reversed_order=False, kernel_dir=None,
                 sanitize=None, poison=True, specialize=True, only=None, capability=90):
    """A fastconv._cuda.Launcher that runs the kernels on the CPU emulator (NumPy arrays).

    Output arrays are poisoned with NaN by default, so an element a kernel
    never writes cannot match the reference by luck. ``specialize=False``
    runs every window on the run-time instantiation; ``only`` builds just
    the name expressions it lists. ``capability`` is the compute capability the
    launcher reports (the emulator runs the sm_80+ tensor-core instructions too).
    """
    from functools import partial

    from fastconv import _cuda

    kernel_dir = kernel_dir or kernels_under_test()
    return _cuda.Launcher(
        numpy, partial(EmuModule, reversed_order=reversed_order, sanitize=sanitize, only=only),
        options=_cuda.compile_options(kernel_dir),
        compile_errors=(EmuBuildError,), kernel_dir=kernel_dir,
        block=block or _cuda.BLOCK, max_blocks=max_blocks or _cuda.MAX_BLOCKS, poison=poison,
        specialize=specialize, capability=lambda: capability)


def prebuild(sanitize=None):
    """Build every (kernel file, dtype) library fastconv uses, two g++ at a time.

    Only builds (a sanitized library cannot be loaded without the ASan
    runtime preloaded); later EmuModules find them in the cache.
    """
    from concurrent.futures import ThreadPoolExecutor

    from fastconv import _cuda

    sanitize = sanitizing() if sanitize is None else sanitize
    directory = kernels_under_test()
    options = _cuda.compile_options(directory)
    jobs = [(_cuda.kernel_source(f, directory), options, tuple(_cuda.name_expressions(f, d)),
             sanitize) for f in _cuda.kernel_files() for d in _cuda.CTYPES]
    with ThreadPoolExecutor(2) as pool:
        return list(pool.map(lambda job: build_library(*job), jobs))
