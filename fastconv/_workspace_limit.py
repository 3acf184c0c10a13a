"""The workspace limit: the most bytes of scratch buffers one call may use.

Process-wide (:func:`set_workspace_limit`), and overridden for the calling thread only
inside a :func:`workspace_limit` block, so threads never see each other's temporary
limits. Changing it frees the CPU memory kept between calls (:func:`release_workspace`),
so no kept buffer outlives a limit that would not allow it. Re-exported by
:mod:`fastconv.workspace`, whose plans and chunks it bounds.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator

from ._kept_memory import kept_blocks as _kept
from ._validate import check_int

DEFAULT_WORKSPACE_LIMIT = 256 * 2**20
_limit = DEFAULT_WORKSPACE_LIMIT
_local = threading.local()  # .limit: a workspace_limit block's override of this thread


def _checked(nbytes: int) -> int:
    try:
        return check_int("the workspace limit (bytes)", nbytes, 1)
    except (TypeError, ValueError):
        raise ValueError(f"the workspace limit must be a positive number of bytes, "
                         f"got {nbytes!r}") from None


def set_workspace_limit(nbytes: int) -> None:
    """Set the most bytes of scratch buffers one call may use (default 256 MiB), process-wide.

    The CPU memory kept between calls is released too.

    Parameters
    ----------
    nbytes : int
        The limit in bytes, at least 1.

    Raises
    ------
    ValueError
        When ``nbytes`` is not a positive int.

    Examples
    --------
    >>> previous = get_workspace_limit()
    >>> set_workspace_limit(64 * 2**20)
    >>> get_workspace_limit()
    67108864
    >>> set_workspace_limit(previous)
    """
    global _limit
    _limit = _checked(nbytes)
    release_workspace()


def get_workspace_limit() -> int:
    """The workspace limit in bytes in force for the calling thread.

    Returns
    -------
    int
        The innermost :func:`workspace_limit` block's limit inside one, else
        the process-wide limit.

    Examples
    --------
    >>> with workspace_limit(4096):
    ...     get_workspace_limit()
    4096
    """
    override = getattr(_local, "limit", None)
    return _limit if override is None else override


@contextlib.contextmanager
def workspace_limit(nbytes: int) -> Iterator[None]:
    """Use ``nbytes`` as the workspace limit of this thread inside a ``with`` block.

    Other threads keep their own limit. The CPU memory kept between calls is
    released on entry and on exit.

    Parameters
    ----------
    nbytes : int
        The limit in bytes, at least 1.

    Yields
    ------
    None

    Raises
    ------
    ValueError
        When ``nbytes`` is not a positive int.

    Examples
    --------
    >>> outside = get_workspace_limit()
    >>> with workspace_limit(2**20):
    ...     get_workspace_limit()
    1048576
    >>> get_workspace_limit() == outside
    True
    """
    previous, _local.limit = getattr(_local, "limit", None), _checked(nbytes)
    # Released on entry and exit so that no kept buffer outlives the block at a
    # size the limit outside it would not allow.
    release_workspace()
    try:
        yield
    finally:
        _local.limit = previous
        release_workspace()


def release_workspace() -> None:
    """Free the CPU memory kept between calls (it is made again on demand).

    An array a call is using right now stays valid: that call's blocks are
    freed when it ends instead of being kept.

    Examples
    --------
    >>> release_workspace()
    """
    _kept.release()
