"""The CPU memory the workspaces keep between calls, and the buffers held past their call.

Idle blocks wait in one process-wide pool and are lent to one workspace at a
time; :class:`Held` is a buffer kept past its call by
:meth:`fastconv.workspace.Workspace.keep` (a CPU block, or a CuPy array whose memory
CuPy's pool gets back when it is dropped). The pool counts the bytes held, on either
device, against the workspace limit.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Callable
from typing import Any

import numpy


# The CPU memory is kept between calls because a fresh buffer of tens of MiB
# costs a page fault per 4 KiB on first touch, which can take longer than the
# copy that fills it. CuPy's memory pool already reuses device memory.
class _KeptBlocks:
    """The CPU memory kept between calls: idle blocks, each lent to one workspace at a time.

    A request takes the smallest idle block that is large enough. When none
    is, the largest idle block is dropped before a new one is made, so the
    blocks kept never outnumber the blocks that were in use at once.
    :meth:`release` frees the idle blocks and marks the lent ones to be freed
    on return instead of kept.
    """

    def __init__(self) -> None:
        self._idle: list[numpy.ndarray] = []
        self._generation = 0
        self._held = 0  # bytes of blocks kept past their call (Held), bounded by the limit
        self._lock = threading.Lock()

    def take(self, nbytes: int) -> tuple[numpy.ndarray, int]:
        """``(block, generation)``: a uint8 array of at least ``nbytes`` bytes, lent to the caller."""
        with self._lock:
            sizes = [block.nbytes for block in self._idle]  # blocks are arrays: find them by index
            fits = [i for i, size in enumerate(sizes) if size >= nbytes]
            if fits:
                return self._idle.pop(min(fits, key=sizes.__getitem__)), self._generation
            if self._idle:
                self._idle.pop(sizes.index(max(sizes)))
            generation = self._generation
        return numpy.empty(nbytes, dtype=numpy.uint8), generation

    def give_back(self, block: numpy.ndarray, generation: int) -> None:
        """Keep a returned block for the next request (unless released while it was lent)."""
        with self._lock:
            if generation == self._generation:
                self._idle.append(block)

    def hold(self, nbytes: int, limit: int) -> bool:
        """True, and ``nbytes`` more counted as held, if that stays within ``limit`` bytes."""
        with self._lock:
            if self._held + nbytes > limit:
                return False
            self._held += nbytes
            return True

    def unhold(self, nbytes: int, block: numpy.ndarray | None = None, generation: int = 0
               ) -> None:
        """A held buffer's end: uncount its ``nbytes`` and take its CPU ``block`` (if any) back
        as an idle block."""
        with self._lock:
            self._held -= nbytes
        if block is not None:
            self.give_back(block, generation)

    def release(self) -> None:
        """Free the idle blocks; the lent ones are freed on return instead of kept."""
        with self._lock:
            self._idle.clear()
            self._generation += 1


kept_blocks = _KeptBlocks()  # the process-wide pool


class Held:
    """A workspace buffer kept past its call, e.g. a convolution's columns for its backward.

    Made by :meth:`fastconv.workspace.Workspace.keep`, which refuses a buffer that would take the
    held buffers, all together, past the workspace limit.

    Parameters
    ----------
    array : numpy.ndarray or cupy.ndarray
        The buffer.
    release : callable
        Gives its memory back (:meth:`_KeptBlocks.unhold` with its arguments bound), called
        once: by :meth:`release` or when this object is collected.

    Attributes
    ----------
    array : numpy.ndarray, cupy.ndarray or None
        The buffer until :meth:`take` hands it to its one user or
        :meth:`release` (or the garbage collection of this object) gives its
        memory back to the pool; None after that.

    Examples
    --------
    >>> import numpy as np
    >>> from fastconv.workspace import Buffer, Workspace
    >>> with Workspace(np, (Buffer("cols", (4,), np.float32),), 2) as workspace:
    ...     held = workspace.keep("cols")
    >>> held.array.shape
    (2, 4)
    >>> held.release()
    >>> held.array is None
    True
    """

    __slots__ = ("array", "_release", "__weakref__")

    def __init__(self, array: Any, release: Callable[[], None]) -> None:
        self.array: Any = array
        self._release = weakref.finalize(self, release)

    def take(self) -> Any:
        """The array, for one user: later calls return None (the memory stays until release)."""
        array, self.array = self.array, None
        return array

    def release(self) -> None:
        """Give the memory back now (it is no longer used); a second call does nothing."""
        self.array = None
        self._release()
