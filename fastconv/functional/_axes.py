"""Per-axis arguments of the 2-D ops: one value for both axes, or a (height, width) pair."""

from __future__ import annotations

from typing import Any


def per_axis(value: Any, name: str) -> tuple[Any, Any]:
    """``(h, w)`` from ``value``: a tuple or list of two as given, any other value for both axes.

    The caller checks the items.

    Parameters
    ----------
    value : object
        One value for both axes, or a tuple or list of two.
    name : str
        The argument's name, for the error.

    Returns
    -------
    tuple
        ``(h, w)``.

    Raises
    ------
    ValueError
        For a tuple or list of another length, naming ``name`` and the length.

    Examples
    --------
    >>> per_axis(3, "size"), per_axis([2, None], "size")
    ((3, 3), (2, None))
    """
    if isinstance(value, (tuple, list)):
        if len(value) != 2:
            raise ValueError(f"{name} must be one value or a (height, width) pair, got "
                             f"{value!r} of length {len(value)}")
        return value[0], value[1]
    return value, value
