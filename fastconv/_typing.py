"""Type aliases shared by fastconv's annotations.

``Array`` stands for a NumPy or a CuPy array. It is spelled as
``numpy.ndarray`` so that the package imports, and type-checks, with NumPy
alone: a ``cupy.ndarray`` has the same interface and CuPy ships no type
information, so a type checker sees it as ``Any`` and accepts it wherever an
``Array`` is asked for.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TypeAlias

import numpy
import numpy.typing

Array: TypeAlias = numpy.ndarray  # a NumPy or CuPy array
ArrayLike: TypeAlias = numpy.typing.ArrayLike  # anything numpy.asarray accepts
DTypeLike: TypeAlias = numpy.typing.DTypeLike  # a dtype, its name or its type
IntPair: TypeAlias = int | Sequence[int]  # a size given once or per axis: p or (ph, pw)
# p, (ph, pw) or ((top, bottom), (left, right))
Padding2d: TypeAlias = int | Sequence[int] | Sequence[Sequence[int]]

__all__ = ["Array", "ArrayLike", "DTypeLike", "IntPair", "Padding2d"]
