"""Numerical gradient checking for functional ops, losses, layers and whole models.

One core, :func:`numerical_gradient`, takes float64 central differences of a
scalar function of an array that it perturbs in place, either element by element
or, for large arrays, along a few random directions. Thin adapters build that
scalar for each kind of thing and compare with its analytic gradient:

- :func:`check_op` — a functional op ``forward(*inputs) -> (out, cache)`` with
  ``backward(dout, cache) -> grads``, through ``sum(out * dout)`` for a random,
  non-uniform ``dout`` (a uniform one hides batchnorm bugs);
- :func:`check_loss` — a loss ``loss_fn(scores, *args) -> (loss, dscores)``;
- :func:`check_layer` — a :class:`fastconv.nn.Module` (``params``, ``grads``,
  ``forward(x)``, ``backward(dout) -> dx``), for dx and every parameter;
- :func:`check_model` — the course model interface: ``model.params`` dict and
  ``model.loss(X, y) -> (loss, grads)``.

Each returns one relative error for everything it checked: the largest
``|analytic - numeric|`` over every entry of every checked array, divided by
the largest gradient magnitude among them (the error relative to the gradient's
scale, so entries that are tiny by cancellation, or a bias whose true gradient
is zero, are not drowned in finite-difference noise; a real bug in any array
still shows). Along random directions the entries are directional derivatives
and the scale is the gradient's norm. In float64 a correct gradient gives about
1e-9 or less. Layers and models must hold float64 parameters; op and loss
inputs are cast to float64 copies.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy

from ._typing import Array
from ._validate import check_int, check_real
from .backend import get_array_module

_SCALE_FLOOR = 1e-10  # below this the gradient counts as zero


def _check_settings(h: Any, directions: Any, seed: Any = 0) -> tuple[float, int | None]:
    """``(h, directions)`` checked before any work: a finite step > 0 (0 divides by zero, NaN or
    inf make every error NaN), None or an int >= 1 (not a bool); an int seed >= 0 (or ints)."""
    h = check_real("h", h, 0.0, float("inf"), low_open=True, high_open=True)
    if directions is not None:
        directions = check_int("directions", directions, 1)
    if not isinstance(seed, (list, tuple, numpy.ndarray)):  # numerical_gradient: a sequence too
        check_int("seed", seed, 0)
    return h, directions


def numerical_gradient(f: Callable[[], Any], x: Array, h: float = 1e-6,
                       directions: int | None = None, seed: int | Sequence[int] = 0
                       ) -> Array | tuple[list[float], list[Array]]:
    """Central-difference gradient of the scalar ``f()`` with respect to ``x``.

    Parameters
    ----------
    f : callable
        Takes no arguments and returns a scalar computed from ``x``.
    x : array
        A C-contiguous float64 array, perturbed in place and restored.
    h : float, default 1e-6
        The step of the central differences.
    directions : int, optional
        None: the full gradient, two calls of ``f`` per element. ``k``: the
        derivatives along ``k`` random unit directions instead (two calls
        each), for arrays too large to check element by element.
    seed : int or sequence of int, default 0
        Draws the directions (as ``numpy.random.default_rng`` takes it).

    Returns
    -------
    array or tuple
        The gradient, in ``x``'s shape and array module; with ``directions``,
        ``(derivatives, vs)``: the list of derivatives and of their directions.

    Raises
    ------
    TypeError
        When ``x`` is not float64, or ``h``, ``directions`` or ``seed`` has the wrong type.
    ValueError
        When ``x`` is not C-contiguous, ``h`` is not finite and > 0, or ``directions`` or
        ``seed`` is out of range.

    Examples
    --------
    >>> import numpy as np
    >>> x = np.array([1.0, -2.0])
    >>> np.round(numerical_gradient(lambda: (x ** 2).sum(), x), 6)
    array([ 2., -4.])
    """
    h, directions = _check_settings(h, directions, seed)
    xp = get_array_module(x)
    if x.dtype != numpy.float64:
        raise TypeError(f"numerical gradients need a float64 array, got {x.dtype} "
                        f"(shape {tuple(x.shape)})")
    if not x.flags.c_contiguous:
        raise ValueError(f"numerical gradients perturb x in place; x of shape "
                         f"{tuple(x.shape)} must be C-contiguous")

    def central(shift):
        """(f(x0 + h) - f(x0 - h)) / 2h, where ``shift(t)`` sets x to x0 + t (t = 0 restores it)."""
        shift(h)
        fp = float(f())
        shift(-h)
        fm = float(f())
        shift(0.0)
        return (fp - fm) / (2 * h)

    if directions is None:
        flat = x.reshape(-1)  # a view: x is contiguous
        grad = numpy.zeros(flat.size)
        for i in range(flat.size):
            old = float(flat[i])
            grad[i] = central(lambda t: flat.__setitem__(i, old + t))
        return xp.asarray(grad.reshape(x.shape))
    rng = numpy.random.default_rng(seed)
    x0 = x.copy()
    derivatives, vs = [], []
    for _ in range(directions):
        v = rng.standard_normal(x.shape)
        v = xp.asarray(v / numpy.linalg.norm(v))
        derivatives.append(central(lambda t: x.__setitem__(Ellipsis, x0 + t * v)))
        vs.append(v)
    return derivatives, vs


def relative_error(analytic: Array, numeric: Array) -> float:
    """The largest difference of two gradients relative to their scale.

    Parameters
    ----------
    analytic, numeric : array
        Gradients of one shape, NumPy or CuPy.

    Returns
    -------
    float
        ``max|a - n| / max(max|a|, max|n|)``; 0 when both are about zero,
        NaN when either holds a NaN.

    Raises
    ------
    ValueError
        When the shapes differ.

    Examples
    --------
    >>> import numpy as np
    >>> relative_error(np.array([1.0, 2.0]), np.array([1.0, 2.2]))
    0.09090909090909098
    """
    a, n = _host(analytic), _host(numeric)
    if a.shape != n.shape:
        raise ValueError(f"gradient shapes differ: analytic {a.shape}, numeric {n.shape}")
    return _relative([_deviation(a, n)])


def _host(a: Any) -> numpy.ndarray:
    """A float64 NumPy copy of a NumPy or CuPy array."""
    a = a.get() if hasattr(a, "get") and not isinstance(a, numpy.ndarray) else a
    return numpy.asarray(a, dtype=numpy.float64)


def _deviation(a, n):
    """(largest absolute difference, largest magnitude) of two host arrays."""
    return (float(numpy.abs(a - n).max(initial=0.0)),
            max(float(numpy.abs(a).max(initial=0.0)), float(numpy.abs(n).max(initial=0.0))))


def _relative(deviations):
    """Largest difference over the largest magnitude, across every checked array.

    One scale for all arrays of a layer or model: a parameter whose true
    gradient is zero (a bias before batchnorm) is judged against the model's
    gradient scale, not against its own finite-difference noise. A NaN
    anywhere makes the result NaN (``numpy.max``; Python's ``max`` skips a NaN
    that is not first).
    """
    error, scale = numpy.max(numpy.array(deviations, dtype=numpy.float64), axis=0)
    return 0.0 if scale < _SCALE_FLOOR else float(error / scale)


def _compare(f, x, analytic, h, directions, seed):
    """(difference, scale) of ``analytic`` against the numerical gradient of f at x."""
    if analytic is None:
        raise ValueError(f"no analytic gradient for an input of shape {tuple(x.shape)}")
    if tuple(analytic.shape) != tuple(x.shape):
        raise ValueError(f"analytic gradient has shape {tuple(analytic.shape)}, "
                         f"its input has shape {tuple(x.shape)}")
    if directions is None:
        return _deviation(_host(analytic), _host(numerical_gradient(f, x, h)))
    derivatives, vs = numerical_gradient(f, x, h, directions, seed)
    projected = [float((analytic * v).sum()) for v in vs]
    norm = float(numpy.linalg.norm(_host(analytic)))  # |<g, v>| <= |g| for unit v
    return (float(numpy.max(numpy.abs(numpy.subtract(projected, derivatives)))),
            float(numpy.max(numpy.abs([norm, *derivatives]))))


def _random_like(out, seed):
    """A non-uniform upstream gradient on out's device, float64 (stream 0 of ``seed``)."""
    xp = get_array_module(out)
    return xp.asarray(numpy.random.default_rng([seed, 0]).standard_normal(out.shape))


