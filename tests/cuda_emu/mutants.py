"""Plant known bugs in copies of the kernels and check that the emulation tests catch each.

    python tests/cuda_emu/mutants.py            # about 25 s per mutant on 2 cores

Not part of the test run: run it after changing the kernels or the tests, to
see that the tests still fail on the bugs they are meant to find. Each mutant
is a one-line change to a copy of kernels/, run through the emulation tests
(test_cuda_emulated.py and test_cuda_launcher.py) with FC_EMU_KERNEL_DIR
pointing at the copy. Exit status 1 if any mutant survives.
"""

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
KERNELS = ROOT / "kernels"
TESTS = ["tests/test_cuda_emulated.py", "tests/test_cuda_launcher.py"]

# (file, original text, planted text, what the bug is)
MUTANTS = [
    ("im2col.cu", "(unsigned)h < (unsigned)H", "(unsigned)h <= (unsigned)H",
     "im2col reads one row past the input"),
    ("im2col.cu", "col += L;", "col += L - 1;", "im2col writes the taps one column block short"),
    ("im2col.cu", "(idx_t)(kh * columns.size + kw) * L", "(idx_t)(kh * rows.size + kw) * L",
     "col2im tap index with the kernel height for its width"),
    ("common.cuh", "const int first = o * axis.stride - axis.pad;",
     "const int first = o * axis.stride + axis.pad;", "window start: padding sign"),
    ("common.cuh", "(unsigned)(padded - extent) / axis.stride) + 1;",
     "(unsigned)(padded - extent) / axis.stride);", "covering range starts one window early"),
    ("common.cuh", "(int)((unsigned)padded / axis.stride), (int)out - 1)",
     "(int)((unsigned)padded / axis.stride), (int)out)", "covering range ends one window late"),
    ("common.cuh", "return K ? (K + S - 1) / S : n;", "return K ? K / S : n;",
     "unrolled covering loop one candidate short (3x3/2, 5x5/2)"),
    ("common.cuh", "stride(K ? S : (int)s)", "stride(K ? 1 : (int)s)",
     "unrolled windows use stride 1"),
    ("common.cuh", "} else if (offset % axis.dilation == 0) {",
     "} else if (offset % axis.dilation <= 1) {", "gather keeps offsets between dilated taps"),
    ("common.cuh", "return row * (int)width + col;", "return row * (int)width - col;",
     "in-plane offset sign"),
    ("common.cuh", "const unsigned width = (unsigned)cols,",
     "const unsigned width = (unsigned)rows,", "in-plane index split with the wrong width"),
    ("common.cuh", "for (unsigned pos = blockIdx.x * blockDim.x + threadIdx.x;",
     "for (unsigned pos = threadIdx.x;", "in-plane grid-stride start ignores blockIdx"),
    ("common.cuh", "for (idx_t plane = (idx_t)blockIdx.y * blockDim.y + threadIdx.y;",
     "for (idx_t plane = (idx_t)blockIdx.y * blockDim.y;", "plane loop ignores threadIdx.y"),
    ("pool.cu", "(!best_nan && fc_greater(v, best))", "(!best_nan && !fc_greater(best, v))",
     "max-pool tie goes to the last maximum"),
    ("pool.cu", "(v_nan ? !best_nan :", "(v_nan ? true :", "max-pool picks the last NaN"),
    ("pool.cu", "argmax[o] == kh * columns.size + kw", "argmax[o] == kw * rows.size + kh",
     "max-pool backward decodes the offset transposed"),
    ("pool.cu", "sum / fc_load(divisor[pos])", "sum / fc_load(divisor[ow])",
     "avg-pool divisor of the wrong window"),
    ("common.cuh", "if (rest > 0x1000u || (rest == 0x1000u && (h & 1u))) ++h;",
     "if (rest >= 0x1000u) ++h;", "float16 rounding: ties away from zero"),
    ("common.cuh", "unsigned int e = 113u;", "unsigned int e = 112u;",
     "float16 subnormals decoded at half their value"),
]


def run_mutant(file, old, new):
    """True when the emulation tests fail on the planted bug."""
    with tempfile.TemporaryDirectory() as tmp:
        for path in KERNELS.glob("*.cu*"):
            shutil.copy(path, Path(tmp) / path.name)
        source = (Path(tmp) / file).read_text()
        assert source.count(old) == 1, f"{old!r} is not (once) in {file}"
        (Path(tmp) / file).write_text(source.replace(old, new))
        env = dict(os.environ, FC_EMU_KERNEL_DIR=tmp)
        result = subprocess.run(
            [sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider", *TESTS],
            cwd=ROOT, env=env, capture_output=True, text=True)
        return result.returncode != 0


def main():
    survivors = 0
    for file, old, new, what in MUTANTS:
        caught = run_mutant(file, old, new)
        survivors += not caught
        print(f"{'caught  ' if caught else 'SURVIVED'} {file}: {what}", flush=True)
    print(f"{len(MUTANTS) - survivors} of {len(MUTANTS)} planted bugs caught")
    return 1 if survivors else 0


if __name__ == "__main__":
    sys.exit(main())
