"""The padding modes of the convolutions: the padded input filled by reflection, edge or wrap, and
the fold of its gradient back onto the input.

A convolution with a ``padding_mode`` other than 'zeros' pads its input here and then convolves
with no padding, as PyTorch's ``nn.Conv2d`` does (``F.pad``, then the convolution). Its backward
folds the gradient of the padded input back (the adjoint of the fill): each padded cell adds its
gradient to the input cell it copies. A fill is a few slice copies and a fold a few slice adds in
a fixed order, so results are deterministic, and the same array code runs on NumPy and CuPy (a
scatter would add with atomics on the GPU, in no fixed order).

The rules are PyTorch's, per padded axis of size n with pads (before, after):

* 'reflect' mirrors about the edge cell without repeating it; it needs before, after < n;
* 'replicate' repeats the edge cell;
* 'circular' wraps around; it needs before, after <= n.

The axes are padded one after the other, first to last (so a corner is the padding of the
padding, as in PyTorch), and folded last to first.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from .._typing import Array
from ..backend import accumulator_dtype, get_array_module

PADDING_MODES = ("zeros", "reflect", "replicate", "circular")
Pads = Sequence[Sequence[int]]  # (before, after) per padded trailing axis


def check_padding_mode(padding_mode: object, allowed: Sequence[str] = PADDING_MODES) -> str:
    """Return ``padding_mode`` after checking it is one of ``allowed``.

    Parameters
    ----------
    padding_mode : str
        The mode asked for.
    allowed : sequence of str, default PADDING_MODES
        The modes the caller takes.

    Returns
    -------
    str
        ``padding_mode``.

    Raises
    ------
    TypeError
        ``padding_mode`` is not a string.
    ValueError
        Naming the modes allowed.

    Examples
    --------
    >>> check_padding_mode("reflect")
    'reflect'
    >>> check_padding_mode("mirror")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ValueError: padding_mode must be one of ('zeros', 'reflect', ...), got 'mirror'
    """
    if not isinstance(padding_mode, str):
        raise TypeError(f"padding_mode must be a string, one of {allowed}, got {padding_mode!r}")
    if padding_mode not in allowed:
        raise ValueError(f"padding_mode must be one of {allowed}, got {padding_mode!r}")
    return padding_mode


def check_fill(x_shape: Sequence[int], pads: Pads, mode: str) -> None:
    """Raise ValueError when ``mode`` cannot pad an input of ``x_shape`` by ``pads``.

    Parameters
    ----------
    x_shape : tuple of int
        The input's shape; ``pads`` apply to its trailing axes.
    pads : tuple of (int, int)
        (before, after) per trailing axis, each >= 0.
    mode : str
        'reflect', 'replicate' or 'circular'.

    Raises
    ------
    ValueError
        Naming the mode, the pads, the axis and the shape: 'reflect' needs each pad smaller than
        the input, 'circular' at most its size, every mode a non-empty axis to pad.

    Examples
    --------
    >>> check_fill((1, 3), ((1, 3),), "reflect")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ValueError: padding_mode='reflect' needs each pad smaller than the input size: ...
    """
    first = len(x_shape) - len(pads)
    for axis, n, (before, after) in zip(range(first, len(x_shape)), x_shape[first:], pads):
        largest = max(before, after)
        problem = None
        if not largest:
            continue
        if n == 0:
            problem = "a non-empty input along each padded axis"
        elif mode == "reflect" and largest >= n:
            problem = "each pad smaller than the input size"
        elif mode == "circular" and largest > n:
            problem = "each pad at most the input size"
        if problem:
            raise ValueError(
                f"padding_mode={mode!r} needs {problem}: padding {(before, after)} along "
                f"axis {axis} of size {n} (x shape {tuple(x_shape)})")


def _at(axis, index, ndim):
    """The index tuple selecting ``index`` along ``axis`` of an ``ndim``-D array."""
    return (slice(None),) * axis + (index,) + (slice(None),) * (ndim - axis - 1)


def _borders(n, before, after, mode):
    """``(target, source, how)`` per border along one padded axis, in padded coordinates.

    Fill: ``padded[target] = how(padded[source])``; ``how`` is 'flip' (reflect), 'edge'
    (the one source cell repeated) or 'copy' (circular).
    """
    inner_end = before + n
    borders = []
    if before:
        target = slice(0, before)
        borders.append({"reflect": (target, slice(before + 1, 2 * before + 1), "flip"),
                        "replicate": (target, slice(before, before + 1), "edge"),
                        "circular": (target, slice(n, n + before), "copy")}[mode])
    if after:
        target = slice(inner_end, inner_end + after)
        borders.append({"reflect": (target, slice(inner_end - 1 - after, inner_end - 1), "flip"),
                        "replicate": (target, slice(inner_end - 1, inner_end), "edge"),
                        "circular": (target, slice(before, before + after), "copy")}[mode])
    return borders


def _axes(shape: Sequence[int], pads: Pads) -> list[tuple[int, int, int, int]]:
    """``(axis, n, before, after)`` of each padded trailing axis of an unpadded ``shape``."""
    first = len(shape) - len(pads)
    return [(first + k, shape[first + k], before, after) for k, (before, after) in enumerate(pads)]


def fill(x: Array, pads: Pads, mode: str) -> Array:
    """``x`` padded by ``pads`` on its trailing axes in ``mode``: a new C-contiguous array.

    Parameters
    ----------
    x : ndarray
        The input, NumPy or CuPy.
    pads : tuple of (int, int)
        (before, after) per trailing axis, within :func:`check_fill`'s limits.
    mode : str
        'reflect', 'replicate' or 'circular'.

    Returns
    -------
    ndarray
        x's dtype and device, each padded axis ``before + n + after`` long.

    Examples
    --------
    >>> import numpy as np
    >>> fill(np.arange(4.0).reshape(1, 4), ((1, 2),), "reflect")
    array([[1., 0., 1., 2., 3., 2., 1.]])
    """
    xp = get_array_module(x)
    axes = _axes(x.shape, pads)
    shape = list(x.shape)
    for axis, n, before, after in axes:
        shape[axis] = before + n + after
    padded = xp.empty(tuple(shape), dtype=x.dtype)
    inner = [slice(None)] * x.ndim
    for axis, n, before, _ in axes:
        inner[axis] = slice(before, before + n)
    padded[tuple(inner)] = x
    for axis, n, before, after in axes:
        inner[axis] = slice(None)  # the axes filled so far are filled in full, later ones inside
        view = padded[tuple(inner)]
        for target, source, how in _borders(n, before, after, mode):
            cells = view[_at(axis, source, x.ndim)]
            if how == "flip":
                cells = xp.flip(cells, axis=axis)
            view[_at(axis, target, x.ndim)] = cells  # 'edge' broadcasts its one cell
    return padded


def fold(dpadded: Array, pads: Pads, mode: str) -> Array:
    """The gradient of the input of :func:`fill` from the gradient of its output (the adjoint).

    Parameters
    ----------
    dpadded : ndarray
        The gradient of the padded array; it is used as scratch (its borders are summed into
        its inner part in place; a float16 one's into a float32 copy).
    pads, mode
        As given to :func:`fill`.

    Returns
    -------
    ndarray
        The input's gradient, C-contiguous in dpadded's dtype, each border cell's gradient
        added to the input cell it copies, in a fixed order (float16's in float32, rounded
        once).

    Examples
    --------
    >>> import numpy as np
    >>> fold(np.ones((1, 7)), ((1, 2),), "reflect")
    array([[1., 3., 2., 1.]])
    """
    xp = get_array_module(dpadded)
    dtype = dpadded.dtype
    # A float16 cell and the borders copying it could overflow past 65504 before a later
    # term cancels them: they are summed in float32.
    dpadded = dpadded.astype(accumulator_dtype(dtype), copy=False)
    shape = list(dpadded.shape)
    for axis, _, before, after in _axes(dpadded.shape, pads):
        shape[axis] -= before + after
    axes = _axes(tuple(shape), pads)
    inner = [slice(None)] * dpadded.ndim
    for axis, n, before, after in reversed(axes):  # later axes are folded already: inside only
        view = dpadded[tuple(inner)]
        for target, source, how in _borders(n, before, after, mode):
            cells = view[_at(axis, target, dpadded.ndim)]
            if how == "flip":
                cells = xp.flip(cells, axis=axis)
            elif how == "edge":
                cells = cells.sum(axis=axis, keepdims=True)
            view[_at(axis, source, dpadded.ndim)] += cells
        inner[axis] = slice(before, before + n)
    return xp.ascontiguousarray(dpadded[tuple(inner)], dtype=dtype)


def pad_input(x: Array, pads: Pads, mode: str) -> tuple[Array, Any, Any]:
    """A convolution's padding in ``mode``: ``(input, geometry pads, fill record)``.

    'zeros', or no padding at all, leaves ``x`` and its pads to the convolution's geometry and
    records nothing. Any other mode returns the filled copy of ``x``, no pads left for the
    geometry, and the record ``(mode, pads)`` that :func:`fold` takes in the backward.

    Parameters
    ----------
    x : ndarray
        (N, C, H, W).
    pads : ((int, int), (int, int))
        ((top, bottom), (left, right)), resolved ('same' too).
    mode : str
        A checked padding mode.

    Returns
    -------
    input : ndarray
        ``x``, or its filled copy.
    pads : tuple of (int, int)
        The pads left for the convolution's geometry.
    record : tuple or None
        ``(mode, pads)`` for :func:`fold`; None when nothing was filled.

    Raises
    ------
    ValueError
        From :func:`check_fill`.

    Examples
    --------
    >>> import numpy as np
    >>> padded, pads, record = pad_input(np.zeros((1, 1, 2, 2)), ((1, 1), (0, 0)), "replicate")
    >>> padded.shape, pads, record
    ((1, 1, 4, 2), ((0, 0), (0, 0)), ('replicate', ((1, 1), (0, 0))))
    """
    # Zero padding is left to the geometry: the kernels and im2col read it for free.
    if mode == "zeros" or not any(before or after for before, after in pads):
        return x, pads, None
    check_fill(x.shape, pads, mode)
    return fill(x, pads, mode), ((0, 0),) * len(pads), (mode, pads)