def _directions_seed(seed, i):
    """The seed of the i-th checked array's random directions: a stream of its own, so no
    direction repeats dout's draw (an input shaped like the output got dout/|dout|)."""
    return [seed, 1 + i]


def _float64_copy(a):
    return a.astype(numpy.float64, order="C")


def check_op(forward: Callable[..., tuple[Array, Any]], backward: Callable[..., Any],
             *inputs: Array, h: float = 1e-6, directions: int | None = None, seed: int = 0
             ) -> float:
    """Largest relative error of a functional op's gradients with respect to its inputs.

    The op is checked through ``sum(out * dout)`` for a random, non-uniform
    ``dout``. Bind its other arguments with ``functools.partial`` (e.g.
    ``partial(dropout_forward, p=0.3, seed=1)``).

    Parameters
    ----------
    forward : callable
        ``forward(*inputs) -> (out, cache)``.
    backward : callable
        ``backward(dout, cache)``: one gradient per input, in order (a single
        array for one input); extra trailing gradients are ignored.
    *inputs : array
        The inputs; checked on float64 copies.
    h : float, default 1e-6
        The step of the central differences.
    directions : int, optional
        Check along this many random directions instead of element by element.
    seed : int, default 0
        Draws the upstream gradient and the random directions.

    Returns
    -------
    float
        The relative error over all inputs (see the module docstring); about
        1e-9 or less for a correct gradient.

    Raises
    ------
    ValueError
        When ``backward`` returns fewer gradients than there are inputs, or
        one of the wrong shape.
    TypeError, ValueError
        ``h``, ``directions`` or ``seed`` as :func:`numerical_gradient` refuses them.

    Examples
    --------
    >>> import numpy as np
    >>> from fastconv.functional import linear_backward, linear_forward
    >>> rng = np.random.default_rng(0)
    >>> x, w, b = rng.standard_normal((2, 3)), rng.standard_normal((3, 4)), np.zeros(4)
    >>> check_op(linear_forward, linear_backward, x, w, b) < 1e-8
    True
    """
    h, directions = _check_settings(h, directions, seed)
    copies = [_float64_copy(a) for a in inputs]
    out, cache = forward(*copies)
    dout = _random_like(out, seed)
    grads = backward(dout, cache)
    grads = (grads,) if not isinstance(grads, (tuple, list)) else grads
    if len(grads) < len(copies):
        raise ValueError(f"backward returned {len(grads)} gradients for {len(copies)} inputs")

    def f():
        return (forward(*copies)[0] * dout).sum()

    return _relative([_compare(f, x, g, h, directions, _directions_seed(seed, i))
                      for i, (x, g) in enumerate(zip(copies, grads))])


