"""fastconv's own host time per call of the GPU path, without a GPU.

    python benchmarks/host_time.py [--shape N C H W] [--repeats 200]

Runs ``conv2d_forward`` and ``conv2d_backward`` (3x3, padding 1, float32, C filters) through
the GPU backend on NumPy arrays with the device work replaced by nothing: each kernel launch
is checked by the launcher and then dropped, each cuBLAS call checked by its wrapper and then
dropped. What remains is the Python fastconv runs around the device work (validation,
geometry, workspace plan, launch checks); every device operation of the path is a kernel
or a cuBLAS call, so none is left to NumPy. It prints the median and range of 7 timings of
``--repeats`` calls each. CuPy's own cost per launch, cuBLAS call and allocation (argument packing and
the driver call, a few microseconds each) comes on top on a GPU, and is not measured here.
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


def null_device():
    """Route NumPy arrays to the GPU backend with the kernels and products dropped."""
    launcher = _cuda.Launcher(numpy, _NullModule, options=())
    _backends.backend_for = lambda *arrays: _gpu
    _cuda.default_launcher = lambda: launcher
    gemm.model_gemm = lambda *args, **kwargs: None


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
    args = parser.parse_args(argv)
    null_device()
    rng = numpy.random.default_rng(0)
    x = rng.standard_normal(args.shape).astype(numpy.float32)
    w = rng.standard_normal((args.shape[1], args.shape[1], 3, 3)).astype(numpy.float32)
    b = numpy.zeros(args.shape[1], numpy.float32)
    dout = numpy.ones((args.shape[0], args.shape[1]) + tuple(args.shape[2:]), numpy.float32)

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
