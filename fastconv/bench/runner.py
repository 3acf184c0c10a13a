"""Run the benchmark: check every implementation against an oracle, then time them interleaved.

Per case and dtype:

1. Inputs are drawn once; the oracle (PyTorch CPU float64 when installed, else the
   reference loops in float64 on the first image) gives the expected results.
2. Each implementation runs once (its first call, timed on its own: on the GPU it includes
   the kernel compilation) and its results are compared with the oracle. One that
   disagrees beyond the dtype's tolerance is reported as a mismatch and never timed.
3. The implementations that agree are timed interleaved: in every repeat each runs a
   forward then a backward pass, the order rotating between repeats; CPU passes start
   after a settle pause. Medians, minima and maxima are kept, and ratios to PyTorch are
   medians of per-repeat ratios.
4. The loop implementation runs once on the first image, when its estimated time fits
   the budget, and is scaled linearly to the batch (reported as extrapolated).
5. The peak memory of fastconv's CPU forward and of its backward is measured with
   tracemalloc, outside the timings (fwd+bwd: the larger of the two).
"""

import statistics
import time
import tracemalloc
from dataclasses import asdict, dataclass

from . import ops
from ..workspace import release_workspace
from .cases import ConvShape
from .machine import describe, gemm_peak
from .timing import OtherLoad, median_ratio, summarize, time_pair, wall

# Seconds per multiply-add (conv) or per window element (pools, im2col, col2im) of the
# reference loops, forward plus backward, measured on a 2-core CI-class machine. Used only
# to decide whether a loop run fits the budget.
LOOP_SECONDS_PER_UNIT = 3.5e-6


class DeviceUnavailable(RuntimeError):
    """The requested device cannot run here (the message says why)."""


@dataclass
class Settings:
    """How to run the benchmark (the CLI maps its options onto these)."""

    dtypes: tuple = ("float32",)
    device: str = "auto"          # cpu | gpu | auto (CPU, plus the GPU when usable)
    repeats: int = 10             # clean repeats wanted
    max_repeats: int = None       # keep repeating up to this many to get them (None: repeats)
    noise_threshold: float = 0.15  # cores other processes may use during a clean repeat
    warmup: int = 1
    pause: float = 0.3            # settle time before each timed CPU forward, seconds
    loops: bool = True
    loop_budget: float = 8.0      # seconds one loop run (one image, fwd+bwd) may take
    gemm_n: int = 2048
    torch: bool = True
    seed: int = 0


def loop_estimate(case):
    """Estimated seconds of the reference loops, forward plus backward, on one image."""
    s = case.shape
    oh, ow = s.out_hw
    if isinstance(s, ConvShape) and case.op == "conv2d":
        units = s.f * s.c * s.k * s.k * oh * ow
    else:
        units = s.c * s.k * s.k * oh * ow
    return units * LOOP_SECONDS_PER_UNIT


def select_impls(settings):
    """The implementations to time for ``settings.device`` (unavailable ones carry a reason)."""
    if settings.device not in ("cpu", "gpu", "auto"):
        raise ValueError(f"device must be cpu, gpu or auto, got {settings.device!r}")
    impls = []
    if settings.device in ("cpu", "auto"):
        impls.append(ops.fastconv_cpu())
        if settings.torch:
            impls.append(ops.torch_cpu())
    gpu = ops.fastconv_gpu()
    if settings.device == "gpu" and not gpu.available:
        raise DeviceUnavailable(f"--device gpu: no usable GPU ({gpu.reason})")
    if settings.device == "gpu" or (settings.device == "auto" and gpu.available):
        impls.append(gpu)
        if settings.torch:
            impls.append(ops.torch_cuda())
    return impls


def _run_once(bound):
    bound.forward()
    if bound.has_backward:
        bound.backward()
    return bound.results()


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


