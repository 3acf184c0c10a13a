"""Starting N ranks on this machine under the ``mpiexec`` of the ``mpi`` extra."""

from __future__ import annotations

import contextlib
import os
import signal
import sys
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

Handler = Callable[[int, Any], Any] | int | None  # as signal.signal takes and returns them


def find_mpiexec() -> str | None:
    """Path of the ``mpiexec`` to use: the one beside this Python (the mpich wheel's), else PATH.

    Returns
    -------
    str or None
        The executable's path; None when there is none.

    Examples
    --------
    >>> import os
    >>> from fastconv.distributed import find_mpiexec
    >>> path = find_mpiexec()
    >>> path is None or os.access(path, os.X_OK)
    True
    """
    import shutil
    import sysconfig
    beside = os.path.join(sysconfig.get_path("scripts"), "mpiexec")
    if os.access(beside, os.X_OK):
        return beside
    return shutil.which("mpiexec")


def mpiexec_command(nproc: int, python_args: Sequence[str]) -> list[str]:
    """The command that runs ``python -m mpi4py <python_args>`` on ``nproc`` local ranks.

    Under ``-m mpi4py`` an exception on one rank aborts all ranks. Open MPI's
    mpiexec gets ``--oversubscribe`` (and ``--allow-run-as-root`` as root).

    Parameters
    ----------
    nproc : int
        The number of ranks, >= 1.
    python_args : sequence of str
        What follows ``python -m mpi4py``: ``["-m", "fastconv", "train", ...]``
        or ``["script.py", ...]``.

    Returns
    -------
    list of str
        The mpiexec command line.

    Raises
    ------
    ValueError
        For ``nproc`` below 1.
    RuntimeError
        When the ``mpi`` extra (mpi4py, an mpiexec) is missing.

    Examples
    --------
    >>> import sys
    >>> from fastconv.distributed import mpiexec_command
    >>> command = mpiexec_command(2, ["train.py"])  # needs the mpi extra
    >>> command[-6:] == ["-n", "2", sys.executable, "-m", "mpi4py", "train.py"]
    True
    """
    import subprocess
    nproc = int(nproc)
    if nproc < 1:
        raise ValueError(f"nproc must be >= 1, got {nproc}")
    try:
        import mpi4py  # noqa: F401  (the ranks need it; fail here, clearly, not in N tracebacks)
    except ImportError as exc:
        raise RuntimeError("running on several processes needs the mpi extra: pip install "
                           "'fastconv[mpi]' (mpi4py and the mpich wheel, which provides "
                           "mpiexec)") from exc
    launcher = find_mpiexec()
    if launcher is None:
        raise RuntimeError("no mpiexec found beside this Python or on PATH: pip install mpich")
    flags = []  # MPICH's hydra needs none of them
    version = subprocess.run([launcher, "--version"], capture_output=True, text=True).stdout
    if "Open MPI" in version or "OpenRTE" in version:
        flags.append("--oversubscribe")
        if hasattr(os, "geteuid") and os.geteuid() == 0:
            flags.append("--allow-run-as-root")
    return [launcher, *flags, "-n", str(nproc), sys.executable, "-m", "mpi4py", *python_args]


