"""Starting N ranks on this machine under the ``mpiexec`` of the ``mpi`` extra."""

import os
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


def launch(nproc, python_args):
    """Run ``python -m mpi4py <python_args>`` on ``nproc`` ranks of this machine; its exit code.

    On Ctrl-C (the terminal signals mpiexec and the ranks alike) it waits for
    the ranks to wind down, so rank 0 can finish its checkpoint, then
    re-raises KeyboardInterrupt.
    """
    import subprocess
    with subprocess.Popen(mpiexec_command(nproc, python_args), env=launch_env(nproc)) as job:
        try:
            return job.wait()
        except KeyboardInterrupt:
            job.wait()
            raise
