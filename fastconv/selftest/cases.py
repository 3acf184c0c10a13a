"""The ops the self-test runs, on small fixed arguments, and how one is called.

An :class:`OpCase` names an op (a ``<op>_forward``/``<op>_backward`` pair, a
single-pass op such as ``im2col``, or a loss returning ``(loss, grad)``), its
array arguments and its other arguments. :func:`call` runs it on a library
with fastconv's API: :data:`FASTCONV` (:mod:`fastconv.functional`, then
:mod:`fastconv` for ``im2col``/``col2im``) or :data:`LOOPS`
(:mod:`fastconv.reference`, the plain loops with the same names and
signatures). Functions are looked up when called, so a test can replace one.

The arrays are drawn once, in float64, from a seeded generator; each run
rounds them to the dtype under test and may compute in another (float64 for
a reference), so both sides see identical values.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..backend import as_numpy

FASTCONV = ("fastconv.functional", "fastconv")
LOOPS = ("fastconv.reference",)
KINDS = ("pair", "single", "loss")


@dataclass(frozen=True)
class Ints:
    """An integer array argument (class labels, flat indices): values in ``[0, high)``.

    Parameters
    ----------
    shape : tuple of int
        The array's shape.
    high : int
        One past the largest value.

    Examples
    --------
    >>> Ints((4,), 3).high
    3
    """

    shape: tuple[int, ...]
    high: int


@dataclass(frozen=True)
class Positive:
    """A float array argument that must be positive (a running variance): ``|z| + 0.5``.

    Parameters
    ----------
    shape : tuple of int
        The array's shape.

    Examples
    --------
    >>> Positive((3,)).shape
    (3,)
    """

    shape: tuple[int, ...]


Spec = tuple[int, ...] | Ints | Positive


@dataclass(frozen=True)
class OpCase:
    """One op on one set of arguments.

    Parameters
    ----------
    label : str
        What the table shows, e.g. ``"conv2d k3 s2 p1"``.
    op : str
        The function's name: ``conv2d`` calls ``conv2d_forward`` and
        ``conv2d_backward`` (kind ``"pair"``); ``im2col`` itself (``"single"``)
        or ``softmax_cross_entropy`` itself (``"loss"``).
    inputs : mapping of str to shape or :class:`Ints` or :class:`Positive`
        The array arguments, passed by name; a plain shape is a standard
        normal float array.
    kwargs : mapping of str to object, optional
        The other arguments, passed by name.
    grads : tuple of str, default ("dx",)
        Names of what the backward returns, in order (the loss's gradient for
        ``"loss"``); None entries (no bias) are left out of the results.
    kind : {"pair", "single", "loss"}, default "pair"
        The calling convention.
    seed : int, default 0
        Seed of the arrays; the upstream gradient uses ``seed + 1``.

    Examples
    --------
    >>> case = OpCase("relu", "relu", {"x": (2, 3)})
    >>> sorted(call(case, FASTCONV, draw_inputs(case), "float64"))
    ['dx', 'out']
    """

    label: str
    op: str
    inputs: Mapping[str, Spec]
    kwargs: Mapping[str, Any] = field(default_factory=dict)
    grads: tuple[str, ...] = ("dx",)
    kind: str = "pair"
    seed: int = 0

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"kind must be one of {KINDS}, got {self.kind!r}")

    @property
    def names(self) -> tuple[str, ...]:
        """The results this case compares: ``out`` (or ``loss``) and its gradients."""
        first = {"pair": ("out",), "single": ("out",), "loss": ("loss",)}[self.kind]
        return first + (self.grads if self.kind != "single" else ())


def draw_inputs(case: OpCase) -> dict[str, np.ndarray]:
    """The case's array arguments: float64 (or int64) NumPy arrays from its seed.

    Parameters
    ----------
    case : OpCase
        The case.

    Returns
    -------
    dict of str to numpy.ndarray
        One array per entry of ``case.inputs``.

    Examples
    --------
    >>> arrays = draw_inputs(OpCase("c", "relu", {"x": (2, 3), "y": Ints((4,), 3)}))
    >>> arrays["x"].dtype, arrays["y"].max() < 3
    (dtype('float64'), np.True_)
    """
    rng = np.random.default_rng(case.seed)
    arrays: dict[str, np.ndarray] = {}
    for name, spec in case.inputs.items():
        if isinstance(spec, Ints):
            arrays[name] = rng.integers(0, spec.high, spec.shape)
        elif isinstance(spec, Positive):
            arrays[name] = np.abs(rng.standard_normal(spec.shape)) + 0.5
        else:
            arrays[name] = rng.standard_normal(spec)
    return arrays


def rounded(array: np.ndarray, dtype: str, compute: str | None = None) -> np.ndarray:
    """A float array rounded to ``dtype``, then held in ``compute`` (default ``dtype``);
    integer arrays unchanged.

    Parameters
    ----------
    array : numpy.ndarray
        The drawn values.
    dtype : str
        The dtype under test: the values are rounded to it.
    compute : str, optional
        The dtype the op computes in (float64 for a reference run).

    Returns
    -------
    numpy.ndarray
        A new array.

    Examples
    --------
    >>> rounded(np.array([1 / 3]), "float16", "float64")[0]
    np.float64(0.333251953125)
    """
    if array.dtype.kind != "f":
        return array.copy()
    return array.astype(dtype).astype(compute or dtype)


def _function(library: tuple[str, ...], name: str) -> Callable:
    for module_name in library:
        module = importlib.import_module(module_name)
        if hasattr(module, name):
            return getattr(module, name)
    raise AttributeError(f"{' or '.join(library)} has no {name}")


def _named(names: tuple[str, ...], values: Any) -> dict[str, Any]:
    values = values if isinstance(values, tuple) else (values,)
    if len(values) != len(names):
        raise ValueError(f"expected {len(names)} results ({', '.join(names)}), got {len(values)}")
    return {n: v for n, v in zip(names, values) if v is not None}


def call(case: OpCase, library: tuple[str, ...], inputs: Mapping[str, np.ndarray], dtype: str,
         compute: str | None = None, to_device: Callable = np.asarray) -> dict[str, np.ndarray]:
    """Run ``case`` on ``library``, forward and backward; every result as a NumPy array.

    Parameters
    ----------
    case : OpCase
        The op and its arguments.
    library : tuple of str
        Module names searched in order for the op's functions (:data:`FASTCONV`,
        :data:`LOOPS`).
    inputs : mapping of str to numpy.ndarray
        :func:`draw_inputs`'s arrays.
    dtype : str
        The dtype under test (float arrays are rounded to it).
    compute : str, optional
        The dtype to compute in (default ``dtype``).
    to_device : callable, default numpy.asarray
        Moves each array (inputs and the upstream gradient) to where the op
        runs, e.g. ``cupy.asarray``.

    Returns
    -------
    dict of str to numpy.ndarray
        ``out`` (or ``loss``), ``indices`` when the forward returns them, and
        the gradients named by ``case.grads``.

    Examples
    --------
    >>> case = OpCase("pool", "max_pool2d", {"x": (1, 1, 4, 4)}, {"kernel_size": 2})
    >>> {k: v.shape for k, v in call(case, LOOPS, draw_inputs(case), "float32").items()}
    {'out': (1, 1, 2, 2), 'dx': (1, 1, 4, 4)}
    """
    arrays = {k: to_device(rounded(v, dtype, compute)) for k, v in inputs.items()}
    if case.kind == "single":
        results = {"out": _function(library, case.op)(**arrays, **case.kwargs)}
    elif case.kind == "loss":
        loss, grad = _function(library, case.op)(**arrays, **case.kwargs)
        results = {"loss": loss, case.grads[0]: grad}
    else:
        forward = _function(library, case.op + "_forward")(**arrays, **case.kwargs)
        out, cache = forward[0], forward[-1]
        results = {"out": out}
        if len(forward) == 3:
            results["indices"] = forward[1]
        upstream = np.random.default_rng(case.seed + 1).standard_normal(tuple(out.shape))
        dout = to_device(rounded(upstream, dtype, compute))
        results.update(_named(case.grads, _function(library, case.op + "_backward")(dout, cache)))
    return {k: np.asarray(as_numpy(v)) for k, v in results.items()}
