"""Rung 1: every kernel compiles with NVRTC, the compiler cupy.RawModule uses, without a GPU.

Each kernel file is compiled once per dtype instantiation, exactly as the
launcher asks CuPy to (fastconv/_cuda.py's options and name expressions) plus
the options CuPy appends at run time (-ftz=true, -arch,
--device-as-default-execution-space, --pch on NVRTC 12.8+), to cubin for
sm_75, sm_80 and sm_90 and to PTX for compute_90 (what CuPy builds for
devices newer than NVRTC knows). Any non-empty compiler log fails.

Two additions to CuPy's options, neither changing the code generated:
``-Xptxas=--warn-on-spills`` (a register spill then fills the log and fails),
and a ``--pch-dir`` per architecture (one process compiling for several
architectures would otherwise reuse a precompiled header built with other
options, and NVRTC says so in the log). One more compile per architecture
with ``-Xptxas=-v`` lists every kernel's registers and spills at the end of
the test output; spills, or a register count that would make a launch of
fastconv's block size fail, are errors.

NVRTC is called directly (cupy_backends' binding over the nvidia-cuda-nvrtc
wheel): CuPy's own compile helper queries the driver, which needs a GPU.
"""

import os
import re

import numpy as np
import pytest

from cuda_emu.report import summary_lines
from fastconv import _cuda

TARGETS = ["sm_75", "sm_80", "sm_90", "compute_90"]


@pytest.fixture(scope="module")
def nvrtc():
    try:
        from cupy_backends.cuda.libs import nvrtc
        nvrtc.getVersion()
    except Exception as exc:  # ImportError, or libnvrtc missing
        if os.environ.get("FASTCONV_REQUIRE_KERNEL_CHECKS") == "1":
            pytest.fail(f"FASTCONV_REQUIRE_KERNEL_CHECKS=1 but NVRTC is not usable: {exc}")
        pytest.skip(f"NVRTC is not usable here (install the test extra): {exc}")
    return nvrtc


def runtime_options(nvrtc, target, pch_dir):
    """fastconv's options, then what CuPy's RawModule appends (cupy/cuda/compiler.py)."""
    version = nvrtc.getVersion()
    options = _cuda.compile_options(_cuda.kernel_dir(), version)
    options += ("-ftz=true", f"-arch={target}", "--device-as-default-execution-space")
    if tuple(version) >= (12, 8):
        options += ("--pch", f"--pch-dir={pch_dir}")
    return options + ("-Xptxas=--warn-on-spills",)


def compile_program(nvrtc, file, names, options, ptx=False):
    """Compile ``file`` with ``names`` instantiated: (log, lowered names, cubin or PTX)."""
    prog = nvrtc.createProgram(_cuda.kernel_source(file), file, [], [])
    try:
        for name in names:
            nvrtc.addNameExpression(prog, name)
        try:
            nvrtc.compileProgram(prog, list(options))
        except nvrtc.NVRTCError as exc:
            pytest.fail(f"{file} failed to compile with {options}: {exc}\n"
                        f"{nvrtc.getProgramLog(prog)}")
        log = nvrtc.getProgramLog(prog).strip("\x00 \n")
        lowered = {name: nvrtc.getLoweredName(prog, name) for name in names}
        binary = nvrtc.getPTX(prog) if ptx else nvrtc.getCUBIN(prog)
        return log, lowered, binary
    finally:
        nvrtc.destroyProgram(prog)


@pytest.mark.parametrize("target", TARGETS)
@pytest.mark.parametrize("dtype", list(_cuda.CTYPES), ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("file", _cuda.kernel_files())
def test_every_kernel_compiles_with_an_empty_log(nvrtc, pch_dirs, file, dtype, target):
    names = _cuda.name_expressions(file, dtype)
    ptx = target.startswith("compute_")
    log, lowered, binary = compile_program(nvrtc, file, names,
                                           runtime_options(nvrtc, target, pch_dirs[target]), ptx)
    assert log == "", f"{file} ({np.dtype(dtype).name}, {target}) compiler log:\n{log}"
    assert all(lowered.values()) and len(binary) > 0


def test_float_max_pool_compares_survive_flush_to_zero(nvrtc, pch_dirs):
    """Under CuPy's -ftz=true a float comparison (setp.gt.ftz.f32) sees subnormals as
    zero; max pooling must order them as the CPU path does, so it compares integer keys
    (kernels/common.cuh, fc_greater). No ordered float comparison may be left in pool.cu."""
    target = "compute_90"
    _, _, ptx = compile_program(nvrtc, "pool.cu", _cuda.name_expressions("pool.cu", np.float32),
                                runtime_options(nvrtc, target, pch_dirs[target]), ptx=True)
    ptx = ptx.decode() if isinstance(ptx, bytes) else str(ptx)
    assert "max_pool_forward_kernel" in ptx
    ordered = re.findall(r"setp\.(?:gt|lt|ge|le)u?\.ftz\.f32", ptx)
    assert not ordered, f"float comparisons under -ftz=true: {sorted(set(ordered))}"


@pytest.fixture(scope="module")
def pch_dirs(tmp_path_factory):
    """One precompiled-header directory per architecture, as one process per GPU kind."""
    return {target: tmp_path_factory.mktemp(f"pch-{target}") for target in TARGETS}


PTXAS_ENTRY = re.compile(r"Compiling entry function '(\w+)' for '(sm_\d+)'")
PTXAS_SPILLS = re.compile(r"(\d+) bytes spill stores, (\d+) bytes spill loads")
PTXAS_REGISTERS = re.compile(r"Used (\d+) registers")


@pytest.mark.parametrize("arch", [t for t in TARGETS if t.startswith("sm_")])
def test_register_counts_and_spills(nvrtc, pch_dirs, arch, request):
    rows = {}  # name expression -> (registers, spilled bytes)
    pch_dir = pch_dirs[arch] / "verbose"  # other options: another header cache
    pch_dir.mkdir(exist_ok=True)
    for file in _cuda.kernel_files():
        names = [n for dtype in _cuda.CTYPES for n in _cuda.name_expressions(file, dtype)]
        options = runtime_options(nvrtc, arch, pch_dir) + ("-Xptxas=-v",)
        log, lowered, _ = compile_program(nvrtc, file, names, options)
        by_symbol = {symbol: name for name, symbol in lowered.items()}
        name = spills = None
        for line in log.splitlines():
            if match := PTXAS_ENTRY.search(line):
                name = by_symbol[match.group(1)]
            elif match := PTXAS_SPILLS.search(line):
                spills = int(match.group(1)) + int(match.group(2))
            elif match := PTXAS_REGISTERS.search(line):
                rows[name] = (int(match.group(1)), spills)
    expected = {n for file in _cuda.kernel_files() for dtype in _cuda.CTYPES
                for n in _cuda.name_expressions(file, dtype)}
    assert set(rows) == expected, f"ptxas reported {sorted(rows)}"
    listing = ", ".join(f"{name} {regs}" for name, (regs, _) in sorted(rows.items()))
    summary_lines(request.config).append(f"NVRTC {arch} registers: {listing}")
    for name, (registers, spills) in rows.items():
        assert spills == 0, f"{name} spills {spills} bytes on {arch}"
        assert registers * _cuda.BLOCK <= 65536, \
            f"{name} needs {registers} registers: a {_cuda.BLOCK}-thread block cannot launch"
