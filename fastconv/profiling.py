"""Where an op's time goes: named steps timed inside the real code path.

The ops wrap their steps (padding, im2col, each GEMM, col2im, layout copies)
in :func:`step`; outside :func:`record` a step costs one attribute lookup.
``fastconv bench --breakdown`` runs the ops under :func:`record`, so its
numbers describe exactly the code users run; time not inside any step is the
Python overhead. CPU only: GPU steps would need a synchronisation each.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator

_totals: dict[str, float] | None = None  # the dict being recorded into, or None


@contextlib.contextmanager
def record() -> Iterator[dict[str, float]]:
    """Collect the seconds of each named step the ops run inside the ``with`` block.

    Yields
    ------
    dict of str to float
        ``{step name: seconds}``, filled while the block runs.

    Examples
    --------
    >>> with record() as seconds:
    ...     with step("im2col"):
    ...         pass
    >>> list(seconds)
    ['im2col']
    """
    global _totals
    outer, _totals = _totals, {}
    try:
        yield _totals
    finally:
        _totals = outer


class step:
    """Context manager timing one named step into the active :func:`record`, if any.

    Parameters
    ----------
    name : str
        The step's name; the times of steps with one name add up.

    Examples
    --------
    >>> with record() as seconds:
    ...     for _ in range(2):
    ...         with step("gemm"):
    ...             pass
    >>> seconds["gemm"] >= 0.0
    True
    """

    __slots__ = ("name", "start")

    def __init__(self, name: str) -> None:
        self.name = name

    def __enter__(self) -> None:
        if _totals is not None:
            self.start = time.perf_counter()

    def __exit__(self, *exc: object) -> None:
        if _totals is not None:
            elapsed = time.perf_counter() - self.start
            _totals[self.name] = _totals.get(self.name, 0.0) + elapsed
