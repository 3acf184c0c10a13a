"""The Solver: minibatch training with history, best-parameter tracking, early stopping and checkpoints.

It trains two kinds of model:

- the course interface: ``model.params`` (name -> array) and
  ``model.loss(X, y)`` returning ``(loss, grads)`` (and the scores for
  ``model.loss(X)``), as CS231n's classifiers and every ``fastconv.nn.models``
  builder provide;
- a :class:`fastconv.nn.Module` with a ``loss_fn(scores, y) -> (loss, dscores)``
  (default ``softmax_cross_entropy``): forward, loss, backward, ``model.grads``.

Parameters are updated either by a course update rule from :mod:`fastconv.optim`
(``update_rule='sgd' | 'sgd_momentum' | 'rmsprop' | 'adam'`` or a callable
``rule(w, dw, config) -> (next_w, config)``, one config per parameter, seeded
from ``optim_config``) or by an optimizer object (``optimizer=``, built over
``model.params``, see fastconv.optim).

Each epoch visits every training sample once in an order drawn from
``numpy.random.default_rng([seed, epoch])``, so a run is reproducible and a run
resumed from a checkpoint takes the same path as one that was never stopped.

Hooks (small methods meant to be overridden or wrapped, e.g. for data-parallel
training over MPI):

- :meth:`Solver.batch_indices` (the sampler): the index arrays of one epoch;
- :meth:`Solver.step`: one update, made of :meth:`compute_gradients` (forward
  and backward on one minibatch), :meth:`reduce_gradients` (the per-step
  gradient hook; the identity here, an all-reduce across ranks there) and
  :meth:`apply_update`;
- :meth:`Solver.save_checkpoint` / :meth:`Solver.log`: the only places that write
  files or print (a data-parallel run keeps them on one rank).

Checkpoints are .npz files written atomically at the end of every epoch and read
with ``allow_pickle=False`` (see fastconv.checkpoint): an untrusted file cannot
run code, and a corrupt or mismatched one raises an error naming the entry. A
KeyboardInterrupt stops training between two writes, so the last checkpoint on
disk stays complete; the interrupt is re-raised (``solver.interrupted`` is set)
for the caller to report.
"""

import numbers

import numpy

from . import optim
from .backend import as_numpy, device_of, get_array_module, to_device
from .checkpoint import CheckpointError, load_arrays, save_arrays
from .functional.loss import softmax_cross_entropy

