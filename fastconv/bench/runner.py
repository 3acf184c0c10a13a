"""Run the benchmark: check every implementation against an oracle, then time them interleaved.

Per case and dtype:

1. Inputs are drawn once; the oracle (:mod:`.oracle`: PyTorch CPU float64 on the batch
   when installed, else the reference loops in float64 on one image and a few channels
   of the same layer) gives the expected results.
2. Each implementation runs once (its first call, timed on its own; the GPU kernels
   were compiled before the first case, on their own clock) and its results are
   compared with the oracle. One that disagrees beyond its tolerance is reported as a
   mismatch and never timed.
3. The implementations that agree are timed interleaved: in every repeat each runs a
   forward then a backward pass, the order rotating between repeats; CPU passes start
   after a settle pause, GPU passes are timed with CUDA events. Medians, minima and
   maxima are kept, and ratios to PyTorch are medians of per-repeat ratios.
4. The loop implementation runs once on one image, with the channels and filters cut
   until its estimated time fits the loop budget (:mod:`.reduced`), and is scaled to
   the batch by the work ratio (reported as an estimate).
5. The peak memory of fastconv's CPU forward and of its backward is measured with
   tracemalloc, outside the timings (fwd+bwd: the larger of the two).

On the GPU, float32 convolutions run twice on both sides: TF32 off (fastconv's
:func:`fastconv.set_tf32` and PyTorch's cuBLAS and cuDNN switches all off) and on.
"""

from __future__ import annotations

import statistics
import time
import tracemalloc
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from . import ops, reduced
from ..workspace import release_workspace
from .cases import Case
from .impls import (TORCH_TWIN, Impl, fastconv_cpu, fastconv_gpu, loop, torch_cpu, torch_cuda,
                    torch_oracle)
from .machine import describe, gemm_peak, kernel_compile_seconds
from .oracle import Oracle
from .timing import OtherLoad, median_ratio, summarize, time_pair, wall

Log = Callable[[str], None]


class DeviceUnavailable(RuntimeError):
    """The requested device cannot run here (the message says why)."""


@dataclass
class Settings:
    """How to run the benchmark (the CLI maps its options onto these).

    Examples
    --------
    >>> Settings(repeats=3).max_repeats is None
    True
    """

    dtypes: tuple = ("float32",)
    device: str = "auto"          # cpu | gpu | auto (CPU, plus the GPU when usable)
    repeats: int = 10             # clean repeats wanted
    max_repeats: int | None = None  # keep repeating up to this many to get them (None: repeats)
    noise_threshold: float = 0.15  # cores other processes may use during a clean repeat
    warmup: int = 1
    pause: float = 0.3            # settle time before each timed CPU forward, seconds
    loops: bool = True
    loop_budget: float = 8.0      # estimated seconds one loop run (fwd+bwd) may take
    gemm_n: int = 2048
    torch: bool = True
    seed: int = 0


def select_impls(settings: Any) -> list[Impl]:
    """The implementations to time for ``settings.device`` (unavailable ones carry a reason).

    Parameters
    ----------
    settings : Settings
        Reads ``device`` and ``torch``.

    Returns
    -------
    list of Impl
        fastconv (and torch) on the CPU, fastconv-gpu (and torch-cuda) on the GPU, all
        with TF32 off.

    Raises
    ------
    ValueError
        For a device other than cpu, gpu or auto.
    DeviceUnavailable
        For ``device="gpu"`` when no GPU is usable.

    Examples
    --------
    >>> [i.name for i in select_impls(Settings(device="cpu", torch=False))]
    ['fastconv']
    """
    if settings.device not in ("cpu", "gpu", "auto"):
        raise ValueError(f"device must be cpu, gpu or auto, got {settings.device!r}")
    impls = []
    if settings.device in ("cpu", "auto"):
        impls.append(fastconv_cpu())
        if settings.torch:
            impls.append(torch_cpu())
    gpu = fastconv_gpu()
    if settings.device == "gpu" and not gpu.available:
        raise DeviceUnavailable(f"--device gpu: no usable GPU ({gpu.reason})")
    if settings.device == "gpu" or (settings.device == "auto" and gpu.available):
        impls.append(gpu)
        if settings.torch:
            impls.append(torch_cuda())
    return impls


def with_tf32(impls: Sequence[Impl]) -> list[Impl]:
    """``impls`` plus the TF32 variant of each GPU one (they run float32 convolutions only).

    Examples
    --------
    >>> [i.name for i in with_tf32([fastconv_cpu()])]
    ['fastconv']
    """
    variants = {"fastconv-gpu": lambda: fastconv_gpu(tf32=True),
                "torch-cuda": lambda: torch_cuda(tf32=True)}
    return list(impls) + [variants[i.name]() for i in impls if i.name in variants]


