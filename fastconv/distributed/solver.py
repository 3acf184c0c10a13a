"""The Solver, data-parallel: sharded batches, one all-reduce per step, rank 0 reports."""

from ..backend import as_numpy, device_of, get_array_module
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
    Dropout masks are drawn on each rank independently.

    Rank 0's parameters (fresh or resumed) are broadcast at start. Each step:
    forward/backward on the rank's shard, ONE all-reduce of the flattened
    gradients and the loss (weighted by shard size), then the same update on
    every rank. Accuracy checks are sharded too. Only rank 0 logs, shows the
    progress bar and writes checkpoints; a checkpoint holds nothing
    rank-specific, so it can be resumed with another world size (every rank
    reads it: use a shared file system, or copy it to each machine).
    """

    def __init__(self, model, data, *, comm=None, distributed=True, **options):
        if not distributed:
            raise ValueError("DistributedSolver is always distributed; use Solver for one process")
        self.comm = comm if comm is not None else init(device=_model_device(model))
        if self.comm.device == "gpu":
            _check_model_on_rank_gpu(model)
        super().__init__(model, data, **options)
        self.progress = self.progress and self.comm.is_root
        state = dict(self.model.params)
        state.update(getattr(self.model, "buffers", {}))
        self.comm.broadcast_(state)

    def batch_indices(self, epoch):
        """This rank's shard of each global batch of the Solver's epoch order."""
        sampler = ShardedSampler(len(self.X_train), self.batch_size, self.comm.rank,
                                 self.comm.world_size, seed=self.seed)
        return list(sampler.batches(epoch))

    def step(self, X_batch, y_batch):
        """Forward/backward on this shard, ONE all-reduce (grads + loss), the update; the loss."""
        n = len(y_batch)
        if n:
            loss, grads = self.compute_gradients(X_batch, y_batch)
        else:  # the last global batch had fewer samples than ranks: contribute nothing
            params = self.model.params
            loss, grads = 0.0, {k: get_array_module(v).zeros_like(v) for k, v in params.items()}
        first = next(iter(grads.values()))
        loss_slot = get_array_module(first).full(1, float(loss), dtype=first.dtype)
        self.comm.allreduce_mean_([grads[k] for k in sorted(grads)] + [loss_slot], weight=n)
        self.apply_update(grads)
        return float(loss_slot[0])

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
