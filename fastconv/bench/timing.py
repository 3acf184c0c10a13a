"""Clocks and statistics for honest timings.

CPU passes are timed with ``time.perf_counter`` after a settle pause (OpenBLAS and OpenMP
worker threads keep spinning after a call and would slow whichever library runs next).
GPU passes are timed with CUDA events: the device is synchronised first (so no earlier
work is counted), an event is recorded on the stream before the forward, between the
passes and after the backward, and the last one is waited for before the elapsed times
are read. CuPy's events time fastconv's GPU path, torch's events PyTorch's
(:data:`EVENT_CLOCKS`).
"""

from __future__ import annotations

import os
import statistics
import time
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple


def _busy_seconds() -> float | None:
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

    Examples
    --------
    >>> with OtherLoad() as load:
    ...     pass
    >>> load.cores is None or load.cores >= 0
    True
    """

    def __enter__(self) -> OtherLoad:
        self._busy, self._own, self._wall = _busy_seconds(), time.process_time(), time.perf_counter()
        return self

    def __exit__(self, *exc: object) -> None:
        busy = _busy_seconds()
        if busy is None or self._busy is None:
            self.cores = None
        else:
            wall = max(time.perf_counter() - self._wall, 1e-9)
            own = time.process_time() - self._own
            self.cores = max(0.0, (busy - self._busy - own) / wall)


def summarize(samples: Sequence[float]) -> dict[str, Any]:
    """Median, min and max (milliseconds) of a list of seconds, and the samples in ms.

    Examples
    --------
    >>> summarize([0.003, 0.001, 0.002])["median_ms"]
    2.0
    """
    ms = [s * 1e3 for s in samples]
    return {"median_ms": statistics.median(ms), "min_ms": min(ms), "max_ms": max(ms),
            "samples_ms": ms}


def median_ratio(numerators: Sequence[float], denominators: Sequence[float]) -> float | None:
    """Median of per-repeat ratios (robust when both sides slow down together).

    Examples
    --------
    >>> median_ratio([2, 4, 9], [1, 2, 3])
    2.0
    """
    pairs = [a / b for a, b in zip(numerators, denominators) if b > 0]
    return statistics.median(pairs) if pairs else None


class EventClock(NamedTuple):
    """One library's CUDA event API: ``event()`` makes a timing event (with ``record()`` and
    ``synchronize()``), ``synchronize()`` waits for the device, ``elapsed_ms(a, b)`` reads
    the milliseconds between two recorded events."""

    event: Callable[[], Any]
    synchronize: Callable[[], None]
    elapsed_ms: Callable[[Any, Any], float]


def cupy_clock() -> EventClock:
    """CuPy's events (``cupy.cuda.Event``) on its current stream and device."""
    import cupy
    return EventClock(cupy.cuda.Event, cupy.cuda.Device().synchronize, cupy.cuda.get_elapsed_time)


def torch_clock() -> EventClock:
    """PyTorch's events (``torch.cuda.Event(enable_timing=True)``) on its current stream."""
    import torch
    return EventClock(lambda: torch.cuda.Event(enable_timing=True), torch.cuda.synchronize,
                      lambda start, end: start.elapsed_time(end))


EVENT_CLOCKS = {"cupy": cupy_clock, "torch-cuda": torch_clock}


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


def event_pair(bound: Any, clock: EventClock) -> tuple[float, float | None]:
    """Seconds of one forward and (if any) one backward pass of ``bound`` on CUDA events.

    Parameters
    ----------
    bound : fastconv.bench.ops.Bound
        The op bound to device arrays.
    clock : EventClock
        The events of the library ``bound`` runs on.

    Returns
    -------
    tuple of float
        ``(fwd_s, bwd_s or None)``: the device time between the events.
    """
    clock.synchronize()
    marks = [clock.event() for _ in range(3)]
    marks[0].record()
    bound.forward()
    marks[1].record()
    if bound.has_backward:
        bound.backward()
    marks[2].record()
    marks[2].synchronize()
    fwd = clock.elapsed_ms(marks[0], marks[1]) / 1e3
    return fwd, (clock.elapsed_ms(marks[1], marks[2]) / 1e3 if bound.has_backward else None)


def time_pair(impl: Any, bound: Any, pause: float = 0.0) -> tuple[float, float | None]:
    """Seconds of one forward and (if any) one backward pass of ``bound``, on ``impl``'s clock.

    Parameters
    ----------
    impl : fastconv.bench.impls.Impl
        Its ``clock`` picks the timer: ``cpu`` (a ``pause`` first, then wall time),
        ``cupy`` or ``torch-cuda`` (:func:`event_pair` with that library's events).
    bound : fastconv.bench.ops.Bound
        The op bound to ``impl``'s inputs.
    pause : float, default 0.0
        Settle seconds before a CPU forward.

    Returns
    -------
    tuple of float
        ``(fwd_s, bwd_s or None)``.

    Raises
    ------
    ValueError
        For an unknown clock.

    Examples
    --------
    >>> from fastconv.bench.impls import Impl
    >>> from fastconv.bench.ops import Bound
    >>> impl = Impl("sleep", "cpu", "cpu", None)
    >>> fwd, bwd = time_pair(impl, Bound(lambda: time.sleep(0.01), None, None))
    >>> fwd >= 0.01, bwd
    (True, None)
    """
    if impl.clock == "cpu":
        return _cpu_pair(bound, pause)
    if impl.clock in EVENT_CLOCKS:
        return event_pair(bound, EVENT_CLOCKS[impl.clock]())
    raise ValueError(f"unknown clock {impl.clock!r}")


def wall(fn: Callable[[], Any]) -> float:
    """Seconds one call of ``fn()`` takes (used for first calls that include compilation).

    Examples
    --------
    >>> wall(lambda: None) >= 0
    True
    """
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0
