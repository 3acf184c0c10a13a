"""The workspace: the scratch memory of one op call, declared up front and bounded by a limit.

im2col trades memory for speed: the column matrix of a whole batch is about
KH*KW times the input. Each algorithm declares the buffers it needs as data,
a *plan*: a tuple of :class:`Buffer` (name, shape of one image or of the whole
call, dtype). A :class:`Workspace` sums the plan, splits the batch into chunks
whose buffers fit the workspace limit, hands out each chunk's buffers and takes
them back when the call ends; until then they belong to that call alone, so no
two users ever share memory. Memory stays bounded whatever the batch size, and
results do not depend on the chunking, up to rounding in dw and db (they sum
over the chunks). Pooling does not chunk: its padded copy is the size of the
input.

The limit is process-wide (:func:`set_workspace_limit`); the
:func:`workspace_limit` block overrides it for the calling thread only, so
threads never see each other's temporary limits.

On the CPU the memory is kept between calls (:mod:`fastconv._kept_memory`):
idle blocks wait in one process-wide pool and are lent to one workspace at a
time; the pool never holds more blocks than were in use at once, so it stays
within a few times the limit. :func:`release_workspace` frees them. CuPy
arrays come from CuPy's own memory pool.

A call may also keep a buffer past its end (:meth:`Workspace.keep`): a
convolution whose batch ran in one chunk holds its columns in its cache until
the backward uses them, instead of computing them twice (on the CPU and the GPU). The buffers held
this way, by all calls together, stay within the workspace limit; a forward
that would pass it holds nothing, and its backward recomputes the columns.
"""

from __future__ import annotations

import contextlib
import functools
import math
import sys
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from types import ModuleType
from typing import Any, cast

import numpy

from ._kept_memory import Held
from ._kept_memory import kept_blocks as _kept
from ._typing import Array, DTypeLike
from ._workspace_limit import (DEFAULT_WORKSPACE_LIMIT, get_workspace_limit, release_workspace,
                               set_workspace_limit, workspace_limit)

@dataclass(frozen=True, slots=True)
class Buffer:
    """One scratch array an algorithm needs: its name, shape and dtype.

    Parameters
    ----------
    name : str
        The buffer's name, unique within a plan.
    shape : tuple of int
        The shape of one image's share when ``per_image`` (the workspace adds
        the batch axis in front, sized to the chunk), else that of the whole call.
    dtype : dtype-like
        Its dtype.
    per_image : bool, default True
        Whether the buffer grows with the batch chunk.

    Examples
    --------
    >>> import numpy as np
    >>> Buffer("cols", (27, 64), np.float32).nbytes
    6912
    """

    name: str
    shape: tuple[int, ...]
    dtype: DTypeLike
    per_image: bool = True

    @property
    def nbytes(self) -> int:
        """Bytes of one image's share (or of the whole buffer when not per image)."""
        return math.prod(self.shape) * numpy.dtype(self.dtype).itemsize


def _caller_outside_fastconv():
    """The ``stacklevel`` of the first frame, counted from our caller, outside fastconv."""
    frame, level = sys._getframe(2), 2
    while frame is not None and frame.f_globals.get("__name__", "").startswith("fastconv."):
        frame, level = frame.f_back, level + 1
    return level


def _plan_bytes(plan: tuple[Buffer, ...]) -> tuple[int, int]:
    """(bytes per image, bytes once) of ``plan``, after checking it names each buffer once."""
    try:
        return _hashable_plan_bytes(plan)
    except TypeError:  # a shape given as a list: unhashable, so not memoised
        return _hashable_plan_bytes.__wrapped__(plan)


# Memoised: a training loop's calls repeat a few plans, and their sizes follow from them alone
@functools.lru_cache(maxsize=256)
def _hashable_plan_bytes(plan: tuple[Buffer, ...]) -> tuple[int, int]:
    names = [b.name for b in plan]
    if len(set(names)) != len(names):
        raise ValueError(f"a workspace plan names each buffer once, got {names}")
    return (sum(b.nbytes for b in plan if b.per_image),
            sum(b.nbytes for b in plan if not b.per_image))


