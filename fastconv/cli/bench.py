"""``fastconv bench``: check every conv/pool implementation, then time them interleaved."""

from __future__ import annotations

import argparse
import os

from ._args import UsageError, log, number
from ._outdir import check_output_paths, writing


def add_bench_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Options of ``fastconv bench``.

    Parameters
    ----------
    sub : argparse subparsers
        The ``fastconv`` command's subcommands.

    Returns
    -------
    argparse.ArgumentParser
        The ``bench`` parser.
    """
    from ..bench.cases import OPS
    p = sub.add_parser("bench", help="benchmark conv/pool ops: loops vs NumPy vs GPU vs PyTorch",
                       description="Check every implementation against an oracle, then time them "
                                   "interleaved: a table of ms, GFLOP/s, %% of the GEMM peak, "
                                   "speedup over loops and ratio to PyTorch.")
    p.add_argument("--quick", action="store_true",
                   help="conv and pools on the standard shapes, 3 repeats, a 1 s loop budget "
                        "(under a minute on 2 cores, with or without torch); with --network: "
                        "N=64 only, 3 repeats")
    p.add_argument("--ops", nargs="+", choices=OPS, metavar="OP",
                   help=f"ops to run (from {', '.join(OPS)}; default all, --quick: conv and pools)")
    p.add_argument("--shapes", nargs="+", metavar="SHAPE",
                   help="custom shapes replacing the standard set: [NAME=]N,C,H,W,F,k,stride,pad "
                        "for convolutions, [NAME=]N,C,H,W,k,stride,pad for pools")
    p.add_argument("--dtype", nargs="+", choices=("float32", "float64"), default=["float32"])
    p.add_argument("--device", choices=("cpu", "gpu", "auto"), default="auto",
                   help="cpu, gpu, or auto: the CPU plus the GPU when one is usable (default); "
                        "on the GPU, against PyTorch CUDA (cuDNN) when installed, float32 "
                        "convolutions with TF32 off and on on both sides")
    p.add_argument("--repeats", type=number(int, 1),
                   help="clean timed repeats wanted (default 10, quick 3); a repeat is clean when "
                        "other processes kept under 0.15 cores busy")
    p.add_argument("--max-repeats", type=number(int, 1),
                   help="repeat up to this many times to collect them (default 3x repeats, "
                        "quick: repeats)")
    p.add_argument("--warmup", type=number(int, 0),
                   help="untimed repeats after the checked first call (default 1, quick 0)")
    p.add_argument("--pause", type=number(float, 0), default=0.3,
                   help="seconds to let BLAS threads settle before each timed CPU forward")
    p.add_argument("--loop-budget", type=number(float, 0),
                   help="seconds one loop run may take by estimate: one image, its channels and "
                        "filters cut until it fits, scaled to the batch (default 8, quick 1)")
    p.add_argument("--no-loops", action="store_true", help="skip the loop implementation")
    p.add_argument("--no-torch", action="store_true", help="do not compare with PyTorch")
    p.add_argument("--json", metavar="PATH", help="write every measurement and the machine here")
    p.add_argument("--plot", metavar="PATH", help="write a PNG chart here (needs matplotlib)")
    p.add_argument("--markdown", metavar="PATH",
                   help="also write the full table (every column) to this file")
    p.add_argument("--network", action="store_true",
                   help="instead: one whole training step (forward, loss, backward, SGD update) "
                        "of the cnn (CIFAR-shaped) and convnet (MNIST-shaped) models at N=64 "
                        "and 128, checked against the same networks built in PyTorch, then "
                        "timed interleaved: ms per step, the ratio, each layer type's share")
    p.add_argument("--breakdown", action="store_true",
                   help="instead: per conv/pool shape, the time in each step of the real code "
                        "(padding, im2col, each GEMM with its GFLOP/s, col2im, copies) and the "
                        "Python overhead (CPU)")
    return p


def _bench_settings(args):
    from ..bench.runner import Settings
    default_repeats, default_budget = (3, 1.0) if args.quick else (10, 8.0)
    repeats = args.repeats or default_repeats
    return Settings(dtypes=tuple(args.dtype), device=args.device, repeats=repeats,
                    max_repeats=args.max_repeats or (repeats if args.quick else 3 * repeats),
                    warmup=(0 if args.quick else 1) if args.warmup is None else args.warmup,
                    pause=args.pause,
                    loops=not args.no_loops,
                    loop_budget=default_budget if args.loop_budget is None else args.loop_budget,
                    gemm_n=1024 if args.quick else 2048, torch=not args.no_torch)


def cmd_bench(args: argparse.Namespace) -> int:
    """Run the benchmark (or the conv breakdown, or the network one) and print the table.

    Parameters
    ----------
    args : argparse.Namespace
        The parsed options.

    Returns
    -------
    int
        0.

    Raises
    ------
    UsageError
        Bad shapes or ops, an unwritable output path, or ``--device gpu`` without a
        usable GPU (the command exits 2 with the message).
    """
    from ..bench import cases as bench_cases
    from ..bench import report, runner
    from ..bench.terminal import terminal_table
    if args.network:
        return _network(args)
    try:
        shapes = [bench_cases.parse_shape(t, i) for i, t in enumerate(args.shapes or (), 1)]
        cases = bench_cases.build_cases(args.ops, shapes, args.quick)
    except ValueError as exc:
        raise UsageError(f"--shapes/--ops: {exc}") from None
    _check_memory(cases, args.dtype)
    check_output_paths(args, ("--json", "--markdown", "--plot"), plots=("--plot",))
    settings = _bench_settings(args)
    if args.breakdown:
        return _breakdown(cases, settings, args)
    try:
        result = runner.run(cases, settings, log=log)
    except runner.DeviceUnavailable as exc:
        raise UsageError(str(exc)) from None
    print(terminal_table(result))
    _write_outputs(args, result, report.markdown_table(result), report.plot)
    return 0


def _network(args):
    """``--network``: the training-step benchmark of whole models (float32)."""
    from ..bench import network, report, runner
    if args.breakdown or args.ops or args.shapes or args.dtype != ["float32"]:
        raise UsageError("--network times whole float32 models; it takes no --breakdown, "
                         "--ops, --shapes or --dtype")
    check_output_paths(args, ("--json", "--markdown"))
    repeats = args.repeats or (3 if args.quick else 10)
    settings = network.NetworkSettings(
        device=args.device, repeats=repeats,
        max_repeats=args.max_repeats or (repeats if args.quick else 3 * repeats),
        warmup=(1 if args.quick else 2) if args.warmup is None else args.warmup,
        pause=args.pause, torch=not args.no_torch)
    try:
        result = network.run_network(network.network_cases(args.quick), settings, log=log)
    except runner.DeviceUnavailable as exc:
        raise UsageError(str(exc)) from None
    table = network.network_table(result)
    print(table)
    if args.plot:
        log("--plot ignored: the network benchmark draws no chart")
        args.plot = None
    _write_outputs(args, result, table, report.plot)
    return 0


def _input_bytes(case, itemsize):
    """Bytes of the arrays ``fastconv.bench.ops.make_inputs`` makes for ``case``."""
    s = case.shape
    oh, ow = s.out_hw
    x = s.n * s.c * s.h * s.w
    if case.op == "conv2d":
        elements = x + s.f * s.c * s.k * s.k + s.f + s.n * s.f * oh * ow
    elif case.op == "im2col":
        elements = x
    elif case.op == "col2im":
        elements = s.n * s.c * s.k * s.k * oh * ow
    else:  # the pools: x and the gradient of their output
        elements = x + s.n * s.c * oh * ow
    return elements * itemsize


def _physical_memory():
    """Bytes of memory of this machine, or None where the system does not say."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, OSError, ValueError):
        return None


