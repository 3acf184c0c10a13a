"""Clocks and statistics for honest timings.

CPU passes are timed with ``time.perf_counter`` after a settle pause (OpenBLAS and OpenMP
worker threads keep spinning after a call and would slow whichever library runs next);
GPU passes with CUDA events recorded on the stream and a synchronisation before reading.
"""

import statistics
import time


def summarize(samples):
    """median, min and max (milliseconds) of a list of seconds."""
    ms = [s * 1e3 for s in samples]
    return {"median_ms": statistics.median(ms), "min_ms": min(ms), "max_ms": max(ms),
            "samples_ms": ms}


def median_ratio(numerators, denominators):
    """Median of per-repeat ratios (robust when both sides slow down together)."""
    pairs = [a / b for a, b in zip(numerators, denominators) if b > 0]
    return statistics.median(pairs) if pairs else None


def _cpu_pair(bound, pause):
    if pause:
        time.sleep(pause)
    t0 = time.perf_counter()
    bound.forward()
    t1 = time.perf_counter()
    if bound.has_backward:
        bound.backward()
    t2 = time.perf_counter()
    return t1 - t0, (t2 - t1 if bound.has_backward else None)


def _event_pair(bound, event, synchronize, elapsed_ms):
    synchronize()
    marks = [event() for _ in range(3)]
    marks[0].record()
    bound.forward()
    marks[1].record()
    if bound.has_backward:
        bound.backward()
    marks[2].record()
    marks[2].synchronize()
    fwd = elapsed_ms(marks[0], marks[1]) / 1e3
    return fwd, (elapsed_ms(marks[1], marks[2]) / 1e3 if bound.has_backward else None)


def time_pair(impl, bound, pause=0.0):
    """Seconds of one forward and (if any) one backward pass of ``bound``, on ``impl``'s clock.

    Returns ``(fwd_s, bwd_s or None)``. CPU: a ``pause`` first, then wall time. CuPy and
    torch-cuda: CUDA events around each pass, synchronised before reading.
    """
    if impl.clock == "cpu":
        return _cpu_pair(bound, pause)
    if impl.clock == "cupy":
        import cupy
        return _event_pair(bound, cupy.cuda.Event, cupy.cuda.Device().synchronize,
                           cupy.cuda.get_elapsed_time)
    if impl.clock == "torch-cuda":
        import torch
        return _event_pair(bound, lambda: torch.cuda.Event(enable_timing=True),
                           torch.cuda.synchronize, lambda a, b: a.elapsed_time(b))
    raise ValueError(f"unknown clock {impl.clock!r}")


def wall(fn):
    """Seconds one call of ``fn()`` takes (used for first calls that include compilation)."""
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0
