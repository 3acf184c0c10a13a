"""Rung 2, under sanitizers: the emulation tests again with AddressSanitizer and UBSan.

The kernels are rebuilt with -fsanitize=address,undefined and the emulation
test files run in a pytest subprocess with the ASan runtime preloaded (so
NumPy's buffers get redzones too). An ASan report fails the launch with
MemoryError and names the CUDA thread; a UBSan report aborts. Either makes
the subprocess, and so this test, fail. Planted bugs in copies of the
kernels show that the sanitizers are really on.
"""

import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from cuda_emu.emu import prebuild, require_kernel_tools, sanitizing
from cuda_emu.report import summary_lines
from fastconv import _cuda

TESTS = Path(__file__).resolve().parent
ROOT = TESTS.parent
EMULATION_TESTS = ["tests/test_cuda_emulated.py", "tests/test_cuda_launcher.py",
                   "tests/test_cuda_depthwise.py", "tests/test_cuda_vol2col.py",
                   "tests/test_cuda_pool3d.py", "tests/test_cuda_unpool.py",
                   "tests/test_cuda_interpolate.py", "tests/test_cuda_conv_gemm.py",
                   "tests/test_cuda_conv_gemm_tf32.py", "tests/test_cuda_weight_sum.py"]

pytestmark = pytest.mark.skipif(sanitizing(), reason="this is the sanitizer pass itself")


@pytest.fixture(scope="module")
def sanitizer_env():
    """The environment of a sanitized run: ASan preloaded, reports recoverable and complete."""
    require_kernel_tools("g++")
    libasan = subprocess.run(["g++", "-print-file-name=libasan.so"],
                             capture_output=True, text=True).stdout.strip()
    if not os.path.isabs(libasan):
        pytest.skip("g++ has no AddressSanitizer runtime (libasan)")
    prebuild(sanitize=True)
    return dict(os.environ, FC_EMU_SANITIZE="1", LD_PRELOAD=libasan,
                ASAN_OPTIONS="detect_leaks=0:halt_on_error=0:suppress_equal_pcs=0",
                UBSAN_OPTIONS="print_stacktrace=1")


def run_sanitized(env, args, timeout=900):
    result = subprocess.run([sys.executable, *args], cwd=ROOT, env=env, capture_output=True,
                            text=True, timeout=timeout)
    return result.returncode, result.stdout + result.stderr


def test_emulation_tests_pass_under_asan_and_ubsan(sanitizer_env, request):
    code, output = run_sanitized(sanitizer_env, [
        "-m", "pytest", "-q", "-p", "no:cacheprovider", "--capture=sys", *EMULATION_TESTS])
    assert code == 0, output[-6000:]
    for report in ("ERROR: AddressSanitizer", "runtime error:"):
        assert report not in output, output[-6000:]
    # every emulation file's case count, as the sanitized run printed it
    lines = [line for line in output.splitlines() if "CUDA emulation under ASan" in line]
    assert lines, output[-6000:]
    summary_lines(request.config).extend(lines)


def planted_copy(tmp_path, file, old, new):
    """A copy of the kernel sources with one bug planted in ``file``."""
    for path in _cuda.kernel_dir().glob("*.cu*"):
        shutil.copy(path, tmp_path / path.name)
    source = (tmp_path / file).read_text()
    assert source.count(old) == 1, f"the text to mutate is not in {file}"
    (tmp_path / file).write_text(source.replace(old, new))
    return tmp_path


LAUNCH = """
    import sys
    import numpy as np
    sys.path.insert(0, {tests!r})
    from pathlib import Path
    from cuda_emu.emu import emu_launcher
    from fastconv import _cuda
    from fastconv.im2col import window_geometry
    launcher = emu_launcher(kernel_dir=Path({kernels!r}), only={only!r})
"""


def test_planted_out_of_bounds_read_is_caught(sanitizer_env, tmp_path):
    """im2col with ``h <= H``: the bottom padding row reads one row past the input."""
    kernels = planted_copy(tmp_path, "im2col.cu", "(unsigned)h < (unsigned)H",
                           "(unsigned)h <= (unsigned)H")
    script = textwrap.dedent(LAUNCH + """
    x = np.ones((1, 1, 4, 4), np.float32)
    geometry = window_geometry(x.shape, 3, 1, 1, 1)
    try:
        _cuda.im2col_into(x, geometry, launcher.empty((1, 1, 3, 3, 4, 4), np.float32), launcher)
    except MemoryError as exc:
        print("launch failed:", exc)
    """).format(tests=str(TESTS), kernels=str(kernels), only=["im2col_kernel<float, 3, 1>"])
    code, output = run_sanitized(sanitizer_env, ["-c", script])
    assert code == 0, output[-6000:]
    assert "ERROR: AddressSanitizer: heap-buffer-overflow" in output, output[-6000:]
    assert "im2col_kernel" in output and "failing CUDA thread blockIdx=" in output, output
    assert "launch failed: im2col_kernel<float, 3, 1>: AddressSanitizer reported" in output, \
        output


def test_planted_division_by_zero_is_caught(sanitizer_env, tmp_path):
    """col2im whose covering range divides by (SH - 1): UBSan must stop the run."""
    kernels = planted_copy(tmp_path, "common.cuh", "(int)((unsigned)padded / axis.stride)",
                           "(int)((unsigned)padded / (axis.stride - 1))")
    script = textwrap.dedent(LAUNCH + """
    cols = np.ones((1, 1, 1, 1, 2, 2), np.float32)
    geometry = window_geometry((1, 1, 2, 2), 1, 1, 0, 1)
    _cuda.col2im_into(cols, geometry, launcher.empty((1, 1, 2, 2), np.float32), launcher)
    print("no report")
    """).format(tests=str(TESTS), kernels=str(kernels), only=["col2im_kernel<float, 0, 0>"])
    code, output = run_sanitized(sanitizer_env, ["-c", script])
    assert code != 0 and "no report" not in output, output[-6000:]
    assert "runtime error: division by zero" in output, output[-6000:]
