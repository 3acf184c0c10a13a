"""Split memory-bound CPU work over the batch across threads.

im2col, col2im and pooling are copies and elementwise loops, during which
NumPy releases the GIL; one thread cannot saturate a machine's memory system,
while the GEMMs around them already use every core (BLAS). Each image is
independent, so splitting the batch gives bitwise the same results.

``FASTCONV_NUM_THREADS`` sets the thread count (default: the CPUs this process
may run on, at most 8; 1 turns the splitting off).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy

_MIN_BYTES_PER_THREAD = 1 << 20  # below this, starting work on a thread costs more than it saves
# Work that sweeps its memory several times runs in blocks of images of about this size, one
# core's L2 on common x86 parts, so that every sweep after the first finds its block in cache.
# Max-pool backward 2x2/2 on (64, 64, 32, 32) float32: 4 sweeps, 10-13 ms whole, 5-7 ms in
# blocks of 1 MiB (256 KiB: 6-9 ms; 4 MiB: no better), the same bits.
_CACHE_BLOCK_BYTES = 1 << 20
_executor: ThreadPoolExecutor | None = None
_executor_workers = 0
_lock = threading.Lock()


def thread_count() -> int:
    """How many threads memory-bound ops may use.

    Returns
    -------
    int
        ``FASTCONV_NUM_THREADS`` when set, else the CPUs this process may run
        on, at most 8.

    Raises
    ------
    ValueError
        When ``FASTCONV_NUM_THREADS`` is not a positive int.

    Examples
    --------
    >>> thread_count() >= 1
    True
    """
    value = os.environ.get("FASTCONV_NUM_THREADS", "").strip()
    if value:
        if not value.isdigit() or int(value) < 1:
            raise ValueError(f"FASTCONV_NUM_THREADS must be a positive int, got {value!r}")
        return int(value)
    return max(1, min(8, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity")
                      else os.cpu_count() or 1))


def _pool(workers: int) -> ThreadPoolExecutor:
    """The shared worker threads, grown to at least ``workers``."""
    global _executor, _executor_workers
    with _lock:
        if _executor is None or _executor_workers < workers:  # None: workers is 0
            _executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="fastconv")
            _executor_workers = workers
        return _executor


def over_batch(work: Callable[[slice], Any], batch: int, nbytes: int, passes: int = 1) -> None:
    """Run ``work(batch_slice)`` over ``range(batch)``, split across threads when worth it.

    ``nbytes`` is the memory the whole batch's work touches; each thread gets
    at least about 1 MiB of it. Work that sweeps that memory several times
    (``passes`` > 1) runs on each thread in blocks of images of about 1 MiB,
    one call each, so that the later sweeps read from cache. Every slice is
    done before this returns, and an exception from any slice is raised here.
    Every slice runs under the caller's ``numpy.errstate``.

    Parameters
    ----------
    work : callable
        ``work(batch_slice)``.
    batch : int
        The images.
    nbytes : int
        The memory the whole batch's work touches.
    passes : int, default 1
        How many times the work sweeps that memory.

    Examples
    --------
    >>> done = []
    >>> over_batch(done.append, 4, 100)
    >>> done
    [slice(0, 4, None)]
    """
    if passes > 1:
        work = _in_blocks(work, max(1, _CACHE_BLOCK_BYTES * batch // max(nbytes, 1)))
    threads = min(thread_count(), batch, max(1, nbytes // _MIN_BYTES_PER_THREAD))
    if threads <= 1:
        work(slice(0, batch))
        return
    bounds = [batch * t // threads for t in range(threads + 1)]
    slices = [slice(start, stop) for start, stop in zip(bounds, bounds[1:])]
    # NumPy's floating-point error settings belong to each thread: the workers take the
    # caller's, so inside numpy.errstate(...) every slice warns, raises or stays quiet alike
    settings = numpy.geterr()

    def in_callers_errstate(part: slice) -> Any:
        with numpy.errstate(**settings):
            return work(part)

    futures = [_pool(threads - 1).submit(in_callers_errstate, s) for s in slices[1:]]
    work(slices[0])
    for future in futures:
        future.result()


def _in_blocks(work: Callable[[slice], Any], images: int) -> Callable[[slice], None]:
    """``work`` over a slice, called once per block of at most ``images`` images of it."""
    def blocks(part: slice) -> None:
        for start in range(part.start, part.stop, images):
            work(slice(start, min(start + images, part.stop)))
    return blocks
