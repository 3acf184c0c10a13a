"""fastconv's own host time per call of the GPU path, without a GPU.

    python benchmarks/host_time.py [--arrays numpy|cupy] [--shape N C H W] [--repeats 200]
                                   [--tf32]

Runs ``conv2d_forward`` and ``conv2d_backward`` (3x3, padding 1, float32, C filters) through
the GPU backend with the device work replaced by nothing: each kernel launch is checked by
the launcher and then dropped, each cuBLAS call checked by its wrapper and then dropped.
What remains is the Python fastconv runs around the device work (validation, geometry,
workspace plan, launch checks); every device operation of the path is a kernel or a cuBLAS
call, so none is left to the array module. It prints the median and range of 7 timings of
``--repeats`` calls each.

``--arrays numpy`` (the default) runs the path on NumPy arrays. ``--arrays cupy`` runs it on
CuPy arrays whose memory is host memory (CuPy's allocator replaced, the device fixed at 0),
which needs CuPy installed but no GPU or driver: it adds what CuPy's arrays cost the host
(a view, a reshape, an allocation through CuPy's allocator interface, a flags query), which
NumPy's cost several times less, and runs fastconv's cuBLAS wrapper against a cuBLAS whose
calls do nothing. What neither measures is CuPy's cost per kernel launch (argument packing
and the driver call, a few microseconds each), cuBLAS's own host work per call, and a
device allocation from CuPy's pool in place of the host blocks here.

``--tf32`` allows TF32 and has the launcher report an sm_90 GPU: the path of TF32 tensor
cores, the implicit products' three launches and no columns.
"""

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import fastconv.functional as F  # noqa: E402
from fastconv import _backends, _cuda, _gpu  # noqa: E402
from fastconv._gpu import gemm  # noqa: E402


class _NullModule:
    """A ``cupy.RawModule`` whose kernels do nothing."""

    def __init__(self, code, options, name_expressions):
        pass

    def compile(self):
        pass

    def get_function(self, name):
        return lambda grid, block, args: None


# the compute capability the null devices report: sm_90's, TF32 tensor cores and all
CAPABILITY = 90


def null_device():
    """Route NumPy arrays to the GPU backend with the kernels and products dropped."""
    launcher = _cuda.Launcher(numpy, _NullModule, options=(), capability=lambda: CAPABILITY)
    _backends.backend_for = lambda *arrays: _gpu
    _cuda.default_launcher = lambda: launcher
    gemm.model_gemm = lambda *args, **kwargs: None


class _NullCublas:
    """CuPy's cublas module with calls that do nothing: fastconv's own cuBLAS wrapper runs
    (its enums, host scalars, handle modes), cuBLAS does not."""

    CUBLAS_OP_N, CUBLAS_OP_T, CUBLAS_POINTER_MODE_HOST, CUBLAS_GEMM_DEFAULT = 0, 1, 0, -1
    CUBLAS_COMPUTE_32F, CUBLAS_COMPUTE_32F_FAST_TF32, CUBLAS_COMPUTE_64F = 68, 77, 70

    @staticmethod
    def getPointerMode(handle):
        return 1

    @staticmethod
    def getMathMode(handle):
        return 0

    @staticmethod
    def setPointerMode(handle, mode):
        pass

    @staticmethod
    def setMathMode(handle, mode):
        pass

    @staticmethod
    def gemmStridedBatchedEx(*args):
        pass


class _NullDevice:
    """CuPy's device module, for its cuBLAS handle."""

    @staticmethod
    def get_cublas_handle():
        return 1

    @staticmethod
    def get_device_id():
        return 0


class _NullRuntime:
    """CuPy's runtime module, for its data type enums."""

    CUDA_R_32F, CUDA_R_64F, CUDA_R_16F = 0, 1, 2


