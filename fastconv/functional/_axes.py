"""Per-axis arguments of the 2-D ops: one value for both axes, or a (height, width) pair."""


def per_axis(value, name):
    """``(h, w)`` from ``value``: a tuple or list of two as given, any other value for both axes.

    The caller checks the items. A tuple or list of another length is a
    ValueError naming ``name`` and the length.

    Examples
    --------
    >>> per_axis(3, "size"), per_axis([2, None], "size")
    ((3, 3), (2, None))
    """
    if isinstance(value, (tuple, list)):
        if len(value) != 2:
            raise ValueError(f"{name} must be one value or a (height, width) pair, got "
                             f"{value!r} of length {len(value)}")
        return tuple(value)
    return value, value
