"""How each benchmarked op is called, behind one small interface, and what it computes.

Binding an op to inputs gives a :class:`Bound` with ``forward()``, ``backward()`` (None
for single-pass ops) and ``results()`` (NumPy arrays named out, dx, dw, db), so the
runner can check and time every implementation (:mod:`.impls`) alike:
:func:`fastconv_api_bind` calls a module with fastconv's API (fastconv itself, or
:mod:`fastconv.reference`, the plain loops with the same names and signatures),
:func:`torch_bind` calls ``torch.nn.functional`` with autograd. Also here: the inputs
of a case, the work of a pass (flops, bytes) and the agreement measure.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from ..backend import as_numpy
from ..selftest.compare import array_error
from .cases import Case, ConvShape

SINGLE_PASS_OPS = ("im2col", "col2im")
TOLERANCE = {"float32": 1e-4, "float64": 1e-10}

Arrays = Mapping[str, np.ndarray]


def make_inputs(case: Case, dtype: str, seed: int = 0) -> dict[str, np.ndarray]:
    """Random NumPy inputs of ``dtype`` for ``case``: x (or cols), w, b, dout as the op needs.

    Parameters
    ----------
    case : Case
        The op and its shape.
    dtype : str
        ``float32`` or ``float64``.
    seed : int, default 0
        Seed of the generator.

    Returns
    -------
    dict of str to numpy.ndarray
        Standard normal values (the weights scaled by ``fan_in ** -0.5``).

    Raises
    ------
    ValueError
        For an op the benchmark does not know.

    Examples
    --------
    >>> from fastconv.bench.cases import ConvShape
    >>> inputs = make_inputs(Case("conv2d", ConvShape("t", 2, 3, 5, 5, 4, 3, 1, 1)), "float32")
    >>> {k: v.shape for k, v in inputs.items()}
    {'x': (2, 3, 5, 5), 'w': (4, 3, 3, 3), 'b': (4,), 'dout': (2, 4, 5, 5)}
    """
    rng = np.random.default_rng(seed)
    s = case.shape
    oh, ow = s.out_hw

    def normal(*shape, scale=1.0):
        return (rng.standard_normal(shape) * scale).astype(dtype)

    if case.op == "conv2d" and isinstance(s, ConvShape):
        fan_in = s.c * s.k * s.k
        return {"x": normal(s.n, s.c, s.h, s.w), "w": normal(s.f, s.c, s.k, s.k, scale=fan_in ** -0.5),
                "b": normal(s.f), "dout": normal(s.n, s.f, oh, ow)}
    if case.op in ("max_pool2d", "avg_pool2d"):
        return {"x": normal(s.n, s.c, s.h, s.w), "dout": normal(s.n, s.c, oh, ow)}
    if case.op == "im2col":
        return {"x": normal(s.n, s.c, s.h, s.w)}
    if case.op == "col2im":
        return {"cols": normal(s.n, s.c * s.k * s.k, oh * ow)}
    raise ValueError(f"unknown op {case.op!r}")


def flops(case: Case, pass_name: str) -> int | None:
    """Floating-point operations of a conv pass (forward GEMM; backward = dx + dw GEMMs).

    Parameters
    ----------
    case : Case
        The case.
    pass_name : {"fwd", "bwd", "fwd+bwd"}
        The pass.

    Returns
    -------
    int or None
        None for the memory-bound ops.

    Examples
    --------
    >>> from fastconv.bench.cases import ConvShape
    >>> flops(Case("conv2d", ConvShape("t", 1, 1, 3, 3, 1, 3, 1, 1)), "fwd+bwd")
    486
    """
    if case.op != "conv2d" or not isinstance(case.shape, ConvShape):
        return None
    fwd = case.shape.forward_flops()
    return {"fwd": fwd, "bwd": 2 * fwd, "fwd+bwd": 3 * fwd}[pass_name]


def bytes_moved(case: Case, pass_name: str, itemsize: int) -> int | None:
    """Bytes read plus written by a memory-bound pass (pools, im2col, col2im).

    Parameters
    ----------
    case : Case
        The case.
    pass_name : {"fwd", "bwd", "fwd+bwd"}
        The pass.
    itemsize : int
        Bytes per element.

    Returns
    -------
    int or None
        The pass's inputs and outputs in bytes; None for convolutions.

    Examples
    --------
    >>> from fastconv.bench.cases import PoolShape
    >>> bytes_moved(Case("max_pool2d", PoolShape("p", 1, 1, 4, 4, 2, 2, 0)), "fwd", 4)
    80
    """
    if case.op == "conv2d":
        return None
    s = case.shape
    oh, ow = s.out_hw
    image = s.n * s.c * s.h * s.w
    small = s.n * s.c * oh * ow
    if case.op in ("im2col", "col2im"):
        per_pass = image + small * s.k * s.k
    else:
        per_pass = image + small
    passes = {"fwd": 1, "bwd": 1, "fwd+bwd": 2}[pass_name]
    return per_pass * passes * itemsize


class Bound:
    """One op bound to one implementation's inputs: forward, backward, results.

    Parameters
    ----------
    forward : callable
        No arguments; returns the state ``backward`` and ``collect`` take.
    backward : callable or None
        Takes the state; None for single-pass ops.
    collect : callable
        ``collect(state, grads)``: a dict of the results (arrays or None).
    mode : callable, optional
        A context manager factory each pass runs inside (TF32 on or off).

    Examples
    --------
    >>> b = Bound(lambda: np.ones(2), None, lambda state, grads: {"out": state})
    >>> b.forward(); b.results()
    {'out': array([1., 1.])}
    """

    def __init__(self, forward: Callable[[], Any], backward: Callable[[Any], Any] | None,
                 collect: Callable[[Any, Any], dict] | None,
                 mode: Callable[[], contextlib.AbstractContextManager] = contextlib.nullcontext):
        self._forward, self._backward, self._collect = forward, backward, collect
        self.mode = mode
        self.state = self.grads = None
        self.has_backward = backward is not None

    def forward(self) -> None:
        """Run the forward pass (keeps its output and cache)."""
        with self.mode():
            self.state = self._forward()

    def backward(self) -> None:
        """Run the backward pass on the last forward's cache."""
        with self.mode():
            if self._backward is None:
                raise TypeError("a single-pass op has no backward pass")
            self.grads = self._backward(self.state)

    def results(self) -> dict[str, np.ndarray]:
        """The last outputs as NumPy arrays: a dict with out and dx/dw/db where they exist."""
        if self._collect is None:
            raise TypeError("this bound op collects no results")
        collected = self._collect(self.state, self.grads)
        return {k: as_numpy(v) for k, v in collected.items() if v is not None}