def _check_memory(cases, dtypes):
    """A UsageError, before any timing, for a case whose inputs alone exceed the memory.

    Every dtype asked runs, so the widest decides; running a case needs more
    than its inputs (outputs, gradients, im2col's columns), so this is the
    least it needs, and what is refused here could never have run.
    """
    import numpy as np
    memory = _physical_memory()
    if not memory:
        return
    dtype = max(dtypes, key=lambda name: np.dtype(name).itemsize)
    for case in cases:
        needed = _input_bytes(case, np.dtype(dtype).itemsize)
        if needed > memory:
            raise UsageError(f"--shapes: {case.label()} needs too much memory: its input arrays "
                             f"alone are {_size(needed)} in {dtype}, and this machine has "
                             f"{_size(memory)}")


def _size(nbytes):
    """``nbytes`` in GiB, or TiB from 1024 GiB on: ``23.5 GiB``, ``1,455.2 TiB``."""
    gib = nbytes / 2**30
    return f"{gib:.1f} GiB" if gib < 1024 else f"{gib / 1024:,.1f} TiB"


def _write_outputs(args, result, text, plot):
    from ..bench import report
    if args.json:
        with writing("--json", args.json):
            report.write_json(result, args.json)
        log(f"wrote {args.json}")
    if args.markdown:
        with writing("--markdown", args.markdown), open(args.markdown, "w") as f:
            f.write(text + "\n")
        log(f"wrote {args.markdown}")
    if args.plot:
        with writing("--plot", args.plot):
            message = plot(result, args.plot)
        log(message or f"wrote {args.plot}")


def _breakdown(cases, settings, args):
    from ..bench import breakdown, report
    from ..bench.machine import describe, gemm_peak
    chosen = [c for c in cases if c.op in breakdown.BREAKDOWN_OPS]
    if not chosen:
        raise UsageError(f"--breakdown covers {', '.join(breakdown.BREAKDOWN_OPS)}; "
                         "none of the chosen ops is one of them")
    result = {"machine": describe(include_torch=False), "breakdown": []}
    texts = []
    for dtype in settings.dtypes:
        peak = None
        if any(c.op == "conv2d" for c in chosen):
            peak = gemm_peak(dtype, n=settings.gemm_n, pause=settings.pause)
            log(f"GEMM peak (cpu, {dtype}, n={settings.gemm_n}): {peak:.1f} GFLOP/s")
        for case in chosen:
            item = breakdown.breakdown(case, dtype, settings.repeats, settings.pause, peak,
                                       max_repeats=settings.max_repeats,
                                       noise_threshold=settings.noise_threshold)
            result["breakdown"].append(item)
            texts.append(breakdown.format_breakdown(item))
            print(texts[-1] + "\n", flush=True)
    if args.plot:
        log("--plot ignored: the chart is drawn from the timing table, not the breakdown")
        args.plot = None
    _write_outputs(args, result, "\n\n".join(texts), report.plot)
    return 0

