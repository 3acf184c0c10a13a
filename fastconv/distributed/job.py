"""Joining the MPI job this process was launched in: :func:`init` and its companions."""

from __future__ import annotations

import sys

from ..backend import resolve_device
from ..train.parallel import launched_world_size
from ._nccl import _nccl_note_without_device
from ._watchdog import install_abort_hook
from .comm import Communicator, _import_mpi
from .launcher import find_mpiexec

_current: Communicator | None = None


def init(device: str | None = None, gpu_transport: str = "auto") -> Communicator:
    """Join the MPI job this process was launched in and return its :class:`Communicator`.

    Without a launcher (world size 1) MPI is not touched. With one, each
    rank picks GPU ``local_rank % device_count`` when ``device`` is 'gpu',
    and an uncaught exception on any rank prints that rank's traceback and
    aborts the whole job. Idempotent: later calls return the same communicator.

    Parameters
    ----------
    device : {'cpu', 'gpu'}, optional
        Where the arrays exchanged live (default: the default device).
    gpu_transport : {'auto', 'nccl', 'staged'}, default 'auto'
        As for :class:`Communicator`.

    Returns
    -------
    Communicator

    Raises
    ------
    RuntimeError
        Under a launcher without mpi4py, or when ``gpu_transport='nccl'``
        cannot be honoured.
    ValueError
        For an unknown device or transport.

    Examples
    --------
    >>> from fastconv.distributed import init
    >>> comm = init(device="cpu")  # outside a launcher: one process, no MPI
    >>> comm.world_size, init() is comm
    (1, True)
    """
    global _current
    if _current is not None:
        return _current
    device = resolve_device(device)
    if launched_world_size() == 1 and "mpi4py.MPI" not in sys.modules:
        _current = Communicator(None, device, gpu_transport)
        return _current
    MPI = _import_mpi()
    _current = Communicator(MPI.COMM_WORLD, device, gpu_transport)
    if _current.world_size > 1:
        install_abort_hook(_current)
    return _current


def start_mpi() -> None:
    """Initialise MPI now if this process is one rank of several (a no-op otherwise).

    Call this first thing under a launcher (``fastconv train`` does), before
    anything that can fail.

    Raises
    ------
    RuntimeError
        Under a launcher without mpi4py.

    Examples
    --------
    >>> from fastconv.distributed import start_mpi
    >>> start_mpi()  # outside a launcher: nothing to start
    """
    # A rank that fails before MPI is initialised ends without the launcher noticing,
    # and its peers wait in MPI start-up forever; one that fails after it ends the job.
    if launched_world_size() > 1:
        _import_mpi()


def current() -> Communicator | None:
    """The communicator :func:`init` returned, or None before it was called.

    Returns
    -------
    Communicator or None

    Examples
    --------
    >>> from fastconv.distributed import current, init
    >>> comm = init()
    >>> current() is comm
    True
    """
    return _current


def describe_transport() -> str:
    """How gradients would travel in this process, for ``fastconv info``; never starts MPI.

    Returns
    -------
    str
        Inside a launched job, :meth:`Communicator.describe` of the initialised
        communicator; otherwise what is installed (mpi4py, the MPI runtime, NCCL).

    Examples
    --------
    >>> from fastconv.distributed import describe_transport
    >>> describe_transport().startswith("single process")  # not launched
    True
    """
    if _current is not None and _current.world_size > 1:
        return _current.describe()
    try:
        from importlib.metadata import PackageNotFoundError, version
        import mpi4py
    except ImportError:
        return "single process; no MPI (pip install 'fastconv[mpi]' for data-parallel training)"
    try:
        runtime = f"mpich {version('mpich')} wheel"
    except PackageNotFoundError:
        runtime = "system MPI"
    launcher = find_mpiexec() or "no mpiexec found"
    gpu = _nccl_note_without_device()
    return (f"single process until launched; mpi4py {mpi4py.__version__} + {runtime} "
            f"({launcher}); NumPy arrays: MPI Allreduce; CuPy arrays: {gpu}")