class Oracle:
    """Expected results for one case: PyTorch float64 on the full batch, else loops on image 0."""

    def __init__(self, case, inputs, use_torch):
        impl = ops.torch_oracle() if use_torch else None
        self.full = impl is not None
        self.impl = impl or ops.loop_oracle()
        self.case, self.inputs = case, inputs
        self.check_inputs = inputs if self.full else ops.batch_slice(inputs, 1)
        self.expected = _run_once(self.impl.bind(case, self.check_inputs))
        self._first_image = None if self.full else self.expected

    def first_image(self):
        """Expected results on the first image alone (for the sliced loop run)."""
        if self._first_image is None:
            self._first_image = _run_once(self.impl.bind(self.case, ops.batch_slice(self.inputs, 1)))
        return self._first_image


def run_case(case, dtype, impls, settings, log=print):
    """Check and time every implementation on one case; return one record per implementation."""
    inputs = ops.make_inputs(case, dtype, settings.seed)
    oracle = Oracle(case, inputs, settings.torch and ops.torch_oracle() is not None)
    tolerance = ops.TOLERANCE[dtype]
    records, bound = [], {}
    for impl in impls:
        rec = _record(case, dtype, impl)
        records.append(rec)
        if not impl.available:
            rec.update(status="unavailable", reason=impl.reason)
            continue
        try:
            b = impl.bind(case, inputs)
            rec["first_call_ms"] = wall(lambda: (_run_once(b), impl.sync())) * 1e3
            got = b.results() if oracle.full else _run_once(impl.bind(case, oracle.check_inputs))
        except Exception as exc:  # an implementation that cannot run this case is reported
            rec.update(status="error", reason=f"{type(exc).__name__}: {exc}")
            continue
        rec["error"] = ops.relative_error(got, oracle.expected)
        rec["oracle"] = oracle.impl.name + ("" if oracle.full else " (first image)")
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
        records.append(_run_loop(case, dtype, inputs, oracle, settings, tolerance))
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
    # ratios to PyTorch on the same device, from the same repeats
    by_name = {rec["impl"]: rec for _, _, rec in entries}
    for ours, theirs in (("fastconv", "torch"), ("fastconv-gpu", "torch-cuda")):
        if ours in by_name and theirs in by_name:
            mine, ref = by_name[ours]["passes"], by_name[theirs]["passes"]
            by_name[ours]["vs_torch"] = {
                p: median_ratio(mine[p]["samples_ms"], ref[p]["samples_ms"]) for p in mine if p in ref}


def _run_loop(case, dtype, inputs, oracle, settings, tolerance):
    impl = ops.loop()
    rec = _record(case, dtype, impl)
    estimate = loop_estimate(case)
    if estimate > settings.loop_budget:
        rec.update(status="skipped", reason=f"estimated {estimate:.0f} s per image exceeds the "
                                            f"loop budget of {settings.loop_budget:g} s")
        return rec
    b = impl.bind(case, ops.batch_slice(inputs, 1))
    fwd, bwd = time_pair(impl, b, settings.pause)
    rec["error"] = ops.relative_error(b.results(), oracle.first_image())
    rec["oracle"] = oracle.impl.name + " (first image)"
    if not rec["error"] <= tolerance:
        rec.update(status="mismatch", reason=f"relative error {rec['error']:.2e} vs "
                                             f"{rec['oracle']}; not reported")
        return rec
    n = case.shape.n
    rec["extrapolated_from"] = 1
    rec["passes"] = _passes([fwd * n], [bwd * n] if bwd is not None else [None])
    return rec


def measure_peaks(settings, impls, log=print):
    """GEMM peak GFLOP/s per device and dtype, measured now (the % of peak denominators)."""
    peaks = {}
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


def run(cases, settings, log=print):
    """Run every case in every dtype; return the full report dict (machine, peaks, results)."""
    started = time.time()
    impls = select_impls(settings)
    report = {"machine": describe(include_torch=settings.torch), "settings": asdict(settings),
              "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started))}
    report["gemm_peak_gflops"] = measure_peaks(settings, impls, log)
    results = []
    for dtype in settings.dtypes:
        for case in cases:
            t0 = time.perf_counter()
            results.extend(run_case(case, dtype, impls, settings, log))
            log(f"  {case.label()} {dtype}: {time.perf_counter() - t0:.1f} s")
    report["results"] = results
    report["seconds"] = time.time() - started
    return report