def launch_env(nproc: int, env: Mapping[str, str] | None = None) -> dict[str, str]:
    """A copy of ``env`` with BLAS threads capped at cores // nproc per rank.

    Parameters
    ----------
    nproc : int
        The number of ranks sharing this machine's cores.
    env : mapping, optional
        The environment to copy (default os.environ).

    Returns
    -------
    dict
        ``env`` with OMP_NUM_THREADS, OPENBLAS_NUM_THREADS and MKL_NUM_THREADS
        set, unless one of them is already set there (the user's choice wins).

    Examples
    --------
    >>> from fastconv.distributed import launch_env
    >>> sorted(launch_env(2, {}))
    ['MKL_NUM_THREADS', 'OMP_NUM_THREADS', 'OPENBLAS_NUM_THREADS']
    >>> launch_env(2, {"OMP_NUM_THREADS": "3"})
    {'OMP_NUM_THREADS': '3'}
    """
    # N ranks with a full-width BLAS pool each would fight over the same cores.
    env = dict(os.environ if env is None else env)
    thread_vars = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")
    if not any(v in env for v in thread_vars):
        threads = str(max(1, (os.cpu_count() or 1) // int(nproc)))
        env.update({v: threads for v in thread_vars})
    return env


def launch(nproc: int, python_args: Sequence[str], env: Mapping[str, str] | None = None) -> int:
    """Run ``python -m mpi4py <python_args>`` on ``nproc`` ranks of this machine; its exit code.

    Parameters
    ----------
    nproc : int
        The number of ranks, >= 1.
    python_args : sequence of str
        What follows ``python -m mpi4py``.
    env : mapping, optional
        The ranks' environment (default os.environ), BLAS threads capped by :func:`launch_env`.

    Returns
    -------
    int
        mpiexec's exit status, or 128 + the signal when SIGTERM or SIGHUP stopped the job.

    Raises
    ------
    KeyboardInterrupt
        On Ctrl-C (the terminal signals mpiexec and the ranks alike), once the ranks have
        wound down, so rank 0 can finish its checkpoint; a second Ctrl-C, which makes
        mpiexec kill the ranks, does not cut that wait short.
    ValueError, RuntimeError
        As :func:`mpiexec_command`, before any rank starts.

    Notes
    -----
    SIGTERM and SIGHUP (``kill``, ``timeout``, a scheduler, a closed terminal) are passed
    on to mpiexec as SIGTERM, and the job is waited for as after Ctrl-C, so no rank is
    left training. Call it from the main thread: only there can signal handlers be set.

    Examples
    --------
    >>> from fastconv.distributed import launch
    >>> launch(0, ["train.py"])
    Traceback (most recent call last):
    ...
    ValueError: nproc must be >= 1, got 0
    """
    import subprocess
    received: list[int] = []
    job: subprocess.Popen[bytes] | None = None

    # The signals reach only this process. SIGHUP goes on as SIGTERM: MPICH's mpiexec
    # forwards SIGTERM to the ranks but dies at once on SIGHUP.
    def forward(signum, frame):
        received.append(signum)
        if job is not None:
            job.send_signal(signal.SIGTERM)

    # SIGINT is listed with its own handler so that it is restored after the wait ignores it.
    with signal_handlers({signal.SIGTERM: forward, signal.SIGHUP: forward,
                          signal.SIGINT: signal.getsignal(signal.SIGINT)}):
        job = subprocess.Popen(mpiexec_command(nproc, python_args), env=launch_env(nproc, env))
        if received:  # a signal that came while mpiexec was starting
            job.send_signal(signal.SIGTERM)
        try:
            status = job.wait()
        except KeyboardInterrupt:
            signal.signal(signal.SIGINT, signal.SIG_IGN)
            job.wait()
            raise
    return 128 + received[0] if received else status


@contextlib.contextmanager
def signal_handlers(handlers: Mapping[int, Handler]) -> Iterator[None]:
    """Within the block, ``handlers`` (signal -> handler) are installed; the previous ones after.

    Parameters
    ----------
    handlers : mapping
        Signal numbers to handlers, as ``signal.signal`` takes them.

    Examples
    --------
    >>> import signal
    >>> from fastconv.distributed.launcher import signal_handlers
    >>> def note(signum, frame):
    ...     pass
    >>> with signal_handlers({signal.SIGUSR1: note}):
    ...     signal.getsignal(signal.SIGUSR1) is note
    True
    >>> signal.getsignal(signal.SIGUSR1) is note
    False
    """
    previous = {signum: signal.signal(signum, handler) for signum, handler in handlers.items()}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            # None: a handler installed outside Python, which cannot be put back; the default can
            signal.signal(signum, signal.SIG_DFL if handler is None else handler)
