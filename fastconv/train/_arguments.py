"""The Solver's argument checks: each names the argument, before any training starts."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import numpy

from .._typing import Array
from .._validate import check_int

#: Seeds are below this: numpy.random.default_rng takes any int >= 0, a checkpoint stores int64.
SEED_LIMIT = 2**63

_SPLITS = ("X_train", "y_train", "X_val", "y_val")


def check_seed(seed: Any) -> int:
    """``seed`` as an int in [0, 2**63), else a TypeError or ValueError naming it."""
    seed = check_int("seed", seed, 0)
    if seed >= SEED_LIMIT:
        raise ValueError(f"seed must be < 2**63 (a checkpoint stores it as int64), got {seed}")
    return seed


def check_flag(name: str, value: Any) -> bool:
    """``value`` as a bool; a TypeError naming ``name`` for anything else (0, 'no', None)."""
    if not isinstance(value, (bool, numpy.bool_)):
        raise TypeError(f"{name} must be True or False, got {value!r}")
    return bool(value)


def check_subset(name: str, value: Any) -> int | None:
    """None (every sample) or a number of samples >= 1."""
    return None if value is None else check_int(name, value, 1)


def check_callbacks(callbacks: Iterable[Any]) -> list[Callable[..., object]]:
    """The callbacks as a list, each callable; a TypeError naming the first that is not."""
    callbacks = list(callbacks)
    for i, callback in enumerate(callbacks):
        if not callable(callback):
            raise TypeError(f"callbacks[{i}] must be callable, got {callback!r}")
    return callbacks


def check_path(name: str, path: Any) -> str | os.PathLike[str] | None:
    """None or a path (str or os.PathLike); a TypeError naming ``name`` for anything else."""
    if path is not None and not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"{name} must be a path (str or os.PathLike), got {path!r}")
    return path


def check_directory_exists(name: str, path: str | os.PathLike[str]) -> None:
    """A ValueError naming ``name`` when ``path``'s directory is missing."""
    # Checked when the Solver is built: the first checkpoint is written only after an epoch.
    parent = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(parent):
        raise ValueError(f"{name} {os.fspath(path)!r}: directory {parent} does not exist")


def check_data(data: Mapping[str, Array]) -> list[Array]:
    """``[X_train, y_train, X_val, y_val]`` from ``data``, each split non-empty and paired."""
    missing = [k for k in _SPLITS if k not in data]
    if missing:
        raise ValueError(f"data is missing {missing}; it needs X_train, y_train, X_val, y_val")
    arrays = [data[k] for k in _SPLITS]
    for split, (X, y) in (("train", arrays[:2]), ("val", arrays[2:])):
        if len(X) != len(y):
            raise ValueError(f"X_{split} has {len(X)} samples but y_{split} has {len(y)} "
                             f"(shapes {tuple(X.shape)} and {tuple(y.shape)})")
        if len(X) == 0:
            raise ValueError(f"X_{split} is empty")
    return arrays