def _images_per_chunk(plan: tuple[Buffer, ...], batch: int, what: str) -> int:
    """How many images one chunk of ``plan`` takes under the limit (the batch if it has none).

    When a single image needs more than the limit, the work still runs one
    image at a time, with a warning (attributed to the user's call), rather
    than failing.
    """
    per_image, once = _plan_bytes(plan)
    if per_image == 0:
        return max(batch, 1)
    limit = get_workspace_limit()
    if per_image + once > limit:
        warnings.warn(
            f"the {what} of a single image needs {per_image + once} bytes, more than the "
            f"workspace limit of {limit} bytes; processing one image at a time",
            stacklevel=_caller_outside_fastconv())
        return 1
    return (limit - once) // per_image


class Workspace:
    """The buffers of one op call, for batch chunks that fit the workspace limit.

    Every array handed out belongs to this call alone until the ``with`` block
    ends; its contents are uninitialised.

    Parameters
    ----------
    xp : module
        ``numpy`` or ``cupy``: where the buffers live.
    plan : sequence of Buffer
        The buffers, with distinct names.
    batch : int
        The number of images.
    chunked : bool, default True
        False: the whole batch is one chunk whatever the limit (pooling).
    what : str, default "column buffer"
        What the buffers are, for the warning when one image alone needs more
        than the limit (the work then runs one image at a time).

    Attributes
    ----------
    images_per_chunk : int
        The images of one chunk.
    buffers : dict of str to array, or None
        Inside the block, the buffers of the largest (first) chunk.

    Raises
    ------
    ValueError
        When the plan names a buffer twice.

    Examples
    --------
    >>> import numpy as np
    >>> plan = (Buffer("cols", (9, 4), np.float32),)
    >>> with workspace_limit(2 * 9 * 4 * 4), Workspace(np, plan, 5) as workspace:
    ...     [(chunk.start, buffers["cols"].shape) for chunk, buffers in workspace.chunks()]
    [(0, (2, 9, 4)), (2, (2, 9, 4)), (4, (1, 9, 4))]
    """

    def __init__(self, xp: ModuleType, plan: Sequence[Buffer], batch: int, *,
                 chunked: bool = True, what: str = "column buffer") -> None:
        self.xp, self.plan, self.batch = xp, tuple(plan), batch
        _plan_bytes(self.plan)  # refuses a name given twice, chunked or not
        self.images_per_chunk = (_images_per_chunk(self.plan, batch, what) if chunked
                                 else max(batch, 1))
        self.buffers: dict[str, Array] | None = None
        self._lent: dict[str, tuple[numpy.ndarray, int]] = {}  # name -> CPU block, generation

    def __enter__(self) -> Workspace:
        largest = min(self.images_per_chunk, self.batch)
        self.buffers = {b.name: self._array(b.name, ((largest,) if b.per_image else ())
                                            + tuple(b.shape), b.dtype) for b in self.plan}
        return self

    def __exit__(self, *exc: object) -> None:
        self.buffers = None
        for block, generation in self._lent.values():
            _kept.give_back(block, generation)
        self._lent = {}

    def _array(self, name: str, shape: tuple[int, ...], dtype: DTypeLike) -> Array:
        if self.xp is not numpy:
            return self.xp.empty(shape, dtype=dtype)
        nbytes = math.prod(shape) * numpy.dtype(dtype).itemsize
        block, generation = self._lent[name] = _kept.take(nbytes)
        return block[:nbytes].view(dtype).reshape(shape)

    def keep(self, name: str) -> Held | None:
        """Keep a buffer past the end of the block, for a later call to use.

        Parameters
        ----------
        name : str
            The buffer's name in the plan.

        Returns
        -------
        Held or None
            The buffer, when the workspace ran the whole batch in one chunk
            and the held buffers, on every device together, stay within the
            workspace limit with it; else None.
        """
        if self.images_per_chunk < self.batch:
            return None
        array = cast("dict[str, Array]", self.buffers)[name]
        if self.xp is not numpy:
            # CuPy's array: held, it stays out of CuPy's pool until released
            if not _kept.hold(array.nbytes, get_workspace_limit()):
                return None
            return Held(array, functools.partial(_kept.unhold, array.nbytes))
        block, generation = self._lent[name]
        if not _kept.hold(block.nbytes, get_workspace_limit()):
            return None
        del self._lent[name]
        return Held(array, functools.partial(_kept.unhold, block.nbytes, block, generation))

    def chunks(self) -> Iterator[tuple[slice, dict[str, Array]]]:
        """The batch chunk by chunk, each chunk with its buffers.

        Yields
        ------
        chunk : slice
            The chunk's images in the batch.
        buffers : dict of str to array
            The plan's buffers, the per-image ones cut to the chunk's size.

        Raises
        ------
        RuntimeError
            When called outside the workspace's ``with`` block.
        """
        if self.buffers is None:
            raise RuntimeError("Workspace.chunks() is used inside its with block")
        buffers, largest = self.buffers, min(self.images_per_chunk, self.batch)
        for start in range(0, self.batch, self.images_per_chunk):
            chunk = slice(start, min(start + self.images_per_chunk, self.batch))
            size = chunk.stop - chunk.start
            if size == largest:  # every chunk but a shorter last one: the buffers whole
                yield chunk, buffers
            else:
                yield chunk, {b.name: buffers[b.name][:size] if b.per_image
                              else buffers[b.name] for b in self.plan}


