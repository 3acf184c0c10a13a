"""Starting N ranks on this machine under the ``mpiexec`` of the ``mpi`` extra."""

import contextlib
import os
import signal
import sys


def find_mpiexec():
    """Path of the ``mpiexec`` to use: the one beside this Python (the mpich wheel's), else PATH."""
    import shutil
    import sysconfig
    beside = os.path.join(sysconfig.get_path("scripts"), "mpiexec")
    if os.access(beside, os.X_OK):
        return beside
    return shutil.which("mpiexec")


def mpiexec_command(nproc, python_args):
    """The command that runs ``python -m mpi4py <python_args>`` on ``nproc`` local ranks.

    ``python_args`` is what follows ``python`` (``["-m", "fastconv", "train", ...]``
    or ``["script.py", ...]``). ``-m mpi4py`` makes an exception on one rank
    abort all ranks. Open MPI gets ``--oversubscribe`` (and
    ``--allow-run-as-root`` as root); MPICH's hydra needs neither. Raises
    RuntimeError when the ``mpi`` extra is missing.
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
    flags = []
    version = subprocess.run([launcher, "--version"], capture_output=True, text=True).stdout
    if "Open MPI" in version or "OpenRTE" in version:
        flags.append("--oversubscribe")
        if hasattr(os, "geteuid") and os.geteuid() == 0:
            flags.append("--allow-run-as-root")
    return [launcher, *flags, "-n", str(nproc), sys.executable, "-m", "mpi4py", *python_args]


def launch_env(nproc, env=None):
    """A copy of ``env`` (default os.environ) with BLAS threads capped at cores // nproc per rank.

    Left alone when OMP_NUM_THREADS, OPENBLAS_NUM_THREADS or MKL_NUM_THREADS
    is already set, so the user's choice wins; otherwise N ranks with a
    full-width BLAS pool each would fight over the same cores.
    """
    env = dict(os.environ if env is None else env)
    thread_vars = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")
    if not any(v in env for v in thread_vars):
        threads = str(max(1, (os.cpu_count() or 1) // int(nproc)))
        env.update({v: threads for v in thread_vars})
    return env


def launch(nproc, python_args, env=None):
    """Run ``python -m mpi4py <python_args>`` on ``nproc`` ranks of this machine; its exit code.

    Parameters
    ----------
    nproc : int
        The number of ranks.
    python_args : list of str
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

    Notes
    -----
    SIGTERM and SIGHUP (``kill``, ``timeout``, a scheduler, a closed terminal) reach only
    this process: it passes them on to mpiexec as SIGTERM and waits for the job, as for
    Ctrl-C, so no rank is left training. SIGHUP is sent on as SIGTERM because MPICH's
    mpiexec forwards SIGTERM to the ranks but dies at once on SIGHUP. Signal handlers
    can only be set in the main thread: call it from there.
    """
    import subprocess
    received, job = [], None

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
def signal_handlers(handlers):
    """Within the block, ``handlers`` (signal -> handler) are installed; the previous ones after.

    Parameters
    ----------
    handlers : dict
        Signal numbers to handlers, as ``signal.signal`` takes them.
    """
    previous = {signum: signal.signal(signum, handler) for signum, handler in handlers.items()}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            # None: a handler installed outside Python, which cannot be put back; the default can
            signal.signal(signum, signal.SIG_DFL if handler is None else handler)
