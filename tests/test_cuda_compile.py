"""Rung 1: every kernel compiles with NVRTC, the compiler cupy.RawModule uses, without a GPU.

Each kernel file is compiled once per dtype, with every template instantiation
(the run-time window and the unrolled ones), exactly as the launcher asks CuPy
to (fastconv/_cuda.py's options and name expressions), with the options CuPy
compiles with at run time: its include paths around fastconv's options
(CuPy's own ``assemble_cupy_compiler_options``), then -ftz=true, -arch and
--device-as-default-execution-space, and --pch only where CuPy would add it
(CuPy 14.1+ with ``CUPY_NVRTC_USE_PCH=1`` on NVRTC 12.8+: set it to check that
mode too), to cubin for sm_75, sm_80 and sm_90 and to PTX for compute_90 (what
CuPy builds for devices newer than NVRTC knows). Any line in the compiler log
fails, but for the resource report ``-Xptxas=-v`` asks for.

More additions to CuPy's options, none changing the code generated:
``-Xptxas=--warn-on-spills`` (a register spill then fills the log and fails),
and, with --pch, a ``--pch-dir`` per architecture (one process compiling for
several architectures would otherwise reuse a precompiled header built with
other options, and NVRTC says so in the log). The verbose report lists every
kernel's registers and spills at the end of the test output; spills, or a
register count that would make a launch of fastconv's block size fail, are
errors. The sm_90 cubins are disassembled (nvdisasm, tests/cuda_emu/sass.py)
and each instantiation's SASS instruction count is held to the budget in
tests/data/sass_budget.json.

NVRTC is called directly (cupy_backends' binding over the nvidia-cuda-nvrtc
wheel): CuPy's own compile helper queries the driver, which needs a GPU.
"""

import collections
import json
import os
import re
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

from cuda_emu import sass
from cuda_emu.report import summary_lines
from fastconv import _cuda

TARGETS = ["sm_75", "sm_80", "sm_90", "compute_90"]
BUDGET = Path(__file__).resolve().parent / "data" / "sass_budget.json"
# ptxas's answer to -Xptxas=-v: the only log lines a clean compile may have
RESOURCE_REPORT = re.compile(r"^ptxas\s+(info\s*:|\.\s+\d+ bytes stack frame, \d+ bytes spill)")


def _required(what, exc):
    if os.environ.get("FASTCONV_REQUIRE_KERNEL_CHECKS") == "1":
        pytest.fail(f"FASTCONV_REQUIRE_KERNEL_CHECKS=1 but {what} is not usable: {exc}")
    pytest.skip(f"{what} is not usable here (install the test extra): {exc}")


@pytest.fixture(scope="module")
def nvrtc():
    try:
        from cupy_backends.cuda.libs import nvrtc
        nvrtc.getVersion()
    except Exception as exc:  # ImportError, or libnvrtc missing
        _required("NVRTC", exc)
    return nvrtc


@pytest.fixture(scope="module")
def cupy_options(nvrtc):
    """fastconv's options as CuPy's RawModule hands them to NVRTC, but for what
    cupy/cuda/compiler.py appends: ``(options, whether it appends --pch)``."""
    version = tuple(nvrtc.getVersion())
    try:
        from cupy._core import core
        from cupy.cuda import compiler
        options = core.assemble_cupy_compiler_options(
            _cuda.compile_options(_cuda.kernel_dir(), version))
    except Exception as exc:  # ImportError, or CuPy finds no CUDA headers
        _required("CuPy's compiler options", exc)
    # CuPy 14.1+ reads CUPY_NVRTC_USE_PCH into _use_pch; 13.x and 14.0.x have neither.
    return options, getattr(compiler, "_use_pch", False) and version >= (12, 8)


