"""Plant known bugs in copies of the kernels and check that the emulation tests catch each.

    python tests/cuda_emu/mutants.py            # about 15 s per mutant on 2 cores

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
    ("im2col.cu", "h >= 0 && h < H", "h >= 0 && h <= H", "im2col reads one row past the input"),
    ("im2col.cu", "oh * SH - PT + kh * DH", "oh * SH + PT + kh * DH", "im2col padding sign"),
    ("common.cuh", "return o < out ? o : -1;", "return o <= out ? o : -1;",
     "gather window end off by one"),
    ("common.cuh", "start % step != 0", "start % step > 1", "gather stride test"),
    ("common.cuh", "cell.col = rest % (int)cols;", "cell.col = rest % (int)rows;",
     "flat index split with the wrong width"),
    ("common.cuh", "return (idx_t)blockIdx.x * blockDim.x + threadIdx.x;",
     "return threadIdx.x;", "grid-stride start ignores blockIdx"),
    ("pool.cu", "v > best ||", "v >= best ||", "max-pool tie goes to the last maximum"),
    ("pool.cu", "(v_nan && !best_nan)", "(v_nan)", "max-pool picks the last NaN"),
    ("pool.cu", "argmax[o] == kh * KW + kw", "argmax[o] == kw * KH + kh",
     "max-pool backward decodes the offset transposed"),
    ("pool.cu", "sum / fc_load(divisor[oh * OW + ow])", "sum / fc_load(divisor[ow])",
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
