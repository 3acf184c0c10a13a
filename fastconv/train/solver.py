"""The Solver: minibatch training, history, best parameters, early stopping, checkpoints."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import numpy

from .._typing import Array
from .._validate import check_int, check_real
from ..checkpoint import load_arrays, save_arrays
from ..optim import UpdateRule
from ._arguments import (SEED_LIMIT, check_callbacks, check_data, check_directory_exists,
                         check_flag, check_path, check_seed, check_subset)
from ._evaluation import AccuracyChecks
from .adapters import LossFn, adapt_model, adapt_optimizer
from .checkpoints import checkpoint_arrays, entry_checker, restore
from .parallel import SingleProcess, Strategy

__all__ = ["Solver", "SEED_LIMIT"]

PathLike = str | os.PathLike[str]


def _progress_bar(total, enabled, desc):
    """A tqdm bar when asked for and tqdm (the ``progress`` extra) is installed, else None."""
    if not enabled:
        return None
    try:
        from tqdm.auto import tqdm
    except ImportError:
        return None
    return tqdm(total=total, desc=desc, leave=False)


class Solver(AccuracyChecks):
    """Train ``model`` on ``data`` with minibatch updates (the course Solver's argument names).

    Parameters
    ----------
    model : course model or fastconv.nn.Module
        See fastconv.train.adapters: ``model.loss(X, y)``, or forward/backward with ``loss_fn``.
    data : mapping
        ``X_train``, ``y_train``, ``X_val``, ``y_val``.
    update_rule : str or callable, default 'sgd'
        A course rule ('sgd', 'sgd_momentum', 'rmsprop', 'adam') or
        ``rule(w, dw, config) -> (next_w, config)``; used without ``optimizer``.
    optim_config : mapping, optional
        The rule's settings (e.g. ``{"learning_rate": 1e-3}``), one copy per parameter.
    optimizer : object, optional
        An optimizer from fastconv.optim built over ``model.params`` (instead of a rule).
    loss_fn : callable, optional
        ``loss_fn(scores, y) -> (loss, dscores)`` for a Module without ``loss``.
    lr_decay : float, default 1.0
        Multiplies the learning rate after every epoch (0 < lr_decay <= 1).
    batch_size : int, default 100
        Samples per step (per process under data parallelism).
    num_epochs : int, default 10
        Epochs to train, counting those of a resumed checkpoint.
    num_train_samples, num_val_samples : int >= 1 or None, default 1000 and None
        Subsets measured for accuracy after each epoch (None: all).
    seed : int, default 0
        Seeds each epoch's order, ``numpy.random.default_rng([seed, epoch])``;
        0 <= seed < 2**63.
    patience : int, optional
        Stop after that many epochs without a better validation accuracy.
    checkpoint_name : str or os.PathLike, optional
        A .npz file rewritten after every epoch, in an existing directory.
    resume : str or os.PathLike, optional
        A checkpoint to continue from: its parameters, optimizer state and
        learning rate, histories, epoch and seed replace the ones given here,
        so the run goes on as if it had never stopped.
    progress : bool, default True
        A tqdm bar per epoch when tqdm is installed.
    print_every : int >= 0, default 10
        With ``verbose``, a loss line every that many iterations (0: none).
    verbose : bool, default True
        Course-style iteration and epoch lines.
    parallel : strategy, optional
        How many processes train: :class:`fastconv.train.SingleProcess` (the
        default, also under an MPI launcher, with a warning there) or
        :class:`fastconv.distributed.DataParallel`.
    callbacks : iterable of callables, optional
        Each called as ``fn(solver)`` after every epoch's bookkeeping and
        checkpoint, in order, on every process (``solver.parallel.is_root``
        says which one reports).

    Attributes
    ----------
    loss_history : list of float
        The loss of every iteration.
    train_acc_history, val_acc_history : list of float
        The accuracies after every epoch.
    best_val_acc, best_epoch : float, int
        The best validation accuracy and its epoch; after :meth:`train` the
        model holds that epoch's parameters.
    epoch : int
        Epochs finished.
    stopped_early, interrupted : bool
        Whether ``patience`` ended training, or a KeyboardInterrupt did.

    Raises
    ------
    TypeError, ValueError
        Naming the argument, when one has the wrong type or is out of range:
        checked when the Solver is built, before any training.
    CheckpointError
        When ``resume`` is unreadable or does not fit the model.

    Notes
    -----
    Hooks, small methods meant to be overridden or wrapped: :meth:`batch_indices`
    (the sampler), :meth:`step` (one update: :meth:`compute_gradients`, the
    strategy's averaging, :meth:`reduce_gradients`, :meth:`apply_update`),
    :meth:`predict_scores`, :meth:`check_accuracy`, :meth:`log` and
    :meth:`save_checkpoint`.

    Examples
    --------
    >>> import os, tempfile
    >>> import numpy as np
    >>> import fastconv.nn as nn
    >>> from fastconv.train import Solver
    >>> X = np.random.default_rng(0).standard_normal((40, 3)).astype(np.float32)
    >>> y = (X[:, 0] > 0).astype(np.int64)
    >>> data = {"X_train": X[:30], "y_train": y[:30], "X_val": X[30:], "y_val": y[30:]}
    >>> def solver(seed, **options):
    ...     return Solver(nn.mlp(3, 2, hidden_dims=(8,), seed=seed), data, update_rule="adam",
    ...                   optim_config={"learning_rate": 1e-2}, batch_size=10,
    ...                   progress=False, verbose=False, **options)
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     path = os.path.join(tmp, "run.npz")
    ...     trained = solver(0, num_epochs=2, checkpoint_name=path).train()
    ...     resumed = solver(1, num_epochs=3, resume=path)
    >>> len(trained.loss_history), len(trained.val_acc_history), resumed.epoch
    (6, 2, 2)
    >>> len(resumed.train().loss_history)
    9
    """

    def __init__(self, model: Any, data: Mapping[str, Array], *,
                 update_rule: str | UpdateRule = "sgd",
                 optim_config: Mapping[str, Any] | None = None, optimizer: Any = None,
                 loss_fn: LossFn | None = None, lr_decay: float = 1.0, batch_size: int = 100,
                 num_epochs: int = 10, num_train_samples: int | None = 1000,
                 num_val_samples: int | None = None, seed: int = 0,
                 patience: int | None = None, checkpoint_name: PathLike | None = None,
                 resume: PathLike | None = None, progress: bool = True, print_every: int = 10,
                 verbose: bool = True, parallel: Strategy | None = None,
                 callbacks: Iterable[Callable[[Solver], object]] = ()) -> None:
        # The plain arguments first, before anything joins an MPI job or touches the model.
        self.lr_decay = check_real("lr_decay", lr_decay, 0, 1, low_open=True)
        self.batch_size = check_int("batch_size", batch_size, 1)
        self.num_epochs = check_int("num_epochs", num_epochs, 0)
        self.num_train_samples = check_subset("num_train_samples", num_train_samples)
        self.num_val_samples = check_subset("num_val_samples", num_val_samples)
        self.seed = check_seed(seed)
        self.patience = None if patience is None else check_int("patience", patience, 1)
        self.progress = check_flag("progress", progress)
        self.print_every = check_int("print_every", print_every, 0)
        self.verbose = check_flag("verbose", verbose)
        self.callbacks = check_callbacks(callbacks)
        self.checkpoint_name = check_path("checkpoint_name", checkpoint_name)
        resume = check_path("resume", resume)
        self.model = model
        self.model_adapter = adapt_model(model, loss_fn)
        self.parallel: Strategy = SingleProcess() if parallel is None else parallel
        self.parallel.attach(self.model_adapter)
        if self.checkpoint_name is not None and self.parallel.is_root:  # the one that writes it
            check_directory_exists("checkpoint_name", self.checkpoint_name)
        self.X_train, self.y_train, self.X_val, self.y_val = check_data(data)
        self.optimizer, self.update_name = adapt_optimizer(self.model_adapter.params,
                                                           update_rule, optim_config, optimizer)
        self.update_rule = None if optimizer is not None else self.optimizer.rule
        self.optim_config = dict(optim_config or {})
        self._reset()
        if resume is not None:
            self.load_checkpoint(resume)
        self.parallel.start(self)

    @property
    def optim_configs(self) -> dict[str, dict[str, Any]]:
        """The per-parameter configs of a course update rule (the optimizer's ``state``)."""
        return self.optimizer.state

    # -- set-up ------------------------------------------------------------
    def _reset(self) -> None:
        """Start-of-training state: epoch 0, empty history, no best parameters yet."""
        self.epoch = 0
        self.best_val_acc = -1.0
        self.best_epoch = 0
        self.best_params: dict[str, Array] | None = None
        self.epochs_without_improvement = 0
        self.loss_history: list[float] = []
        self.train_acc_history: list[float] = []
        self.val_acc_history: list[float] = []
        self.stopped_early = False
        self.interrupted = False
        self._bar: Any = None

    # -- hooks -------------------------------------------------------------
    def batch_indices(self, epoch: int) -> list[Array]:
        """The sampler: this epoch's minibatches (this process's part of them) as index arrays.

        Every sample once per epoch, in a permutation seeded by (seed, epoch);
        the last batch may be smaller. Override for another sampling scheme.

        Parameters
        ----------
        epoch : int
            The epoch, from 0.

        Returns
        -------
        list of numpy.ndarray
            Row indices into ``X_train``, one array per step.
        """
        return self.parallel.batch_indices(len(self.X_train), self.batch_size, self.seed, epoch)

    def compute_gradients(self, X_batch: Array,
                          y_batch: Array) -> tuple[float, Mapping[str, Array]]:
        """Forward and backward on one minibatch.

        Parameters
        ----------
        X_batch, y_batch : Array
            The minibatch, on the model's device.

        Returns
        -------
        (float, mapping)
            The loss and the gradients, keyed like ``model.params``.
        """
        return self.model_adapter.gradients(X_batch, y_batch)

    def reduce_gradients(self, grads: Mapping[str, Array],
                         batch_size: int) -> Mapping[str, Array]:
        """The per-step gradient hook, on the averaged gradients before the update.

        Parameters
        ----------
        grads : mapping
            The step's gradients (over all processes' parts).
        batch_size : int
            This process's part of the minibatch.

        Returns
        -------
        mapping
            The gradients to update with: ``grads`` itself (override to clip, say).
        """
        return grads

    def apply_update(self, grads: Mapping[str, Array]) -> None:
        """One parameter update from ``grads``, by the Solver's optimizer.

        Parameters
        ----------
        grads : mapping
            Name -> gradient for every parameter.
        """
        self.optimizer.step(grads)

    def step(self, X_batch: Array, y_batch: Array) -> float:
        """One training step on a minibatch.

        Parameters
        ----------
        X_batch, y_batch : Array
            This process's part of the minibatch, on the model's device (may be empty).

        Returns
        -------
        float
            The step's loss over all processes' parts.
        """
        if len(y_batch):
            loss, grads = self.compute_gradients(X_batch, y_batch)
        else:  # a data-parallel part of a last batch smaller than the world: contributes nothing
            loss, grads = 0.0, self.model_adapter.zero_grads()
        loss, grads = self.parallel.average(loss, grads, len(y_batch))
        self.apply_update(self.reduce_gradients(grads, len(y_batch)))
        return loss

    def write(self, message: str) -> None:
        """Print ``message``, through the progress bar when one is shown.

        Parameters
        ----------
        message : str
        """
        if self._bar is not None:
            self._bar.write(message)
        else:
            print(message)

    def log(self, message: str) -> None:
        """:meth:`write` ``message`` when verbose, on the reporting process only.

        Parameters
        ----------
        message : str
        """
        if self.verbose and self.parallel.is_root:
            self.write(message)

    # -- training ----------------------------------------------------------
    def _end_of_epoch(self, epoch_loss: float) -> None:
        """Measure accuracy, track the best parameters, decay the learning rate, checkpoint."""
        train_acc = self.check_accuracy(self.X_train, self.y_train, self.num_train_samples)
        val_acc = self.check_accuracy(self.X_val, self.y_val, self.num_val_samples)
        self.train_acc_history.append(train_acc)
        self.val_acc_history.append(val_acc)
        if val_acc > self.best_val_acc:
            self.best_val_acc, self.best_epoch = val_acc, self.epoch
            self.best_params = self.model_adapter.state()
            self.epochs_without_improvement = 0
        else:
            self.epochs_without_improvement += 1
        if self.lr_decay != 1.0:
            self.optimizer.lr *= self.lr_decay
        self.log(f"(Epoch {self.epoch} / {self.num_epochs}) loss: {epoch_loss:.6f}; "
                 f"train acc: {train_acc:.4f}; val_acc: {val_acc:.4f}")
        if self.patience is not None and self.epochs_without_improvement >= self.patience:
            self.stopped_early = True
            self.log(f"stopping early: no better validation accuracy for {self.patience} epochs "
                     f"(best {self.best_val_acc:.4f} at epoch {self.best_epoch})")
        if self.checkpoint_name is not None:
            self.save_checkpoint(self.checkpoint_name)
        for callback in self.callbacks:
            callback(self)

    def train(self) -> Solver:
        """Run the remaining epochs; afterwards the model holds its best-validation parameters.

        Returns
        -------
        Solver
            ``self``.

        Raises
        ------
        KeyboardInterrupt
            Re-raised between two checkpoint writes, so the last one on disk is
            whole; ``interrupted`` is set.
        """
        self._bar = None
        try:
            while self.epoch < self.num_epochs and not self.stopped_early:
                batches = self.batch_indices(self.epoch)
                epoch_losses = []
                self._bar = _progress_bar(len(batches), self.progress and self.parallel.is_root,
                                          f"epoch {self.epoch + 1}/{self.num_epochs}")
                for idx in batches:
                    loss = self.step(self._batch(self.X_train, idx),
                                     self._batch(self.y_train, idx))
                    self.loss_history.append(loss)
                    epoch_losses.append(loss)
                    it = len(self.loss_history)
                    if self.print_every and it % self.print_every == 0:
                        self.log(f"(Iteration {it}) loss: {loss:.6f}")
                    if self._bar is not None:
                        self._bar.update(1)
                        self._bar.set_postfix(loss=f"{loss:.4f}")
                self.epoch += 1
                self._end_of_epoch(float(numpy.mean(epoch_losses)) if epoch_losses else float("nan"))
                self._close_bar()
        except KeyboardInterrupt:
            self.interrupted = True
            self._close_bar()
            raise
        if self.best_params is not None:
            self.model_adapter.load_state(self.best_params, "the best parameters")
        return self

    def _close_bar(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None

    # -- checkpoints -------------------------------------------------------
    def save_checkpoint(self, path: PathLike) -> None:
        """Write the model, best parameters, optimizer state and history to ``path`` (.npz).

        Only the reporting process writes: every process holds the same state.

        Parameters
        ----------
        path : str or os.PathLike
            The file, replaced atomically.
        """
        if self.parallel.is_root:
            save_arrays(path, checkpoint_arrays(self))

    def load_checkpoint(self, path: PathLike) -> Solver:
        """Restore everything ``save_checkpoint`` wrote, so ``train()`` continues where it stopped.

        Parameters
        ----------
        path : str or os.PathLike
            A checkpoint of a Solver with the same model and kind of update.

        Returns
        -------
        Solver
            ``self``.

        Raises
        ------
        CheckpointError
            A ValueError naming the file and the entry, when the file is
            unreadable, holds pickled objects, or does not fit the model; the
            Solver and its model are unchanged then.

        """
        restore(self, load_arrays(path, entry_checker(self, path)), path)
        return self
