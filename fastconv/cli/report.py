"""``fastconv report``: the summary table and combined learning curves of training runs."""

import os
import sys

from ._args import UsageError, check_output_paths


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
    histories = []
    for directory in args.dirs:
        try:
            histories.append(runs.read_history(directory))
        except (FileNotFoundError, ValueError) as exc:
            raise UsageError(str(exc)) from None
    check_output_paths(args, ("--markdown", "--plot"))
    names = [os.path.basename(os.path.normpath(d)) for d in args.dirs]
    table = runs.summary_table(histories, names)
    print(table)
    if args.markdown:
        with open(args.markdown, "w") as f:
            f.write(table + "\n")
    message = runs.plot_curves(histories, args.plot, labels=[runs.run_label(h) for h in histories])
    print(message or f"wrote {args.plot}", file=sys.stderr)
    return 0