def check_loss(loss_fn: Callable[..., tuple[Any, Array]], scores: Array, *args: Any,
               h: float = 1e-6, directions: int | None = None, seed: int = 0) -> float:
    """Relative error of a loss's gradient with respect to its scores.

    Parameters
    ----------
    loss_fn : callable
        ``loss_fn(scores, *args) -> (loss, dscores)``.
    scores : array
        The scores; checked on a float64 copy.
    *args
        The loss's other arguments (labels, targets).
    h : float, default 1e-6
        The step of the central differences.
    directions : int, optional
        Check along this many random directions instead of element by element.
    seed : int, default 0
        Draws the random directions.

    Returns
    -------
    float
        The relative error of ``dscores``.

    Raises
    ------
    TypeError, ValueError
        ``h``, ``directions`` or ``seed`` as :func:`numerical_gradient` refuses them.

    Examples
    --------
    >>> import numpy as np
    >>> from fastconv.functional import softmax_cross_entropy
    >>> scores = np.random.default_rng(0).standard_normal((4, 3))
    >>> check_loss(softmax_cross_entropy, scores, np.array([0, 2, 1, 0])) < 1e-8
    True
    """
    h, directions = _check_settings(h, directions, seed)
    scores = _float64_copy(scores)
    _, dscores = loss_fn(scores, *args)
    return _relative([_compare(lambda: loss_fn(scores, *args)[0], scores, dscores,
                               h, directions, _directions_seed(seed, 0))])


