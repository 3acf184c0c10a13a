"""``fastconv report``: the summary table and combined learning curves of training runs."""

import numbers
import os
import sys

from ._args import UsageError
from ._outdir import check_output_paths, writing


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
    from .. import runs
    histories = [_read_history(directory) for directory in args.dirs]
    check_output_paths(args, ("--markdown", "--plot"), plots=("--plot",))
    names = [os.path.basename(os.path.normpath(d)) for d in args.dirs]
    table = runs.summary_table(histories, names)
    print(table)
    if args.markdown:
        with writing("--markdown", args.markdown), open(args.markdown, "w") as f:
            f.write(table + "\n")
    with writing("--plot", args.plot):
        message = runs.plot_curves(histories, args.plot,
                                   labels=[runs.run_label(h) for h in histories])
    print(message or f"wrote {args.plot}", file=sys.stderr)
    return 0


# What the table and the figure compute with: settings formatted as numbers, curves drawn.
NUMBER_SETTINGS = ("lr", "reg", "dropout")
CURVES = ("loss_history", "train_acc_history", "val_acc_history")


def _read_history(directory):
    """A run's history, its entries checked before any is used; a UsageError naming the odd one."""
    from .. import runs
    path = os.path.join(directory, runs.HISTORY)
    try:
        history = runs.read_history(directory)
    except (FileNotFoundError, ValueError) as exc:
        raise UsageError(str(exc)) from None
    except TypeError as exc:  # JSON that parsed to something other than an object: 5, null
        raise UsageError(f"{path} is not a fastconv history ({exc})") from None
    if not isinstance(history, dict) or not isinstance(history["config"], dict):
        raise UsageError(f"{path} is not a fastconv history: it and its 'config' must be "
                         "JSON objects")
    for key in NUMBER_SETTINGS:
        if not _is_number(history["config"][key]):
            raise UsageError(f"{path}: config entry {key!r} must be a number, "
                             f"got {history['config'][key]!r}")
    for key in CURVES:
        values = history[key]
        if not isinstance(values, list) or not all(_is_number(v) for v in values):
            raise UsageError(f"{path}: {key!r} must be a list of numbers")
    return history


def _is_number(value):
    return isinstance(value, numbers.Real) and not isinstance(value, bool)
