"""The workspace limit: the memory one call may use for its column buffers.

im2col trades memory for speed: the column matrix of a whole batch is about
KH*KW times the input. Every op splits its batch into chunks whose buffers fit
in the limit, so memory stays bounded whatever the batch size; results do not
depend on the chunking.

On the CPU the buffers themselves are kept between calls (one set per thread,
see :func:`scratch`): a fresh buffer of tens of MiB costs a page fault per
4 KiB on first touch, which can take longer than the copy that fills it.
They never grow past what one call under the limit needs;
:func:`release_workspace` frees them.
"""

import contextlib
import threading
import warnings

import numpy

DEFAULT_WORKSPACE_LIMIT = 256 * 2**20
_limit = DEFAULT_WORKSPACE_LIMIT


def _checked(nbytes):
    if isinstance(nbytes, bool) or not isinstance(nbytes, int) or nbytes < 1:
        raise ValueError(f"the workspace limit must be a positive number of bytes, got {nbytes!r}")
    return nbytes


def set_workspace_limit(nbytes):
    """Set the most bytes of column buffers one call may allocate (default 256 MiB)."""
    global _limit
    _limit = _checked(nbytes)
    release_workspace()


def get_workspace_limit():
    """The current workspace limit in bytes."""
    return _limit


@contextlib.contextmanager
def workspace_limit(nbytes):
    """Use ``nbytes`` as the workspace limit inside a ``with`` block, then restore it."""
    global _limit
    previous, _limit = _limit, _checked(nbytes)
    release_workspace()
    try:
        yield
    finally:
        _limit = previous


def batch_chunks(batch, bytes_per_item, what="column buffer"):
    """Split ``range(batch)`` into slices whose buffers fit the workspace limit.

    ``bytes_per_item`` is the workspace one batch item needs. When a single
    item needs more than the limit, the work still runs one item at a time,
    with a warning, rather than failing.
    """
    limit = _limit
    if bytes_per_item > limit:
        warnings.warn(
            f"the {what} of a single image needs {bytes_per_item} bytes, more than the "
            f"workspace limit of {limit} bytes; processing one image at a time",
            stacklevel=3)
    step = max(1, limit // max(1, bytes_per_item))
    return [slice(start, min(start + step, batch)) for start in range(0, batch, step)]


_kept = threading.local()


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
    buffers = _kept.__dict__.setdefault("buffers", {})
    buffer = buffers.get(name)
    if buffer is None or buffer.nbytes < nbytes:
        buffers[name] = buffer = None  # let the old one go before allocating
        buffers[name] = buffer = numpy.empty(nbytes, dtype=numpy.uint8)
    return buffer[:nbytes].view(dtype).reshape(shape)


def release_workspace():
    """Free the CPU buffers this thread keeps between calls (they are re-made on demand)."""
    _kept.__dict__.pop("buffers", None)
