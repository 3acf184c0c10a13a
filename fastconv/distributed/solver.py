"""The data-parallel Solver by name, and the deprecated class factory it replaces."""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any, cast

from .._typing import Array
from ..train import Solver
from .comm import Communicator
from .parallel import DataParallel


class DistributedSolver(Solver):
    """The Solver with ``parallel=DataParallel(comm)``: data-parallel over the ranks of an MPI job.

    Parameters
    ----------
    model, data, **options
        As for :class:`fastconv.train.Solver` (``batch_size`` per rank).
    comm : fastconv.distributed.Communicator, optional
        The job's communicator (default: :func:`fastconv.distributed.init`).

    Examples
    --------
    >>> import numpy as np
    >>> import fastconv.nn as nn
    >>> from fastconv.distributed import Communicator, DistributedSolver
    >>> X, y = np.eye(4, dtype=np.float32), np.arange(4) % 2
    >>> data = {"X_train": X, "y_train": y, "X_val": X, "y_val": y}
    >>> solver = DistributedSolver(nn.linear_classifier(4, 2, seed=0), data, comm=Communicator(),
    ...                            batch_size=2, num_epochs=1, progress=False, verbose=False)
    >>> solver.comm.world_size, len(solver.train().loss_history)
    (1, 2)
    """

    def __init__(self, model: Any, data: dict[str, Array], *, comm: Communicator | None = None,
                 **options: Any) -> None:
        super().__init__(model, data, parallel=DataParallel(comm), **options)

    @property
    def comm(self) -> Communicator:
        """The job's communicator."""
        comm = cast(DataParallel, self.parallel).comm
        assert comm is not None  # the Solver's attach() joined the job
        return comm


def data_parallel(solver_class: type[Solver]) -> Callable[..., Solver]:
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

    Warns
    -----
    DeprecationWarning
        Always.

    Examples
    --------
    >>> import warnings
    >>> from fastconv.distributed import data_parallel
    >>> from fastconv.train import Solver
    >>> with warnings.catch_warnings(record=True) as caught:
    ...     warnings.simplefilter("always")
    ...     build = data_parallel(Solver)
    >>> caught[0].category.__name__, callable(build)
    ('DeprecationWarning', True)
    """
    warnings.warn("fastconv.distributed.data_parallel is deprecated: build the Solver with "
                  "parallel=fastconv.distributed.DataParallel() instead", DeprecationWarning,
                  stacklevel=2)

    def build(*args: Any, comm: Communicator | None = None, **options: Any) -> Solver:
        return solver_class(*args, parallel=DataParallel(comm), **options)

    return build
