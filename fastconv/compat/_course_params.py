"""The course's parameter dicts (``conv_param``, ``bn_param``, ...): their values, or errors
that name the dict and the keys it needs."""

from __future__ import annotations

from typing import Any

from .._typing import Array
from ..backend import get_array_module


def get(params: Any, name: str, keys: list[str]) -> list[Any]:
    """The values of ``keys`` in the dict ``params`` (named ``name``), or a clear error.

    Parameters
    ----------
    params : dict
        The course's parameter dict.
    name : str
        Its name, for the errors.
    keys : list of str
        The keys it needs.

    Returns
    -------
    list
        Their values, in order.

    Raises
    ------
    TypeError
        When ``params`` is not a dict.
    ValueError
        When a key is missing.

    Examples
    --------
    >>> get({"stride": 1, "pad": 0}, "conv_param", ["stride", "pad"])
    [1, 0]
    """
    if not isinstance(params, dict):
        raise TypeError(f"{name} must be a dict with keys {keys}, got {type(params).__name__}")
    missing = [k for k in keys if k not in params]
    if missing:
        raise ValueError(f"{name} is missing {missing} (it needs {keys}; got {sorted(params)})")
    return [params[k] for k in keys]


def training(params: Any, name: str) -> bool:
    """Whether ``params['mode']`` is 'train' (else it is 'test').

    Parameters
    ----------
    params : dict
        A ``bn_param`` or ``dropout_param``.
    name : str
        Its name, for the errors.

    Returns
    -------
    bool

    Raises
    ------
    ValueError
        When the mode is missing or neither 'train' nor 'test'.

    Examples
    --------
    >>> training({"mode": "test"}, "bn_param")
    False
    """
    mode = get(params, name, ["mode"])[0]
    if mode not in ("train", "test"):
        raise ValueError(f"{name}['mode'] must be 'train' or 'test', got {mode!r}")
    return mode == "train"


def eps(params: Any, name: str) -> float:
    """``params['eps']`` (default 1e-5) of the dict ``params``.

    Parameters
    ----------
    params : dict
        An ``ln_param`` or ``gn_param``.
    name : str
        Its name, for the errors.

    Returns
    -------
    float

    Raises
    ------
    TypeError
        When ``params`` is not a dict.

    Examples
    --------
    >>> eps({}, "ln_param")
    1e-05
    """
    get(params, name, [])
    return params.get("eps", 1e-5)


def labels(x: Array, y: Any) -> Array:
    """y as an array on x's device (the course's code indexes with lists too).

    Parameters
    ----------
    x : array
        The scores.
    y : array_like
        The labels.

    Returns
    -------
    array

    Examples
    --------
    >>> import numpy as np
    >>> labels(np.zeros((2, 3)), [0, 2])
    array([0, 2])
    """
    return get_array_module(x).asarray(y)
