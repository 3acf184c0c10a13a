"""The benchmark cases: which op runs on which shape.

Convolution shapes are ``(N, C, H, W, F, k, stride, pad)``; pooling shapes are
``(N, C, H, W, k, stride, pad)``. The standard set is the six conv layers S1..S6
and three pools that the CPU-speed targets name, so ``fastconv bench`` measures
exactly those.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import cast

from ..shapes import conv_output_size

OPS = ("conv2d", "max_pool2d", "avg_pool2d", "im2col", "col2im")
QUICK_OPS = ("conv2d", "max_pool2d", "avg_pool2d")


@dataclass(frozen=True)
class _Layer:
    """What every case has: a name, the batch, channels and image size (its square window,
    stride and padding are the subclass's last fields)."""

    name: str
    n: int
    c: int
    h: int
    w: int

    @property
    def out_hw(self) -> tuple[int, int]:
        """(OH, OW) of the layer."""
        s = cast("ConvShape | PoolShape", self)  # every layer is one of the two
        return (conv_output_size(s.h, s.k, s.stride, s.pad),
                conv_output_size(s.w, s.k, s.stride, s.pad))


@dataclass(frozen=True)
class ConvShape(_Layer):
    """One convolution layer: batch, channels, image size, filters, square kernel, stride, pad.

    Parameters
    ----------
    name : str
        Its name in the tables (``S1``).
    n, c, h, w : int
        Batch, channels, height, width of the input.
    f : int
        Filters.
    k, stride, pad : int
        Square kernel size, stride and zero padding.

    Examples
    --------
    >>> ConvShape("x", 2, 3, 8, 8, 5, 3, 1, 1).out_hw
    (8, 8)
    """

    f: int
    k: int
    stride: int
    pad: int

    def forward_flops(self) -> int:
        """2*N*F*C*k*k*OH*OW: the multiply-adds of the forward GEMM, counted twice."""
        oh, ow = self.out_hw
        return 2 * self.n * self.f * self.c * self.k * self.k * oh * ow

    def label(self) -> str:
        """Compact description, e.g. ``S2 64x3x32x32 F64 k3 s1 p1``."""
        return (f"{self.name} {self.n}x{self.c}x{self.h}x{self.w} F{self.f} "
                f"k{self.k} s{self.stride} p{self.pad}")


@dataclass(frozen=True)
class PoolShape(_Layer):
    """One pooling layer: batch, channels, image size, square window, stride, pad.

    Parameters
    ----------
    name : str
        Its name in the tables (``P1``).
    n, c, h, w : int
        Batch, channels, height, width of the input.
    k, stride, pad : int
        Square window size, stride and padding.

    Examples
    --------
    >>> PoolShape("p", 1, 1, 4, 4, 2, 2, 0).label()
    'p 1x1x4x4 k2 s2 p0'
    """

    k: int
    stride: int
    pad: int

    def label(self) -> str:
        """Compact description, e.g. ``P1 64x64x32x32 k2 s2 p0``."""
        return f"{self.name} {self.n}x{self.c}x{self.h}x{self.w} k{self.k} s{self.stride} p{self.pad}"


@dataclass(frozen=True)
class Case:
    """One op on one shape.

    Parameters
    ----------
    op : str
        One of :data:`OPS`.
    shape : ConvShape or PoolShape
        Its shape.

    Examples
    --------
    >>> Case("conv2d", STANDARD_CONV[0]).label()
    'conv2d S1 64x1x28x28 F32 k3 s1 p1'
    """

    op: str
    shape: ConvShape | PoolShape

    def label(self) -> str:
        """``op shape-label``."""
        return f"{self.op} {self.shape.label()}"


STANDARD_CONV = (
    ConvShape("S1", 64, 1, 28, 28, 32, 3, 1, 1),     # MNIST-like first layer
    ConvShape("S2", 64, 3, 32, 32, 64, 3, 1, 1),     # CIFAR-like first layer
    ConvShape("S3", 32, 64, 32, 32, 64, 3, 1, 1),    # mid layer
    ConvShape("S4", 32, 128, 16, 16, 128, 3, 1, 1),  # deep layer
    ConvShape("S5", 32, 32, 32, 32, 64, 5, 2, 2),    # strided 5x5
    ConvShape("S6", 32, 256, 14, 14, 64, 1, 1, 0),   # 1x1
)
STANDARD_POOL = {
    "max_pool2d": (PoolShape("P1", 64, 64, 32, 32, 2, 2, 0), PoolShape("P2", 64, 64, 32, 32, 3, 2, 1)),
    "avg_pool2d": (PoolShape("P3", 64, 64, 32, 32, 2, 2, 0),),
}


def parse_shape(text: str, index: int = 1) -> ConvShape | PoolShape:
    """Parse ``N,C,H,W,F,k,stride,pad`` (a conv shape) or ``N,C,H,W,k,stride,pad`` (a pool).

    Parameters
    ----------
    text : str
        The shape, with an optional ``NAME=`` prefix.
    index : int, default 1
        Names an unnamed shape ``custom<index>``.

    Returns
    -------
    ConvShape or PoolShape
        Eight numbers make a convolution, seven a pool.

    Raises
    ------
    ValueError
        With the offending text for anything else, including sizes that give no output.

    Examples
    --------
    >>> parse_shape("mine=8,3,16,16,4,3,1,1").label()
    'mine 8x3x16x16 F4 k3 s1 p1'
    """
    name = f"custom{index}"
    body = text.strip()
    if "=" in body:
        name, body = (part.strip() for part in body.split("=", 1))
        if not re.fullmatch(r"[A-Za-z0-9_.-]+", name):
            raise ValueError(f"shape name {name!r} must be letters, digits, '_', '.' or '-'")
    try:
        values = [int(v) for v in body.split(",")]
    except ValueError:
        raise ValueError(f"shape {text!r} must be comma-separated integers") from None
    if len(values) not in (7, 8):
        raise ValueError(f"shape {text!r} has {len(values)} numbers; expected 8 for a "
                         "convolution (N,C,H,W,F,k,stride,pad) or 7 for a pool (N,C,H,W,k,stride,pad)")
    *positive, pad = values
    if min(positive) < 1 or pad < 0:
        raise ValueError(f"shape {text!r}: sizes, kernel and stride must be >= 1 and pad >= 0")
    shape = ConvShape(name, *values) if len(values) == 8 else PoolShape(name, *values)
    if min(shape.out_hw) < 1:
        raise ValueError(f"shape {text!r}: a {shape.k}x{shape.k} kernel with pad {pad} does not "
                         f"fit a {shape.h}x{shape.w} input")
    if isinstance(shape, PoolShape) and 2 * pad > shape.k:
        raise ValueError(f"shape {text!r}: pool padding {pad} exceeds half the kernel {shape.k}")
    return shape


def build_cases(ops: Iterable[str] | None = None,
                shapes: Sequence[ConvShape | PoolShape] | None = None,
                quick: bool = False) -> list[Case]:
    """The cases to run: ``ops`` (default: all, or the quick set) on ``shapes``.

    Parameters
    ----------
    ops : iterable of str, optional
        Ops from :data:`OPS` (default: all of them, or :data:`QUICK_OPS` when ``quick``).
    shapes : sequence of ConvShape or PoolShape, optional
        Custom shapes replacing the standard set: conv shapes feed conv2d, im2col and
        col2im; pool shapes feed max_pool2d and avg_pool2d.
    quick : bool, default False
        Default to the quick ops.

    Returns
    -------
    list of Case
        In op order, then shape order.

    Raises
    ------
    ValueError
        For an unknown op, or when no op has a matching shape.

    Examples
    --------
    >>> len(build_cases(quick=True))
    9
    """
    ops = tuple(ops) if ops else (QUICK_OPS if quick else OPS)
    unknown = [op for op in ops if op not in OPS]
    if unknown:
        raise ValueError(f"unknown op(s) {', '.join(unknown)}; choose from {', '.join(OPS)}")
    if shapes:
        conv = tuple(s for s in shapes if isinstance(s, ConvShape))
        pools = {op: tuple(s for s in shapes if isinstance(s, PoolShape))
                 for op in ("max_pool2d", "avg_pool2d")}
    else:
        conv, pools = STANDARD_CONV, STANDARD_POOL
    cases = []
    for op in ops:
        for shape in pools[op] if op in pools else conv:
            cases.append(Case(op, shape))
    if not cases:
        raise ValueError(f"no case to run: ops {', '.join(ops)} have no matching shape "
                         "(8 numbers make a conv shape, 7 a pool shape)")
    return cases