def runtime_options(cupy_options, target, pch_dir):
    """What NVRTC gets from CuPy's RawModule for ``target``, and the spill warning."""
    options, use_pch = cupy_options
    options += ("-ftz=true", f"-arch={target}", "--device-as-default-execution-space")
    if use_pch:
        options += ("--pch", f"--pch-dir={pch_dir}")
    return options + ("-Xptxas=--warn-on-spills",)


def compile_program(nvrtc, file, names, options, ptx=False):
    """Compile ``file`` with ``names`` instantiated: (log, lowered names, cubin or PTX)."""
    try:
        return sass.compile_program(nvrtc, _cuda.kernel_source(file), file, names, options, ptx)
    except RuntimeError as exc:
        pytest.fail(str(exc))


@pytest.fixture(scope="module")
def pch_dirs(tmp_path_factory):
    """One precompiled-header directory per architecture, as one process per GPU kind
    (used only where CuPy adds --pch)."""
    return {target: tmp_path_factory.mktemp(f"pch-{target}") for target in TARGETS}


@pytest.fixture(scope="module")
def compiled(nvrtc, cupy_options, pch_dirs):
    """{(file, dtype, target): (log, lowered, binary)}, compiled two at a time; the cubin
    targets with ``-Xptxas=-v`` (registers and spills in the log)."""
    def compile_one(key):
        file, dtype, target = key
        ptx = target.startswith("compute_")
        options = runtime_options(cupy_options, target, pch_dirs[target])
        return compile_program(nvrtc, file, _cuda.name_expressions(file, dtype),
                               options if ptx else options + ("-Xptxas=-v",), ptx)

    keys = [(file, dtype, target) for file in _cuda.kernel_files() for dtype in _cuda.CTYPES
            for target in TARGETS]
    with ThreadPoolExecutor(2) as pool:  # NVRTC releases the GIL while it compiles
        return dict(zip(keys, pool.map(compile_one, keys)))


