"""The resizing kernels keep every product and sum rounded on its own, on the GPU too.

The CPU emulator (tests/test_cuda_interpolate.py) runs kernels/interpolate.cu on an x86
CPU, where g++ fuses nothing, and finds the CPU path's bits. On a GPU the compiler fuses
a product followed by a sum into one FMA (rounded once) unless the code says otherwise, and
the bits would differ: the kernels use the _rn intrinsics, never fused. NVRTC compiles the
file here, with the options CuPy adds at run time (tests/test_cuda_compile.py), to PTX for
every dtype: its float arithmetic must be separate mul.rn and add.rn, no fma.
"""

import re

import numpy as np
import pytest

from fastconv import _cuda
from test_cuda_compile import (compile_program, cupy_options, nvrtc,  # noqa: F401 (fixtures)
                               runtime_options)

ARITHMETIC = re.compile(r"\b(?:fma|mad|mul|add|sub)\.[a-z0-9.]*f(?:32|64)\b")


@pytest.mark.parametrize("dtype", list(_cuda.CTYPES), ids=lambda d: np.dtype(d).name)
def test_interpolate_kernels_fuse_no_multiply_add(nvrtc, cupy_options, tmp_path,  # noqa: F811
                                                  dtype):
    options = runtime_options(cupy_options, "compute_90", tmp_path)
    _, lowered, ptx = compile_program(nvrtc, "interpolate.cu",
                                      _cuda.name_expressions("interpolate.cu", dtype), options,
                                      ptx=True)
    ptx = ptx.decode() if isinstance(ptx, bytes) else str(ptx)
    assert len(lowered) == 2 and all(lowered.values())
    found = set(ARITHMETIC.findall(ptx))
    width = 64 if np.dtype(dtype) == np.float64 else 32
    assert found, "no float arithmetic found in the PTX"
    assert all(op.split(".")[0] in ("mul", "add") and ".rn." in op and op.endswith(f"f{width}")
               for op in found), sorted(found)
