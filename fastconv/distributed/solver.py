"""The data-parallel Solver by name, and the deprecated class factory it replaces."""

import warnings

from ..train import Solver
from .parallel import DataParallel


class DistributedSolver(Solver):
    """The Solver with ``parallel=DataParallel(comm)``: data-parallel over the ranks of an MPI job.

    Parameters
    ----------
    model, data, **options
        As for :class:`fastconv.train.Solver` (``batch_size`` per rank).
    comm : fastconv.distributed.Communicator, optional
        The job's communicator (default: :func:`fastconv.distributed.init`).
    """

    def __init__(self, model, data, *, comm=None, **options):
        super().__init__(model, data, parallel=DataParallel(comm), **options)

    @property
    def comm(self):
        """The job's communicator."""
        return self.parallel.comm


def data_parallel(solver_class):
    """Deprecated: pass ``parallel=DataParallel()`` to the Solver (or subclass) instead.

    Parameters
    ----------
    solver_class : type
        A Solver subclass.

    Returns
    -------
    callable
        ``build(*args, comm=None, **options)``, which returns
        ``solver_class(*args, parallel=DataParallel(comm), **options)``.
    """
    warnings.warn("fastconv.distributed.data_parallel is deprecated: build the Solver with "
                  "parallel=fastconv.distributed.DataParallel() instead", DeprecationWarning,
                  stacklevel=2)

    def build(*args, comm=None, **options):
        return solver_class(*args, parallel=DataParallel(comm), **options)

    return build
