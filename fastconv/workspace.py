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

On the CPU the memory is kept between calls: a fresh buffer of tens of MiB
costs a page fault per 4 KiB on first touch, which can take longer than the
copy that fills it. Idle blocks wait in one process-wide pool and are lent to
one workspace at a time; the pool never holds more blocks than were in use at
once, so it stays within a few times the limit. :func:`release_workspace`
frees them. CuPy arrays come from CuPy's own memory pool, which already reuses
device memory.

A call may also keep a buffer past its end (:meth:`Workspace.keep`): a CPU
convolution whose batch ran in one chunk holds its columns in its cache until
the backward uses them, instead of computing them twice. The buffers held
this way, by all calls together, stay within the workspace limit; a forward
that would pass it holds nothing, and its backward recomputes the columns.
"""

import contextlib
import sys
import threading
import warnings
import weakref
from dataclasses import dataclass

import numpy

from ._validate import check_int

DEFAULT_WORKSPACE_LIMIT = 256 * 2**20
_limit = DEFAULT_WORKSPACE_LIMIT
_local = threading.local()  # .limit: a workspace_limit block's override of this thread


def _checked(nbytes):
    try:
        return check_int("the workspace limit (bytes)", nbytes, 1)
    except (TypeError, ValueError):
        raise ValueError(f"the workspace limit must be a positive number of bytes, "
                         f"got {nbytes!r}") from None


def set_workspace_limit(nbytes):
    """Set the most bytes of scratch buffers one call may use (default 256 MiB), process-wide.

    Parameters
    ----------
    nbytes : int
        The limit in bytes, at least 1.

    Raises
    ------
    ValueError
        When ``nbytes`` is not a positive int.
    """
    global _limit
    _limit = _checked(nbytes)
    release_workspace()


def get_workspace_limit():
    """The current workspace limit in bytes (a :func:`workspace_limit` block's, inside one)."""
    override = getattr(_local, "limit", None)
    return _limit if override is None else override


@contextlib.contextmanager
def workspace_limit(nbytes):
    """Use ``nbytes`` as the workspace limit of this thread inside a ``with`` block.

    The kept buffers are released on entry and on exit, so none outlives the
    block at a size the limit outside it would not allow.

    Parameters
    ----------
    nbytes : int
        The limit in bytes, at least 1.
    """
    previous, _local.limit = getattr(_local, "limit", None), _checked(nbytes)
    release_workspace()
    try:
        yield
    finally:
        _local.limit = previous
        release_workspace()


@dataclass(frozen=True, slots=True)
class Buffer:
    """One scratch array an algorithm needs: its name, shape and dtype.

    ``shape`` is that of one image when ``per_image`` (the workspace adds the
    batch axis in front, sized to the chunk), else that of the whole call.
    """

    name: str
    shape: tuple
    dtype: numpy.dtype
    per_image: bool = True

    @property
    def nbytes(self):
        """Bytes of one image's share (or of the whole buffer when not per image)."""
        return int(numpy.prod(self.shape, dtype=numpy.int64)) * numpy.dtype(self.dtype).itemsize


def _caller_outside_fastconv():
    """The ``stacklevel`` of the first frame, counted from our caller, outside fastconv."""
    frame, level = sys._getframe(2), 2
    while frame is not None and frame.f_globals.get("__name__", "").startswith("fastconv."):
        frame, level = frame.f_back, level + 1
    return level


def _images_per_chunk(plan, batch, what):
    """How many images one chunk of ``plan`` takes under the limit (the batch if it has none).

    When a single image needs more than the limit, the work still runs one
    image at a time, with a warning (attributed to the user's call), rather
    than failing.
    """
    per_image = sum(b.nbytes for b in plan if b.per_image)
    once = sum(b.nbytes for b in plan if not b.per_image)
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


class _KeptBlocks:
    """The CPU memory kept between calls: idle blocks, each lent to one workspace at a time.

    A request takes the smallest idle block that is large enough. When none
    is, the largest idle block is dropped before a new one is made, so the
    blocks kept never outnumber the blocks that were in use at once.
    :meth:`release` frees the idle blocks and marks the lent ones to be freed
    on return instead of kept.
    """

    def __init__(self):
        self._idle = []
        self._generation = 0
        self._held = 0  # bytes of blocks kept past their call (Held), bounded by the limit
        self._lock = threading.Lock()

    def take(self, nbytes):
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

    def give_back(self, block, generation):
        """Keep a returned block for the next request (unless released while it was lent)."""
        with self._lock:
            if generation == self._generation:
                self._idle.append(block)

    def hold(self, nbytes):
        """True, and ``nbytes`` more counted as held, if that stays within the workspace limit."""
        with self._lock:
            if self._held + nbytes > get_workspace_limit():
                return False
            self._held += nbytes
            return True

    def unhold(self, block, generation, nbytes):
        """A held block's end: uncount it and take it back as an idle block."""
        with self._lock:
            self._held -= nbytes
        self.give_back(block, generation)

    def release(self):
        with self._lock:
            self._idle.clear()
            self._generation += 1


_kept = _KeptBlocks()


def release_workspace():
    """Free the CPU memory kept between calls (it is made again on demand).

    An array a call is using right now stays valid: that call's blocks are
    freed when it ends instead of being kept.
    """
    _kept.release()


class Held:
    """A workspace buffer kept past its call, e.g. a convolution's columns for its backward.

    ``array`` is the buffer until :meth:`take` hands it to its one user or
    :meth:`release` (or the garbage collection of this object) gives its memory
    back to the pool; it is then None. Held
    buffers together stay within the workspace limit: :meth:`Workspace.keep`
    refuses one that would not fit.
    """

    __slots__ = ("array", "_release", "__weakref__")

    def __init__(self, array, block, generation):
        self.array = array
        self._release = weakref.finalize(self, _kept.unhold, block, generation, block.nbytes)

    def take(self):
        """The array, for one user: later calls return None (the memory stays until release)."""
        array, self.array = self.array, None
        return array

    def release(self):
        """Give the memory back now (it is no longer used); a second call does nothing."""
        self.array = None
        self._release()


class Workspace:
    """The buffers of one op call, for batch chunks that fit the workspace limit.

    ``plan`` is a tuple of :class:`Buffer` with distinct names; ``batch`` the
    number of images. With ``chunked=False`` the whole batch is one chunk
    whatever the limit (pooling). Use it as::

        with Workspace(xp, plan, batch) as workspace:
            for chunk, buffers in workspace.chunks():
                ...  # buffers["cols"]: the columns buffer, sized to the chunk

    ``workspace.buffers`` are the buffers of the largest (first) chunk. Every
    array handed out belongs to this call alone until the block ends; its
    contents are uninitialised.
    """

    def __init__(self, xp, plan, batch, *, chunked=True, what="column buffer"):
        names = [b.name for b in plan]
        if len(set(names)) != len(names):
            raise ValueError(f"a workspace plan names each buffer once, got {names}")
        self.xp, self.plan, self.batch = xp, tuple(plan), batch
        self.images_per_chunk = _images_per_chunk(plan, batch, what) if chunked else max(batch, 1)
        self.buffers = None
        self._lent = {}  # name -> (block, generation) of each CPU buffer

    def __enter__(self):
        largest = min(self.images_per_chunk, self.batch)
        self.buffers = {b.name: self._array(b.name, ((largest,) if b.per_image else ())
                                            + tuple(b.shape), b.dtype) for b in self.plan}
        return self

    def __exit__(self, *exc):
        self.buffers = None
        for block, generation in self._lent.values():
            _kept.give_back(block, generation)
        self._lent = {}

    def _array(self, name, shape, dtype):
        if self.xp is not numpy:
            return self.xp.empty(shape, dtype=dtype)
        nbytes = int(numpy.prod(shape, dtype=numpy.int64)) * numpy.dtype(dtype).itemsize
        block, generation = self._lent[name] = _kept.take(nbytes)
        return block[:nbytes].view(dtype).reshape(shape)

    def keep(self, name):
        """The buffer ``name`` of a CPU workspace that ran the whole batch in one chunk, as a
        :class:`Held` that outlives this block; None where that is not so, or where the held
        buffers would then exceed the workspace limit.
        """
        if self.xp is not numpy or self.images_per_chunk < self.batch:
            return None
        block, generation = self._lent[name]
        if not _kept.hold(block.nbytes):
            return None
        del self._lent[name]
        return Held(self.buffers[name], block, generation)

    def chunks(self):
        """Yield ``(chunk, buffers)``: a slice of the batch and its buffers, chunk by chunk."""
        if self.buffers is None:
            raise RuntimeError("Workspace.chunks() is used inside its with block")
        per_image = {b.name for b in self.plan if b.per_image}
        for start in range(0, self.batch, self.images_per_chunk):
            chunk = slice(start, min(start + self.images_per_chunk, self.batch))
            size = chunk.stop - chunk.start
            yield chunk, {name: array[:size] if name in per_image else array
                          for name, array in self.buffers.items()}


def run_in_chunks(algorithm, xp, batch):
    """Run ``algorithm`` over ``batch`` images chunk by chunk; return ``algorithm.result(workspace)``.

    An algorithm declares its buffers as ``algorithm.plan`` (a tuple of
    :class:`Buffer`), computes one chunk in ``algorithm.run(chunk, buffers)``
    and assembles its outputs in ``algorithm.result(workspace)``, which may
    :meth:`Workspace.keep` a buffer for later.
    """
    with Workspace(xp, algorithm.plan, batch) as workspace:
        for chunk, buffers in workspace.chunks():
            algorithm.run(chunk, buffers)
        return algorithm.result(workspace)


@contextlib.contextmanager
def whole_batch(xp, plan, batch):
    """The buffers of ``plan`` for all ``batch`` images at once, whatever the limit.

    For the ops that do not chunk (pooling, the public im2col and col2im): their
    buffers are the size of their input or output.
    """
    with Workspace(xp, plan, batch, chunked=False) as workspace:
        yield workspace.buffers
