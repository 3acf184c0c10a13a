"""The ``fastconv`` command: ``bench``, ``train``, ``report`` and ``info``.

Each subcommand is a ``add_<name>_parser`` (its options) plus a ``cmd_<name>`` (the work),
so a new option or subcommand is one small addition. Bad options and impossible values
exit with status 2 and a one-line message; an interrupted ``train`` keeps its last
checkpoint and exits with status 130.
"""

import argparse
import math
import os
import sys
import time

EXIT_USAGE = 2
EXIT_INTERRUPTED = 130


class UsageError(Exception):
    """A bad value found after parsing (a missing device, a dataset path): exit status 2."""


class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors: ``fastconv train: error: ...`` and exit status 2."""

    def error(self, message):
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _number(kind, low=None, high=None, low_open=False, high_open=False):
    """An argparse type: ``kind`` within [low, high] (open ends as asked), else a one-line error."""
    def convert(text):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {'an integer' if kind is int else 'a number'}, "
                                             f"got {text!r}") from None
        if not math.isfinite(value):
            raise argparse.ArgumentTypeError(f"must be a finite number, got {text}")
        too_low = low is not None and (value <= low if low_open else value < low)
        too_high = high is not None and (value >= high if high_open else value > high)
        if too_low or too_high:
            lo = "" if low is None else f"{'>' if low_open else '>='} {low:g}"
            hi = "" if high is None else f"{'<' if high_open else '<='} {high:g}"
            raise argparse.ArgumentTypeError(f"must be {' and '.join(p for p in (lo, hi) if p)}, "
                                             f"got {text}")
        return value
    return convert


# ----------------------------------------------------------------------------- bench

def add_bench_parser(sub):
    """Options of ``fastconv bench``."""
    from .bench.cases import OPS
    p = sub.add_parser("bench", help="benchmark conv/pool ops: loops vs NumPy vs GPU vs PyTorch",
                       description="Check every implementation against an oracle, then time them "
                                   "interleaved: a table of ms, GFLOP/s, %% of the GEMM peak, "
                                   "speedup over loops and ratio to PyTorch.")
    p.add_argument("--quick", action="store_true",
                   help="conv and pools on the standard shapes, 3 repeats, loops on small shapes "
                        "only (under a minute on 2 cores with torch as the checking oracle, "
                        "about 2 minutes with the plain loops)")
    p.add_argument("--ops", nargs="+", choices=OPS, metavar="OP",
                   help=f"ops to run (from {', '.join(OPS)}; default all, --quick: conv and pools)")
    p.add_argument("--shapes", nargs="+", metavar="SHAPE",
                   help="custom shapes replacing the standard set: [NAME=]N,C,H,W,F,k,stride,pad "
                        "for convolutions, [NAME=]N,C,H,W,k,stride,pad for pools")
    p.add_argument("--dtype", nargs="+", choices=("float32", "float64"), default=["float32"])
    p.add_argument("--device", choices=("cpu", "gpu", "auto"), default="auto",
                   help="cpu, gpu, or auto: the CPU plus the GPU when one is usable (default)")
    p.add_argument("--repeats", type=_number(int, 1),
                   help="clean timed repeats wanted (default 10, quick 3); a repeat is clean when "
                        "other processes kept under 0.15 cores busy")
    p.add_argument("--max-repeats", type=_number(int, 1),
                   help="repeat up to this many times to collect them (default 3x repeats, "
                        "quick: repeats)")
    p.add_argument("--warmup", type=_number(int, 0),
                   help="untimed repeats after the checked first call (default 1, quick 0)")
    p.add_argument("--pause", type=_number(float, 0), default=0.3,
                   help="seconds to let BLAS threads settle before each timed CPU forward")
    p.add_argument("--loop-budget", type=_number(float, 0),
                   help="run the loops where one image is estimated to take at most this many "
                        "seconds (default 8, quick 1)")
    p.add_argument("--no-loops", action="store_true", help="skip the loop implementation")
    p.add_argument("--no-torch", action="store_true", help="do not compare with PyTorch")
    p.add_argument("--json", metavar="PATH", help="write every measurement and the machine here")
    p.add_argument("--plot", metavar="PATH", help="write a PNG chart here (needs matplotlib)")
    p.add_argument("--markdown", metavar="PATH", help="also write the table to this file")
    p.add_argument("--breakdown", action="store_true",
                   help="instead: per conv/pool shape, the time in each step of the real code "
                        "(padding, im2col, each GEMM with its GFLOP/s, col2im, copies) and the "
                        "Python overhead (CPU)")
    return p


def _bench_settings(args):
    from .bench.runner import Settings
    default_repeats, default_budget = (3, 1.0) if args.quick else (10, 8.0)
    repeats = args.repeats or default_repeats
    return Settings(dtypes=tuple(args.dtype), device=args.device, repeats=repeats,
                    max_repeats=args.max_repeats or (repeats if args.quick else 3 * repeats),
                    warmup=(0 if args.quick else 1) if args.warmup is None else args.warmup,
                    pause=args.pause,
                    loops=not args.no_loops,
                    loop_budget=default_budget if args.loop_budget is None else args.loop_budget,
                    gemm_n=1024 if args.quick else 2048, torch=not args.no_torch)


def _log(message):
    print(message, file=sys.stderr, flush=True)


def cmd_bench(args):
    """Run the benchmark (or the conv breakdown) and print the table."""
    from .bench import cases as bench_cases
    from .bench import report, runner
    try:
        shapes = [bench_cases.parse_shape(t, i) for i, t in enumerate(args.shapes or (), 1)]
        cases = bench_cases.build_cases(args.ops, shapes, args.quick)
    except ValueError as exc:
        raise UsageError(f"--shapes/--ops: {exc}") from None
    _check_output_paths(args, ("--json", "--markdown", "--plot"))
    settings = _bench_settings(args)
    if args.breakdown:
        return _breakdown(cases, settings, args)
    try:
        result = runner.run(cases, settings, log=_log)
    except runner.DeviceUnavailable as exc:
        raise UsageError(str(exc)) from None
    table = report.markdown_table(result)
    print(table)
    _write_outputs(args, result, table, report.plot)
    return 0


def _check_output_paths(args, options):
    """Fail before a long run, not after it, when an output file cannot be created."""
    for option in options:
        path = getattr(args, option.lstrip("-").replace("-", "_"))
        if path is None:
            continue
        parent = os.path.dirname(os.path.abspath(path))
        if not os.path.isdir(parent):
            raise UsageError(f"{option} {path}: directory {parent} does not exist")
        if os.path.isdir(path):
            raise UsageError(f"{option} {path} is a directory; give a file name")


def _write_outputs(args, result, text, plot):
    from .bench import report
    if args.json:
        report.write_json(result, args.json)
        _log(f"wrote {args.json}")
    if args.markdown:
        with open(args.markdown, "w") as f:
            f.write(text + "\n")
        _log(f"wrote {args.markdown}")
    if args.plot:
        message = plot(result, args.plot)
        _log(message or f"wrote {args.plot}")


def _breakdown(cases, settings, args):
    from .bench import breakdown, report
    from .bench.machine import describe, gemm_peak
    chosen = [c for c in cases if c.op in breakdown.BREAKDOWN_OPS]
    if not chosen:
        raise UsageError(f"--breakdown covers {', '.join(breakdown.BREAKDOWN_OPS)}; "
                         "none of the chosen ops is one of them")
    result = {"machine": describe(include_torch=False), "breakdown": []}
    texts = []
    for dtype in settings.dtypes:
        peak = None
        if any(c.op == "conv2d" for c in chosen):
            peak = gemm_peak(dtype, n=settings.gemm_n, pause=settings.pause)
            _log(f"GEMM peak (cpu, {dtype}, n={settings.gemm_n}): {peak:.1f} GFLOP/s")
        for case in chosen:
            item = breakdown.breakdown(case, dtype, settings.repeats, settings.pause, peak,
                                       max_repeats=settings.max_repeats,
                                       noise_threshold=settings.noise_threshold)
            result["breakdown"].append(item)
            texts.append(breakdown.format_breakdown(item))
            print(texts[-1] + "\n", flush=True)
    if args.plot:
        _log("--plot ignored: the chart is drawn from the timing table, not the breakdown")
        args.plot = None
    _write_outputs(args, result, "\n\n".join(texts), report.plot)
    return 0


# ----------------------------------------------------------------------------- train

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
    p.add_argument("--lr", type=_number(float, 0, low_open=True), help="learning rate (> 0)")
    p.add_argument("--lr-decay", type=_number(float, 0, 1, low_open=True),
                   help="multiply the learning rate by this after every epoch (0 < d <= 1)")
    p.add_argument("--epochs", type=_number(int, 1), help="epochs (>= 1)")
    p.add_argument("--batch-size", type=_number(int, 1))
    p.add_argument("--reg", type=_number(float, 0), default=0.0, help="L2 regularisation (>= 0)")
    p.add_argument("--dropout", type=_number(float, 0, 1, high_open=True), default=0.0,
                   help="drop probability, 0 <= p < 1 (mlp, cnn)")
    p.add_argument("--batchnorm", action=argparse.BooleanOptionalAction,
                   help="batch normalisation (mlp, cnn; on by default for cnn)")
    p.add_argument("--hidden", type=_number(int, 1), nargs="+", default=[100],
                   help="hidden layer sizes (mlp) or hidden size (convnet)")
    p.add_argument("--device", choices=("cpu", "gpu", "auto"), default="cpu")
    p.add_argument("--seed", type=_number(int, 0), default=0)
    p.add_argument("--out", default="runs/run", help="output directory (created)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--nproc", type=_number(int, 1), default=1,
                   help="data-parallel training on N processes of this machine: re-runs this "
                        "command under the mpi extra's mpiexec, --batch-size per process "
                        "(ignored inside an MPI job, whose size wins)")
    return p


def _build_model(args, dataset, device):
    from .nn.models import build_model
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
    from .backend import resolve_device
    try:
        return resolve_device(args.device)
    except RuntimeError as exc:
        raise UsageError(f"--device {args.device}: {exc}") from None


def _load_data(args):
    from .data import load_dataset
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

    from .backend import as_numpy, to_device
    from .functional import accuracy, topk_error
    scores = np.concatenate([as_numpy(model.loss(to_device(X[i:i + batch_size], device)))
                             for i in range(0, len(X), batch_size)])
    return accuracy(scores, y), topk_error(scores, y, k=min(5, scores.shape[1]))


def _launch_ranks(args):
    """Re-run this ``fastconv`` command on ``--nproc`` ranks under mpiexec; their exit status."""
    from .distributed import launch
    try:
        return launch(args.nproc, ["-m", "fastconv", *args.argv])
    except RuntimeError as exc:
        raise UsageError(f"--nproc {args.nproc}: {exc}") from None
    except KeyboardInterrupt:  # the ranks got it too; rank 0 has said where its checkpoint is
        return 130


def cmd_train(args):
    """Train, print per-epoch lines and the test result, write history, curves and checkpoint."""
    from . import distributed, runs
    from .train import Solver
    if args.nproc > 1 and distributed.launched_world_size() == 1:
        _resolve_train_args(args)  # a bad option is reported once, here, not once per rank
        return _launch_ranks(args)
    distributed.start_mpi()  # under a launcher, before any check can fail on one rank only
    device = _resolve_train_args(args)
    # In an MPI job: join it (and pick this rank's GPU) before building the model; rank 0 reports.
    root = distributed.launched_world_size() == 1 or distributed.init(device).is_root
    dataset = _load_data(args)
    try:
        os.makedirs(args.out, exist_ok=True)
    except OSError as exc:
        raise UsageError(f"--out {args.out}: {exc.strerror}") from None
    if root:
        print(dataset.summary())
    model = _build_model(args, dataset, device)
    config = {k: v for k, v in vars(args).items()
              if k not in ("func", "command", "no_progress", "argv")}
    history = {"config": config, "dataset": dataset.summary(), "interrupted": False}
    checkpoint = os.path.join(args.out, runs.CHECKPOINT)
    started = time.perf_counter()

    class CliSolver(Solver):
        """The Solver with a per-epoch line (loss, train and validation accuracy) and history file."""

        epoch_start = 0

        def save_checkpoint(self, path):
            super().save_checkpoint(path)
            losses = self.loss_history[self.epoch_start:]
            self.epoch_start = len(self.loss_history)
            line = (f"epoch {self.epoch}/{self.num_epochs}: loss {sum(losses) / len(losses):.4f}, "
                    f"train acc {self.train_acc_history[-1]:.4f}, "
                    f"val acc {self.val_acc_history[-1]:.4f}")
            (self._bar.write if self._bar is not None else print)(line)
            _record(self)

    def _record(solver):
        if not root:
            return
        history.update(loss_history=solver.loss_history, train_acc_history=solver.train_acc_history,
                       val_acc_history=solver.val_acc_history, best_val_acc=solver.best_val_acc,
                       best_epoch=solver.best_epoch, seconds=time.perf_counter() - started)
        runs.write_history(args.out, history)

    solver = CliSolver(model, dataset.as_dict(), update_rule=OPTIMIZERS[args.optimizer],
                       optim_config={"learning_rate": args.lr}, lr_decay=args.lr_decay,
                       batch_size=args.batch_size, num_epochs=args.epochs, seed=args.seed,
                       checkpoint_name=checkpoint, progress=not args.no_progress,
                       print_every=0, verbose=False)
    try:
        solver.train()
    except KeyboardInterrupt:
        history["interrupted"] = True
        _record(solver)
        done = f"epoch {solver.epoch}" if solver.epoch else "no epoch finished, so no checkpoint"
        print(f"\ninterrupted: the last checkpoint ({done}) is {checkpoint}", file=sys.stderr)
        return EXIT_INTERRUPTED
    if not root:
        return 0
    acc, top5 = _evaluate(model, dataset.X_test, dataset.y_test, device)
    history.update(test_acc=acc, top1_error=1 - acc, top5_error=top5)
    _record(solver)
    print(f"test accuracy {acc:.4f} (top-1 error {1 - acc:.4f}, top-5 error {top5:.4f}) on "
          f"{len(dataset.y_test)} held-out images; best val acc {solver.best_val_acc:.4f} at "
          f"epoch {solver.best_epoch}; {history['seconds']:.1f} s")
    message = runs.plot_curves([history], os.path.join(args.out, runs.CURVES))
    print(message or f"wrote {args.out}/{runs.HISTORY}, {runs.CURVES}, {runs.CHECKPOINT}")
    return 0


# ----------------------------------------------------------------------------- report

def add_report_parser(sub):
    """Options of ``fastconv report``."""
    p = sub.add_parser("report", help="summary table and combined learning curves of training runs")
    p.add_argument("dirs", nargs="+", metavar="DIR", help="output directories of `fastconv train`")
    p.add_argument("--markdown", metavar="PATH", help="also write the table to this file")
    p.add_argument("--plot", metavar="PATH", default="learning_curves.png",
                   help="combined learning-curves figure (default learning_curves.png)")
    return p


def cmd_report(args):
    """Print the Markdown summary of several runs and draw their curves together."""
    from . import runs
    histories = []
    for directory in args.dirs:
        try:
            histories.append(runs.read_history(directory))
        except (FileNotFoundError, ValueError) as exc:
            raise UsageError(str(exc)) from None
    _check_output_paths(args, ("--markdown", "--plot"))
    names = [os.path.basename(os.path.normpath(d)) for d in args.dirs]
    table = runs.summary_table(histories, names)
    print(table)
    if args.markdown:
        with open(args.markdown, "w") as f:
            f.write(table + "\n")
    message = runs.plot_curves(histories, args.plot, labels=[runs.run_label(h) for h in histories])
    print(message or f"wrote {args.plot}", file=sys.stderr)
    return 0


# ----------------------------------------------------------------------------- info

def add_info_parser(sub):
    """Options of ``fastconv info`` (none)."""
    return sub.add_parser("info", help="versions, BLAS, GPU status and the workspace limit")


def cmd_info(args):
    """Print fastconv's version, NumPy and its BLAS, CuPy/CUDA/GPU (or why none), the workspace limit."""
    from .bench.machine import describe
    from .workspace import get_workspace_limit
    m = describe(include_torch=False)
    print(f"fastconv {m['fastconv']} (Python {m['python']}, {m['platform']})")
    print(f"CPU: {m['cpu']}, {m['cores']} usable cores")
    print(f"NumPy {m['numpy']}")
    for b in m["blas"]:
        print(f"  BLAS: {b['library']} {b['version'] or ''}, {b['threads'] or '?'} threads"
              + (f", {b['architecture']} kernels" if b.get("architecture") else ""))
    print(f"CuPy: {m['cupy']}")
    print(f"GPU: {'usable' if m['gpu_available'] else 'not usable'}: {m['gpu']}")
    if "cuda_runtime" in m:
        print(f"  CUDA runtime {m['cuda_runtime']}")
    print(f"workspace limit: {get_workspace_limit() / 2**20:g} MiB per call "
          "(fastconv.set_workspace_limit)")
    from .distributed import describe_transport
    print(f"data-parallel: {describe_transport()}")
    return 0


# ----------------------------------------------------------------------------- main

COMMANDS = {"bench": (add_bench_parser, cmd_bench), "train": (add_train_parser, cmd_train),
            "report": (add_report_parser, cmd_report), "info": (add_info_parser, cmd_info)}


def build_parser():
    """The argument parser with every subcommand."""
    parser = _Parser(prog="fastconv", description="fastconv: im2col convolution and pooling on "
                                                  "NumPy and CuPy")
    from . import __version__
    parser.add_argument("--version", action="version", version=f"fastconv {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="{bench,train,report,info}",
                                parser_class=_Parser)
    for name, (add, run) in COMMANDS.items():
        add(sub).set_defaults(func=run)
    return parser


def main(argv=None):
    """Entry point of the ``fastconv`` console script; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)  # for `train --nproc` to re-run
    try:
        return args.func(args)
    except UsageError as exc:
        print(f"fastconv {args.command}: error: {exc}", file=sys.stderr)
        return EXIT_USAGE


if __name__ == "__main__":
    sys.exit(main())
