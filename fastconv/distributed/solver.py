"""The Solver, data-parallel: sharded batches, one all-reduce per step, rank 0 reports."""

from ..backend import as_numpy, device_of, get_array_module
from ..nn import Dropout
from ..train import Solver
from .comm import init
from .sampler import ShardedSampler, shard


def _model_device(model):
    for value in model.params.values():
        return device_of(value)
    return "cpu"


def _check_model_on_rank_gpu(model):
    import cupy
    here = cupy.cuda.Device().id
    ids = sorted({a.device.id for a in model.params.values() if device_of(a) == "gpu"})
    if ids and ids != [here]:
        raise ValueError(f"the model's arrays are on GPU(s) {ids} but this rank uses GPU {here}; "
                         "call fastconv.distributed.init(device='gpu') before building the model")


class DistributedSolver(Solver):
    """The Solver, data-parallel over the ranks of an MPI job (synchronous, like PyTorch's DDP).

    ``Solver(model, data, distributed=True, ...)`` (or any Solver under a
    launcher with world size > 1) is this class. ``batch_size`` is the
    per-rank batch; one step consumes a global batch of ``batch_size x
    world_size`` samples, sharded by :class:`ShardedSampler` with the
    Solver's own epoch order, so N ranks with batch B take the same steps as
    one process with batch N x B (to rounding), batch norm excepted: its batch
    statistics are per rank, and its running statistics are rank 0's (synced
    to all ranks before each evaluation), as in PyTorch's default DDP.
    Dropout masks are drawn on each rank independently (each Dropout layer's
    seed is combined with the rank).

    At start the ranks check that they agree on the training settings (epoch,
    seed, batch size, epochs, training-set size, update rule or optimiser,
    lr decay): a clear error on every rank rather than a silent divergence
    or a hang. Rank 0's parameters (fresh or resumed) are then broadcast.
    Each step runs the Solver's hooks: forward/backward on the rank's shard
    (``compute_gradients``), ``reduce_gradients``, which here is ONE
    all-reduce of the flattened gradients and the loss (weighted by shard
    size) before a subclass's own hook sees the averaged gradients, then the
    same update on every rank. Accuracy checks are sharded too. Only rank 0
    logs, shows the progress bar and writes checkpoints; a checkpoint holds
    nothing rank-specific, so it can be resumed with another world size
    (every rank reads it: use a shared file system, or copy it to each machine).
    """

    def __init__(self, model, data, *, comm=None, distributed=True, **options):
        if not distributed:
            raise ValueError("DistributedSolver is always distributed; use Solver for one process")
        self.comm = comm if comm is not None else init(device=_model_device(model))
        if self.comm.device == "gpu":
            _check_model_on_rank_gpu(model)
        super().__init__(model, data, **options)
        self.progress = self.progress and self.comm.is_root
        self.comm.check_same_settings(self._settings())
        _draw_dropout_per_rank(self.model, self.comm.rank)
        state = dict(self.model.params)
        state.update(getattr(self.model, "buffers", {}))
        self.comm.broadcast_(state)
        self._shard_loss = self._global_loss = 0.0

    def _settings(self):
        """What every rank must agree on for the ranks to take the same steps."""
        if self.optimizer is not None:
            rate = self.optimizer.lr
        else:
            rate = sorted((k, v) for k, v in self.optim_config.items()
                          if isinstance(v, (int, float, str)))
        return {"epoch": self.epoch, "seed": self.seed, "batch_size": self.batch_size,
                "num_epochs": self.num_epochs, "training samples": len(self.X_train),
                "update": (self._update_name(), rate), "lr_decay": self.lr_decay,
                "history length": len(self.loss_history)}

    def batch_indices(self, epoch):
        """This rank's shard of each global batch of the Solver's epoch order."""
        sampler = ShardedSampler(len(self.X_train), self.batch_size, self.comm.rank,
                                 self.comm.world_size, seed=self.seed)
        return list(sampler.batches(epoch))

    def compute_gradients(self, X_batch, y_batch):
        """The Solver's forward/backward on this rank's shard (zeros for an empty shard)."""
        if len(y_batch):
            loss, grads = super().compute_gradients(X_batch, y_batch)
        else:  # the last global batch had fewer samples than ranks: contribute nothing
            params = self.model.params
            loss, grads = 0.0, {k: get_array_module(v).zeros_like(v) for k, v in params.items()}
        self._shard_loss = float(loss)
        return loss, grads

    def reduce_gradients(self, grads, batch_size):
        """ONE all-reduce of the gradients and the loss, weighted by shard size, in place;
        then the next class's hook (a subclass's, e.g. clipping) on the averaged gradients."""
        first = next(iter(grads.values()))
        loss_slot = get_array_module(first).full(1, self._shard_loss, dtype=first.dtype)
        self.comm.allreduce_mean_([grads[k] for k in sorted(grads)] + [loss_slot],
                                  weight=batch_size)
        self._global_loss = float(loss_slot[0])
        return super().reduce_gradients(grads, batch_size)

    def step(self, X_batch, y_batch):
        """The Solver's step (or a subclass's) on this shard; the loss of the global batch."""
        super().step(X_batch, y_batch)
        return self._global_loss

    def check_accuracy(self, X, y, num_samples=None, batch_size=100):
        """The Solver's accuracy over the same samples, each rank scoring its shard of them."""
        self.comm.broadcast_(dict(getattr(self.model, "buffers", {})))
        idx = shard(self.accuracy_indices(len(X), num_samples), self.comm.rank,
                    self.comm.world_size)
        correct = 0
        if len(idx):
            part = get_array_module(X).asarray(idx)
            fraction = super().check_accuracy(X[part], as_numpy(y)[idx], None, batch_size)
            correct = round(fraction * len(idx))
        totals = self.comm.allreduce_sum({"correct": correct, "n": len(idx)})
        return totals["correct"] / totals["n"]

    def log(self, message):
        """Log on rank 0 only."""
        if self.comm.is_root:
            super().log(message)

    def save_checkpoint(self, path):
        """Write the checkpoint on rank 0 only (every rank holds the same state)."""
        if self.comm.is_root:
            super().save_checkpoint(path)


def _draw_dropout_per_rank(model, rank):
    """Seed each seeded Dropout layer with (its seed, rank), so ranks draw different masks."""
    for module in model.modules() if hasattr(model, "modules") else ():
        if isinstance(module, Dropout) and module.seed is not None:
            module.reseed([module.seed, rank])


_data_parallel_classes = {}


def data_parallel(solver_class):
    """``solver_class`` (a Solver subclass) with DistributedSolver's hooks taking precedence.

    What ``Solver(..., distributed=True)`` instantiates, so a customised Solver
    (e.g. one that prints a line per epoch in ``save_checkpoint``) goes
    data-parallel too, its per-epoch extras running on rank 0 only.
    """
    if issubclass(solver_class, DistributedSolver):
        return solver_class
    if solver_class is Solver:
        return DistributedSolver
    if solver_class not in _data_parallel_classes:
        _data_parallel_classes[solver_class] = type(
            f"DataParallel{solver_class.__name__}", (DistributedSolver, solver_class),
            {"__doc__": f"{solver_class.__name__}, data-parallel (see DistributedSolver)."})
    return _data_parallel_classes[solver_class]