class _HostBlock:
    """A block of host memory lent to one CuPy array; back to its pool when the array goes."""

    __slots__ = ("free", "nbytes", "block")

    def __init__(self, free, nbytes):
        self.free, self.nbytes = free, nbytes
        blocks = free.get(nbytes)
        if blocks:
            self.block = blocks.pop()
        else:
            array = numpy.empty(nbytes, numpy.uint8)
            self.block = (array, array.ctypes.data)

    def __del__(self):
        self.free.setdefault(self.nbytes, []).append(self.block)


class _HostPool:
    """CuPy's allocator interface served from host memory, reused by size as CuPy's pool
    reuses device memory (a fresh block of tens of MiB would cost the page faults a device
    allocation does not): no device is touched."""

    def __init__(self):
        import cupy

        self.memory, self.free = cupy.cuda.memory, {}

    def __call__(self, nbytes):
        lent = _HostBlock(self.free, max(nbytes, 1))
        memory = self.memory.UnownedMemory(lent.block[1], lent.nbytes, lent, device_id=0)
        return self.memory.MemoryPointer(memory, 0)


def null_cupy_device(largest_plane):
    """CuPy arrays in host memory through the GPU backend, the kernels and products dropped;
    returns the cupy module. The bias's vector of ones (``largest_plane`` long) is made
    empty, since filling it would launch a kernel."""
    import cupy

    from fastconv._gpu import bias

    cupy.cuda.set_allocator(_HostPool())
    launcher = _cuda.Launcher(cupy, _NullModule, options=(), device_id=lambda: 0,
                              device_of=lambda array: array.device.id,
                              capability=lambda: CAPABILITY)
    _cuda.default_launcher = lambda: launcher
    gemm._cupy_libraries = lambda: (_NullCublas, _NullDevice, _NullRuntime)
    bias._ones[(cupy, 0, numpy.dtype(numpy.float32))] = cupy.empty(largest_plane, numpy.float32)
    return cupy


def median_microseconds(step, repeats):
    """(median, low, high) of 7 timings of ``repeats`` calls, in microseconds per call."""
    for _ in range(repeats // 4):
        step()
    times = []
    for _ in range(7):
        start = time.perf_counter()
        for _ in range(repeats):
            step()
        times.append((time.perf_counter() - start) / repeats * 1e6)
    return statistics.median(times), min(times), max(times)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shape", type=int, nargs=4, default=(1, 8, 8, 8),
                        metavar=("N", "C", "H", "W"))
    parser.add_argument("--repeats", type=int, default=200)
    parser.add_argument("--arrays", choices=("numpy", "cupy"), default="numpy")
    parser.add_argument("--tf32", action="store_true", help="TF32 allowed")
    args = parser.parse_args(argv)
    import fastconv

    fastconv.set_tf32(args.tf32)
    if args.arrays == "cupy":
        xp = null_cupy_device(args.shape[2] * args.shape[3])
    else:
        null_device()
        xp = numpy
    rng = numpy.random.default_rng(0)
    x = rng.standard_normal(args.shape).astype(numpy.float32)
    w = rng.standard_normal((args.shape[1], args.shape[1], 3, 3)).astype(numpy.float32)
    b = numpy.zeros(args.shape[1], numpy.float32)
    dout = numpy.ones((args.shape[0], args.shape[1]) + tuple(args.shape[2:]), numpy.float32)
    if xp is not numpy:  # values are never read: empty arrays of the same shapes
        x, w, b, dout = (xp.empty(a.shape, a.dtype) for a in (x, w, b, dout))

    def forward():
        return F.conv2d_forward(x, w, b, padding=1)

    def forward_backward():
        F.conv2d_backward(dout, forward()[1])

    for name, step in (("forward", forward), ("forward+backward", forward_backward)):
        median, low, high = median_microseconds(step, args.repeats)
        print(f"{name:17} {tuple(args.shape)}: {median:6.1f} us per call "
              f"(range {low:.1f}-{high:.1f})")


if __name__ == "__main__":
    main()