def chunk_of(array: Array, chunk: slice) -> Array:
    """``array[chunk]``, the images of one batch chunk: ``array`` itself for the whole batch.

    A batch within the workspace limit runs as one chunk, and a CuPy view costs the host
    about a microsecond (as much as a launch's argument checks), so the GPU algorithms take
    their arrays whole where they can.

    Parameters
    ----------
    array : ndarray
        Batched along its first axis.
    chunk : slice
        From :meth:`Workspace.chunks`.

    Returns
    -------
    ndarray
        ``array`` or a view of it.

    Examples
    --------
    >>> import numpy as np
    >>> x = np.zeros((4, 3))
    >>> chunk_of(x, slice(0, 4)) is x, chunk_of(x, slice(2, 4)).shape
    (True, (2, 3))
    """
    if chunk.start == 0 and chunk.stop == array.shape[0]:
        return array
    return array[chunk]


def run_in_chunks(algorithm: Any, xp: ModuleType, batch: int) -> Any:
    """Run an algorithm over a batch, chunk by chunk, in one workspace.

    Parameters
    ----------
    algorithm : object
        Declares its buffers as ``algorithm.plan`` (a tuple of :class:`Buffer`),
        computes one chunk in ``algorithm.run(chunk, buffers)`` and assembles
        its outputs in ``algorithm.result(workspace)``, which may
        :meth:`Workspace.keep` a buffer for later.
    xp : module
        ``numpy`` or ``cupy``.
    batch : int
        The number of images.

    Returns
    -------
    object
        What ``algorithm.result(workspace)`` returns.

    Examples
    --------
    >>> import numpy as np
    >>> class ChunkSizes:
    ...     plan = (Buffer("tmp", (3,), np.float64),)
    ...     sizes = []
    ...     def run(self, chunk, buffers):
    ...         self.sizes.append(len(buffers["tmp"]))
    ...     def result(self, workspace):
    ...         return self.sizes
    >>> with workspace_limit(2 * 3 * 8):
    ...     run_in_chunks(ChunkSizes(), np, 5)
    [2, 2, 1]
    """
    with Workspace(xp, algorithm.plan, batch) as workspace:
        for chunk, buffers in workspace.chunks():
            algorithm.run(chunk, buffers)
        return algorithm.result(workspace)


@contextlib.contextmanager
def whole_batch(xp: ModuleType, plan: Sequence[Buffer], batch: int
                ) -> Iterator[dict[str, Array]]:
    """The buffers of a plan for all the images of a batch at once, whatever the limit.

    For the ops that do not chunk (pooling, the public im2col and col2im):
    their buffers are the size of their input or output.

    Parameters
    ----------
    xp : module
        ``numpy`` or ``cupy``.
    plan : tuple of Buffer
        The buffers, with distinct names.
    batch : int
        The number of images.

    Yields
    ------
    dict of str to array
        The buffers, the per-image ones with ``batch`` in front of their shape.

    Examples
    --------
    >>> import numpy as np
    >>> plan = (Buffer("padded", (3, 6, 6), np.float32),)
    >>> with workspace_limit(1), whole_batch(np, plan, 8) as buffers:
    ...     buffers["padded"].shape
    (8, 3, 6, 6)
    """
    with Workspace(xp, plan, batch, chunked=False) as workspace:
        yield cast("dict[str, Array]", workspace.buffers)  # set on entry
