"""The weight and bias of Conv2d and Linear: initialisation (He, Xavier, or a fixed normal
scale) and the storing of their gradients.

Weights are drawn with a NumPy generator on the CPU and then moved to the
requested device, so a seed gives the same network on the CPU and the GPU.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence
from typing import Any

import numpy

from .._typing import Array, DTypeLike
from .._validate import check_bool, check_int
from ..backend import resolve_device, to_device

INITS = ("he", "xavier")
FLOAT_DTYPES = (numpy.float32, numpy.float64)


def make_rng(seed: Any = None, rng: numpy.random.Generator | None = None
             ) -> numpy.random.Generator:
    """A ``numpy.random.Generator`` from ``rng`` or ``seed`` (not both).

    Parameters
    ----------
    seed : int or sequence of int, optional
        Seeds a new generator; None: fresh entropy.
    rng : numpy.random.Generator, optional
        Returned as it is.

    Returns
    -------
    numpy.random.Generator

    Raises
    ------
    ValueError
        When both are given, or a seed is negative.
    TypeError
        When ``rng`` is not a ``numpy.random.Generator``, or ``seed`` is neither an int (a
        bool is not) nor a sequence of them.

    Examples
    --------
    >>> make_rng(seed=0).integers(10, size=3)
    array([8, 6, 5])
    """
    if seed is not None and rng is not None:
        raise ValueError("give seed or rng, not both")
    if rng is not None:
        if not isinstance(rng, numpy.random.Generator):
            raise TypeError(f"rng must be a numpy.random.Generator, got {type(rng).__name__}")
        return rng
    if seed is not None:
        _check_seed(seed)
    return numpy.random.default_rng(seed)


def _check_seed(seed: Any) -> None:
    """A seed as ``numpy.random.default_rng`` takes it: an int >= 0 or a sequence of them (or
    a ``SeedSequence``); refused by name otherwise, where NumPy's errors do not name it."""
    if isinstance(seed, numpy.random.SeedSequence):
        return
    if isinstance(seed, (tuple, list, numpy.ndarray)):
        for i, value in enumerate(numpy.asarray(seed, dtype=object).reshape(-1)):
            check_int(f"seed[{i}]", value, 0)
    else:
        check_int("seed", seed, 0)


def check_dtype(dtype: DTypeLike) -> numpy.dtype:
    """The parameter dtype as a numpy dtype; float32 or float64 only.

    Parameters
    ----------
    dtype : dtype-like
        The dtype asked for.

    Returns
    -------
    numpy.dtype

    Raises
    ------
    TypeError
        For any other dtype, or anything NumPy does not take as one.

    Examples
    --------
    >>> check_dtype("float64")
    dtype('float64')
    """
    try:
        dt = numpy.dtype(dtype)
    except TypeError:  # NumPy's "data type 'foo' not understood" names no argument
        raise TypeError(f"dtype must be float32 or float64, got {dtype!r}") from None
    if dt not in FLOAT_DTYPES:
        raise TypeError(f"dtype must be float32 or float64, got {dt}")
    return dt


def weight_std(init: str, weight_scale: float | None, fan_in: int, fan_out: int) -> float:
    """Standard deviation of the normal weights.

    Parameters
    ----------
    init : {'he', 'xavier'}
        'he': sqrt(2 / fan_in) (for ReLU networks); 'xavier': sqrt(2 / (fan_in
        + fan_out)) (Glorot normal).
    weight_scale : float, optional
        The course's convention: wins when given.
    fan_in, fan_out : int
        The weight's fans.

    Returns
    -------
    float

    Raises
    ------
    ValueError
        When ``weight_scale`` is negative, infinite or NaN, or ``init`` is unknown.
    TypeError
        When ``weight_scale`` is not a number (a bool is not).

    Examples
    --------
    >>> weight_std("he", None, 8, 4), weight_std("he", 0.01, 8, 4)
    (0.5, 0.01)
    """
    if not isinstance(init, str) or init not in INITS:  # checked even where weight_scale wins
        raise ValueError(f"init must be one of {INITS}, got {init!r}")
    if weight_scale is not None:
        if isinstance(weight_scale, bool) or not isinstance(weight_scale, numbers.Real):
            raise TypeError(f"weight_scale must be a number >= 0, got {weight_scale!r}")
        if not 0 <= weight_scale < math.inf:  # NaN fails both comparisons
            raise ValueError(f"weight_scale must be a number >= 0 and finite, "
                             f"got {weight_scale!r}")
        return float(weight_scale)
    if init == "he":
        return (2.0 / fan_in) ** 0.5
    return (2.0 / (fan_in + fan_out)) ** 0.5


