"""``fastconv train``: train a model on digits, MNIST or CIFAR-10 and write the run to --out.

Under an MPI launcher (``--nproc N`` starts one) every rank runs this command
and trains data-parallel; rank 0 prints and writes.
"""

import argparse
import contextlib
import os
import sys
import time

from ._args import EXIT_INTERRUPTED, UsageError, number
from ._outdir import HELD_FOR_RANKS, claimed
from ._signals import describe, exit_status, stop_signals

MODEL_CHOICES = ("linear", "mlp", "cnn", "convnet")
OPTIMIZERS = {"sgd": "sgd", "momentum": "sgd_momentum", "rmsprop": "rmsprop", "adam": "adam"}
# Defaults chosen on the digits dataset (see the README's training table).
TRAIN_DEFAULTS = {
    "linear": dict(optimizer="adam", lr=1e-2, lr_decay=1.0, epochs=20, batch_size=64, batchnorm=False),
    "mlp": dict(optimizer="adam", lr=1e-3, lr_decay=1.0, epochs=20, batch_size=64, batchnorm=False),
    "cnn": dict(optimizer="adam", lr=2e-3, lr_decay=0.9, epochs=15, batch_size=64, batchnorm=True),
    "convnet": dict(optimizer="adam", lr=1e-3, lr_decay=1.0, epochs=10, batch_size=64,
                    batchnorm=False),
}


def add_train_parser(sub):
    """Options of ``fastconv train``."""
    from ..train.solver import SEED_LIMIT
    p = sub.add_parser("train", help="train a model on digits, MNIST or CIFAR-10",
                       description="Train a model with fastconv's layers; writes history.json, "
                                   "learning_curves.png and checkpoint.npz to --out.")
    p.add_argument("--model", choices=MODEL_CHOICES, default="cnn",
                   help="linear softmax, MLP, VGG-style cnn, or the course's three-layer convnet")
    p.add_argument("--dataset", choices=("digits", "mnist", "cifar10"), default="digits",
                   help="digits (scikit-learn's, offline; default), mnist or cifar10 (--data-dir)")
    p.add_argument("--data-dir", help="directory with the MNIST IDX files or CIFAR-10 batches")
    p.add_argument("--optimizer", choices=tuple(OPTIMIZERS), help="default: adam")
    # per-model defaults for the options left unset: TRAIN_DEFAULTS
    p.add_argument("--lr", type=number(float, 0, low_open=True), help="learning rate (> 0)")
    p.add_argument("--lr-decay", type=number(float, 0, 1, low_open=True),
                   help="multiply the learning rate by this after every epoch (0 < d <= 1)")
    p.add_argument("--epochs", type=number(int, 1), help="epochs (>= 1)")
    p.add_argument("--batch-size", type=number(int, 1))
    p.add_argument("--reg", type=number(float, 0), default=0.0, help="L2 regularisation (>= 0)")
    p.add_argument("--dropout", type=number(float, 0, 1, high_open=True), default=0.0,
                   help="drop probability, 0 <= p < 1 (mlp, cnn)")
    p.add_argument("--batchnorm", action=argparse.BooleanOptionalAction,
                   help="batch normalisation (mlp, cnn; on by default for cnn)")
    p.add_argument("--hidden", type=number(int, 1), nargs="+", default=[100],
                   help="hidden layer sizes (mlp) or hidden size (convnet)")
    p.add_argument("--device", choices=("cpu", "gpu", "auto"), default="cpu")
    p.add_argument("--seed", type=number(int, 0, SEED_LIMIT, high_open=True), default=0,
                   help="initialisation and batch order; 0 <= seed < 2**63 (NumPy takes "
                        "seeds >= 0, the checkpoint stores it as int64)")
    p.add_argument("--out", default="runs/run",
                   help="output directory (created; one run at a time: a second is refused)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--nproc", type=number(int, 1), default=1,
                   help="data-parallel training on N processes of this machine: re-runs this "
                        "command under the mpi extra's mpiexec, --batch-size per process "
                        "(ignored inside an MPI job, whose size wins)")
    return p


