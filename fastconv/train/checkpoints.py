"""The Solver's checkpoint: every entry a run needs to go on as if it had never stopped.

A flat ``name -> array`` .npz (see fastconv.checkpoint, which writes it
atomically and reads it without pickle, refusing unread any name
:data:`fastconv.checkpoint.ENTRY_NAMES` does not allow):

- ``format``: :data:`FORMAT`;
- ``model/<name>``, ``best/<name>``: the model's params and buffers, now and
  at its best validation epoch;
- ``optim/<param>/<key>``: the optimizer's per-parameter state (a course
  rule's config, an optimizer object's ``state``); ``meta/lr`` its learning
  rate, ``meta/update`` what it is ("optimizer:<class>" or "rule:<name>");
- ``history/loss|train_acc|val_acc`` and the ``meta/`` counters (epoch, seed,
  best validation accuracy and epoch, epochs without improvement, stopped early).

:func:`restore` checks every entry before it changes anything, so a refused
checkpoint leaves the Solver and its model as they were. The optimizer state
goes through the checks the optimizer's own step makes of it, so what the
first resumed step would refuse is refused at load, naming the file and the
entry; for the updates fastconv defines it must also hold finite values and
every entry the update keeps (see :func:`restore`). Checkpoints of
earlier versions load too: without ``meta/update`` (no check of what wrote
them) and, for course rules, without ``meta/lr`` (their configs hold it).
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Mapping
from typing import Any

import numpy

from ..checkpoint import CheckpointError
from ._arguments import SEED_LIMIT
from ._optimizer_state import check_optimizer_state, optimizer_state

FORMAT = "fastconv-solver-checkpoint-1"

def checkpoint_arrays(solver: Any) -> dict[str, Any]:
    """The entries of ``solver``'s checkpoint, as ``save_arrays`` writes them.

    Parameters
    ----------
    solver : fastconv.train.Solver
        The Solver whose state to save.

    Returns
    -------
    dict
        Entry name -> array or scalar, as :func:`fastconv.checkpoint.save_arrays` takes them.

    Examples
    --------
    >>> import numpy as np
    >>> import fastconv.nn as nn
    >>> from fastconv.train import Solver
    >>> X, y = np.eye(3, dtype=np.float32), np.arange(3)
    >>> data = {"X_train": X, "y_train": y, "X_val": X, "y_val": y}
    >>> def solver(seed):
    ...     return Solver(nn.linear_classifier(3, 3, seed=seed), data, num_epochs=1,
    ...                   progress=False, verbose=False)
    >>> from fastconv.train.checkpoints import checkpoint_arrays
    >>> arrays = checkpoint_arrays(solver(0))
    >>> str(arrays["format"]), sorted(k for k in arrays if k.startswith("model/"))
    ('fastconv-solver-checkpoint-1', ['model/0.W', 'model/0.b'])
    """
    arrays: dict[str, Any] = {"format": numpy.array(FORMAT)}
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


# meta/<name>: the kinds of NumPy scalar it may be, and whether it must be there.
# Earlier versions wrote neither "update" nor, for course rules, "lr".
_INT, _REAL, _FLAG, _TEXT = "iu", "iuf", "b", "U"
_KIND_NAMES = {_INT: "integer", _REAL: "real number", _FLAG: "bool", _TEXT: "string"}
_META = {"epoch": (_INT, True), "seed": (_INT, True), "best_val_acc": (_REAL, True),
         "best_epoch": (_INT, True), "epochs_without_improvement": (_INT, True),
         "stopped_early": (_FLAG, True), "update": (_TEXT, False), "lr": (_REAL, False)}
_HISTORIES = ("loss", "train_acc", "val_acc")


def restore(solver: Any, arrays: Mapping[str, Any], path: str | os.PathLike[str]) -> None:
    """Put the checkpoint ``arrays`` read from ``path`` into ``solver``, all of them checked first.

    Every entry is checked (the model's and the best parameters against the
    model, the optimizer state against its parameters and by the optimizer's
    own step checks, each ``meta/`` entry for its kind and the range the
    Solver's arguments allow, the histories for their lengths) before anything
    in ``solver`` or its model changes, so a refused checkpoint leaves both as
    they were. For the updates fastconv defines (the course rules, SGD,
    RMSProp, AdaGrad, Adam) the optimizer state must also be finite, its
    running means and sums of squared gradients non-negative, and complete:
    every parameter holds the entries the others hold and, once the run has
    stepped, every entry a step of that update writes (plain SGD writes none).

    Parameters
    ----------
    solver : Solver
        The Solver to restore, with the model and update the checkpoint was written for.
    arrays : dict
        The checkpoint's entries, as :func:`fastconv.checkpoint.load_arrays` reads them.
    path : path-like
        Where they were read from, for the error messages.

    Raises
    ------
    CheckpointError
        Naming ``path`` and the entry, when the file is not a Solver
        checkpoint, was written by another kind of update, or holds an entry
        that is missing, malformed, out of range or does not fit the model.

    Examples
    --------
    >>> import numpy as np
    >>> import fastconv.nn as nn
    >>> from fastconv.train import Solver
    >>> X, y = np.eye(3, dtype=np.float32), np.arange(3)
    >>> data = {"X_train": X, "y_train": y, "X_val": X, "y_val": y}
    >>> def solver(seed):
    ...     return Solver(nn.linear_classifier(3, 3, seed=seed), data, num_epochs=1,
    ...                   progress=False, verbose=False)
    >>> from fastconv.train.checkpoints import checkpoint_arrays, restore
    >>> trained, fresh = solver(0).train(), solver(1)
    >>> as_read = {k: np.asarray(v) for k, v in checkpoint_arrays(trained).items()}
    >>> restore(fresh, as_read, "memory")
    >>> fresh.epoch, bool((fresh.model.params["0.W"] == trained.model.params["0.W"]).all())
    (1, True)
    """
    source = f"checkpoint {path}"
    if str(arrays.get("format", "")) != FORMAT:
        raise CheckpointError(f"{path} is not a fastconv Solver checkpoint "
                              f"(no 'format' entry {FORMAT!r})")
    meta = _meta(arrays, source)
    saved_update = meta["update"] or solver.update_name  # None: no check of what wrote it
    if saved_update != solver.update_name:
        raise CheckpointError(f"{source} was written by {saved_update}; this Solver "
                              f"updates with {solver.update_name}, whose state it cannot use")
    histories = _histories(arrays, source, meta["epoch"])
    adapter = solver.model_adapter
    model = adapter.check_state(_section(arrays, "model/"), source)
    best = _section(arrays, "best/")
    if best or meta["epoch"]:  # every epoch's end keeps best parameters: none only before one
        best = adapter.check_state(best, f"{source} (its best/ entries)")
    optimizer = solver.optimizer
    state = optimizer_state(_section(arrays, "optim/"), source, adapter,
                            getattr(optimizer, "_state_arrays", ()))
    # The checked model/ entries stand in for the parameters: the arrays the next step updates.
    check_optimizer_state(optimizer, solver.update_name, state,
                          {name: model[name] for name in adapter.params}, len(histories[0]),
                          meta["lr"], source)

    # Everything is checked: from here on nothing can fail half-way.
    adapter.load_state(model, source)
    solver.best_params = best or None
    solver.optimizer.state = {name: state.get(name, {}) for name in adapter.params}
    if meta["lr"] is not None:  # course-rule checkpoints of earlier versions: the configs hold it
        solver.optimizer.lr = meta["lr"]
    solver.loss_history, solver.train_acc_history, solver.val_acc_history = histories
    for name in ("epoch", "seed", "best_val_acc", "best_epoch", "epochs_without_improvement",
                 "stopped_early"):
        setattr(solver, name, meta[name])


def entry_checker(solver: Any, path: str | os.PathLike[str]) -> Callable[[str, Any, Any], None]:
    """``check_entry(name, shape, dtype)`` for :func:`fastconv.checkpoint.load_arrays`.

    Refuses, before their data is read, the entries that cannot fit
    ``solver``'s model: a ``model/`` or ``best/`` entry that is no parameter or
    buffer of it or has another shape, and ``optim/`` state that is neither a
    scalar nor shaped like its parameter. (The rest is checked by :func:`restore`.)

    Parameters
    ----------
    solver : fastconv.train.Solver
        The Solver the checkpoint is for.
    path : str or os.PathLike
        The checkpoint, for the error messages.

    Returns
    -------
    callable
        ``check_entry(name, shape, dtype)``, which returns None for an entry
        that may fit and raises CheckpointError, naming ``path`` and the entry,
        for one that cannot.

    Examples
    --------
    >>> import numpy as np
    >>> import fastconv.nn as nn
    >>> from fastconv.train import Solver
    >>> X, y = np.eye(3, dtype=np.float32), np.arange(3)
    >>> data = {"X_train": X, "y_train": y, "X_val": X, "y_val": y}
    >>> def solver(seed):
    ...     return Solver(nn.linear_classifier(3, 3, seed=seed), data, num_epochs=1,
    ...                   progress=False, verbose=False)
    >>> from fastconv.train.checkpoints import entry_checker
    >>> check_entry = entry_checker(solver(0), "run.npz")
    >>> check_entry("model/0.W", (3, 3), np.dtype(np.float32))
    >>> check_entry("model/0.W", (4, 3), np.dtype(np.float32))  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    fastconv.checkpoint.CheckpointError: checkpoint run.npz: parameter '0.W' has shape (4, 3), ...
    """
    adapter = solver.model_adapter
    shapes = {k: tuple(v.shape) for k, v in {**adapter.params, **adapter.buffers}.items()}

    def check_entry(name, shape, dtype):
        section, _, key = name.partition("/")
        shape = tuple(shape)
        if section == "optim":
            key, _, field = key.rpartition("/")
            if key not in shapes:
                raise CheckpointError(f"checkpoint {path} has optimizer state for {key!r}, "
                                      "which is not a parameter of this model (refused unread)")
            if shape not in ((), shapes[key]):
                raise CheckpointError(f"checkpoint {path}: optimizer state {field!r} of "
                                      f"parameter {key!r} has shape {shape}; the parameter "
                                      f"has {shapes[key]} (refused unread)")
        elif section in ("model", "best"):
            source = f"checkpoint {path}" + (" (its best/ entries)" if section == "best" else "")
            if key not in shapes:
                raise CheckpointError(f"{source}: {key!r} is not a parameter or buffer of the "
                                      f"model, which has {sorted(shapes)} (refused unread)")
            if shape != shapes[key]:
                raise CheckpointError(f"{source}: parameter {key!r} has shape {shape}, the "
                                      f"model's has {shapes[key]} (refused unread)")

    return check_entry


def _section(arrays, prefix):
    """The entries named ``prefix<rest>``, keyed by ``rest``."""
    return {k[len(prefix):]: v for k, v in arrays.items() if k.startswith(prefix)}


def _meta(arrays, source):
    """``{name: Python scalar or None}`` for each name in _META, checked for kind and range."""
    unknown = sorted(set(_section(arrays, "meta/")) - set(_META))
    if unknown:
        raise CheckpointError(f"{source} has an entry 'meta/{unknown[0]}', which a Solver "
                              f"checkpoint does not define")
    meta = {name: _scalar(arrays, f"meta/{name}", kinds, required, source)
            for name, (kinds, required) in _META.items()}
    epoch = meta["epoch"]
    _check_range(meta, "epoch", 0, math.inf, source)
    # The Solver's own range (check_seed): the next checkpoint stores it as int64.
    _check_range(meta, "seed", 0, SEED_LIMIT - 1, source)
    _check_range(meta, "best_epoch", 0, epoch, source)
    _check_range(meta, "epochs_without_improvement", 0, epoch, source)
    _check_range(meta, "best_val_acc", -1.0, 1.0, source)  # an accuracy; -1 before any epoch
    if meta["lr"] is not None:  # the optimizers' own range: any lr >= 0, (here) finite
        _check_range(meta, "lr", 0.0, math.inf, source)
    return meta


def _scalar(arrays, key, kinds, required, source):
    """Entry ``key`` as a Python scalar, refused unless 0-d and of a dtype kind in ``kinds``.

    None when it is absent and not ``required``.
    """
    if key not in arrays:
        if required:
            raise CheckpointError(f"{source} has no entry {key!r}")
        return None
    value = arrays[key]
    if value.ndim != 0 or value.dtype.kind not in kinds:
        raise CheckpointError(f"{source}: entry {key!r} is a {value.dtype} array of shape "
                              f"{value.shape}; a single {_KIND_NAMES[kinds]} is expected")
    return float(value) if kinds == _REAL else value.item()


def _check_range(meta, name, low, high, source):
    """Refuse ``meta[name]`` outside ``[low, high]`` (NaN and infinities too)."""
    value = meta[name]
    if not (low <= value <= high and math.isfinite(value)):
        raise CheckpointError(f"{source}: entry 'meta/{name}' is {value}; it must be a finite "
                              f"number from {low} to {high}")


def _histories(arrays, source, epoch):
    """The loss, train and validation accuracy histories as lists of floats, checked.

    One value per iteration for the loss, one per finished epoch for each accuracy.
    """
    histories = []
    for name in _HISTORIES:
        key = f"history/{name}"
        if key not in arrays:
            raise CheckpointError(f"{source} has no entry {key!r}")
        value = arrays[key]
        if value.ndim != 1 or value.dtype.kind not in _REAL:
            raise CheckpointError(f"{source}: entry {key!r} is a {value.dtype} array of shape "
                                  f"{value.shape}; a vector of real numbers is expected")
        if name != "loss" and len(value) != epoch:
            raise CheckpointError(f"{source}: entry {key!r} has {len(value)} values for "
                                  f"{epoch} finished epochs (meta/epoch)")
        histories.append([float(v) for v in value])
    return histories
