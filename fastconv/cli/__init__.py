"""The ``fastconv`` command: ``bench``, ``train``, ``report``, ``info`` and ``selftest``.

One module per subcommand, each an ``add_<name>_parser`` (its options) plus a
``cmd_<name>`` (the work), so a new option or subcommand is one small addition;
``_args`` holds what they share, ``_outdir`` and ``_signals`` what ``train``
needs besides. Bad options, impossible values and an --out that cannot be
written or is in use exit with status 2 and a one-line message, before any
work (an output file is tried before a benchmark runs or a model trains); a
``train`` stopped by Ctrl-C, SIGTERM or SIGHUP keeps its last checkpoint and
exits with status 128 + the signal (130, 143, 129). What fails later, an
output that can no longer be written (a full disk) or sizes that need more
memory than there is, is a one-line message with status 2 too, never a
traceback.
"""

import sys

from ._args import EXIT_INTERRUPTED, EXIT_USAGE, Parser, UsageError
from .bench import add_bench_parser, cmd_bench
from .info import add_info_parser, cmd_info
from .report import add_report_parser, cmd_report
from .selftest import add_selftest_parser, cmd_selftest
from .train import add_train_parser, cmd_train

COMMANDS = {"bench": (add_bench_parser, cmd_bench), "train": (add_train_parser, cmd_train),
            "report": (add_report_parser, cmd_report), "info": (add_info_parser, cmd_info),
            "selftest": (add_selftest_parser, cmd_selftest)}

__all__ = ["COMMANDS", "EXIT_INTERRUPTED", "EXIT_USAGE", "UsageError", "build_parser", "main"]


def build_parser() -> Parser:
    """The argument parser with every subcommand and ``--version``.

    Returns
    -------
    Parser
        ``fastconv``'s parser (errors exit 2 with one line).

    Examples
    --------
    >>> build_parser().parse_args(["selftest", "--cpu-only"]).cpu_only
    True
    """
    parser = Parser(prog="fastconv", description="fastconv: im2col convolution and pooling on "
                                                 "NumPy and CuPy")
    from .. import __version__
    parser.add_argument("--version", action="version", version=f"fastconv {__version__}")
    # Not required=True: argparse would then report a missing subcommand before an
    # unknown option (`fastconv --bogus`); main asks for the subcommand itself.
    sub = parser.add_subparsers(dest="command", metavar="{" + ",".join(COMMANDS) + "}",
                                parser_class=Parser)
    for name, (add, run) in COMMANDS.items():
        add(sub).set_defaults(func=run)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``fastconv`` console script; returns the exit status.

    Parameters
    ----------
    argv : list of str, optional
        The arguments after ``fastconv`` (default: ``sys.argv[1:]``).

    Returns
    -------
    int
        0, 2 for a usage error (or an output that cannot be written, or sizes
        that need more memory than there is), 128 + the signal for a ``train``
        stopped by one (130 for Ctrl-C, 143 for SIGTERM, 129 for SIGHUP).
    """
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.error(f"the following arguments are required: {{{','.join(COMMANDS)}}}")
    args.argv = list(sys.argv[1:] if argv is None else argv)  # for `train --nproc` to re-run
    try:
        return args.func(args)
    except UsageError as exc:
        message = str(exc)
    except MemoryError as exc:  # NumPy's says how much: "Unable to allocate 728. TiB for ..."
        message = f"the sizes asked for need too much memory ({str(exc) or 'out of memory'})"
    except OSError as exc:  # what the subcommand's own checks did not foresee
        where = f": {exc.filename}" if exc.filename is not None else ""
        message = f"{exc.strerror or exc}{where}"
    print(f"fastconv {args.command}: error: {message}", file=sys.stderr)
    return EXIT_USAGE
