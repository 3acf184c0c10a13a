"""Ending the whole job when one rank fails or stops answering, instead of leaving peers waiting.

MPI has no timeout: a peer that stops answering (SIGSTOP, a hang, a lost node)
would leave the others in a collective forever, and a rank that dies of an
uncaught exception would leave them waiting for it. A watchdog thread aborts the
job, naming the rank and the collective, when one waits longer than
``$FASTCONV_COLLECTIVE_TIMEOUT`` seconds; an exception hook aborts it on an
uncaught exception.
"""

from __future__ import annotations

import functools
import os
import sys
import threading
import time
import traceback
from collections.abc import Callable
from typing import Any, TypeVar

from .._validate import check_real

TIMEOUT_VAR = "FASTCONV_COLLECTIVE_TIMEOUT"
DEFAULT_TIMEOUT_S = 300.0  # what one rank may do as the others wait: load data, checkpoint

_Method = TypeVar("_Method", bound=Callable[..., Any])


def collective_timeout() -> float:
    """``$FASTCONV_COLLECTIVE_TIMEOUT`` in seconds (default 300; 0: no limit), checked."""
    text = os.environ.get(TIMEOUT_VAR, "").strip() or str(DEFAULT_TIMEOUT_S)
    try:
        return check_real(TIMEOUT_VAR, float(text), 0)
    except ValueError:
        raise ValueError(f"{TIMEOUT_VAR} must be a number of seconds >= 0 (0: no limit), "
                         f"got {text!r}") from None


def watch_collectives(communicator: Any, timeout_s: float) -> None:
    """Abort the job, from a daemon thread, when a collective waits longer than ``timeout_s``.

    The main thread stamps the collective it is in (:func:`collective`); the thread checks
    the stamp ten times per timeout, at most once a second.
    """
    # mpi4py releases the GIL in MPI calls and asks for MPI_THREAD_MULTIPLE, so the
    # thread may abort while the main thread waits in one.
    def watch():
        while True:
            time.sleep(min(1.0, timeout_s / 10))
            pending = communicator._pending  # replaced whole by the main thread
            if pending is not None and time.monotonic() - pending[1] > timeout_s:
                abort_job(communicator, f"{pending[0]} waited more than {timeout_s:g} s for "
                          f"the other ranks ({TIMEOUT_VAR}): one of them stopped answering "
                          "(stopped, hung or lost); aborting the job")

    threading.Thread(target=watch, daemon=True, name="fastconv-collective-watchdog").start()


def collective(method: _Method) -> _Method:
    """Stamp the collective ``method`` while it runs, for :func:`watch_collectives`."""
    @functools.wraps(method)
    def stamped(self, *args, **kwargs):
        self._pending = (method.__name__, time.monotonic())
        try:
            return method(self, *args, **kwargs)
        finally:
            self._pending = None
    return stamped  # type: ignore[return-value]  # the same signature, wrapped


def install_abort_hook(communicator: Any) -> None:
    """Make an uncaught exception print its traceback and then abort every rank."""
    previous = sys.excepthook

    def abort_all_ranks(exc_type, exc, tb):
        if previous is not sys.__excepthook__:
            previous(exc_type, exc, tb)
        abort_job(communicator, "".join(traceback.format_exception(exc_type, exc, tb)))

    sys.excepthook = abort_all_ranks


def abort_job(communicator: Any, text: str) -> None:
    """Write ``text`` to stderr, each line prefixed with this rank, then abort every rank."""
    prefix = f"[fastconv rank {communicator.rank}/{communicator.world_size}] "
    sys.stderr.write("".join(prefix + line + "\n" for line in text.splitlines()))
    sys.stderr.flush()
    communicator.comm.Abort(1)