def _peak_memory(bound):
    """Peak bytes tracemalloc sees during each pass: {"fwd": ..., "bwd": ..., "fwd+bwd": larger}.

    The workspace buffers fastconv keeps between calls are released first, so each pass
    counts the workspace it needs as well as its outputs.
    """
    tracemalloc.start()
    try:
        peaks = {}
        for name, step in (("fwd", bound.forward), ("bwd", bound.backward)):
            if name == "bwd" and not bound.has_backward:
                continue
            release_workspace()
            tracemalloc.reset_peak()
            base = tracemalloc.get_traced_memory()[0]
            step()
            peaks[name] = tracemalloc.get_traced_memory()[1] - base
        if "bwd" in peaks:
            peaks["fwd+bwd"] = max(peaks.values())
        return peaks
    finally:
        tracemalloc.stop()


def _first_call(impl, bound):
    """The first forward and backward, waited for (on the GPU it may set up libraries)."""
    ops.run_once(bound)
    impl.sync()


def _record(case, dtype, impl):
    return {"op": case.op, "shape": case.shape.name, "label": case.shape.label(),
            "params": asdict(case.shape), "dtype": dtype, "impl": impl.name,
            "device": impl.device, "status": "ok"}


def _passes(fwd, bwd):
    passes = {"fwd": summarize(fwd)}
    if bwd and bwd[0] is not None:
        passes["bwd"] = summarize(bwd)
        passes["fwd+bwd"] = summarize([a + b for a, b in zip(fwd, bwd)])
    return passes


def run_case(case: Case, dtype: str, impls: Sequence[Impl], settings: Settings,
             log: Log = print) -> list[dict]:
    """Check and time every implementation on one case; one record per implementation.

    Parameters
    ----------
    case : Case
        The op and its shape.
    dtype : str
        ``float32`` or ``float64``.
    impls : sequence of Impl
        The implementations (TF32 variants take part in float32 convolutions only).
    settings : Settings
        Repeats, pauses, the loop budget, whether to use PyTorch as the oracle.
    log : callable, default print
        Progress messages.

    Returns
    -------
    list of dict
        One record per implementation (status ``ok``, ``mismatch``, ``error`` or
        ``unavailable``), then the loop's when ``settings.loops``.
    """
    inputs = ops.make_inputs(case, dtype, settings.seed)
    oracle = Oracle(case, inputs, settings.torch and torch_oracle() is not None)
    records, bound = [], {}
    for impl in (i for i in impls if i.runs(case, dtype)):
        rec = _record(case, dtype, impl)
        records.append(rec)
        if not impl.available:
            rec.update(status="unavailable", reason=impl.reason)
            continue
        try:
            b = impl.bind(case, inputs)
            rec["first_call_ms"] = wall(lambda: _first_call(impl, b)) * 1e3
            got = b.results() if oracle.full else ops.run_once(
                impl.bind(oracle.check_case, oracle.check_inputs))
        except Exception as exc:  # an implementation that cannot run this case is reported
            rec.update(status="error", reason=f"{type(exc).__name__}: {exc}")
            continue
        rec["error"] = ops.relative_error(got, oracle.expected)
        rec["oracle"] = oracle.label
        tolerance = impl.tolerance(dtype)
        if not rec["error"] <= tolerance:
            rec.update(status="mismatch",
                       reason=f"relative error {rec['error']:.2e} vs {rec['oracle']} exceeds "
                              f"{tolerance:.0e}; not timed")
            continue
        bound[impl.name] = (impl, b, rec)

    _time_interleaved(list(bound.values()), settings)
    for impl, b, rec in bound.values():
        if impl.name == "fastconv":
            rec["peak_bytes"] = _peak_memory(b)
    if settings.loops:
        records.append(_run_loop(case, dtype, inputs, oracle, settings))
    return records


def _time_interleaved(entries, settings):
    """Time ``entries`` in rotating order; keep the repeats other processes left alone.

    A repeat is clean when other processes kept fewer than ``settings.noise_threshold``
    cores busy during it. Repeats continue (up to ``settings.max_repeats``) until
    ``settings.repeats`` clean ones are in; statistics use the clean repeats when there
    are at least 3 (or all asked for), else every repeat, and the record says so.
    """
    if not entries:
        return
    rounds = []  # (cores used by others, {impl: (fwd, bwd)})
    limit = settings.max_repeats or settings.repeats
    for r in range(settings.warmup + max(limit, settings.repeats)):
        shift = r % len(entries)
        times = {}
        with OtherLoad() as load:
            for impl, b, rec in entries[shift:] + entries[:shift]:
                times[rec["impl"]] = time_pair(impl, b, settings.pause if impl.clock == "cpu" else 0.0)
        if r < settings.warmup:
            continue
        rounds.append((load.cores, times))
        clean = [t for cores, t in rounds if cores is None or cores < settings.noise_threshold]
        if len(clean) >= settings.repeats:
            break
    enough = min(3, settings.repeats)
    used = clean if len(clean) >= enough else [t for _, t in rounds]
    others = [cores for cores, _ in rounds if cores is not None]
    for _, _, rec in entries:
        name = rec["impl"]
        rec["passes"] = _passes([t[name][0] for t in used], [t[name][1] for t in used])
        rec["repeats"] = {"timed": len(rounds), "clean": len(clean), "used": len(used),
                          "noisy": len(clean) < enough,
                          "others_cores_median": statistics.median(others) if others else None}
    # ratios to PyTorch on the same device (and TF32 setting), from the same repeats
    by_name = {rec["impl"]: rec for _, _, rec in entries}
    for ours, theirs in TORCH_TWIN.items():
        if ours in by_name and theirs in by_name:
            mine, ref = by_name[ours]["passes"], by_name[theirs]["passes"]
            by_name[ours]["vs_torch"] = {
                p: median_ratio(mine[p]["samples_ms"], ref[p]["samples_ms"]) for p in mine if p in ref}