def _require_float64(params: Mapping[str, Array]) -> None:
    for name, a in params.items():
        if a.dtype != numpy.float64:
            raise TypeError(f"gradient checks need float64 parameters: {name!r} is "
                            f"{a.dtype}; build the model with dtype=numpy.float64")


def check_layer(layer: Any, x: Array, h: float = 1e-6, directions: int | None = None,
                seed: int = 0) -> float:
    """Largest relative error of a layer's input gradient and of every parameter gradient.

    Parameters
    ----------
    layer : fastconv.nn.Module
        Anything with ``params``, ``grads``, ``forward(x)`` and
        ``backward(dout) -> dx``. It must compute the same function on every
        call (dropout in eval mode or with a fixed mask) and hold float64
        parameters.
    x : array
        The input; checked on a float64 copy.
    h : float, default 1e-6
        The step of the central differences.
    directions : int, optional
        Check along this many random directions instead of element by element.
    seed : int, default 0
        Draws the upstream gradient and the random directions.

    Returns
    -------
    float
        The relative error over dx and every ``layer.grads[name]``.

    Raises
    ------
    TypeError
        When a parameter is not float64.
    ValueError
        When the layer's backward returns no input gradient.
    TypeError, ValueError
        ``h``, ``directions`` or ``seed`` as :func:`numerical_gradient` refuses them.

    Examples
    --------
    >>> import numpy as np
    >>> from fastconv.nn import Linear
    >>> layer = Linear(3, 2, dtype=np.float64, seed=0)
    >>> check_layer(layer, np.random.default_rng(1).standard_normal((4, 3))) < 1e-8
    True
    """
    h, directions = _check_settings(h, directions, seed)
    params = layer.params
    _require_float64(params)
    x = _float64_copy(x)
    dout = _random_like(layer.forward(x), seed)
    dx = layer.backward(dout)
    if dx is None:
        raise ValueError(f"{type(layer).__name__}.backward returned no input gradient "
                         "(needs_input_grad=False?): nothing to check dx against")
    analytic = {name: layer.grads[name].copy() for name in params}

    def f():
        return (layer.forward(x) * dout).sum()

    deviations = [_compare(f, x, dx, h, directions, _directions_seed(seed, 0))]
    deviations += [_compare(f, params[name], analytic[name], h, directions,
                            _directions_seed(seed, i)) for i, name in enumerate(analytic, 1)]
    return _relative(deviations)


def check_model(model: Any, X: Array, y: Array, h: float = 1e-6,
                directions: int | None = None, seed: int = 0) -> float:
    """Largest relative error of a course-style model's gradients over every parameter.

    Parameters
    ----------
    model : object
        The course model interface: a ``params`` dict of float64 arrays and
        ``loss(X, y) -> (loss, grads)``.
    X : array
        The inputs.
    y : array
        The labels.
    h : float, default 1e-6
        The step of the central differences.
    directions : int, optional
        Check along this many random directions instead of element by element.
    seed : int, default 0
        Draws the random directions.

    Returns
    -------
    float
        The relative error over every ``model.params[name]``.

    Raises
    ------
    TypeError
        When a parameter is not float64.
    ValueError
        When ``model.loss`` returns no gradient for a parameter.
    TypeError, ValueError
        ``h``, ``directions`` or ``seed`` as :func:`numerical_gradient` refuses them.

    Examples
    --------
    >>> import numpy as np
    >>> from fastconv.nn import two_layer_mlp
    >>> model = two_layer_mlp((4,), 2, hidden_dim=3, dtype=np.float64, seed=0)
    >>> X, y = np.random.default_rng(0).standard_normal((5, 4)), np.array([0, 1, 1, 0, 1])
    >>> check_model(model, X, y) < 1e-7
    True
    """
    h, directions = _check_settings(h, directions, seed)
    params = model.params
    _require_float64(params)
    _, grads = model.loss(X, y)
    missing = [name for name in params if name not in grads]
    if missing:
        raise ValueError(f"model.loss returned no gradient for parameter {missing[0]!r}")
    analytic = {name: grads[name].copy() for name in params}
    return _relative([_compare(lambda: model.loss(X, y)[0], params[name], analytic[name],
                               h, directions, _directions_seed(seed, i))
                      for i, name in enumerate(analytic)])
