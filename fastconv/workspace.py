"""The workspace limit: the memory one call may use for its column buffers.

im2col trades memory for speed: the column matrix of a whole batch is about
KH*KW times the input. Every op splits its batch into chunks whose buffers fit
in the limit, so memory stays bounded whatever the batch size; results do not
depend on the chunking.
"""

import contextlib
import warnings

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


def get_workspace_limit():
    """The current workspace limit in bytes."""
    return _limit


@contextlib.contextmanager
def workspace_limit(nbytes):
    """Use ``nbytes`` as the workspace limit inside a ``with`` block, then restore it."""
    global _limit
    previous, _limit = _limit, _checked(nbytes)
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
