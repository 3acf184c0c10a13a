"""Argument normalisation and cache checks of the loop oracle (:mod:`fastconv.reference`).

The oracle normalises its arguments but does not validate them: it is called
with arguments that fastconv's own checks have accepted.
"""

from __future__ import annotations

from typing import Any


def pair(value: Any) -> tuple[int, int]:
    """An int or a pair of ints as a (height, width) tuple."""
    if isinstance(value, (tuple, list)):
        return int(value[0]), int(value[1])
    return int(value), int(value)


def pad_pairs(padding: Any) -> tuple[tuple[int, int], tuple[int, int]]:
    """int, (ph, pw) or ((top, bottom), (left, right)) as ((top, bottom), (left, right))."""
    if isinstance(padding, (tuple, list)):
        rows, cols = padding
        rows = tuple(rows) if isinstance(rows, (tuple, list)) else (rows, rows)
        cols = tuple(cols) if isinstance(cols, (tuple, list)) else (cols, cols)
        return (int(rows[0]), int(rows[1])), (int(cols[0]), int(cols[1]))
    return (int(padding), int(padding)), (int(padding), int(padding))


def conv_padding(padding: Any, kernel: tuple[int, int], stride: tuple[int, int],
                 dilation: tuple[int, int]) -> Any:
    """Resolve "valid" / "same" / int / pairs into ((top, bottom), (left, right)).

    "same" pads a total of ``dilation * (kernel - 1)`` per axis, the odd one
    out on the bottom/right, as PyTorch does; it needs stride 1.
    """
    if isinstance(padding, str):
        if padding == "valid":
            return (0, 0), (0, 0)
        if padding == "same":
            if stride != (1, 1):
                raise ValueError(f"padding='same' needs stride 1, got stride={stride}")
            pads = []
            for k, d in zip(kernel, dilation):
                total = d * (k - 1)
                pads.append((total // 2, total - total // 2))
            return tuple(pads)
        raise ValueError(f"padding must be an int, a pair, 'valid' or 'same', got {padding!r}")
    return pad_pairs(padding)


def open_cache(cache: Any, kind: type[Any], op: str) -> Any:
    """``cache`` after checking it is a ``kind`` from ``op``_forward (a TypeError naming it if not)."""
    origin = getattr(cache, "op", None) or type(cache).__name__
    if not isinstance(cache, kind) or cache.op != op:
        raise TypeError(f"cache comes from {origin}, not {op}_forward")
    return cache
