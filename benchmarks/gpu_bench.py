"""The GPU benchmark: ``python benchmarks/gpu_bench.py [fastconv bench options]``.

fastconv's CUDA path against PyTorch/cuDNN (when installed) on the standard conv and pool
shapes, float32 and float64, float32 convolutions with TF32 off and on on both sides:
CUDA events around each pass after a synchronisation, warm-up excluded, the kernels'
NVRTC compile timed on its own line before any case, results checked against PyTorch
float64 before timing. It is ``fastconv bench --device gpu`` with these defaults; extra
arguments are passed on (e.g. ``--json gpu.json``). On a machine without a usable GPU it
exits with status 2 and says why.
"""

import sys

from fastconv.cli import main

if __name__ == "__main__":
    sys.exit(main(["bench", "--device", "gpu", "--ops", "conv2d", "max_pool2d", "avg_pool2d",
                   "--dtype", "float32", "float64", *sys.argv[1:]]))
