"""Smaller problems of a case's layer geometry: the cheap oracle and the loop column.

The plain loops of :mod:`fastconv.reference` take microseconds per multiply-add, so
on the standard shapes one image of S3 takes minutes. Two things use them anyway:

- the agreement check when PyTorch is not installed: every implementation and the
  loops (in float64) run on :func:`check_case`, one image and at most
  :data:`CHECK_CHANNELS` channels and filters of the same layer (image size, window,
  stride, padding), cut from the same inputs;
- the loop column: :func:`loop_case` is one image with the channels and filters
  halved until the loops' estimated time fits the budget; its time is scaled by
  :func:`scale` (the ratio of multiply-adds or window elements) to the whole batch.

Both are labelled in the report as what they are.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace

import numpy as np

from .cases import Case, ConvShape

# Seconds per multiply-add (conv) or per window element (pools, im2col, col2im) of the
# reference loops, forward plus backward, measured on a 2-core CI-class machine (an upper
# bound: faster machines run them in about a third of it). Used only to decide what fits
# the budget.
LOOP_SECONDS_PER_UNIT = 3.5e-6
CHECK_CHANNELS = 4


def loop_units(case: Case) -> int:
    """Multiply-adds (conv2d) or window elements (the other ops) of the loops on ``case``.

    Parameters
    ----------
    case : Case
        The op and its shape (all of its images).

    Returns
    -------
    int
        ``N*F*C*k*k*OH*OW`` for a convolution, ``N*C*k*k*OH*OW`` otherwise.

    Examples
    --------
    >>> from fastconv.bench.cases import PoolShape
    >>> loop_units(Case("max_pool2d", PoolShape("p", 2, 3, 4, 4, 2, 2, 0)))
    96
    """
    s = case.shape
    oh, ow = s.out_hw
    units = s.n * s.c * s.k * s.k * oh * ow
    return units * s.f if case.op == "conv2d" and isinstance(s, ConvShape) else units


def loop_estimate(case: Case) -> float:
    """Estimated seconds of the loops, forward plus backward, on the whole of ``case``.

    Examples
    --------
    >>> from fastconv.bench.cases import PoolShape
    >>> round(loop_estimate(Case("max_pool2d", PoolShape("p", 1, 1, 4, 4, 2, 2, 0))), 7)
    5.6e-05
    """
    return loop_units(case) * LOOP_SECONDS_PER_UNIT


def reduce(case: Case, images: int, channels: int, filters: int | None = None) -> Case:
    """``case`` with fewer images, channels and (convolutions) filters; the same geometry.

    Parameters
    ----------
    case : Case
        The full case.
    images, channels : int
        At most this many (never more than the case has).
    filters : int, optional
        At most this many filters (conv2d; default: all).

    Returns
    -------
    Case
        The smaller case, its shape under the same name.

    Examples
    --------
    >>> from fastconv.bench.cases import STANDARD_CONV
    >>> reduce(Case("conv2d", STANDARD_CONV[2]), 1, 4, 4).label()
    'conv2d S3 1x4x32x32 F4 k3 s1 p1'
    """
    s = replace(case.shape, n=min(images, case.shape.n), c=min(channels, case.shape.c))
    if isinstance(s, ConvShape) and case.op == "conv2d" and filters is not None:
        s = replace(s, f=min(filters, s.f))
    return Case(case.op, s)


def check_case(case: Case) -> Case:
    """The problem the loops check every implementation on when PyTorch is missing: one
    image, at most :data:`CHECK_CHANNELS` channels and filters."""
    return reduce(case, 1, CHECK_CHANNELS, CHECK_CHANNELS)


def loop_case(case: Case, budget: float) -> Case | None:
    """One image of ``case``, its channels and filters halved (the larger first) until the
    loops' estimated time fits ``budget`` seconds; None when one channel does not fit.

    Examples
    --------
    >>> from fastconv.bench.cases import STANDARD_CONV
    >>> loop_case(Case("conv2d", STANDARD_CONV[2]), 1.0).label()
    'conv2d S3 1x4x32x32 F4 k3 s1 p1'
    """
    small = reduce(case, 1, case.shape.c)
    while loop_estimate(small) > budget:
        s = small.shape
        f = getattr(s, "f", 1) if case.op == "conv2d" else 1
        if s.c == 1 and f == 1:
            return None
        if f > s.c:
            small = reduce(small, 1, s.c, -(-f // 2))
        else:
            small = reduce(small, 1, -(-s.c // 2))
    return small


def scale(case: Case, small: Case) -> float:
    """How many times the loops' work on ``small`` the work on ``case`` is."""
    return loop_units(case) / loop_units(small)


def slice_inputs(inputs: Mapping[str, np.ndarray], small: Case) -> dict[str, np.ndarray]:
    """The inputs of ``small`` cut from those of the full case: its first images, channels
    and filters (contiguous copies).

    Parameters
    ----------
    inputs : mapping of str to numpy.ndarray
        :func:`.ops.make_inputs` of the full case.
    small : Case
        A :func:`reduce` of it.

    Returns
    -------
    dict of str to numpy.ndarray
        x (or cols), w, b, dout as the op needs.

    Examples
    --------
    >>> from fastconv.bench.cases import ConvShape
    >>> from fastconv.bench.ops import make_inputs
    >>> full = Case("conv2d", ConvShape("t", 2, 3, 5, 5, 6, 3, 1, 1))
    >>> cut = slice_inputs(make_inputs(full, "float64"), reduce(full, 1, 2, 4))
    >>> {k: v.shape for k, v in cut.items()}
    {'x': (1, 2, 5, 5), 'w': (4, 2, 3, 3), 'b': (4,), 'dout': (1, 4, 5, 5)}
    """
    s = small.shape
    n, c, taps = s.n, s.c, s.k * s.k
    f = s.f if small.op == "conv2d" and isinstance(s, ConvShape) else c
    cuts = {"x": (slice(n), slice(c)), "w": (slice(f), slice(c)), "b": (slice(f),),
            "dout": (slice(n), slice(f)), "cols": (slice(n), slice(c * taps))}
    return {k: np.ascontiguousarray(v[cuts[k]]) for k, v in inputs.items()}
