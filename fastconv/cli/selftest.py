"""``fastconv selftest``: the CPU path against the loops, the GPU path against the CPU path."""

from __future__ import annotations

import argparse

EXIT_MISMATCH = 1


def add_selftest_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Options of ``fastconv selftest``.

    Parameters
    ----------
    sub : argparse subparsers
        The ``fastconv`` command's subcommands.

    Returns
    -------
    argparse.ArgumentParser
        The ``selftest`` parser.
    """
    p = sub.add_parser(
        "selftest", help="check this installation: CPU path vs the loops, GPU path vs the CPU",
        description="Check the CPU path against the plain loops of fastconv.reference on small "
                    "cases (convolution with stride, padding, dilation and groups; max and "
                    "average pooling; im2col and col2im; float32 and float64), then, where a "
                    "GPU is usable, every op, dtype and gradient of the GPU path against the "
                    "CPU path, TF32 off and on. Prints a table; exits 1 on any mismatch, "
                    "0 otherwise (also when no GPU is usable, saying why).")
    p.add_argument("--cpu-only", action="store_true", help="skip the GPU part")
    return p


def cmd_selftest(args: argparse.Namespace) -> int:
    """Run the self-test; 0 when every check passed, 1 otherwise.

    Parameters
    ----------
    args : argparse.Namespace
        The parsed options.

    Returns
    -------
    int
        The exit status.
    """
    from .. import __version__
    from ..selftest import run
    print(f"fastconv {__version__} selftest\n", flush=True)
    report = run(gpu=not args.cpu_only, log=lambda text: print(text, flush=True))
    return 0 if report.passed else EXIT_MISMATCH
