"""SASS instruction counts of the kernels, from NVRTC's cubin and nvdisasm, without a GPU.

    python tests/cuda_emu/sass.py [KERNEL_DIR] [--arch sm_90] [--dtype float32]

prints, per kernel instantiation, the SASS instructions of the whole kernel,
of the loop that handles one element (``per element``, for the templated
windows, whose tap loops are unrolled into straight-line code: an upper
bound on what one thread executes per output element), the registers and the
bytes spilled, then the share of HBM bandwidth that the benchmark shapes' kernels
reach in a model of an H100 (:func:`bandwidth_model`). tests/test_cuda_compile.py
checks the counts against tests/data/sass_budget.json and the shares against 70%;
this command prints them for any copy of the kernels (an older checkout's too, for a
before/after table).

nvdisasm comes from the ``nvidia-cuda-nvdisasm`` wheel (the test extra) or
the PATH. The cubin NVRTC returns through cupy_backends may lack its last
byte, which nvdisasm refuses as an invalid ELF file: it is padded back to the
size its ELF header gives first.
"""

import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

INSTRUCTION = re.compile(r"^\s*/\*([0-9a-f]{4,})\*/\s+(.*?)\s*;")
LABEL = re.compile(r"^(\.L_x_\d+):")
SECTION = re.compile(r"^\s*\.section\s+\.text\.([^,\s]+)")
BRANCH_TARGET = re.compile(r"\bBRA\b.*`\((\.L_x_\d+)\)")
PTXAS_ENTRY = re.compile(r"Compiling entry function '(\w+)' for '(sm_\d+)'")
PTXAS_SPILLS = re.compile(r"(\d+) bytes spill stores, (\d+) bytes spill loads")
PTXAS_REGISTERS = re.compile(r"Used (\d+) registers")
# the products' instructions: multiply-adds on the CUDA cores, mma on the tensor cores
MULTIPLY_ADD = re.compile(r"\b([DFH]FMA|HMMA)\b")


def nvdisasm():
    """The nvdisasm executable (the nvidia-cuda-nvdisasm wheel's, else the PATH's), or None."""
    try:
        import nvidia
    except ImportError:
        nvidia = None
    for root in getattr(nvidia, "__path__", ()):
        for candidate in sorted(Path(root).glob("cu*/bin/nvdisasm")):
            if os.access(candidate, os.X_OK):
                return str(candidate)
    return shutil.which("nvdisasm")


def complete_elf(cubin):
    """``cubin`` padded with NULs to the size its ELF64 header gives (the end of the
    later of its program and section header tables): the bytes the binding dropped."""
    def field(offset, size):
        return int.from_bytes(cubin[offset:offset + size], "little")

    end = max(field(0x20, 8) + field(0x36, 2) * field(0x38, 2),   # program headers
              field(0x28, 8) + field(0x3A, 2) * field(0x3C, 2))   # section headers
    return cubin.ljust(end, b"\0")


