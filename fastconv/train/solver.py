"""The Solver: minibatch training, history, best parameters, early stopping, checkpoints."""

import os

import numpy

from .._validate import check_int, check_real
from ..backend import as_numpy, get_array_module, to_device
from ..checkpoint import load_arrays, save_arrays
from .adapters import adapt_model, adapt_optimizer
from .checkpoints import checkpoint_arrays, entry_checker, restore
from .parallel import SingleProcess

#: Seeds are below this: numpy.random.default_rng takes any int >= 0, a checkpoint stores int64.
SEED_LIMIT = 2**63


def _check_seed(seed):
    """``seed`` as an int in [0, 2**63), else a TypeError or ValueError naming it."""
    seed = check_int("seed", seed, 0)
    if seed >= SEED_LIMIT:
        raise ValueError(f"seed must be < 2**63 (a checkpoint stores it as int64), got {seed}")
    return seed


def _check_flag(name, value):
    """``value`` as a bool; a TypeError naming ``name`` for anything else (0, 'no', None)."""
    if not isinstance(value, (bool, numpy.bool_)):
        raise TypeError(f"{name} must be True or False, got {value!r}")
    return bool(value)


def _check_subset(name, value):
    """None (every sample) or a number of samples >= 1."""
    return None if value is None else check_int(name, value, 1)


def _check_callbacks(callbacks):
    """The callbacks as a list, each callable; a TypeError naming the first that is not."""
    callbacks = list(callbacks)
    for i, callback in enumerate(callbacks):
        if not callable(callback):
            raise TypeError(f"callbacks[{i}] must be callable, got {callback!r}")
    return callbacks


def _check_path(name, path):
    """None or a path (str or os.PathLike); a TypeError naming ``name`` for anything else."""
    if path is not None and not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"{name} must be a path (str or os.PathLike), got {path!r}")
    return path


def _check_directory_exists(name, path):
    """A ValueError naming ``name`` when ``path``'s directory is missing: now, not after an epoch."""
    parent = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(parent):
        raise ValueError(f"{name} {os.fspath(path)!r}: directory {parent} does not exist")


def _progress_bar(total, enabled, desc):
    """A tqdm bar when asked for and tqdm (the ``progress`` extra) is installed, else None."""
    if not enabled:
        return None
    try:
        from tqdm.auto import tqdm
    except ImportError:
        return None
    return tqdm(total=total, desc=desc, leave=False)