def run_once(bound: Bound) -> dict[str, np.ndarray]:
    """One forward and (if any) backward pass of ``bound``; its results.

    Examples
    --------
    >>> run_once(Bound(lambda: np.zeros(1), None, lambda state, grads: {"out": state}))
    {'out': array([0.])}
    """
    bound.forward()
    if bound.has_backward:
        bound.backward()
    return bound.results()


def fastconv_api_bind(mod: Any, case: Case, a: Arrays) -> Bound:
    """Bind ``case``'s op of a module with fastconv's API to the arrays ``a``.

    Parameters
    ----------
    mod : module
        :mod:`fastconv` or :mod:`fastconv.reference`.
    case : Case
        The op and its shape.
    a : mapping of str to array
        :func:`make_inputs`' arrays, on the device ``mod`` computes on.

    Returns
    -------
    Bound
        Its passes; results out, dx, dw, db as the op has them.

    Raises
    ------
    ValueError
        For an op the benchmark does not know.
    """
    s = case.shape
    if case.op == "conv2d":
        return Bound(lambda: mod.conv2d_forward(a["x"], a["w"], a["b"], s.stride, s.pad),
                     lambda st: mod.conv2d_backward(a["dout"], st[1]),
                     lambda st, g: {"out": st[0], "dx": g and g[0], "dw": g and g[1], "db": g and g[2]})
    if case.op in ("max_pool2d", "avg_pool2d"):
        forward = getattr(mod, case.op + "_forward")
        backward = getattr(mod, case.op + "_backward")
        return Bound(lambda: forward(a["x"], s.k, s.stride, s.pad),
                     lambda st: backward(a["dout"], st[1]),
                     lambda st, g: {"out": st[0], "dx": g})
    if case.op == "im2col":
        return Bound(lambda: mod.im2col(a["x"], s.k, s.stride, s.pad), None,
                     lambda st, g: {"out": st})
    if case.op == "col2im":
        shape = (a["cols"].shape[0], s.c, s.h, s.w)
        return Bound(lambda: mod.col2im(a["cols"], shape, s.k, s.stride, s.pad), None,
                     lambda st, g: {"out": st})
    raise ValueError(f"unknown op {case.op!r}")


