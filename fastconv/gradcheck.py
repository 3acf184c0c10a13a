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

import numpy

from .backend import get_array_module

_SCALE_FLOOR = 1e-10  # below this the gradient counts as zero


def numerical_gradient(f, x, h=1e-6, directions=None, seed=0):
    """Central-difference gradient of the scalar ``f()`` with respect to ``x``.

    ``f`` takes no arguments and reads ``x``, which is perturbed in place and
    restored. With ``directions=None`` returns the full gradient (2 calls of
    ``f`` per element). With ``directions=k`` returns ``(derivatives, vs)``:
    the derivatives of ``f`` along k random unit directions ``vs`` (2 calls
    each), for arrays too large to check element by element; ``seed`` (an int
    or a sequence of ints, as ``numpy.random.default_rng`` takes) draws them.
    """
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


def relative_error(analytic, numeric):
    """``max|a - n| / max(max|a|, max|n|)``: error relative to the gradient's scale (0 if ~0)."""
    a, n = _host(analytic), _host(numeric)
    if a.shape != n.shape:
        raise ValueError(f"gradient shapes differ: analytic {a.shape}, numeric {n.shape}")
    return _relative([_deviation(a, n)])


def _host(a):
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


def check_op(forward, backward, *inputs, h=1e-6, directions=None, seed=0):
    """Largest relative error of a functional op's gradients with respect to ``inputs``.

    ``forward(*inputs) -> (out, cache)``; ``backward(dout, cache)`` returns one
    gradient per input, in order (a single array for one input); extra trailing
    gradients are ignored. Bind other arguments with ``functools.partial``
    (e.g. ``partial(dropout_forward, p=0.3, seed=1)``). ``seed`` draws the
    upstream gradient and the random directions.
    """
    inputs = [_float64_copy(a) for a in inputs]
    out, cache = forward(*inputs)
    dout = _random_like(out, seed)
    grads = backward(dout, cache)
    grads = (grads,) if not isinstance(grads, (tuple, list)) else grads
    if len(grads) < len(inputs):
        raise ValueError(f"backward returned {len(grads)} gradients for {len(inputs)} inputs")

    def f():
        return (forward(*inputs)[0] * dout).sum()

    return _relative([_compare(f, x, g, h, directions, _directions_seed(seed, i))
                      for i, (x, g) in enumerate(zip(inputs, grads))])


def check_loss(loss_fn, scores, *args, h=1e-6, directions=None, seed=0):
    """Relative error of ``dscores`` from ``loss_fn(scores, *args) -> (loss, dscores)``."""
    scores = _float64_copy(scores)
    _, dscores = loss_fn(scores, *args)
    return _relative([_compare(lambda: loss_fn(scores, *args)[0], scores, dscores,
                               h, directions, _directions_seed(seed, 0))])


def _require_float64(params):
    for name, a in params.items():
        if a.dtype != numpy.float64:
            raise TypeError(f"gradient checks need float64 parameters: {name!r} is "
                            f"{a.dtype}; build the model with dtype=numpy.float64")


def check_layer(layer, x, h=1e-6, directions=None, seed=0):
    """Largest relative error of a layer's dx and of every ``layer.grads[name]``.

    The layer must compute the same function on every call (dropout in eval
    mode or with a fixed mask) and hold float64 parameters.
    """
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


def check_model(model, X, y, h=1e-6, directions=None, seed=0):
    """Largest relative error of ``model.loss(X, y)``'s grads over every ``model.params[name]``."""
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
