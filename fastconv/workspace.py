"""The workspace limit: the memory one call may use for its column buffers.

im2col trades memory for speed: the column matrix of a whole batch is about
KH*KW times the input. A convolution splits its batch into chunks whose
buffers fit in the limit, so memory stays bounded whatever the batch size;
results do not depend on the chunking, up to rounding in dw and db (they sum
over the chunks). Pooling does not chunk: its padded copy is the size of the
input.

The limit is process-wide (:func:`set_workspace_limit`); the
:func:`workspace_limit` block overrides it for the calling thread only, so
threads never see each other's temporary limits.

On the CPU the buffers themselves are kept between calls (one set per thread,
fastconv's worker threads included, see :func:`scratch`): a fresh buffer of
tens of MiB costs a page fault per 4 KiB on first touch, which can take longer
than the copy that fills it. Each kept buffer is never larger than one call
under the limit needs; together, across the steps of a forward and backward
pass and across threads, they can reach a few times the limit.
:func:`release_workspace` frees them all.
"""

import contextlib
import numbers
import sys
import threading
import warnings
import weakref

import numpy

DEFAULT_WORKSPACE_LIMIT = 256 * 2**20
_limit = DEFAULT_WORKSPACE_LIMIT
_local = threading.local()  # .limit: a workspace_limit block's override; .kept: the buffers


def _checked(nbytes):
    if isinstance(nbytes, bool) or not isinstance(nbytes, numbers.Integral) or nbytes < 1:
        raise ValueError(f"the workspace limit must be a positive number of bytes, got {nbytes!r}")
    return int(nbytes)


def set_workspace_limit(nbytes):
    """Set the most bytes of column buffers one call may allocate (default 256 MiB), process-wide."""
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
    """
    previous, _local.limit = getattr(_local, "limit", None), _checked(nbytes)
    release_workspace()
    try:
        yield
    finally:
        _local.limit = previous
        release_workspace()


def _caller_outside_fastconv():
    """The ``stacklevel`` of the first frame, counted from our caller, outside fastconv."""
    frame, level = sys._getframe(2), 2
    while frame is not None and frame.f_globals.get("__name__", "").startswith("fastconv."):
        frame, level = frame.f_back, level + 1
    return level


def batch_chunks(batch, bytes_per_item, what="column buffer"):
    """Split ``range(batch)`` into slices whose buffers fit the workspace limit.

    ``bytes_per_item`` is the workspace one batch item needs. When a single
    item needs more than the limit, the work still runs one item at a time,
    with a warning (attributed to the user's call), rather than failing.
    """
    limit = get_workspace_limit()
    if bytes_per_item > limit:
        warnings.warn(
            f"the {what} of a single image needs {bytes_per_item} bytes, more than the "
            f"workspace limit of {limit} bytes; processing one image at a time",
            stacklevel=_caller_outside_fastconv())
    step = max(1, limit // max(1, bytes_per_item))
    return [slice(start, min(start + step, batch)) for start in range(0, batch, step)]


class _Kept(dict):
    """One thread's buffers by name (a dict subclass, so the registry can hold it weakly)."""


_every_thread = weakref.WeakValueDictionary()  # id -> each live thread's _Kept
_registry_lock = threading.Lock()


def _kept():
    kept = getattr(_local, "kept", None)
    if kept is None:
        kept = _local.kept = _Kept()
        with _registry_lock:
            _every_thread[id(kept)] = kept
    return kept


def scratch(xp, name, shape, dtype):
    """An uninitialised ``shape`` array for one step of an op, from a buffer kept between calls.

    ``name`` identifies the step's buffer ("cols", "dcols", ...): two arrays
    with the same name on one thread share memory, so an op takes each name
    once and never returns such an array. NumPy only; CuPy arrays come from
    CuPy's own memory pool, which already reuses device memory.
    """
    if xp is not numpy:
        return xp.empty(shape, dtype=dtype)
    nbytes = int(numpy.prod(shape, dtype=numpy.int64)) * numpy.dtype(dtype).itemsize
    buffers = _kept()
    buffer = buffers.get(name)
    if buffer is None or buffer.nbytes < nbytes:
        buffers[name] = buffer = None  # let the old one go before allocating
        buffers[name] = buffer = numpy.empty(nbytes, dtype=numpy.uint8)
    return buffer[:nbytes].view(dtype).reshape(shape)


def release_workspace():
    """Free the CPU buffers kept between calls, by every thread (re-made on demand).

    An array a thread is using right now stays valid: it holds its own
    reference to its buffer, which is freed when that thread is done with it.
    """
    with _registry_lock:
        every = list(_every_thread.values())
    for kept in every:
        kept.clear()