FORMAT = "fastconv-solver-checkpoint-1"
UPDATE_RULES = ("sgd", "sgd_momentum", "rmsprop", "adam")  # the course rules in fastconv.optim


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
    """Train ``model`` on ``data`` ({'X_train', 'y_train', 'X_val', 'y_val'}) with minibatch updates.

    Arguments (keyword-only after ``data``; the course Solver's names where it has them):
    ``update_rule``/``optim_config`` (course rules) or ``optimizer`` (an object from
    fastconv.optim); ``loss_fn`` for a Module without ``loss``; ``lr_decay`` applied
    after every epoch; ``batch_size``; ``num_epochs``; ``num_train_samples`` and
    ``num_val_samples`` (subsets used to measure accuracy each epoch; None = all);
    ``seed``; ``patience`` (stop after that many epochs without a better validation
    accuracy; None = never); ``checkpoint_name`` (a .npz path rewritten after every
    epoch); ``resume`` (a checkpoint path to continue from: its parameters, optimiser
    state and learning rate, histories, epoch and seed replace the ones given here, so
    the run goes on as if it had never stopped); ``progress`` (a tqdm
    bar when tqdm is installed); ``print_every`` and ``verbose`` (course-style lines);
    ``distributed`` (True: data-parallel over the ranks of an MPI job, ``batch_size``
    per rank; None, the default: so when launched with a world size > 1; see
    fastconv.distributed.DistributedSolver).

    After ``train()``: ``loss_history`` (per iteration), ``train_acc_history`` and
    ``val_acc_history`` (per epoch), ``best_val_acc``, ``best_epoch``, and the model
    holds the parameters of its best validation epoch.
    """

    def __new__(cls, *args, distributed=None, **kwargs):
        from . import distributed as dist  # mpi4py itself stays unimported until a rank needs it
        if distributed or (distributed is None and dist.launched_world_size() > 1):
            cls = dist.data_parallel(cls)  # this class (or subclass) with DistributedSolver's hooks
        return super().__new__(cls)

    def __init__(self, model, data, *, update_rule="sgd", optim_config=None, optimizer=None,
                 loss_fn=None, lr_decay=1.0, batch_size=100, num_epochs=10,
                 num_train_samples=1000, num_val_samples=None, seed=0, patience=None,
                 checkpoint_name=None, resume=None, progress=True, print_every=10,
                 verbose=True, distributed=None):
        self.model = model
        self.X_train, self.y_train, self.X_val, self.y_val = self._check_data(data)
        self.uses_loss_fn = loss_fn is not None or not hasattr(model, "loss")
        if self.uses_loss_fn and not hasattr(model, "backward"):
            raise TypeError("model must have loss(X, y) (the course interface) or be a "
                            "fastconv.nn.Module (forward/backward) trained with a loss_fn")
        self.loss_fn = loss_fn or softmax_cross_entropy
        self.optimizer = optimizer
        if optimizer is None:
            self.update_rule = self._resolve_rule(update_rule)
            self.optim_config = dict(optim_config or {})
            self.optim_configs = {k: dict(self.optim_config) for k in self.model.params}
        elif optim_config:
            raise ValueError("give optim_config (course update rules) or optimizer, not both")
        self.lr_decay = float(lr_decay)
        self.batch_size = self._positive("batch_size", batch_size)
        self.num_epochs = self._positive("num_epochs", num_epochs, allow_zero=True)
        self.num_train_samples = num_train_samples
        self.num_val_samples = num_val_samples
        self.seed = int(seed)
        self.patience = None if patience is None else self._positive("patience", patience)
        self.checkpoint_name = checkpoint_name
        self.progress = progress
        self.print_every = print_every
        self.verbose = verbose
        self._reset()
        if resume is not None:
            self.load_checkpoint(resume)

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

    @staticmethod
    def _positive(name, value, allow_zero=False):
        if not isinstance(value, numbers.Integral) or value < (0 if allow_zero else 1):
            raise ValueError(f"{name} must be an int >= {0 if allow_zero else 1}, got {value!r}")
        return int(value)

    @staticmethod
    def _resolve_rule(update_rule):
        if callable(update_rule):
            return update_rule
        if update_rule not in UPDATE_RULES:
            raise ValueError(f"unknown update_rule {update_rule!r}; choose one of "
                             f"{list(UPDATE_RULES)} or pass a callable")
        return getattr(optim, update_rule)

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
        """The sampler: this epoch's minibatches as index arrays into X_train.

        Every sample once, in a permutation seeded by (seed, epoch); the last
        batch may be smaller. Override for another sampling scheme (e.g. one
        shard of each global batch per rank).
        """
        n = len(self.X_train)
        order = numpy.random.default_rng([self.seed, epoch]).permutation(n)
        return [order[i:i + self.batch_size] for i in range(0, n, self.batch_size)]

    def compute_gradients(self, X_batch, y_batch):
        """Forward and backward on one minibatch; returns ``(loss, grads)`` keyed like model.params."""
        if not self.uses_loss_fn:
            return self.model.loss(X_batch, y_batch)
        self.model.train()
        scores = self.model.forward(X_batch)
        loss, dscores = self.loss_fn(scores, y_batch)
        self.model.backward(dscores)
        return float(loss), dict(self.model.grads)

    def reduce_gradients(self, grads, batch_size):
        """The per-step gradient hook, called between backward and update; the identity here."""
        return grads

    def apply_update(self, grads):
        """One parameter update from ``grads``, by the optimizer object or the course rule."""
        if self.optimizer is not None:
            self.optimizer.step(grads)
            return
        params = self.model.params
        for name, config in self.optim_configs.items():
            params[name], self.optim_configs[name] = self.update_rule(params[name], grads[name],
                                                                      config)

    def step(self, X_batch, y_batch):
        """One training step on a minibatch; returns its loss."""
        loss, grads = self.compute_gradients(X_batch, y_batch)
        grads = self.reduce_gradients(grads, len(y_batch))
        self.apply_update(grads)
        return loss

    def log(self, message):
        """Print ``message`` when verbose (through the progress bar when one is shown)."""
        if not self.verbose:
            return
        if self._bar is not None:
            self._bar.write(message)
        else:
            print(message)

    # -- evaluation --------------------------------------------------------
    def _device(self):
        for value in self.model.params.values():
            return device_of(value)
        return "cpu"

    def _batch(self, X, idx):
        """Rows ``idx`` of X on the model's device."""
        xp = get_array_module(X)
        return to_device(X[xp.asarray(idx)], self._device())

    def predict_scores(self, X):
        """Class scores for ``X`` (already on the model's device), in evaluation mode."""
        if not self.uses_loss_fn:
            return self.model.loss(X)
        was = self.model.training
        self.model.eval()
        try:
            return self.model.forward(X)
        finally:
            self.model.train(was)

    def accuracy_indices(self, n, num_samples=None):
        """The samples check_accuracy scores: all ``n``, or ``num_samples`` of them seeded by (seed, epoch)."""
        if num_samples is None or n <= num_samples:
            return numpy.arange(n)
        return numpy.random.default_rng([self.seed, self.epoch, 1]).choice(n, num_samples,
                                                                           replace=False)

    def check_accuracy(self, X, y, num_samples=None, batch_size=100):
        """Fraction of (a seeded subset of ``num_samples`` of) X classified as y."""
        idx = self.accuracy_indices(len(X), num_samples)
        y = as_numpy(y)
        correct = 0
        for start in range(0, len(idx), batch_size):
            part = idx[start:start + batch_size]
            scores = self.predict_scores(self._batch(X, part))
            correct += int((as_numpy(scores).argmax(axis=1) == y[part]).sum())
        return correct / len(idx)

    # -- state -------------------------------------------------------------
    def _model_state(self):
        """Copies of the model's params and buffers (what "best parameters" means)."""
        state = {k: v.copy() for k, v in self.model.params.items()}
        state.update({k: v.copy() for k, v in getattr(self.model, "buffers", {}).items()})
        return state

    def _load_model_state(self, state, source):
        """Put ``state`` into the model, checking every name and shape first."""
        if hasattr(self.model, "load_state_dict"):
            try:
                self.model.load_state_dict(state)
            except ValueError as exc:
                raise CheckpointError(f"{source}: {exc}") from exc
            return
        current = self.model.params
        for name, value in current.items():
            if name not in state:
                raise CheckpointError(f"{source} has no entry for parameter {name!r}")
            if tuple(state[name].shape) != tuple(value.shape):
                raise CheckpointError(f"{source}: parameter {name!r} has shape "
                                      f"{tuple(state[name].shape)}, the model's has "
                                      f"{tuple(value.shape)}")
        for name, value in current.items():
            current[name] = to_device(state[name], device_of(value)).astype(value.dtype)

    def _end_of_epoch(self, epoch_loss):
        """Measure accuracy, track the best parameters, decay the learning rate, checkpoint."""
        train_acc = self.check_accuracy(self.X_train, self.y_train, self.num_train_samples)
        val_acc = self.check_accuracy(self.X_val, self.y_val, self.num_val_samples)
        self.train_acc_history.append(train_acc)
        self.val_acc_history.append(val_acc)
        if val_acc > self.best_val_acc:
            self.best_val_acc, self.best_epoch = val_acc, self.epoch
            self.best_params = self._model_state()
            self.epochs_without_improvement = 0
        else:
            self.epochs_without_improvement += 1
        self._decay_learning_rate()
        self.log(f"(Epoch {self.epoch} / {self.num_epochs}) loss: {epoch_loss:.6f}; "
                 f"train acc: {train_acc:.4f}; val_acc: {val_acc:.4f}")
        if self.patience is not None and self.epochs_without_improvement >= self.patience:
            self.stopped_early = True
            self.log(f"stopping early: no better validation accuracy for {self.patience} epochs "
                     f"(best {self.best_val_acc:.4f} at epoch {self.best_epoch})")
        if self.checkpoint_name is not None:
            self.save_checkpoint(self.checkpoint_name)

    def _decay_learning_rate(self):
        if self.lr_decay == 1.0:
            return
        if self.optimizer is not None:
            self.optimizer.lr *= self.lr_decay
        else:
            for config in self.optim_configs.values():  # the rules set it on their first call
                config["learning_rate"] *= self.lr_decay

    # -- training ----------------------------------------------------------
    def train(self):
        """Run the remaining epochs; afterwards the model holds its best-validation parameters."""
        self._bar = None
        try:
            while self.epoch < self.num_epochs and not self.stopped_early:
                batches = self.batch_indices(self.epoch)
                epoch_losses = []
                self._bar = _progress_bar(len(batches), self.progress,
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
            self._load_model_state(self.best_params, "the best parameters")
        return self

    def _close_bar(self):
        if self._bar is not None:
            self._bar.close()
            self._bar = None

    # -- checkpoints -------------------------------------------------------
    def _optimizer_state(self):
        """Per-parameter optimizer state: the course configs, or the optimizer object's ``state``."""
        return self.optim_configs if self.optimizer is None else self.optimizer.state

    def _update_name(self):
        """What updates the parameters: "optimizer:<class>" or "rule:<update rule>"."""
        if self.optimizer is not None:
            return f"optimizer:{type(self.optimizer).__name__}"
        return f"rule:{getattr(self.update_rule, '__name__', type(self.update_rule).__name__)}"

    def _optimizer_arrays(self):
        arrays = {f"optim/{name}/{key}": value for name, config in self._optimizer_state().items()
                  for key, value in config.items()}
        arrays["meta/update"] = numpy.array(self._update_name())
        if self.optimizer is not None:
            arrays["meta/lr"] = numpy.float64(self.optimizer.lr)
        return arrays

    def save_checkpoint(self, path):
        """Write the model, best parameters, optimizer state and history to ``path`` (.npz)."""
        arrays = {"format": numpy.array(FORMAT)}
        arrays.update({f"model/{k}": v for k, v in self._model_state().items()})
        if self.best_params is not None:
            arrays.update({f"best/{k}": v for k, v in self.best_params.items()})
        arrays.update(self._optimizer_arrays())
        arrays.update({
            "history/loss": numpy.asarray(self.loss_history, dtype=numpy.float64),
            "history/train_acc": numpy.asarray(self.train_acc_history, dtype=numpy.float64),
            "history/val_acc": numpy.asarray(self.val_acc_history, dtype=numpy.float64),
            "meta/epoch": numpy.int64(self.epoch),
            "meta/seed": numpy.int64(self.seed),
            "meta/best_val_acc": numpy.float64(self.best_val_acc),
            "meta/best_epoch": numpy.int64(self.best_epoch),
            "meta/epochs_without_improvement": numpy.int64(self.epochs_without_improvement),
            "meta/stopped_early": numpy.bool_(self.stopped_early),
        })
        save_arrays(path, arrays)

    def load_checkpoint(self, path):
        """Restore everything ``save_checkpoint`` wrote, so ``train()`` continues where it stopped.

        Raises CheckpointError (a ValueError) naming the file and the entry when
        the file is unreadable, holds pickled objects, or does not fit the model.
        """
        arrays = load_arrays(path)
        if str(arrays.get("format", "")) != FORMAT:
            raise CheckpointError(f"{path} is not a fastconv Solver checkpoint "
                                  f"(no 'format' entry {FORMAT!r})")

        def entry(key):
            if key not in arrays:
                raise CheckpointError(f"checkpoint {path} has no entry {key!r}")
            return arrays[key]

        def section(prefix):
            return {k[len(prefix):]: v for k, v in arrays.items() if k.startswith(prefix)}

        saved_update = str(arrays.get("meta/update", self._update_name()))  # older files: no entry
        if saved_update != self._update_name():
            raise CheckpointError(f"checkpoint {path} was written by {saved_update}; this Solver "
                                  f"updates with {self._update_name()}, whose state it cannot use")
        self._load_model_state(section("model/"), f"checkpoint {path}")
        best = section("best/")
        self.best_params = best or None
        state = self._load_optimizer_state(section("optim/"), path)
        if self.optimizer is None:
            self.optim_configs = {name: state.get(name, {}) for name in self.optim_configs}
        else:
            self.optimizer.state = state
            self.optimizer.lr = float(entry("meta/lr"))
        self.loss_history = [float(v) for v in entry("history/loss")]
        self.train_acc_history = [float(v) for v in entry("history/train_acc")]
        self.val_acc_history = [float(v) for v in entry("history/val_acc")]
        self.epoch = int(entry("meta/epoch"))
        self.seed = int(entry("meta/seed"))
        self.best_val_acc = float(entry("meta/best_val_acc"))
        self.best_epoch = int(entry("meta/best_epoch"))
        self.epochs_without_improvement = int(entry("meta/epochs_without_improvement"))
        self.stopped_early = bool(entry("meta/stopped_early"))
        return self

    def _load_optimizer_state(self, entries, path):
        """``{param: {key: value}}`` from "optim/<param>/<key>" entries, checked against the model."""
        device, params = self._device(), self.model.params
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