def _build_model(args, dataset, device):
    from ..nn.models import build_model
    shape, classes = dataset.input_shape, dataset.num_classes
    common = dict(reg=args.reg, device=device, seed=args.seed)
    if args.model == "linear":
        return build_model("linear", shape, classes, **common)
    if args.model == "mlp":
        return build_model("mlp", shape, classes, hidden_dims=tuple(args.hidden),
                           batchnorm=args.batchnorm, dropout=args.dropout, **common)
    if args.model == "cnn":
        widths = (16, 32, 64) if shape[1] <= 8 else (32, 64, 128)
        return build_model("cnn", shape, classes, widths=widths, batchnorm=args.batchnorm,
                           dropout=args.dropout, **common)
    return build_model("convnet", shape, classes, num_filters=32, filter_size=3,
                       hidden_dim=args.hidden[0], weight_scale=None, **common)


def _resolve_train_args(args):
    defaults = TRAIN_DEFAULTS[args.model]
    for key, value in defaults.items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    if args.model in ("linear", "convnet") and (args.batchnorm or args.dropout):
        raise UsageError(f"--batchnorm and --dropout apply to mlp and cnn, not {args.model}")
    if args.dataset != "digits" and not args.data_dir:
        raise UsageError(f"--dataset {args.dataset} needs --data-dir (the directory with its files)")
    from ..backend import resolve_device
    try:
        return resolve_device(args.device)
    except RuntimeError as exc:
        raise UsageError(f"--device {args.device}: {exc}") from None


def _load_data(args):
    from ..data import load_dataset
    try:
        return load_dataset(args.dataset, args.data_dir)
    except FileNotFoundError as exc:
        raise UsageError(f"--data-dir: {exc}") from None
    except ImportError as exc:
        raise UsageError(str(exc)) from None
    except ValueError as exc:
        raise UsageError(f"--dataset {args.dataset}: {exc}") from None


def _evaluate(model, X, y, device, batch_size=200):
    """Test accuracy and top-5 error of ``model`` (course ``loss(X)`` gives the scores)."""
    import numpy as np

    from ..backend import as_numpy, to_device
    from ..functional import accuracy, topk_error
    scores = np.concatenate([as_numpy(model.loss(to_device(X[i:i + batch_size], device)))
                             for i in range(0, len(X), batch_size)])
    return accuracy(scores, y), topk_error(scores, y, k=min(5, scores.shape[1]))


def _launch_ranks(args):
    """Re-run this ``fastconv`` command on ``--nproc`` ranks under mpiexec; their exit status.

    This process claims --out for the ranks (rank 0 finds its lock in the environment),
    so a second run on the same directory is refused before any rank starts.
    """
    from .. import distributed
    with claimed(args.out, _outputs()) as lock:
        try:
            return distributed.launch(args.nproc, ["-m", "fastconv", *args.argv],
                                      {**os.environ, HELD_FOR_RANKS: lock})
        except RuntimeError as exc:
            raise UsageError(f"--nproc {args.nproc}: {exc}") from None
        except KeyboardInterrupt:  # the ranks got it too; rank 0 has said where its checkpoint is
            return EXIT_INTERRUPTED


def _outputs():
    """The files ``fastconv train`` writes to --out."""
    from .. import runs
    return (runs.HISTORY, runs.CURVES, runs.CHECKPOINT)


class RunRecord:
    """The run's ``history.json``: config and dataset, the Solver's histories, results.

    ``record(solver, **entries)`` rewrites it on the reporting rank (a no-op on the others).
    """

    def __init__(self, args, dataset, root):
        self.out, self.root = args.out, root
        config = {k: v for k, v in vars(args).items()
                  if k not in ("func", "command", "no_progress", "argv")}
        self.history = {"config": config, "dataset": dataset.summary(), "interrupted": False}
        self.started = time.perf_counter()

    def __call__(self, solver, **entries):
        if not self.root:
            return
        from .. import runs
        self.history.update(loss_history=solver.loss_history,
                            train_acc_history=solver.train_acc_history,
                            val_acc_history=solver.val_acc_history,
                            best_val_acc=solver.best_val_acc, best_epoch=solver.best_epoch,
                            seconds=time.perf_counter() - self.started, **entries)
        runs.write_history(self.out, self.history)


