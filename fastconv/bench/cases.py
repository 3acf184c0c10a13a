"""The benchmark cases: which op runs on which shape.

Convolution shapes are ``(N, C, H, W, F, k, stride, pad)``; pooling shapes are
``(N, C, H, W, k, stride, pad)``. The standard set is the six conv layers S1..S6
and three pools that the CPU-speed targets name, so ``fastconv bench`` measures
exactly those.
"""

import re
from dataclasses import dataclass

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
    def out_hw(self):
        """(OH, OW) of the layer."""
        return tuple(conv_output_size(s, self.k, self.stride, self.pad) for s in (self.h, self.w))


@dataclass(frozen=True)
class ConvShape(_Layer):
    """One convolution layer: batch, channels, image size, filters, square kernel, stride, pad."""

    f: int
    k: int
    stride: int
    pad: int

    def forward_flops(self):
        """2*N*F*C*k*k*OH*OW: the multiply-adds of the forward GEMM, counted twice."""
        oh, ow = self.out_hw
        return 2 * self.n * self.f * self.c * self.k * self.k * oh * ow

    def label(self):
        """Compact description, e.g. ``S2 64x3x32x32 F64 k3 s1 p1``."""
        return (f"{self.name} {self.n}x{self.c}x{self.h}x{self.w} F{self.f} "
                f"k{self.k} s{self.stride} p{self.pad}")


@dataclass(frozen=True)
class PoolShape(_Layer):
    """One pooling layer: batch, channels, image size, square window, stride, pad."""

    k: int
    stride: int
    pad: int

    def label(self):
        """Compact description, e.g. ``P1 64x64x32x32 k2 s2 p0``."""
        return f"{self.name} {self.n}x{self.c}x{self.h}x{self.w} k{self.k} s{self.stride} p{self.pad}"


@dataclass(frozen=True)
class Case:
    """One op on one shape."""

    op: str
    shape: object

    def label(self):
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


def parse_shape(text, index=1):
    """Parse ``N,C,H,W,F,k,stride,pad`` (a conv shape) or ``N,C,H,W,k,stride,pad`` (a pool).

    An optional ``NAME=`` prefix names it (default ``custom<index>``). Raises ValueError
    with the offending text for anything else, including sizes that give no output.
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


def build_cases(ops=None, shapes=None, quick=False):
    """The cases to run: ``ops`` (default: all, or the quick set) on ``shapes``.

    ``shapes`` (parsed custom shapes) replace the standard set: conv shapes feed conv2d,
    im2col and col2im; pool shapes feed max_pool2d and avg_pool2d.
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