class Solver:
    """Train ``model`` on ``data`` with minibatch updates (the course Solver's argument names).

    Parameters
    ----------
    model : course model or fastconv.nn.Module
        See fastconv.train.adapters: ``model.loss(X, y)``, or forward/backward with ``loss_fn``.
    data : dict
        ``X_train``, ``y_train``, ``X_val``, ``y_val``.
    update_rule : str or callable, default 'sgd'
        A course rule ('sgd', 'sgd_momentum', 'rmsprop', 'adam') or
        ``rule(w, dw, config) -> (next_w, config)``; used without ``optimizer``.
    optim_config : dict, optional
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
    num_train_samples, num_val_samples : int >= 1 or None
        Subsets measured for accuracy after each epoch (None: all).
    seed : int, default 0
        Seeds each epoch's order, ``numpy.random.default_rng([seed, epoch])``;
        0 <= seed < 2**63 (NumPy takes seeds >= 0, a checkpoint stores it as int64).
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
    callbacks : sequence of callables, optional
        Each called as ``fn(solver)`` after every epoch's bookkeeping and
        checkpoint, in order, on every process (``solver.parallel.is_root``
        says which one reports).

    Raises
    ------
    TypeError, ValueError
        Naming the argument, when one has the wrong type or is out of range:
        checked when the Solver is built, before any training.

    Notes
    -----
    After ``train()``: ``loss_history`` (per iteration), ``train_acc_history``
    and ``val_acc_history`` (per epoch), ``best_val_acc``, ``best_epoch``, and
    the model holds the parameters of its best validation epoch.

    Hooks, small methods meant to be overridden or wrapped: :meth:`batch_indices`
    (the sampler), :meth:`step` (one update: :meth:`compute_gradients`, the
    strategy's averaging, :meth:`reduce_gradients`, :meth:`apply_update`),
    :meth:`predict_scores`, :meth:`check_accuracy`, :meth:`log` and
    :meth:`save_checkpoint`.
    """

    def __init__(self, model, data, *, update_rule="sgd", optim_config=None, optimizer=None,
                 loss_fn=None, lr_decay=1.0, batch_size=100, num_epochs=10,
                 num_train_samples=1000, num_val_samples=None, seed=0, patience=None,
                 checkpoint_name=None, resume=None, progress=True, print_every=10,
                 verbose=True, parallel=None, callbacks=()):
        # The plain arguments first, before anything joins an MPI job or touches the model.
        self.lr_decay = check_real("lr_decay", lr_decay, 0, 1, low_open=True)
        self.batch_size = check_int("batch_size", batch_size, 1)
        self.num_epochs = check_int("num_epochs", num_epochs, 0)
        self.num_train_samples = _check_subset("num_train_samples", num_train_samples)
        self.num_val_samples = _check_subset("num_val_samples", num_val_samples)
        self.seed = _check_seed(seed)
        self.patience = None if patience is None else check_int("patience", patience, 1)
        self.progress = _check_flag("progress", progress)
        self.print_every = check_int("print_every", print_every, 0)
        self.verbose = _check_flag("verbose", verbose)
        self.callbacks = _check_callbacks(callbacks)
        self.checkpoint_name = _check_path("checkpoint_name", checkpoint_name)
        resume = _check_path("resume", resume)
        self.model = model
        self.model_adapter = adapt_model(model, loss_fn)
        self.parallel = SingleProcess() if parallel is None else parallel
        self.parallel.attach(self.model_adapter)
        if self.checkpoint_name is not None and self.parallel.is_root:  # the one that writes it
            _check_directory_exists("checkpoint_name", self.checkpoint_name)
        self.X_train, self.y_train, self.X_val, self.y_val = self._check_data(data)
        self.optimizer, self.update_name = adapt_optimizer(self.model_adapter.params,
                                                           update_rule, optim_config, optimizer)
        self.update_rule = None if optimizer is not None else self.optimizer.rule
        self.optim_config = dict(optim_config or {})
        self._reset()
        if resume is not None:
            self.load_checkpoint(resume)
        self.parallel.start(self)

    @property
    def optim_configs(self):
        """The per-parameter configs of a course update rule (the optimizer's ``state``)."""
        return self.optimizer.state

    # -- set-up ------------------------------------------------------------
    @staticmethod
    def _check_data(data):
        missing = [k for k in ("X_train", "y_train", "X_val", "y_val") if k not in data]
        if missing:
            raise ValueError(f"data is missing {missing}; it needs X_train, y_train, X_val, y_val")
        arrays = [data[k] for k in ("X_train", "y_train", "X_val", "y_val")]
        for split, (X, y) in (("train", arrays[:2]), ("val", arrays[2:])):
            if len(X) != len(y):
                raise ValueError(f"X_{split} has {len(X)} samples but y_{split} has {len(y)} "
                                 f"(shapes {tuple(X.shape)} and {tuple(y.shape)})")
            if len(X) == 0:
                raise ValueError(f"X_{split} is empty")
        return arrays

    def _reset(self):
        """Start-of-training state: epoch 0, empty history, no best parameters yet."""
        self.epoch = 0
        self.best_val_acc = -1.0
        self.best_epoch = 0
        self.best_params = None
        self.epochs_without_improvement = 0
        self.loss_history = []
        self.train_acc_history = []
        self.val_acc_history = []
        self.stopped_early = False
        self.interrupted = False
        self._bar = None

    # -- hooks -------------------------------------------------------------
    def batch_indices(self, epoch):
        """The sampler: this epoch's minibatches (this process's part of them) as index arrays.

        Every sample once per epoch, in a permutation seeded by (seed, epoch);
        the last batch may be smaller. Override for another sampling scheme.
        """
        return self.parallel.batch_indices(len(self.X_train), self.batch_size, self.seed, epoch)

    def compute_gradients(self, X_batch, y_batch):
        """Forward and backward on one minibatch; returns ``(loss, grads)`` keyed like model.params."""
        return self.model_adapter.gradients(X_batch, y_batch)

    def reduce_gradients(self, grads, batch_size):
        """The per-step gradient hook, on the averaged gradients before the update; the identity."""
        return grads

    def apply_update(self, grads):
        """One parameter update from ``grads``."""
        self.optimizer.step(grads)

    def step(self, X_batch, y_batch):
        """One training step on a minibatch; returns its loss (over all processes' parts)."""
        if len(y_batch):
            loss, grads = self.compute_gradients(X_batch, y_batch)
        else:  # a data-parallel part of a last batch smaller than the world: contributes nothing
            loss, grads = 0.0, self.model_adapter.zero_grads()
        loss, grads = self.parallel.average(loss, grads, len(y_batch))
        self.apply_update(self.reduce_gradients(grads, len(y_batch)))
        return loss

    def write(self, message):
        """Print ``message``, through the progress bar when one is shown."""
        if self._bar is not None:
            self._bar.write(message)
        else:
            print(message)

    def log(self, message):
        """:meth:`write` ``message`` when verbose, on the reporting process only."""
        if self.verbose and self.parallel.is_root:
            self.write(message)

    # -- evaluation --------------------------------------------------------
    def _batch(self, X, idx):
        """Rows ``idx`` of X on the model's device."""
        xp = get_array_module(X)
        return to_device(X[xp.asarray(idx)], self.model_adapter.device)

    def predict_scores(self, X):
        """Class scores for ``X`` (already on the model's device), in evaluation mode."""
        return self.model_adapter.scores(X)

    def accuracy_indices(self, n, num_samples=None):
        """The samples check_accuracy scores: all ``n``, or ``num_samples`` of them seeded by (seed, epoch)."""
        if num_samples is None or n <= num_samples:
            return numpy.arange(n)
        return numpy.random.default_rng([self.seed, self.epoch, 1]).choice(n, num_samples,
                                                                           replace=False)

    def check_accuracy(self, X, y, num_samples=None, batch_size=100):
        """Fraction of (a seeded subset of ``num_samples`` of) X classified as y."""
        y = as_numpy(y)

        def count_correct(idx):
            correct = 0
            for start in range(0, len(idx), batch_size):
                part = idx[start:start + batch_size]
                scores = self.predict_scores(self._batch(X, part))
                correct += int((as_numpy(scores).argmax(axis=1) == y[part]).sum())
            return correct

        return self.parallel.accuracy(self.accuracy_indices(len(X), num_samples), count_correct)

    # -- training ----------------------------------------------------------
    def _end_of_epoch(self, epoch_loss):
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

    def train(self):
        """Run the remaining epochs; afterwards the model holds its best-validation parameters."""
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

    def _close_bar(self):
        if self._bar is not None:
            self._bar.close()
            self._bar = None

    # -- checkpoints -------------------------------------------------------
    def save_checkpoint(self, path):
        """Write the model, best parameters, optimizer state and history to ``path`` (.npz).

        Only the reporting process writes: every process holds the same state.
        """
        if self.parallel.is_root:
            save_arrays(path, checkpoint_arrays(self))

    def load_checkpoint(self, path):
        """Restore everything ``save_checkpoint`` wrote, so ``train()`` continues where it stopped.

        Raises CheckpointError (a ValueError) naming the file and the entry when
        the file is unreadable, holds pickled objects, or does not fit the model.
        """
        restore(self, load_arrays(path, entry_checker(self, path)), path)
        return self