@pytest.mark.parametrize("target", TARGETS)
@pytest.mark.parametrize("dtype", list(_cuda.CTYPES), ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("file", _cuda.kernel_files())
def test_every_kernel_compiles_with_an_empty_log(compiled, file, dtype, target):
    log, lowered, binary = compiled[file, dtype, target]
    messages = "\n".join(line for line in log.splitlines() if not RESOURCE_REPORT.match(line))
    assert messages == "", f"{file} ({np.dtype(dtype).name}, {target}) compiler log:\n{messages}"
    assert all(lowered.values()) and len(binary) > 0
    assert set(lowered) == set(_cuda.name_expressions(file, dtype))


def test_float_max_pool_compares_survive_flush_to_zero(compiled):
    """Under CuPy's -ftz=true a float comparison (setp.gt.ftz.f32) sees subnormals as
    zero; max pooling must order them as the CPU path does, so it compares integer keys
    (kernels/common.cuh, fc_greater). No ordered float comparison may be left in pool.cu,
    in any instantiation."""
    _, _, ptx = compiled["pool.cu", np.dtype(np.float32), "compute_90"]
    ptx = ptx.decode() if isinstance(ptx, bytes) else str(ptx)
    assert ptx.count(".entry _Z23max_pool_forward_kernel") == 1 + len(_cuda.WINDOWS["pool.cu"])
    ordered = re.findall(r"setp\.(?:gt|lt|ge|le)u?\.ftz\.f32", ptx)
    assert not ordered, f"float comparisons under -ftz=true: {sorted(set(ordered))}"


# The kernels that sum in double and round once, promising the CPU path's bits
CPU_BITS_SUMS = {"pool.cu": ("max_pool_backward_kernel",),
                 "pool3d.cu": ("max_pool3d_backward_kernel",),
                 "unpool.cu": ("max_unpool_gather_kernel", "adaptive_max_gather_kernel")}
FLUSHING_CVT = re.compile(r"cvt(?:\.\w+)*\.ftz(?:\.\w+)*\.f(?:32\.f64|64\.f32)\b")


@pytest.mark.parametrize("dtype", list(_cuda.CTYPES), ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("file", sorted(CPU_BITS_SUMS))
def test_double_sums_convert_float_subnormals_under_flush_to_zero(compiled, cupy_options,
                                                                   pch_dirs, file, dtype):
    """Under CuPy's -ftz=true NVRTC emits a float <-> double cast (and __double2float_rn) as
    cvt.ftz.f64.f32 or cvt.rn.ftz.f32.f64, which flush a float subnormal read or produced to
    zero (ptxas adds an FMUL.FTZ by 1 before the widening F2F, a compare and select after
    the narrowing one), where the CPU path's float64 bincount keeps it. The gathers that
    promise its bits convert through inline PTX without .ftz (kernels/common.cuh, fc_widen
    and fc_narrow): no cvt.ftz between f32 and f64 may be left in any instantiation, and
    the float terms must be widened and the float32 sums narrowed by the plain cvt."""
    assert "-ftz=true" in runtime_options(cupy_options, "compute_90", pch_dirs["compute_90"])
    assert all(FLUSHING_CVT.fullmatch(cvt) for cvt in ("cvt.rn.ftz.f32.f64", "cvt.ftz.f64.f32"))
    _, lowered, ptx = compiled[file, np.dtype(dtype), "compute_90"]
    ptx = ptx.decode() if isinstance(ptx, bytes) else str(ptx)
    entries = dict(re.findall(r"\.entry\s+(\w+)\s*\((.*?)\n\}", ptx, re.DOTALL))
    checked = [name for name in lowered if name.partition("<")[0] in CPU_BITS_SUMS[file]]
    assert len(checked) >= len(CPU_BITS_SUMS[file]), sorted(lowered)
    for name in checked:
        body = entries[lowered[name]]
        flushing = FLUSHING_CVT.findall(body)
        assert not flushing, f"{name}: {sorted(set(flushing))} under -ftz=true"
        if np.dtype(dtype) != np.float64:
            assert re.search(r"cvt\.f64\.f32\s", body), f"{name}: no cvt.f64.f32"
        if np.dtype(dtype) == np.float32:
            assert re.search(r"cvt\.rn\.f32\.f64\s", body), f"{name}: no cvt.rn.f32.f64"


@pytest.mark.parametrize("arch", ["sm_75", "sm_80", "sm_90"])
def test_the_tf32_kernels_run_on_the_tensor_cores_from_sm_80_and_trap_before(compiled,
                                                                            nvdisasm, arch):
    """The TF32 kernels' (the convolution's and the weight gradient's) products are
    HMMA.1688.F32.TF32 on sm_80 and sm_90, their operands rounded by cvt.rna.tf32.f32
    (common.cuh's fc_mma_tf32 and fc_tf32); on sm_75, which has neither, their
    instantiations trap (the launcher refuses them there). The CUDA cores' kernel uses
    neither."""
    _, lowered, cubin = compiled["conv_gemm.cu", np.dtype(np.float32), arch]
    disassembly = sass.disassemble(cubin, nvdisasm)
    tensor = [name for name in lowered if "_tf32_kernel" in name]
    mma = re.findall(r"\bHMMA[\w.]*", disassembly)
    if arch == "sm_75":
        assert not mma and "BPT.TRAP" in disassembly
    else:  # one reduction step per instantiation: 2 x 8 mma per warp
        assert mma == ["HMMA.1688.F32.TF32"] * 16 * len(tensor), sorted(set(mma))
    _, lowered, ptx = compiled["conv_gemm.cu", np.dtype(np.float32), "compute_90"]
    ptx = ptx.decode() if isinstance(ptx, bytes) else str(ptx)
    entries = dict(re.findall(r"\.entry\s+(\w+)\s*\((.*?)\n\}", ptx, re.DOTALL))
    for name, symbol in lowered.items():
        tensor = "_tf32_kernel" in name
        assert ("mma.sync.aligned.m16n8k8.row.col.f32.tf32.tf32.f32" in entries[symbol]) == tensor
        assert ("cvt.rna.tf32.f32" in entries[symbol]) == tensor, name


@pytest.mark.parametrize("arch", [t for t in TARGETS if t.startswith("sm_")])
def test_register_counts_and_spills(compiled, arch, request):
    rows = {}  # name expression -> (registers, spilled bytes)
    for file in _cuda.kernel_files():
        for dtype in _cuda.CTYPES:
            log, lowered, _ = compiled[file, dtype, arch]
            rows.update(sass.ptxas_resources(log, {s: n for n, s in lowered.items()}))
    expected = {n for file in _cuda.kernel_files() for dtype in _cuda.CTYPES
                for n in _cuda.name_expressions(file, dtype)}
    assert set(rows) == expected, f"ptxas reported {sorted(rows)}"
    by_kernel = collections.defaultdict(list)
    for name, (registers, _) in rows.items():
        by_kernel[name.partition("<")[0]].append(registers)
    listing = ", ".join(f"{kernel} {min(r)}-{max(r)}" for kernel, r in by_kernel.items())
    summary_lines(request.config).append(
        f"NVRTC {arch} registers (fewest-most over dtypes and windows): {listing}")
    for name, (registers, spills) in rows.items():
        assert spills == 0, f"{name} spills {spills} bytes on {arch}"
        # a tiled kernel's block is its tile's threads, every other kernel's BLOCK
        threads = _cuda.TILES.get(name.partition("<")[0], (_cuda.BLOCK,))[-1]
        assert registers * threads <= 65536, \
            f"{name} needs {registers} registers: a {threads}-thread block cannot launch"


@pytest.fixture(scope="module")
def nvdisasm():
    tool = sass.nvdisasm()
    if tool is None:
        _required("nvdisasm", "not found (pip install nvidia-cuda-nvdisasm)")
    return tool


def test_sass_instruction_counts_stay_within_budget(compiled, nvrtc, nvdisasm, request):
    """Each instantiation's SASS instructions and registers on sm_90 may not exceed the
    recorded counts by more than the budget's tolerance (a wider one under another NVRTC
    version, whose code may differ a little). Record a deliberate change with
    ``python tests/cuda_emu/sass.py --record tests/data/sass_budget.json``."""
    budget = json.loads(BUDGET.read_text())
    version = ".".join(map(str, nvrtc.getVersion()))
    tolerance = budget["tolerance"] if version == budget["nvrtc"] else budget["other_nvrtc"]
    measured = {}
    for file in _cuda.kernel_files():
        for dtype in _cuda.CTYPES:
            log, lowered, cubin = compiled[file, dtype, budget["arch"]]
            measured.update(sass.measure(cubin, lowered, log, nvdisasm, _cuda.CELLS_PER_THREAD,
                                         _cuda.TILES))
    assert set(measured) == set(budget["kernels"]), \
        "the budget lists other instantiations than the kernels have: record it again"
    over = [f"{name}: {row[what]} {what}, budget {budget['kernels'][name][what]}"
            for name, row in measured.items() for what in ("sass", "registers")
            if row[what] > budget["kernels"][name][what] * (1 + tolerance)]
    lines = summary_lines(request.config)
    lines.append(f"SASS {budget['arch']} float32 (NVRTC {version}), instructions in all "
                 f"(per element where the taps unroll) and registers:")
    lines.extend(sass.table({n: r for n, r in measured.items() if "<float," in n}))
    shares = sass.bandwidth_model(measured)
    lines.append("Share of HBM bandwidth, modelled for an H100 SXM (benchmark shapes): "
                 + ", ".join(f"{sass.window_label(n)} {case} {share:.0%}"
                             for n, case, share in shares))
    products = sass.product_model(measured)
    lines.append("Tiled products, share of a reduction step in products and time, modelled "
                 "for an H100 SXM: "
                 + ", ".join(f"{sass.window_label(n)} {case} {share:.0%} ({us:.1f} us)"
                             for n, case, share, us in products))
    assert not over, "\n".join(over)
    if version == budget["nvrtc"]:  # another compiler's code may differ a little
        slow = [f"{n} on {case}: {share:.0%}" for n, case, share in shares if share < 0.70]
        assert not slow, f"modelled below 70% of HBM bandwidth: {slow}"
        cuda_cores = [row for row in products if "tf32" not in row[0]]
        slow = [f"{n} on {case}: {share:.0%}" for n, case, share, _ in cuda_cores if share < 0.70]
        assert not slow, f"modelled below 70% of the FP32 peak: {slow}"
        # each TF32 product replaces two passes over S3's 75 MB of columns (writing and
        # reading them, 25 us each at HBM bandwidth): it must beat them
        slow = [f"{n} on {case}: {us:.1f} us" for n, case, _, us in products
                if "tf32" in n and us >= 50]
        assert not slow, f"modelled slower than two passes over the columns: {slow}"


def test_the_product_model_counts_the_multiply_adds_of_the_reduction_step():
    """A reduction step of 4 instructions, 3 of them multiply-adds, inside an outer loop:
    75% of the peak; S3's input gradient's 1,207,959,552 multiply-adds then take
    1.2079552e9 / 0.75 / 3.345e13 s = 48.15 us."""
    listing = [(".L_x_0", "MOV R1, R2"), (".L_x_1", "FFMA.FTZ R3, R4, R5, R3"),
               (None, "FFMA R6, R4, R5, R6"), (None, "DFMA R8, R4, R5, R8"),
               (None, "@P0 BRA `(.L_x_1)"), (None, "@P1 BRA `(.L_x_0)"), (None, "EXIT")]
    assert sass.product_step(listing) == (4, 3)
    assert sass.product_step(listing[:1] + listing[-1:]) is None
    ((_, _, share, microseconds),) = sass.product_model(
        {"conv_gemm_kernel<float, 3, 1>": {"product_step": (4, 3)}})
    assert share == 0.75 and microseconds == pytest.approx(48.15, abs=0.01)


def test_the_product_model_of_the_tensor_cores_takes_the_slower_of_issue_and_mma():
    """An HMMA.1688 does 32 multiply-adds per thread. 16 of them in a step of 256: S3's
    1,207,959,552 multiply-adds take 1.2079552e9 / 32 / 0.0625 / 3.345e13 s = 18.05 us of
    issue; 16 in a step of 32 issue in 2.26 us, and the tensor cores' 2.416e9 flops at
    0.6 * 494.7 TFLOPS take 8.14 us."""
    listing = [(".L_x_0", "MOV R1, R2"), (".L_x_1", "HMMA.1688.F32.TF32 R4, R8, R12, R4"),
               (None, "FFMA R6, R4, R5, R6"), (None, "@P0 BRA `(.L_x_1)"), (None, "EXIT")]
    assert sass.product_step(listing) == (3, 2)
    name = "conv_gemm_tf32_kernel<float, 3, 1>"
    for step, expected in (((256, 16), 18.05), ((32, 16), 8.14)):
        ((_, _, _, microseconds),) = sass.product_model({name: {"product_step": step}})
        assert microseconds == pytest.approx(expected, abs=0.01)


def test_the_bandwidth_model_takes_the_slower_of_memory_and_instructions():
    """S3's im2col moves 83,886,080 bytes (25.04 us at 3.35 TB/s); 1000 instructions for each
    of its 2,097,152 windows take 62.69 us at 3.345e13 per second: 39.9% of the bandwidth.
    95 instructions (5.96 us) leave memory the bound."""
    for per_element, share in ((1000, 0.399), (95, 1.0)):
        rows = {name: {"per_element": per_element} for name, *_ in sass.MODELLED}
        model = dict((name, s) for name, _, s in sass.bandwidth_model(rows))
        assert round(model["im2col_kernel<float, 3, 1>"], 3) == share
