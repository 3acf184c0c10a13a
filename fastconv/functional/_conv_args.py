"""The argument checks the convolution fronts share: arrays, dtypes, channels, groups and bias.

Each raises a ValueError or TypeError naming the argument and the shapes, in the layout the
caller was given (a 1-D convolution's errors show its 3-D arrays, not their 4-D views).
"""

from __future__ import annotations

from .. import _validate
from .._typing import Array

LAYOUTS_2D = ("(N, C, H, W)", "(F, C/groups, KH, KW)")
LAYOUTS_1D = ("(N, C, L)", "(F, C/groups, K)")
LAYOUTS_3D = ("(N, C, D, H, W)", "(F, C/groups, KD, KH, KW)")


def _check_arrays(x: Array, w: Array, b: Array | None, layouts: tuple[str, str]) -> None:
    """x and w float arrays of the layouts' rank, of one dtype; b (if any) float of that dtype
    too."""
    for name, array, layout in (("x", x, layouts[0]), ("w", w, layouts[1])):
        _validate.check_float(array, name)  # first: what is no array is a TypeError
        _validate.check_ndim(array, layout.count(",") + 1, name, layout)
    _validate.check_same_dtype(x, "x", w, "w")
    if b is not None:
        _validate.check_float(b, "b")
        _validate.check_same_dtype(x, "x", b, "b")


def _check_groups(groups: object, x: Array) -> int:
    """groups as an int >= 1 that divides x's channels."""
    groups = _validate.check_int("groups", groups, 1)
    if x.shape[1] % groups:
        raise ValueError(
            f"x has {x.shape[1]} channels, which is not divisible by groups={groups} "
            f"(x shape {tuple(x.shape)})")
    return groups


def _check_bias(b: Array | None, out_channels: int, w: Array) -> None:
    if b is not None and tuple(b.shape) != (out_channels,):
        raise ValueError(f"b must have shape ({out_channels},) to match w {tuple(w.shape)}, "
                         f"got {tuple(b.shape)}")


def check_conv_args(x: Array, w: Array, b: Array | None, groups: object,
                    layouts: tuple[str, str] = LAYOUTS_2D) -> None:
    """The operands of a convolution: w (F, C/groups, ...) against x (N, C, ...) and b (F,).

    Parameters
    ----------
    x, w : ndarray
        The input and the weights.
    b : ndarray or None
        The bias.
    groups : int
    layouts : (str, str)
        x's and w's layouts, whose ranks they must have and which the errors name:
        :data:`LAYOUTS_2D` (default), :data:`LAYOUTS_1D` or :data:`LAYOUTS_3D`.

    Raises
    ------
    TypeError, ValueError
        Naming the argument and the shapes.

    Examples
    --------
    >>> import numpy as np
    >>> check_conv_args(np.zeros((1, 4, 3, 3, 3)), np.zeros((2, 2, 1, 1, 1)), None, 2, LAYOUTS_3D)
    >>> check_conv_args(np.zeros((1, 4, 3, 3)), np.zeros((2, 3, 1, 1)), None, 1)
    ... # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ValueError: w expects 3 input channels per group, x has 4 channels with groups=1 ...
    """
    _check_arrays(x, w, b, layouts)
    channels, filters = x.shape[1], w.shape[0]
    if filters == 0:
        raise ValueError(f"w has no filters (w shape {tuple(w.shape)}); it needs at least one")
    groups = _check_groups(groups, x)
    if filters % groups:
        raise ValueError(
            f"out channels (w.shape[0]={filters}) must be divisible by groups={groups} "
            f"(w shape {tuple(w.shape)})")
    if w.shape[1] * groups != channels:
        raise ValueError(
            f"w expects {w.shape[1]} input channels per group, x has {channels} channels "
            f"with groups={groups} (x shape {tuple(x.shape)}, w shape {tuple(w.shape)})")
    _check_bias(b, filters, w)


def check_conv_transpose_args(x: Array, w: Array, b: Array | None, groups: object) -> None:
    """The operands of a transposed convolution: w (C, F/groups, KH, KW) against x (N, C, H, W)
    and b (F,).

    Parameters
    ----------
    x, w : ndarray
        The input and the weights.
    b : ndarray or None
        The bias.
    groups : int

    Raises
    ------
    TypeError, ValueError
        Naming the argument and the shapes.

    Examples
    --------
    >>> import numpy as np
    >>> check_conv_transpose_args(np.zeros((1, 4, 3, 3)), np.zeros((4, 1, 2, 2)), None, 2)
    >>> check_conv_transpose_args(np.zeros((1, 4, 3, 3)), np.zeros((2, 1, 2, 2)), None, 1)
    ... # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ValueError: w has 2 input channels (w.shape[0]) but x has 4 (x shape (1, 4, 3, 3), ...
    """
    _check_arrays(x, w, b, ("(N, C, H, W)", "(C, F/groups, KH, KW)"))
    if w.shape[0] != x.shape[1]:
        raise ValueError(
            f"w has {w.shape[0]} input channels (w.shape[0]) but x has {x.shape[1]} "
            f"(x shape {tuple(x.shape)}, w shape {tuple(w.shape)})")
    if w.shape[1] == 0:
        raise ValueError(f"w has no output channels (w shape {tuple(w.shape)}); it needs at "
                         "least one")
    groups = _check_groups(groups, x)
    _check_bias(b, w.shape[1] * groups, w)