class EpochReport:
    """The per-epoch callback of ``fastconv train``: an epoch line, then ``record(solver)``.

    Only on the reporting rank; the line goes through the progress bar when one is shown.
    """

    def __init__(self, record):
        self.record = record
        self.epoch_start = 0  # where this epoch's losses start in loss_history

    def __call__(self, solver):
        if not solver.parallel.is_root:
            return
        losses = solver.loss_history[self.epoch_start:]
        self.epoch_start = len(solver.loss_history)
        solver.write(f"epoch {solver.epoch}/{solver.num_epochs}: loss "
                     f"{sum(losses) / len(losses):.4f}, "
                     f"train acc {solver.train_acc_history[-1]:.4f}, "
                     f"val acc {solver.val_acc_history[-1]:.4f}")
        self.record(solver)


def cmd_train(args):
    """Train, print per-epoch lines and the test result, write history, curves and checkpoint.

    Every check (options, --out, the Solver's arguments) comes before the first
    step. SIGINT, SIGTERM and SIGHUP stop training alike (fastconv.cli._signals).
    """
    from .. import distributed
    from ..train import SingleProcess
    if args.nproc > 1 and distributed.launched_world_size() == 1:
        _resolve_train_args(args)  # a bad option is reported once, here, not once per rank
        return _launch_ranks(args)
    distributed.start_mpi()  # under a launcher, before any check can fail on one rank only
    device = _resolve_train_args(args)
    # In an MPI job: join it (and pick this rank's GPU) before building the model; rank 0 reports.
    parallel = (distributed.DataParallel(distributed.init(device))
                if distributed.launched_world_size() > 1 else SingleProcess())
    # Only rank 0 writes to --out, so only it claims the directory.
    with claimed(args.out, _outputs()) if parallel.is_root else contextlib.nullcontext():
        return _train(args, device, parallel)


def _train(args, device, parallel):
    """Load the data, build the model and its Solver, train and test; the exit status."""
    from .. import runs
    from ..train import Solver
    root = parallel.is_root
    dataset = _load_data(args)
    if root:
        print(dataset.summary())
    try:
        model = _build_model(args, dataset, device)
    except MemoryError as exc:
        smaller = "; choose smaller --hidden sizes" if args.model in ("mlp", "convnet") else ""
        raise UsageError(f"the {args.model} model needs too much memory ({exc}){smaller}") from None
    record = RunRecord(args, dataset, root)
    checkpoint = os.path.join(args.out, runs.CHECKPOINT)
    solver = Solver(model, dataset.as_dict(), update_rule=OPTIMIZERS[args.optimizer],
                    optim_config={"learning_rate": args.lr}, lr_decay=args.lr_decay,
                    batch_size=args.batch_size, num_epochs=args.epochs, seed=args.seed,
                    checkpoint_name=checkpoint, progress=not args.no_progress,
                    print_every=0, verbose=False, parallel=parallel,
                    callbacks=[EpochReport(record)])
    try:
        with stop_signals(acting=root):
            try:
                solver.train()
                if root:
                    _test(args, model, dataset, device, solver, record)
            except KeyboardInterrupt as interrupt:  # Ctrl-C, SIGTERM or SIGHUP
                record(solver, interrupted=True)
                if root:
                    done = (f"epoch {solver.epoch}" if solver.epoch
                            else "no epoch finished, so no checkpoint")
                    print(f"\n{describe(interrupt)}: the last checkpoint ({done}) is "
                          f"{checkpoint}", file=sys.stderr)
                return exit_status(interrupt)
    except OSError as exc:
        if exc.filename is None:  # not a file of the run's (a closed stdout): main reports it
            raise
        # The outputs were checked before training; this is what changed since (a full disk).
        raise UsageError(f"--out {args.out}: could not write {exc.filename} "
                         f"({exc.strerror or exc})") from None
    return 0


def _test(args, model, dataset, device, solver, record):
    """Score the held-out test set, record it, print the result and draw the curves."""
    from .. import runs
    acc, top5 = _evaluate(model, dataset.X_test, dataset.y_test, device)
    record(solver, test_acc=acc, top1_error=1 - acc, top5_error=top5)
    print(f"test accuracy {acc:.4f} (top-1 error {1 - acc:.4f}, top-5 error {top5:.4f}) on "
          f"{len(dataset.y_test)} held-out images; best val acc {solver.best_val_acc:.4f} at "
          f"epoch {solver.best_epoch}; {record.history['seconds']:.1f} s")
    message = runs.plot_curves([record.history], os.path.join(args.out, runs.CURVES))
    print(message or f"wrote {args.out}/{runs.HISTORY}, {runs.CURVES}, {runs.CHECKPOINT}")
