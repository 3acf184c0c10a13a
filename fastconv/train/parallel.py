"""How many processes train, and which of them reports: the Solver's single-process strategy.

A strategy is the one place where training over several processes differs
from training in one: which samples each step sees, how the gradients of a
step are combined, how accuracy is counted, and which process prints and
writes. :class:`SingleProcess` is the default; data-parallel training over
MPI is :class:`fastconv.distributed.DataParallel`, which implements the same
methods.
"""

import os
import warnings

import numpy

# Environment variables launchers set: MPICH/hydra and Intel MPI (PMI_*), Open MPI (OMPI_*).
_SIZE_VARS = ("PMI_SIZE", "OMPI_COMM_WORLD_SIZE")


def launched_world_size():
    """The world size an MPI launcher announced in the environment, else 1.

    Reads only environment variables, so it never imports mpi4py.
    """
    for var in _SIZE_VARS:
        value = os.environ.get(var, "")
        if value.isdigit():
            return int(value)
    return 1


class SingleProcess:
    """Train in this process alone: every step is one whole minibatch; this process reports.

    The Solver calls, in this order: :meth:`attach` when it is built,
    :meth:`start` once the checkpoint to resume (if any) is loaded, then per
    epoch :meth:`batch_indices`, per step :meth:`average` and per accuracy
    check :meth:`accuracy`; ``is_root`` says whether this process logs, shows
    the progress bar and writes checkpoints.
    """

    rank = 0
    world_size = 1
    is_root = True

    def attach(self, model):
        """Warn when an MPI launcher started this process as one rank of several.

        Parameters
        ----------
        model : fastconv.train.adapters.ModelAdapter
            The Solver's model, as the Solver drives it.
        """
        size = launched_world_size()
        if size > 1:
            warnings.warn(
                f"this process is one of {size} ranks started by an MPI launcher, but the "
                "Solver trains in one process: every rank trains the whole model on its own. "
                "Pass parallel=fastconv.distributed.DataParallel() for data-parallel training",
                RuntimeWarning, stacklevel=3)

    def start(self, solver):
        """Nothing to agree on or to share with other processes."""

    def batch_indices(self, num_samples, batch_size, seed, epoch):
        """The epoch's minibatches: a permutation seeded by (seed, epoch) cut into ``batch_size``.

        Returns
        -------
        list of numpy.ndarray
            Index arrays covering every sample once; the last may be shorter.
        """
        order = numpy.random.default_rng([seed, epoch]).permutation(num_samples)
        return [order[i:i + batch_size] for i in range(0, num_samples, batch_size)]

    def average(self, loss, grads, batch_size):
        """The step's loss and gradients, unchanged: this process saw the whole minibatch."""
        return loss, grads

    def accuracy(self, indices, count_correct):
        """``count_correct(indices) / len(indices)``: the fraction classified right."""
        return count_correct(indices) / len(indices)
