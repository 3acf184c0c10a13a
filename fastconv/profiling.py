"""Where an op's time goes: named steps timed inside the real code path.

The ops wrap their steps (padding, im2col, each GEMM, col2im, layout copies)
in :func:`step`; outside :func:`record` a step costs one attribute lookup.
``fastconv bench --breakdown`` runs the ops under :func:`record`, so its
numbers describe exactly the code users run; time not inside any step is the
Python overhead. CPU only: GPU steps would need a synchronisation each.
"""

import contextlib
import time

_totals = None  # the dict being recorded into, or None


@contextlib.contextmanager
def record():
    """Collect ``{step name: seconds}`` for the ops run inside the ``with`` block."""
    global _totals
    outer, _totals = _totals, {}
    try:
        yield _totals
    finally:
        _totals = outer


class step:
    """Context manager timing one named step into the active :func:`record`, if any."""

    __slots__ = ("name", "start")

    def __init__(self, name):
        self.name = name

    def __enter__(self):
        if _totals is not None:
            self.start = time.perf_counter()

    def __exit__(self, *exc):
        if _totals is not None:
            elapsed = time.perf_counter() - self.start
            _totals[self.name] = _totals.get(self.name, 0.0) + elapsed
