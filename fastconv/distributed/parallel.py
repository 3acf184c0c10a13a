"""Data parallelism as a Solver strategy: sharded batches, one all-reduce a step, rank 0 reports."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from .._typing import Array
from ..backend import device_of, get_array_module
from ..nn import Dropout
from .comm import Communicator
from .job import init
from .sampler import ShardedSampler, shard

if TYPE_CHECKING:
    from ..train.adapters import ModelAdapter


class DataParallel:
    """Synchronous data-parallel training over the ranks of an MPI job, like PyTorch's DDP.

    Pass it to a Solver, ``Solver(model, data, parallel=DataParallel())``, on
    every rank. ``batch_size`` is then the per-rank batch: one step consumes a
    global batch of ``batch_size x world_size`` samples, sharded by
    :class:`ShardedSampler` from the Solver's own epoch order, so N ranks with
    batch B take the same steps as one process with batch N x B (to
    rounding), batch norm excepted: its batch statistics are per rank, and its
    running statistics are rank 0's (sent to all ranks before each accuracy
    check), as in PyTorch's default DDP. With several ranks each seeded
    Dropout layer draws its masks from (its seed, rank); at world size 1 the
    Solver trains exactly as with the default single-process strategy.

    When the Solver is built the ranks check that they agree on the training
    settings (epoch, seed, batch size, epochs, training- and validation-set
    sizes, the accuracy subsets' sizes, update and learning rate, lr decay,
    history length), raising a ValueError on every rank otherwise; rank 0's
    parameters and buffers (fresh or resumed) are then broadcast. Each step
    averages the gradients and the loss of the ranks' shards in one
    all-reduce, weighted by shard size, before the Solver's
    ``reduce_gradients`` hook and the (identical) update on every rank.
    Accuracy checks are sharded too. Only rank 0 logs, shows the progress bar
    and writes checkpoints; a checkpoint holds nothing rank-specific, so it can
    be resumed with another world size (every rank reads it: use a shared file
    system, or copy it to each machine).

    Parameters
    ----------
    comm : fastconv.distributed.Communicator, optional
        The job's communicator; by default :func:`fastconv.distributed.init`
        with the device of the model the Solver attaches.

    Examples
    --------
    >>> import numpy as np
    >>> import fastconv.nn as nn
    >>> from fastconv.distributed import Communicator, DataParallel
    >>> from fastconv.train import Solver
    >>> X, y = np.eye(4, dtype=np.float32), np.arange(4) % 2
    >>> data = {"X_train": X, "y_train": y, "X_val": X, "y_val": y}
    >>> solver = Solver(nn.linear_classifier(4, 2, seed=0), data, batch_size=2,
    ...                 parallel=DataParallel(Communicator()), progress=False, verbose=False)
    >>> solver.parallel.world_size, solver.parallel.is_root
    (1, True)
    """

    def __init__(self, comm: Communicator | None = None) -> None:
        self.comm = comm
        self._model: ModelAdapter | None = None

    def _joined(self) -> Communicator:
        """The communicator; a RuntimeError before :meth:`attach` chose one."""
        if self.comm is None:
            raise RuntimeError("DataParallel has no communicator yet: a Solver's attach() "
                               "joins the job")
        return self.comm

    def _attached(self) -> ModelAdapter:
        """The Solver's model; a RuntimeError before :meth:`attach`."""
        if self._model is None:
            raise RuntimeError("DataParallel is not attached to a Solver's model yet")
        return self._model

    @property
    def rank(self) -> int:
        """This process's rank in the job."""
        return self._joined().rank

    @property
    def world_size(self) -> int:
        """The number of ranks training together."""
        return self._joined().world_size

    @property
    def is_root(self) -> bool:
        """True on rank 0, which logs, shows the progress bar and writes checkpoints."""
        return self._joined().is_root

    def attach(self, model: ModelAdapter) -> None:
        """Join the job (if no communicator was given) and check the model is on this rank's GPU.

        Parameters
        ----------
        model : fastconv.train.adapters.ModelAdapter
            The Solver's model, as the Solver drives it.

        Raises
        ------
        ValueError
            When the model's arrays are on another GPU than this rank's.
        """
        if self.comm is None:
            self.comm = init(device=model.device)
        if self.comm.device == "gpu":
            _check_model_on_rank_gpu(model.params)
        self._model = model

    def start(self, solver: Any) -> None:
        """Check that the ranks agree on the settings; reseed dropout; broadcast rank 0's state.

        Parameters
        ----------
        solver : fastconv.train.Solver
            The Solver about to train, its checkpoint (if any) loaded.

        Raises
        ------
        ValueError
            On every rank, naming the settings the ranks disagree on.
        """
        # One clear error on every rank, rather than a silent divergence, an accuracy
        # mixing two sets, or a rank left waiting in a collective.
        comm, model = self._joined(), self._attached()
        comm.check_same_settings(_settings(solver))
        if self.world_size > 1:  # one rank alone draws the masks a single-process Solver draws
            _draw_dropout_per_rank(model.model, self.rank)
        comm.broadcast_({**model.params, **model.buffers})

    def batch_indices(self, num_samples: int, batch_size: int, seed: int,
                      epoch: int) -> list[Array]:
        """This rank's shard of each global batch of the epoch's order (some may be empty).

        Parameters
        ----------
        num_samples : int
            The training set's size.
        batch_size : int
            The per-rank batch.
        seed, epoch : int
            Seed the epoch's order, as the single-process Solver's.

        Returns
        -------
        list of numpy.ndarray
            One index array per step, the same number on every rank.
        """
        sampler = ShardedSampler(num_samples, batch_size, self.rank, self.world_size, seed=seed)
        return list(sampler.batches(epoch))

    def average(self, loss: float, grads: Mapping[str, Array],
                batch_size: int) -> tuple[float, Mapping[str, Array]]:
        """The global batch's loss and gradients, by one all-reduce weighted by shard size.

        Parameters
        ----------
        loss : float
            This rank's loss on its shard.
        grads : mapping
            This rank's gradients, replaced in place by the global ones.
        batch_size : int
            This rank's shard size (0: it contributes nothing).

        Returns
        -------
        (float, mapping)
            The global batch's loss and ``grads``.
        """
        if self.world_size == 1:  # nothing to exchange: the loss keeps its own precision
            return loss, grads
        first = next(iter(grads.values()))
        loss_slot = get_array_module(first).full(1, float(loss), dtype=first.dtype)
        self._joined().allreduce_mean_([grads[k] for k in sorted(grads)] + [loss_slot],
                                       weight=batch_size)
        return float(loss_slot[0]), grads

    def accuracy(self, indices: Array, count_correct: Callable[[Array], int]) -> float:
        """The fraction right over ``indices``, each rank counting its shard of them.

        Parameters
        ----------
        indices : numpy.ndarray
            The samples to score, the same on every rank.
        count_correct : callable
            ``count_correct(indices) -> int``, the number right among them.

        Returns
        -------
        float
            The fraction right over all of ``indices``, on every rank.
        """
        comm = self._joined()
        comm.broadcast_(dict(self._attached().buffers))  # score with rank 0's running statistics
        part = shard(indices, self.rank, self.world_size)
        totals = comm.allreduce_sum({"correct": count_correct(part), "n": len(part)})
        return totals["correct"] / totals["n"]