def normal_weight(shape: Sequence[int], std: float, dtype: DTypeLike, device: str | None,
                  rng: numpy.random.Generator) -> Array:
    """Normal(0, std) weights of ``shape``, cast to ``dtype`` and put on ``device``.

    Parameters
    ----------
    shape : sequence of int
        The weight's shape.
    std : float
        The standard deviation.
    dtype : {numpy.float32, numpy.float64}
        The weight's dtype.
    device : {'cpu', 'gpu', 'auto', None}
        Where it lives (None: :func:`fastconv.backend.default_device`).
    rng : numpy.random.Generator
        Draws it, on the CPU.

    Returns
    -------
    array

    Examples
    --------
    >>> import numpy as np
    >>> normal_weight((2, 3), 0.1, np.float32, "cpu", make_rng(0)).dtype
    dtype('float32')
    """
    dt, where = check_dtype(dtype), resolve_device(device)  # before the draw, not after
    return to_device((rng.standard_normal(shape) * std).astype(dt), where)


def constant(shape: Sequence[int], value: float, dtype: DTypeLike, device: str | None) -> Array:
    """An array of ``shape`` filled with ``value`` on ``device`` (biases, batchnorm params).

    Parameters
    ----------
    shape : sequence of int
        The array's shape.
    value : float
        What it holds.
    dtype : {numpy.float32, numpy.float64}
        Its dtype.
    device : {'cpu', 'gpu', 'auto', None}
        Where it lives (None: :func:`fastconv.backend.default_device`).

    Returns
    -------
    array

    Examples
    --------
    >>> import numpy as np
    >>> constant((2,), 1.0, np.float64, "cpu")
    array([1., 1.])
    """
    return to_device(numpy.full(shape, value, dtype=check_dtype(dtype)), resolve_device(device))


def add_weight_and_bias(module: Any, w_shape: Sequence[int], fan_in: int, fan_out: int,
                        n_bias: int, bias: bool, init: str, weight_scale: float | None,
                        dtype: DTypeLike, device: str | None, seed: Any,
                        rng: numpy.random.Generator | None) -> None:
    """Register ``W`` (normal, see :func:`weight_std`) and, with ``bias``, a zero ``b``, on a layer.

    Parameters
    ----------
    module : fastconv.nn.Module
        The layer.
    w_shape : sequence of int
        The weight's shape.
    fan_in, fan_out : int
        Its fans.
    n_bias : int
        The bias's length.
    bias : bool
        Whether to add a bias.
    init, weight_scale
        As for :func:`weight_std`.
    dtype, device
        As for :func:`normal_weight`.
    seed, rng
        As for :func:`make_rng`.

    Examples
    --------
    >>> import numpy as np
    >>> from fastconv.nn import Module
    >>> layer = Module()
    >>> add_weight_and_bias(layer, (3, 2), 3, 2, 2, True, "he", None, np.float32, "cpu", 0, None)
    >>> sorted(layer.params)
    ['W', 'b']
    """
    std = weight_std(init, weight_scale, fan_in, fan_out)
    bias = check_bool("bias", bias)  # every setting is checked before the draw
    module.add_param("W", normal_weight(w_shape, std, dtype, device, make_rng(seed, rng)))
    if bias:
        module.add_param("b", constant((n_bias,), 0.0, dtype, device))


def store_weight_and_bias_grads(module: Any, dw: Array, db: Array | None) -> None:
    """Put ``dw`` into ``module.grads["W"]`` and, for a module with a bias, ``db`` into ``["b"]``.

    Parameters
    ----------
    module : fastconv.nn.Module
        The layer.
    dw : array
        The weight's gradient.
    db : array or None
        The bias's gradient; None without a bias.

    Examples
    --------
    >>> import numpy as np
    >>> from fastconv.nn import Linear
    >>> layer = Linear(3, 2, bias=False, seed=0)
    >>> store_weight_and_bias_grads(layer, np.ones((3, 2), np.float32), None)
    >>> float(layer.grads["W"].sum())
    6.0
    """
    module.grads["W"] = dw
    if db is not None:
        module.grads["b"] = db
