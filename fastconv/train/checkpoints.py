"""The Solver's checkpoint: every entry a run needs to go on as if it had never stopped.

A flat ``name -> array`` .npz (see fastconv.checkpoint, which writes it
atomically and reads it without pickle):

- ``format``: :data:`FORMAT`;
- ``model/<name>``, ``best/<name>``: the model's params and buffers, now and
  at its best validation epoch;
- ``optim/<param>/<key>``: the optimizer's per-parameter state (a course
  rule's config, an optimizer object's ``state``); ``meta/lr`` its learning
  rate, ``meta/update`` what it is ("optimizer:<class>" or "rule:<name>");
- ``history/loss|train_acc|val_acc`` and the ``meta/`` counters (epoch, seed,
  best validation accuracy and epoch, epochs without improvement, stopped early).

Checkpoints of earlier versions load too: without ``meta/update`` (no check of
what wrote them) and, for course rules, without ``meta/lr`` (their configs hold it).
"""

import numpy

from ..backend import to_device
from ..checkpoint import CheckpointError

FORMAT = "fastconv-solver-checkpoint-1"


def checkpoint_arrays(solver):
    """The entries of ``solver``'s checkpoint, as ``save_arrays`` writes them."""
    arrays = {"format": numpy.array(FORMAT)}
    arrays.update({f"model/{k}": v for k, v in solver.model_adapter.state().items()})
    if solver.best_params is not None:
        arrays.update({f"best/{k}": v for k, v in solver.best_params.items()})
    optimizer = solver.optimizer
    arrays.update({f"optim/{name}/{key}": value for name, config in optimizer.state.items()
                   for key, value in config.items()})
    arrays["meta/update"] = numpy.array(solver.update_name)
    if optimizer.lr is not None:  # None: a course rule that never set a learning_rate
        arrays["meta/lr"] = numpy.float64(optimizer.lr)
    arrays.update({
        "history/loss": numpy.asarray(solver.loss_history, dtype=numpy.float64),
        "history/train_acc": numpy.asarray(solver.train_acc_history, dtype=numpy.float64),
        "history/val_acc": numpy.asarray(solver.val_acc_history, dtype=numpy.float64),
        "meta/epoch": numpy.int64(solver.epoch),
        "meta/seed": numpy.int64(solver.seed),
        "meta/best_val_acc": numpy.float64(solver.best_val_acc),
        "meta/best_epoch": numpy.int64(solver.best_epoch),
        "meta/epochs_without_improvement": numpy.int64(solver.epochs_without_improvement),
        "meta/stopped_early": numpy.bool_(solver.stopped_early),
    })
    return arrays


def restore(solver, arrays, path):
    """Put the checkpoint ``arrays`` read from ``path`` into ``solver``, checking them first.

    Raises
    ------
    CheckpointError
        Naming ``path`` and the entry, when the file is not a Solver
        checkpoint, was written by another kind of update, or does not fit the model.
    """
    if str(arrays.get("format", "")) != FORMAT:
        raise CheckpointError(f"{path} is not a fastconv Solver checkpoint "
                              f"(no 'format' entry {FORMAT!r})")

    def entry(key):
        if key not in arrays:
            raise CheckpointError(f"checkpoint {path} has no entry {key!r}")
        return arrays[key]

    def section(prefix):
        return {k[len(prefix):]: v for k, v in arrays.items() if k.startswith(prefix)}

    saved_update = str(arrays.get("meta/update", solver.update_name))
    if saved_update != solver.update_name:
        raise CheckpointError(f"checkpoint {path} was written by {saved_update}; this Solver "
                              f"updates with {solver.update_name}, whose state it cannot use")
    solver.model_adapter.load_state(section("model/"), f"checkpoint {path}")
    solver.best_params = section("best/") or None
    state = _optimizer_state(section("optim/"), path, solver.model_adapter)
    solver.optimizer.state = {name: state.get(name, {}) for name in solver.model_adapter.params}
    if "meta/lr" in arrays:  # course-rule checkpoints of earlier versions: the configs hold it
        solver.optimizer.lr = float(arrays["meta/lr"])
    solver.loss_history = [float(v) for v in entry("history/loss")]
    solver.train_acc_history = [float(v) for v in entry("history/train_acc")]
    solver.val_acc_history = [float(v) for v in entry("history/val_acc")]
    solver.epoch = int(entry("meta/epoch"))
    solver.seed = int(entry("meta/seed"))
    solver.best_val_acc = float(entry("meta/best_val_acc"))
    solver.best_epoch = int(entry("meta/best_epoch"))
    solver.epochs_without_improvement = int(entry("meta/epochs_without_improvement"))
    solver.stopped_early = bool(entry("meta/stopped_early"))


def _optimizer_state(entries, path, model):
    """``{param: {key: value}}`` from "optim/<param>/<key>" entries, checked against the model."""
    device, params = model.device, model.params
    state = {}
    for key, value in entries.items():
        name, _, field = key.rpartition("/")
        if name not in params:
            raise CheckpointError(f"checkpoint {path} has optimizer state for {name!r}, "
                                  "which is not a parameter of this model")
        if value.ndim == 0:
            state.setdefault(name, {})[field] = value.item()
            continue
        want = tuple(params[name].shape)
        if tuple(value.shape) != want:
            raise CheckpointError(f"checkpoint {path}: optimizer state {field!r} of parameter "
                                  f"{name!r} has shape {tuple(value.shape)}, the parameter "
                                  f"has {want}")
        state.setdefault(name, {})[field] = to_device(value, device).astype(params[name].dtype)
    return state