def _settings(solver):
    """What every rank must agree on for the ranks to take the same steps."""
    config = sorted((k, v) for k, v in solver.optim_config.items()
                    if isinstance(v, (int, float, str)))
    # The accuracies are sums over the ranks' shards of one index set: the sets and the
    # subset sizes drawn from them must be the same everywhere.
    return {"epoch": solver.epoch, "seed": solver.seed, "batch_size": solver.batch_size,
            "num_epochs": solver.num_epochs, "training samples": len(solver.X_train),
            "validation samples": len(solver.X_val),
            "num_train_samples": solver.num_train_samples,
            "num_val_samples": solver.num_val_samples,
            "update": (solver.update_name, solver.optimizer.lr, config),
            "lr_decay": solver.lr_decay, "history length": len(solver.loss_history)}


def _check_model_on_rank_gpu(params):
    import cupy
    here = cupy.cuda.Device().id
    ids = sorted({a.device.id for a in params.values() if device_of(a) == "gpu"})
    if ids and ids != [here]:
        raise ValueError(f"the model's arrays are on GPU(s) {ids} but this rank uses GPU {here}; "
                         "call fastconv.distributed.init(device='gpu') before building the model")


def _draw_dropout_per_rank(model, rank):
    """Seed each seeded Dropout layer with (its seed, rank), so ranks draw different masks."""
    for module in model.modules() if hasattr(model, "modules") else ():
        if isinstance(module, Dropout) and module.seed is not None:
            module.reseed([module.seed, rank])