def disassemble(cubin, tool=None):
    """The SASS text of a cubin (bytes)."""
    tool = tool or nvdisasm()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "kernels.cubin"
        path.write_bytes(complete_elf(cubin))
        result = subprocess.run([tool, str(path)], capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(f"nvdisasm failed: {result.stderr.strip()}")
    return result.stdout


def functions(sass):
    """{symbol: [(label or None, instruction text)]} of every kernel in a SASS listing.

    Each instruction carries the label that precedes it, if any; the NOPs that
    pad a function to its alignment are left out.
    """
    found, current, label = {}, None, None
    for line in sass.splitlines():
        if match := SECTION.match(line):
            current = found.setdefault(match.group(1), [])
            label = None
        elif line.lstrip().startswith(".section"):
            current = None
        elif current is not None and (match := LABEL.match(line)):
            label = match.group(1)
        elif current is not None and (match := INSTRUCTION.match(line)):
            text = match.group(2)
            if text.split()[-1] != "NOP" and text != "NOP":
                current.append((label, text))
            label = None
    return found


def loops(instructions):
    """[(first, last)] index ranges of the loops: a backward branch and its target."""
    at = {label: i for i, (label, _) in enumerate(instructions) if label}
    spans = []
    for i, (_, text) in enumerate(instructions):
        if (match := BRANCH_TARGET.search(text)) and at.get(match.group(1), i + 1) <= i:
            first = at[match.group(1)]
            if first != i:  # a branch to itself is the trap after the final EXIT
                spans.append((first, i))
    return spans


def per_element(instructions):
    """Instructions in the loop over a plane's elements (per thread's share of them), where
    the kernel is two loops (the grid-stride loops over planes and over elements) and tap
    loops are unrolled; else None."""
    spans = loops(instructions)
    if len(spans) != 2:
        return None
    (a_first, a_last), (b_first, b_last) = sorted(spans, key=lambda s: s[1] - s[0])
    if not b_first <= a_first <= a_last <= b_last:
        return None
    return a_last - a_first + 1


def product_step(instructions):
    """(instructions, multiply-adds) of the innermost loop that holds multiply-adds: one
    reduction step of a tiled product, its staging loads, stores and barriers included;
    None for a kernel without such a loop."""
    spans = [(first, last) for first, last in loops(instructions)
             if any(MULTIPLY_ADD.search(text) for _, text in instructions[first:last + 1])]
    if not spans:
        return None
    first, last = min(spans, key=lambda span: span[1] - span[0])
    body = [text for _, text in instructions[first:last + 1]]
    return len(body), sum(1 for text in body if MULTIPLY_ADD.search(text))


def ptxas_resources(log, symbols):
    """{name: (registers, spilled bytes)} from a ``-Xptxas=-v`` log; ``symbols`` maps
    lowered names to name expressions."""
    rows, name, spills = {}, None, 0
    for line in log.splitlines():
        if match := PTXAS_ENTRY.search(line):
            name = symbols.get(match.group(1))
        elif match := PTXAS_SPILLS.search(line):
            spills = int(match.group(1)) + int(match.group(2))
        elif (match := PTXAS_REGISTERS.search(line)) and name:
            rows[name] = (int(match.group(1)), spills)
    return rows


def compile_program(nvrtc, source, file, names, options, ptx=False):
    """Compile ``source`` with ``names`` instantiated: (log, {name: lowered name}, cubin or
    PTX); RuntimeError with the log when NVRTC fails."""
    prog = nvrtc.createProgram(source, file, [], [])
    try:
        for name in names:
            nvrtc.addNameExpression(prog, name)
        try:
            nvrtc.compileProgram(prog, list(options))
        except nvrtc.NVRTCError as exc:
            raise RuntimeError(f"{file} failed to compile with {options}: {exc}\n"
                               f"{nvrtc.getProgramLog(prog)}") from exc
        log = nvrtc.getProgramLog(prog).strip("\x00 \n")
        lowered = {name: nvrtc.getLoweredName(prog, name) for name in names}
        return log, lowered, nvrtc.getPTX(prog) if ptx else nvrtc.getCUBIN(prog)
    finally:
        nvrtc.destroyProgram(prog)


def measure(cubin, lowered, log="", tool=None, cells_per_thread=None, tiled=()):
    """{name: {"sass", "per_element", "registers", "spills"}} of one compiled file, and
    "product_step" (:func:`product_step`) for the kernels named in ``tiled``.

    ``cells_per_thread`` is the measured checkout's ``_cuda.CELLS_PER_THREAD``: the loop
    body of a kernel named there handles that many elements, and is divided by it;
    ``tiled`` its ``_cuda.TILES``."""
    cells_per_thread = cells_per_thread or {}
    listing = functions(disassemble(cubin, tool))
    resources = ptxas_resources(log, {symbol: name for name, symbol in lowered.items()})
    table = {}
    for name, symbol in lowered.items():
        instructions = listing[symbol]
        registers, spills = resources.get(name, (None, None))
        body = per_element(instructions)
        elements = cells_per_thread.get(name.partition("<")[0], 1)
        table[name] = {"sass": len(instructions),
                       "per_element": body if body is None or elements == 1 else body / elements,
                       "registers": registers, "spills": spills}
        if name.partition("<")[0] in tiled:
            table[name]["product_step"] = product_step(instructions)
    return table


# The bandwidth model of the benchmark shapes' kernels on an H100 SXM: a kernel takes the
# longer of its bytes over HBM's bandwidth and its instructions over the issue rate (132 SMs x
# 4 schedulers x 32 threads x 1.98 GHz), the instructions being its elements times the
# per-element loop body (an upper bound: every branch of the body taken).
HBM_BYTES_PER_S = 3.35e12
THREAD_INSTRUCTIONS_PER_S = 132 * 4 * 32 * 1.98e9
_S3 = 32 * 64 * 32 * 32  # S3: (32, 64, 32, 32), 3x3, stride 1, pad 1: as many windows as cells
_POOL_IN, _POOL_OUT = 64 * 64 * 32 * 32, 64 * 64 * 16 * 16  # P1-P3: (64, 64, 32, 32), stride 2
# (instantiation, case, elements of its per-element loop, bytes read and written), float32:
# im2col and the pools' forwards have an element per window, the backwards per input cell
MODELLED = [
    ("im2col_kernel<float, 3, 1>", "S3", _S3, 4 * _S3 * (1 + 9)),
    ("col2im_kernel<float, 3, 1>", "S3", _S3, 4 * _S3 * (1 + 9)),
    ("max_pool_forward_kernel<float, 2, 2>", "P1", _POOL_OUT, 4 * _POOL_IN + 8 * _POOL_OUT),
    ("max_pool_backward_kernel<float, 2, 2>", "P1", _POOL_IN, 4 * _POOL_IN + 8 * _POOL_OUT),
    ("max_pool_forward_kernel<float, 3, 2>", "P2", _POOL_OUT, 4 * _POOL_IN + 8 * _POOL_OUT),
    ("max_pool_backward_kernel<float, 3, 2>", "P2", _POOL_IN, 4 * _POOL_IN + 8 * _POOL_OUT),
    ("avg_pool_forward_kernel<float, 2, 2>", "P3", _POOL_OUT, 4 * _POOL_IN + 4 * _POOL_OUT),
    ("avg_pool_backward_kernel<float, 2, 2>", "P3", _POOL_IN, 4 * _POOL_IN + 4 * _POOL_OUT),
]


def bandwidth_model(rows):
    """[(instantiation, case, share of HBM bandwidth)] of :data:`MODELLED` from measure()'s
    rows: 1.0 where memory bounds the kernel, less where its instructions do."""
    shares = []
    for name, case, elements, nbytes in MODELLED:
        memory = nbytes / HBM_BYTES_PER_S
        instructions = elements * rows[name]["per_element"] / THREAD_INSTRUCTIONS_PER_S
        shares.append((name, case, memory / max(memory, instructions)))
    return shares


# The tiled products of the benchmark shapes, float32: (instantiation, case, multiply-adds,
# multiply-adds per thread in one of its product instructions: an FFMA's 1, an HMMA.1688's
# 16 x 8 x 8 over a warp's 32 threads). S3's forward and its input gradient are both
# (32 x 32*32 positions) x 64 channels x 64*3*3 terms.
# S3's weight gradient is 64 filters x 32*32*32 columns x 5 tiles of 128 kernel offsets
# (576 and the bias's; the tiles' last 63 columns computed and dropped).
_S3_PRODUCT = 32 * 32 * 32 * 64 * 64 * 9
PRODUCTS = [("conv_gemm_kernel<float, 3, 1>", "S3 dx", _S3_PRODUCT, 1),
            ("conv_gemm_tf32_kernel<float, 3, 1>", "S3 TF32", _S3_PRODUCT, 32),
            ("conv_weight_grad_tf32_kernel<float, 3, 1>", "S3 dW TF32", 64 * 32768 * 640, 32)]
# What mma.sync reaches of an H100 SXM's dense TF32 peak (494.7 TFLOPS, which wgmma is quoted
# at; mma.sync is quoted at about 60% of it on Hopper): the tensor cores' bound.
MMA_TF32_FLOPS = 0.6 * 494.7e12


def product_model(rows):
    """[(instantiation, case, share of the step in products, microseconds)] of
    :data:`PRODUCTS` among measure()'s ``rows``, on an H100 SXM: the share of a reduction
    step's instructions that are the product's (multiply-adds or mma), the issue rate
    bounding the kernel, or for the mma the tensor cores' rate (:data:`MMA_TF32_FLOPS`),
    whichever is slower (the operands, about 17 MB for S3, take 5 us at HBM bandwidth;
    shared memory serves an FFMA sub-tile's two values per multiply-add it feeds 8 of, and
    a warp's 16 mma per step from 24 conflict-free loads, well within its 128 bytes a
    cycle)."""
    model = []
    for name, case, multiply_adds, per_instruction in PRODUCTS:
        if name not in rows:
            continue
        length, products = rows[name]["product_step"]
        share = products / length
        seconds = multiply_adds / per_instruction / share / THREAD_INSTRUCTIONS_PER_S
        if per_instruction > 1:
            seconds = max(seconds, 2 * multiply_adds / MMA_TF32_FLOPS)
        model.append((name, case, share, 1e6 * seconds))
    return model


def window_label(name):
    """"max_pool_backward 3x3/2" for "max_pool_backward_kernel<float, 3, 2>"."""
    kernel, _, args = name.partition("<")
    k, s = args.rstrip(">").split(", ")[1:]
    return f"{kernel.removesuffix('_kernel')} {k}x{k}/{s}"


def table(rows):
    """Lines of a table of measure()'s rows: one line per kernel, one column per window."""
    kernels = {}
    for name, row in rows.items():
        kernel, _, args = name.partition("<")
        k, s = (int(a) for a in args.rstrip(">").split(",")[1:])
        window = f"{k}x{k}/{s}" if k else "run-time"
        element = f" ({row['per_element']})" if row["per_element"] else ""
        cell = f"{window} {row['sass']}{element} r{row['registers']}"
        kernels.setdefault(kernel, []).append(cell)
    return [f"  {kernel:25} " + " | ".join(cells) for kernel, cells in kernels.items()]


def main(argv):
    import argparse
    import json

    import numpy

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("kernel_dir", nargs="?", type=Path)
    parser.add_argument("--arch", default="sm_90")
    parser.add_argument("--dtype", default="float32", help="float16, float32, float64 or all")
    parser.add_argument("--root", type=Path, default=Path(__file__).resolve().parents[2],
                        help="the checkout whose fastconv/_cuda.py lists the kernels")
    parser.add_argument("--record", type=Path, metavar="JSON",
                        help="write every dtype's counts as the budget file")
    args = parser.parse_args(argv)
    sys.path.insert(0, str(args.root))
    from cupy_backends.cuda.libs import nvrtc

    from fastconv import _cuda

    directory = args.kernel_dir or args.root / "kernels"
    options = _cuda.compile_options(directory, nvrtc.getVersion()) + (
        "-ftz=true", f"-arch={args.arch}", "--device-as-default-execution-space", "-Xptxas=-v")
    dtypes = list(_cuda.CTYPES) if args.record or args.dtype == "all" else [args.dtype]
    rows = {}
    for file in _cuda.kernel_files():
        for dtype in dtypes:
            names = _cuda.name_expressions(file, numpy.dtype(dtype))
            log, lowered, cubin = compile_program(nvrtc, _cuda.kernel_source(file, directory),
                                                file, names, options)
            # an older checkout's threads take one cell each
            rows.update(measure(cubin, lowered, log,
                                cells_per_thread=getattr(_cuda, "CELLS_PER_THREAD", {}),
                                tiled=getattr(_cuda, "TILES", {})))
    if args.record:
        head = {"arch": args.arch, "nvrtc": ".".join(map(str, nvrtc.getVersion())),
                "tolerance": 0.05, "other_nvrtc": 0.25}
        entries = ",\n".join(f'  "{name}": {{"sass": {row["sass"]}, '
                             f'"registers": {row["registers"]}}}' for name, row in rows.items())
        args.record.write_text(json.dumps(head, indent=1)[:-2] + ',\n "kernels": {\n'
                               + entries + "\n }\n}\n")
    print(f"{'kernel':48} {'SASS':>6} {'per element':>12} {'registers':>10} {'spills':>7}")
    for name, row in rows.items():
        element = "-" if row["per_element"] is None else row["per_element"]
        print(f"{name:48} {row['sass']:>6} {element:>12} {row['registers']:>10} "
              f"{row['spills']:>7}")
    if all(name in rows for name, *_ in MODELLED):
        print("share of HBM bandwidth, modelled for an H100 SXM:")
        for name, case, share in bandwidth_model(rows):
            print(f"  {window_label(name):28} {case:3} {share:6.0%}")
    if any(name in rows for name, *_ in PRODUCTS):
        print("tiled products, share of a reduction step in products, modelled for an H100 SXM:")
        for name, case, share, microseconds in product_model(rows):
            print(f"  {window_label(name):28} {case:6} {share:6.0%} {microseconds:7.1f} us")


if __name__ == "__main__":
    main(sys.argv[1:])
