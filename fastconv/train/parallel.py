"""How many processes train, and which of them reports: the Solver's single-process strategy.

A strategy is the one place where training over several processes differs
from training in one: which samples each step sees, how the gradients of a
step are combined, how accuracy is counted, and which process prints and
writes. :class:`SingleProcess` is the default; data-parallel training over
MPI is :class:`fastconv.distributed.DataParallel`, which implements the same
methods (:class:`Strategy`).
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import numpy

from .._typing import Array

if TYPE_CHECKING:
    from .adapters import ModelAdapter

# Environment variables launchers set: MPICH/hydra and Intel MPI (PMI_*), Open MPI (OMPI_*).
_SIZE_VARS = ("PMI_SIZE", "OMPI_COMM_WORLD_SIZE")


def launched_world_size() -> int:
    """The world size an MPI launcher announced in the environment, else 1.

    Returns
    -------
    int
        ``$PMI_SIZE`` (MPICH, Intel MPI) or ``$OMPI_COMM_WORLD_SIZE`` (Open
        MPI), the first that is a number; 1 outside a launched job.

    Examples
    --------
    >>> import os
    >>> from unittest import mock
    >>> from fastconv.train import launched_world_size
    >>> with mock.patch.dict(os.environ, {"PMI_SIZE": "4"}):
    ...     launched_world_size()
    4
    """
    # Only the environment is read, so that asking never imports mpi4py.
    for var in _SIZE_VARS:
        value = os.environ.get(var, "")
        if value.isdigit():
            return int(value)
    return 1


@runtime_checkable
class Strategy(Protocol):
    """What a Solver asks of its ``parallel`` strategy; each member is as :class:`SingleProcess`'s.

    Implemented by :class:`SingleProcess` and :class:`fastconv.distributed.DataParallel`.

    Examples
    --------
    >>> from fastconv.train import SingleProcess
    >>> from fastconv.train.parallel import Strategy
    >>> isinstance(SingleProcess(), Strategy)
    True
    """

    @property
    def rank(self) -> int:
        """This process's rank, from 0."""

    @property
    def world_size(self) -> int:
        """The number of processes training together."""

    @property
    def is_root(self) -> bool:
        """Whether this process logs, shows the progress bar and writes checkpoints."""

    def attach(self, model: ModelAdapter) -> None:
        """Called when the Solver is built, with its model."""

    def start(self, solver: Any) -> None:
        """Called once the checkpoint to resume (if any) is loaded."""

    def batch_indices(self, num_samples: int, batch_size: int, seed: int,
                      epoch: int) -> list[Array]:
        """This process's index arrays for the epoch's steps."""

    def average(self, loss: float, grads: Mapping[str, Array],
                batch_size: int) -> tuple[float, Mapping[str, Array]]:
        """The step's loss and gradients over every process's part of the minibatch."""

    def accuracy(self, indices: Array, count_correct: Callable[[Array], int]) -> float:
        """The fraction of ``indices`` classified right, over every process."""


class SingleProcess:
    """Train in this process alone: every step is one whole minibatch; this process reports.

    The Solver calls, in this order: :meth:`attach` when it is built,
    :meth:`start` once the checkpoint to resume (if any) is loaded, then per
    epoch :meth:`batch_indices`, per step :meth:`average` and per accuracy
    check :meth:`accuracy`; ``is_root`` says whether this process logs, shows
    the progress bar and writes checkpoints.

    Attributes
    ----------
    rank : int
        0.
    world_size : int
        1.
    is_root : bool
        True: this process reports.

    Examples
    --------
    >>> import numpy as np
    >>> from fastconv.train import SingleProcess
    >>> batches = SingleProcess().batch_indices(5, 2, seed=0, epoch=0)
    >>> [len(b) for b in batches], sorted(np.concatenate(batches).tolist())
    ([2, 2, 1], [0, 1, 2, 3, 4])
    """

    rank = 0
    world_size = 1
    is_root = True

    def attach(self, model: ModelAdapter) -> None:
        """Warn when an MPI launcher started this process as one rank of several.

        Parameters
        ----------
        model : fastconv.train.adapters.ModelAdapter
            The Solver's model, as the Solver drives it.

        Warns
        -----
        RuntimeWarning
            When :func:`launched_world_size` is above 1: every rank would train
            the whole model on its own.
        """
        size = launched_world_size()
        if size > 1:
            warnings.warn(
                f"this process is one of {size} ranks started by an MPI launcher, but the "
                "Solver trains in one process: every rank trains the whole model on its own. "
                "Pass parallel=fastconv.distributed.DataParallel() for data-parallel training",
                RuntimeWarning, stacklevel=3)

    def start(self, solver: Any) -> None:
        """Do nothing: one process has nothing to agree on or to share.

        Parameters
        ----------
        solver : fastconv.train.Solver
            The Solver about to train.
        """

    def batch_indices(self, num_samples: int, batch_size: int, seed: int,
                      epoch: int) -> list[Array]:
        """The epoch's minibatches: a permutation seeded by (seed, epoch) cut into ``batch_size``.

        Parameters
        ----------
        num_samples : int
            The training set's size.
        batch_size : int
            Samples per minibatch.
        seed, epoch : int
            Seed ``numpy.random.default_rng([seed, epoch])``.

        Returns
        -------
        list of numpy.ndarray
            Index arrays covering every sample once; the last may be shorter.
        """
        order = numpy.random.default_rng([seed, epoch]).permutation(num_samples)
        return [order[i:i + batch_size] for i in range(0, num_samples, batch_size)]

    def average(self, loss: float, grads: Mapping[str, Array],
                batch_size: int) -> tuple[float, Mapping[str, Array]]:
        """The step's loss and gradients, unchanged: this process saw the whole minibatch.

        Parameters
        ----------
        loss : float
            The minibatch's loss.
        grads : mapping
            Name -> gradient array.
        batch_size : int
            The minibatch's size.

        Returns
        -------
        (float, mapping)
            ``(loss, grads)``.
        """
        return loss, grads

    def accuracy(self, indices: Array, count_correct: Callable[[Array], int]) -> float:
        """The fraction of the samples ``indices`` classified right.

        Parameters
        ----------
        indices : numpy.ndarray
            The samples to score (at least one).
        count_correct : callable
            ``count_correct(indices) -> int``, the number right among them.

        Returns
        -------
        float
            ``count_correct(indices) / len(indices)``.
        """
        return count_correct(indices) / len(indices)
