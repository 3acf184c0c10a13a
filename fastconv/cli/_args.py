"""What the subcommands share: exit statuses, one-line errors, option converters, progress lines.

The checks of output files are in ``_outdir``.
"""

import argparse
import math
import sys

from .._validate import check_int, check_real

EXIT_USAGE = 2
EXIT_INTERRUPTED = 130


class UsageError(Exception):
    """A bad value found after parsing (a missing device, a dataset path): exit status 2."""


class Parser(argparse.ArgumentParser):
    """argparse with one-line errors: ``fastconv train: error: ...`` and exit status 2."""

    def error(self, message):
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def number(kind, low=None, high=None, low_open=False, high_open=False):
    """An argparse type: ``kind`` (int or float) within [low, high] (open ends as asked).

    The range is checked by fastconv._validate; a value out of it is a
    one-line error in the option's words, e.g. ``--epochs: must be >= 1, got -1``.
    """
    lo = "" if low is None else f"{'>' if low_open else '>='} {_shown(low)}"
    hi = "" if high is None else f"{'<' if high_open else '<='} {_shown(high)}"

    def broken_bound(value):
        """The text of the bound ``value`` breaks, or None."""
        try:
            if kind is int:
                check_int("value", value, low=low)
            else:
                check_real("value", value, low=low, high=high, low_open=low_open,
                           high_open=high_open)
        except ValueError:
            return lo if kind is int else " and ".join(p for p in (lo, hi) if p)
        # An int's upper bound exactly: as a float, 2**63 - 1 would round up to 2**63.
        if kind is int and high is not None and not (value < high if high_open else value <= high):
            return hi
        return None

    def convert(text):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {'an integer' if kind is int else 'a number'}, "
                                             f"got {text!r}") from None
        if not math.isfinite(value):
            raise argparse.ArgumentTypeError(f"must be a finite number, got {text}")
        bound = broken_bound(value)
        if bound:
            raise argparse.ArgumentTypeError(f"must be {bound}, got {text}")
        return value
    return convert


def _shown(bound):
    """A bound as messages show it: an int in full (2**63 as a float is 9.22337e+18)."""
    return str(bound) if isinstance(bound, int) else f"{bound:g}"


def log(message):
    """A progress line on stderr (stdout carries the results)."""
    print(message, file=sys.stderr, flush=True)