def torch_bind(torch: Any, device: str, case: Case, arrays: Arrays) -> Bound:
    """Bind ``case``'s op in ``torch.nn.functional`` (gradients by autograd) to tensors of
    ``arrays`` on ``device`` (``"cpu"`` or ``"cuda"``).

    Raises
    ------
    ValueError
        For an op the benchmark does not know.
    """
    F = torch.nn.functional
    s = case.shape
    needs_grad = case.op not in SINGLE_PASS_OPS
    params: tuple[Any, ...]
    t = {k: torch.from_numpy(np.ascontiguousarray(v)).to(device) for k, v in arrays.items()}
    for k in ("x", "w", "b"):
        if k in t and needs_grad:
            t[k].requires_grad_(True)
    if case.op == "conv2d":
        params = (t["x"], t["w"], t["b"])
        forward = lambda: F.conv2d(*params, stride=s.stride, padding=s.pad)  # noqa: E731
    elif case.op == "max_pool2d":
        params = (t["x"],)
        forward = lambda: F.max_pool2d(t["x"], s.k, s.stride, s.pad)  # noqa: E731
    elif case.op == "avg_pool2d":
        params = (t["x"],)
        forward = lambda: F.avg_pool2d(t["x"], s.k, s.stride, s.pad)  # noqa: E731
    elif case.op == "im2col":
        return Bound(lambda: F.unfold(t["x"], s.k, padding=s.pad, stride=s.stride), None,
                     lambda st, g: {"out": st.detach().cpu().numpy()})
    elif case.op == "col2im":
        return Bound(lambda: F.fold(t["cols"], (s.h, s.w), s.k, padding=s.pad, stride=s.stride),
                     None, lambda st, g: {"out": st.detach().cpu().numpy()})
    else:
        raise ValueError(f"unknown op {case.op!r}")

    def collect(out, grads):
        result = {"out": out.detach().cpu().numpy()}
        if grads is not None:
            result.update(zip(("dx", "dw", "db"), (g.cpu().numpy() for g in grads)))
        return result

    return Bound(forward, lambda out: torch.autograd.grad(out, params, t["dout"]), collect)


def relative_error(got: Arrays, expected: Arrays) -> float:
    """max |got - expected| / max |expected| over every array the oracle gives.

    Parameters
    ----------
    got, expected : mapping of str to numpy.ndarray
        The results under test and the oracle's, by name.

    Returns
    -------
    float
        The worst :func:`fastconv.selftest.compare.array_error`; infinite when an
        array the oracle gives is missing from ``got`` (a gradient returned as
        None), has another shape, or differs by a non-finite amount.

    Examples
    --------
    >>> relative_error({"out": np.array([1.0, 2.2])}, {"out": np.array([1.0, 2.0])})
    0.10000000000000009
    """
    if any(key not in got for key in expected):
        return math.inf
    return max((array_error(got[key], ref) for key, ref in expected.items()), default=0.0)
