"""Plant known bugs in copies of the kernels and check that the emulation tests catch each.

    python tests/cuda_emu/mutants.py               # every mutant, about 25 s each on 2 cores
    python tests/cuda_emu/mutants.py pool.cu ...   # the mutants of these files only

Not part of the test run: run it after changing the kernels or the tests, to
see that the tests still fail on the bugs they are meant to find. Each mutant
is a one-line change to a copy of kernels/, run through the emulation tests of
its file (:data:`TESTS`; a change to common.cuh through all of them) with
FC_EMU_KERNEL_DIR pointing at the copy. Exit status 1 if any mutant survives.
"""

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
KERNELS = ROOT / "kernels"
# The emulation tests that run each kernel file
TESTS = {
    "im2col.cu": ["tests/test_cuda_emulated.py", "tests/test_cuda_launcher.py"],
    "pool.cu": ["tests/test_cuda_emulated.py", "tests/test_cuda_launcher.py"],
    "depthwise.cu": ["tests/test_cuda_depthwise.py"],
}


def tests_of(file):
    """The emulation tests a mutant of ``file`` runs through (common.cuh: every kernel file's)."""
    if file in TESTS:
        return TESTS[file]
    return sorted({test for tests in TESTS.values() for test in tests})


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
    ("depthwise.cu", "const int f = (int)(nf - n * F);", "const int f = (int)(nf - n * C);",
     "depthwise forward: a plane's filter from the channel count"),
    ("depthwise.cu", "x + (n * C + f / (int)M) * H * W;\n        const T* filter",
     "x + (n * C + f % (int)M) * H * W;\n        const T* filter",
     "depthwise forward: filter f reads channel f % M"),
    ("depthwise.cu", "filter[kh * columns.size + kw]);\n            });\n        });\n        if",
     "filter[kw * rows.size + kh]);\n            });\n        });\n        if",
     "depthwise forward: weights read transposed"),
    ("depthwise.cu", "sum += fc_load(b[f]);", "sum += fc_load(b[f / (int)M]);",
     "depthwise forward: the channel's bias for each of its filters"),
    ("depthwise.cu", "dout + nc * M * OH * OW;", "dout + nc * OH * OW;",
     "depthwise dx: dout plane of the channel, not of its first filter"),
    ("depthwise.cu", "w + (int)(nc % C) * (int)M * taps;", "w + (int)(nc % C) * taps;",
     "depthwise dx: weights of filter c, not c*M"),
    ("depthwise.cu", "grad += OH * OW, filter += taps)", "grad += OH * OW, filter += 1)",
     "depthwise dx: the next filter's weights one tap on"),
    ("depthwise.cu", "(int)(((unsigned)-start + axis.stride - 1) / axis.stride);",
     "(int)(((unsigned)-start) / axis.stride);", "depthwise dw: a tap's span starts early"),
    ("depthwise.cu", "((unsigned)end - 1) / axis.stride) + 1, (int)out);",
     "((unsigned)end - 1) / axis.stride), (int)out);", "depthwise dw: a tap's span ends short"),
    ("depthwise.cu", "const int kh = tap / columns.size,", "const int kh = tap / rows.size,",
     "depthwise dw: a tap's row from the kernel height"),
    ("depthwise.cu", "for (int o = 0; o < (int)(OH * OW); ++o)",
     "for (int o = 1; o < (int)(OH * OW); ++o)", "depthwise db: the first position left out"),
    ("depthwise.cu", "*slot = accumulate ? *slot + sum : sum;", "*slot = sum;",
     "depthwise dw: a later chunk overwrites the earlier chunks' partials"),
    ("depthwise.cu", "partials + n * F * (taps + 1) + pos;", "partials + n * F * taps + pos;",
     "depthwise dw: an image's partials of the wrong size"),
    ("depthwise.cu", "for (idx_t n = 0; n < images; ++n)", "for (idx_t n = 1; n < images; ++n)",
     "depthwise dw: the sum over the images skips the first"),
    ("depthwise.cu", "for (idx_t n = 0; n < images; ++n) sum += partials[n * slots + pos];",
     "for (idx_t n = images; n-- > 0;) sum += partials[n * slots + pos];",
     "depthwise dw: the images summed last to first (same terms, another order)"),
    ("depthwise.cu", "dw[f * (int)taps + tap]", "dw[tap * (int)F + f]",
     "depthwise dw: stored transposed"),
    ("depthwise.cu", "} else if (has_bias) {", "} else {", "depthwise db: written without a bias"),
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
            [sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider",
             *tests_of(file)],
            cwd=ROOT, env=env, capture_output=True, text=True)
        return result.returncode != 0


def main(files=()):
    """Run the mutants of ``files`` (every mutant when empty); 1 if any survives."""
    unknown = set(files) - {file for file, *_ in MUTANTS}
    if unknown:
        sys.exit(f"no mutants for {', '.join(sorted(unknown))}")
    chosen = [mutant for mutant in MUTANTS if not files or mutant[0] in files]
    survivors = 0
    for file, old, new, what in chosen:
        caught = run_mutant(file, old, new)
        survivors += not caught
        print(f"{'caught  ' if caught else 'SURVIVED'} {file}: {what}", flush=True)
    print(f"{len(chosen) - survivors} of {len(chosen)} planted bugs caught")
    return 1 if survivors else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
