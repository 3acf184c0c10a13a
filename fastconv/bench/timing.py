"""Clocks and statistics for honest timings.

CPU passes are timed with ``time.perf_counter`` after a settle pause (OpenBLAS and OpenMP
worker threads keep spinning after a call and would slow whichever library runs next);
GPU passes with CUDA events recorded on the stream and a synchronisation before reading.
"""

import os
import statistics
import time


def _busy_seconds():
    """CPU seconds all processes have used since boot (Linux /proc/stat), or None elsewhere."""
    try:
        with open("/proc/stat") as f:
            fields = f.readline().split()[1:]
    except OSError:
        return None
    user, nice, system, _idle, _iowait, irq, softirq = (int(v) for v in fields[:7])
    return (user + nice + system + irq + softirq) / os.sysconf("SC_CLK_TCK")


class OtherLoad:
    """How many cores other processes kept busy while a block ran (the shared-machine check).

    ``with OtherLoad() as load: ...`` then ``load.cores``: (all CPU time - this process's CPU
    time) / wall time. None where /proc/stat is unavailable.
    """

    def __enter__(self):
        self._busy, self._own, self._wall = _busy_seconds(), time.process_time(), time.perf_counter()
        return self

    def __exit__(self, *exc):
        busy = _busy_seconds()
        if busy is None or self._busy is None:
            self.cores = None
        else:
            wall = max(time.perf_counter() - self._wall, 1e-9)
            own = time.process_time() - self._own
            self.cores = max(0.0, (busy - self._busy - own) / wall)
        return False


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