def _run_loop(case, dtype, inputs, oracle, settings):
    """The loop column: one run on :func:`.reduced.loop_case`, checked, scaled to the case."""
    impl = loop()
    rec = _record(case, dtype, impl)
    small = reduced.loop_case(case, settings.loop_budget)
    if small is None:
        one = reduced.loop_estimate(reduced.reduce(case, 1, 1, 1))
        rec.update(status="skipped", reason=f"one image with one channel is estimated at "
                                            f"{one:.0f} s, over the loop budget of "
                                            f"{settings.loop_budget:g} s")
        return rec
    loop_inputs = reduced.slice_inputs(inputs, small)
    b = impl.bind(small, loop_inputs)
    fwd, bwd = time_pair(impl, b, settings.pause)
    rec["error"] = ops.relative_error(b.results(), oracle.expected_for(small, loop_inputs))
    rec["oracle"] = f"{oracle.impl.name} on {small.shape.label()}"
    if not rec["error"] <= ops.TOLERANCE[dtype]:
        rec.update(status="mismatch", reason=f"relative error {rec['error']:.2e} vs "
                                             f"{rec['oracle']}; not reported")
        return rec
    factor = reduced.scale(case, small)
    rec["extrapolated_from"], rec["scale"] = small.shape.label(), factor
    rec["passes"] = _passes([fwd * factor], [bwd * factor] if bwd is not None else [None])
    return rec


def measure_peaks(settings: Settings, impls: Sequence[Impl], log: Log = print
                  ) -> dict[str, dict[str, float]]:
    """GEMM peak GFLOP/s per device and dtype, measured now (the % of peak denominators).

    Returns
    -------
    dict
        ``{device: {dtype: GFLOP/s}}`` for the devices of the available ``impls``.
    """
    peaks: dict[str, dict[str, float]] = {}
    devices = {impl.device for impl in impls if impl.available}
    for dtype in settings.dtypes:
        if "cpu" in devices:
            n = settings.gemm_n
            peaks.setdefault("cpu", {})[dtype] = gemm_peak(dtype, n=n, pause=settings.pause)
            log(f"GEMM peak (cpu, {dtype}, n={n}): {peaks['cpu'][dtype]:.1f} GFLOP/s")
        if "gpu" in devices:
            import cupy
            n = max(settings.gemm_n, 4096)
            peaks.setdefault("gpu", {})[dtype] = gemm_peak(
                dtype, xp=cupy, n=n, repeats=5, pause=0, sync=cupy.cuda.Device().synchronize)
            log(f"GEMM peak (gpu, {dtype}, n={n}): {peaks['gpu'][dtype]:.1f} GFLOP/s")
    return peaks


def _compile_kernels(settings, impls, log):
    """The GPU kernels compiled for every dtype before the first case: {file dtype: ms}."""
    if not any(impl.name == "fastconv-gpu" and impl.available for impl in impls):
        return {}
    compiled = {k: s * 1e3 for k, s in kernel_compile_seconds(settings.dtypes).items()}
    log("GPU kernels compiled (NVRTC, first use in this process): "
        + ", ".join(f"{name} {ms:.0f} ms" for name, ms in compiled.items()))
    return compiled


def run(cases: Sequence[Case], settings: Settings, log: Log = print) -> dict[str, Any]:
    """Run every case in every dtype; the full report dict (machine, peaks, results).

    Parameters
    ----------
    cases : sequence of Case
        :func:`.cases.build_cases`.
    settings : Settings
        How to run.
    log : callable, default print
        Progress messages (the GEMM peaks, the kernel compile times, each case's time).

    Returns
    -------
    dict
        ``machine``, ``settings``, ``started``, ``gemm_peak_gflops``,
        ``gpu_compile_ms`` (empty without the GPU), ``results`` (one record per
        case, dtype and implementation) and ``seconds``.

    Raises
    ------
    DeviceUnavailable
        For ``device="gpu"`` without a usable GPU.
    """
    started = time.time()
    impls = with_tf32(select_impls(settings))
    report: dict[str, Any] = {"machine": describe(include_torch=settings.torch), "settings": asdict(settings),
              "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started))}
    report["gemm_peak_gflops"] = measure_peaks(settings, impls, log)
    report["gpu_compile_ms"] = _compile_kernels(settings, impls, log)
    results = []
    for dtype in settings.dtypes:
        for case in cases:
            t0 = time.perf_counter()
            results.extend(run_case(case, dtype, impls, settings, log))
            log(f"  {case.label()} {dtype}: {time.perf_counter() - t0:.1f} s")
    report["results"] = results
    report["seconds"] = time.time() - started
    return report
