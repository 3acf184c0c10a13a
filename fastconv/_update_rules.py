"""The CS231n update rules, and the update math they share with fastconv.optim's optimizers.

Each rule is ``rule(w, dw, config=None) -> (next_w, config)`` with the course's
config keys and defaults, its state stored in the config; each checks ``w``,
``dw``, the config's settings and state arrays (velocity, cache, m, v and t)
before it changes anything. Users reach them as
``fastconv.optim.sgd`` and so on; the optimizer objects of :mod:`fastconv.optim`
call the same ``*_direction`` functions, so both interfaces do the same arithmetic.
"""

from __future__ import annotations

import numbers
from collections.abc import Callable, Mapping, MutableMapping
from typing import Any, TypeAlias

from ._typing import Array
from ._validate import check_float, check_int, check_real
from .backend import get_array_module, is_array

#: ``rule(w, dw, config) -> (next_w, config)``, the course's update-rule signature.
UpdateRule: TypeAlias = Callable[[Array, Array, Any], tuple[Array, dict[str, Any]]]


# --------------------------------------------------------------------------
# the update math shared with the optimizer objects (state arrays updated in place)
# --------------------------------------------------------------------------

def rmsprop_direction(g: Array, square_avg: Array, decay: float, eps: float) -> Array:
    """Update the running mean of g**2 in place; return ``g / (sqrt(mean) + eps)``."""
    xp = get_array_module(g, square_avg)
    square_avg *= decay
    square_avg += (1 - decay) * g * g
    return g / (xp.sqrt(square_avg) + eps)


def adam_direction(g: Array, m: Array, v: Array, t: int, beta1: float, beta2: float,
                   eps: float) -> Array:
    """Update the moments in place; return ``m_hat / (sqrt(v_hat) + eps)`` for step t >= 1."""
    xp = get_array_module(g, m, v)
    m *= beta1
    m += (1 - beta1) * g
    v *= beta2
    v += (1 - beta2) * g * g
    return (m / (1 - beta1 ** t)) / (xp.sqrt(v / (1 - beta2 ** t)) + eps)


def check_grad(name: str, param: Any, grad: Any, grad_name: str) -> None:
    """Check that ``grad`` is a float array shaped like the float parameter ``param`` (``name``)."""
    if not is_array(param):
        raise TypeError(f"{name} must be an array (updated in place), got {type(param).__name__}; "
                        f"wrap a scalar as np.array(value)")
    check_float(param, name)  # updated in place: an integer array cannot take the step
    if not is_array(grad):
        raise TypeError(f"{grad_name} must be an array, got {type(grad).__name__}")
    # Integer, bool, complex and object gradients are refused: complex ones would lose
    # their imaginary part in the cast, the others are no gradient a layer computes.
    if grad.dtype.kind != "f":
        raise TypeError(f"{grad_name} must be a floating-point array, got {grad.dtype}")
    get_array_module(param, grad)  # one device
    if tuple(grad.shape) != tuple(param.shape):
        raise ValueError(f"{grad_name} has shape {tuple(grad.shape)}, "
                         f"{name} has shape {tuple(param.shape)}")


def check_grads(params: Any, grads: Any) -> None:
    """Check that ``grads`` maps every name of ``params`` to a float gradient of its shape.

    Run before a step changes anything: a bad last gradient must not leave the
    earlier parameters updated.
    """
    if not isinstance(grads, Mapping):
        raise TypeError(f"grads must be a name -> array mapping (e.g. model.grads), "
                        f"got {type(grads).__name__}")
    for name, param in params.items():
        if name not in grads:
            raise ValueError(f"grads has no entry for parameter {name!r}")
        check_grad(f"params[{name!r}]", param, grads[name], f"grads[{name!r}]")


def check_step(params: Any, grads: Any, state: Any, state_arrays: tuple[str, ...]) -> None:
    """Check an optimizer object's step: gradients, writeable parameters, their state.

    ``state[name][key]`` for each key of ``state_arrays`` present is updated
    in place like its parameter; ``state[name]['step']`` is Adam's count.
    """
    check_grads(params, grads)
    for name, param in params.items():
        if not getattr(param.flags, "writeable", True):
            raise ValueError(f"params[{name!r}] is read-only; the step updates it in place")
        entries = state.get(name, {})
        for key in state_arrays:
            if key in entries:
                check_state(f"state[{name!r}][{key!r}]", entries[key], param,
                            f"params[{name!r}]", writeable=True)
        if "step" in entries:  # 1 - beta**step divides: step >= 0 before its increment
            check_int(f"state[{name!r}]['step']", entries["step"], 0)


# --------------------------------------------------------------------------
# the CS231n update rules: rule(w, dw, config=None) -> (next_w, config)
# --------------------------------------------------------------------------

def check_rule_inputs(rule: Any, w: Any, dw: Any, config: Any) -> None:
    """Check what ``rule(w, dw, config)`` would read, changing nothing.

    Lets a caller that applies a rule to many parameters check them all first.

    Parameters
    ----------
    rule : callable
        :func:`sgd`, :func:`sgd_momentum`, :func:`rmsprop` or :func:`adam`;
        for a rule of another function only ``w`` and ``dw`` are checked.
    w, dw, config
        Its arguments.

    Raises
    ------
    TypeError, ValueError
        As the rule itself would, before it changes anything.
    """
    spec = next((spec for known, spec in _SPECS.items() if known is rule), None)
    if spec is None:
        check_grad("w", w, dw, "dw")
    else:
        _check(w, dw, config, **spec)


def _check(w, dw, config, settings, state=(), count=False, in_place=False):
    """Check everything a rule reads (see :func:`_checked`); return the settings as floats."""
    if config is not None and not isinstance(config, MutableMapping):
        raise TypeError(f"config must be a dict (or None), got {type(config).__name__}")
    check_grad("w", w, dw, "dw")
    if in_place and not getattr(w.flags, "writeable", True):
        raise ValueError("w is read-only; it is updated in place (pass a copy)")
    given = {} if config is None else config
    values = {key: check_real(key, given.get(key, default), low, high, high_open=high_open)
              for key, (default, low, high, high_open) in settings.items()}
    for key in state:
        _check_state(key, given.get(key), w)
    if count:  # t >= 0: the bias correction divides by 1 - beta**(t + 1)
        check_int("t", given.get("t", 0), 0)
    return values


def _checked(w, dw, config, settings, state=(), count=False, in_place=False):
    """Check everything a rule reads, then fill in the defaults; nothing is changed before.

    ``settings`` maps each setting to ``(default, low, high, high_open)``, the
    range :func:`check_real` checks; ``state`` names the config's arrays shaped
    like w (None or absent: created by the rule); ``count``: the config has
    adam's step count ``t`` (default 0); ``in_place``: the rule updates w itself.
    Returns the config, the settings' values as floats, and dw in w's dtype,
    so that next_w keeps w's dtype.
    """
    values = _check(w, dw, config, settings, state, count, in_place)
    config = {} if config is None else config
    for key, (default, *_) in settings.items():
        config.setdefault(key, default)
    if count:
        config.setdefault("t", 0)
    for key in state:  # a 0-d w's state as a number (a checkpoint's): an array, updated in place
        if isinstance(config.get(key), numbers.Real):
            config[key] = get_array_module(w).asarray(config[key], dtype=w.dtype)
    return config, values, dw.astype(w.dtype, copy=False)


def _next_w(w, value):
    """A rule's next parameter: an array of w's dtype, also for a 0-d w (whose arithmetic
    gives NumPy scalars, which the next step would refuse as no array)."""
    return get_array_module(w).asarray(value, dtype=w.dtype)


def _check_state(key, value, w):
    """A rule's state array ``key``: None (created by the rule) or as :func:`check_state`."""
    if value is not None:
        # cache, m and v are updated in place (adam would fail after updating m)
        check_state(key, value, w, "w", writeable=key in ("cache", "m", "v"))


def check_state(name: str, value: Any, param: Any, param_name: str, writeable: bool) -> None:
    """Check that the state array ``value`` is a float array shaped like ``param``, on its device.

    Broadcasting would otherwise turn a (2, 3) velocity for a (3,) w into a
    (2, 3) next_w. ``writeable``: the step updates ``value`` in place. A 0-d ``param``'s
    state may be a plain real number, as a checkpoint gives back its 0-d entries.
    """
    if param.ndim == 0 and isinstance(value, numbers.Real) and not isinstance(value, bool):
        return
    if not is_array(value):
        raise TypeError(f"{name} must be an array shaped like {param_name}, "
                        f"got {type(value).__name__}")
    check_float(value, name)
    get_array_module(param, value)  # one device
    if tuple(value.shape) != tuple(param.shape):
        raise ValueError(f"{name} has shape {tuple(value.shape)}, "
                         f"{param_name} has shape {tuple(param.shape)}")
    if writeable and not getattr(value.flags, "writeable", True):
        raise ValueError(f"{name} is read-only; it is updated in place (pass a copy)")


def sgd(w: Array, dw: Array, config: dict[str, Any] | None = None) -> tuple[Array, dict[str, Any]]:
    """Vanilla SGD, in place as in the course: ``w -= learning_rate * dw``.

    Parameters
    ----------
    w : Array
        The parameter, a float array; updated in place.
    dw : Array
        Its gradient, of w's shape.
    config : dict, optional
        ``learning_rate`` (default 1e-2); the defaults are written into it.

    Returns
    -------
    (Array, dict)
        ``w`` itself, updated, and the config.

    Raises
    ------
    TypeError, ValueError
        Before any change: when ``w`` is no writeable float array, ``dw`` no
        float array of its shape, ``config`` no dict, or the learning rate
        negative.

    Examples
    --------
    >>> import numpy as np
    >>> from fastconv.optim import sgd
    >>> w, config = sgd(np.array([1.0, 2.0]), np.array([0.5, -0.5]), {"learning_rate": 0.1})
    >>> w
    array([0.95, 2.05])
    """
    config, values, dw = _checked(w, dw, config, **_SPECS[sgd])
    w -= values["learning_rate"] * dw
    return w, config


def sgd_momentum(w: Array, dw: Array,
                 config: dict[str, Any] | None = None) -> tuple[Array, dict[str, Any]]:
    """SGD with momentum: ``v = momentum * v - learning_rate * dw; next_w = w + v``.

    For a constant learning rate this equals PyTorch's ``v = mu * v + g``,
    ``w -= lr * v``.

    Parameters
    ----------
    w : Array
        The parameter, a float array (not changed).
    dw : Array
        Its gradient, of w's shape.
    config : dict, optional
        ``learning_rate`` (1e-2), ``momentum`` (0.9), ``velocity`` (zeros like w).

    Returns
    -------
    (Array, dict)
        The next parameter and the config, its velocity updated.

    Raises
    ------
    TypeError, ValueError
        Before any change: when ``w`` is no float array, ``dw`` no float
        array of its shape, ``config`` no dict, ``velocity`` no float array
        of w's shape, or a setting out of range.

    Examples
    --------
    >>> import numpy as np
    >>> from fastconv.optim import sgd_momentum
    >>> w, config = sgd_momentum(np.zeros(2), np.array([1.0, -1.0]), {"learning_rate": 0.5})
    >>> w, config["velocity"]
    (array([-0.5,  0.5]), array([-0.5,  0.5]))
    """
    config, values, dw = _checked(w, dw, config, **_SPECS[sgd_momentum])
    v = config.get("velocity")
    v = get_array_module(w).zeros_like(w) if v is None else v
    v = values["momentum"] * v - values["learning_rate"] * dw
    config["velocity"] = v
    return _next_w(w, w + v), config


def rmsprop(w: Array, dw: Array,
            config: dict[str, Any] | None = None) -> tuple[Array, dict[str, Any]]:
    """RMSProp: ``next_w = w - learning_rate * dw / (sqrt(cache) + epsilon)``.

    ``cache = decay_rate * cache + (1 - decay_rate) * dw**2``, updated first.

    Parameters
    ----------
    w : Array
        The parameter, a float array (not changed).
    dw : Array
        Its gradient, of w's shape.
    config : dict, optional
        ``learning_rate`` (1e-2), ``decay_rate`` (0.99), ``epsilon`` (1e-8),
        ``cache`` (zeros like w).

    Returns
    -------
    (Array, dict)
        The next parameter and the config, its cache updated.

    Raises
    ------
    TypeError, ValueError
        Before any change: when ``w`` is no float array, ``dw`` no float
        array of its shape, ``config`` no dict, ``cache`` no writeable float
        array of w's shape, or a setting out of range.

    Examples
    --------
    >>> import numpy as np
    >>> from fastconv.optim import rmsprop
    >>> w, config = rmsprop(np.zeros(2), np.array([1.0, -2.0]), {"learning_rate": 0.01})
    >>> np.round(w, 6), config["cache"]
    (array([-0.1,  0.1]), array([0.01, 0.04]))
    """
    config, values, dw = _checked(w, dw, config, **_SPECS[rmsprop])
    if config.get("cache") is None:
        config["cache"] = get_array_module(w).zeros_like(w)
    step = rmsprop_direction(dw, config["cache"], values["decay_rate"], values["epsilon"])
    return _next_w(w, w - values["learning_rate"] * step), config


def adam(w: Array, dw: Array, config: dict[str, Any] | None = None) -> tuple[Array, dict[str, Any]]:
    """Adam with bias correction; ``t`` is incremented before use (the first update has t = 1).

    ``next_w = w - learning_rate * m_hat / (sqrt(v_hat) + epsilon)``, epsilon
    outside the square root as in the paper and PyTorch.

    Parameters
    ----------
    w : Array
        The parameter, a float array (not changed).
    dw : Array
        Its gradient, of w's shape.
    config : dict, optional
        ``learning_rate`` (1e-3), ``beta1`` (0.9), ``beta2`` (0.999),
        ``epsilon`` (1e-8), the moments ``m`` and ``v`` (zeros like w), ``t`` (0).

    Returns
    -------
    (Array, dict)
        The next parameter and the config, its moments and ``t`` updated.

    Raises
    ------
    TypeError, ValueError
        Before any change: when ``w`` is no float array, ``dw`` no float
        array of its shape, ``config`` no dict, ``m`` or ``v`` no writeable
        float array of w's shape, ``t`` no int >= 0, or a setting out of range.

    Examples
    --------
    >>> import numpy as np
    >>> from fastconv.optim import adam
    >>> w, config = adam(np.zeros(2), np.array([3.0, -0.5]), {"learning_rate": 0.1})
    >>> np.round(w, 6), config["t"]
    (array([-0.1,  0.1]), 1)
    """
    config, values, dw = _checked(w, dw, config, **_SPECS[adam])
    xp = get_array_module(w)
    for key in ("m", "v"):
        if config.get(key) is None:
            config[key] = xp.zeros_like(w)
    config["t"] = int(config["t"]) + 1
    step = adam_direction(dw, config["m"], config["v"], config["t"], values["beta1"],
                          values["beta2"], values["epsilon"])
    return _next_w(w, w - values["learning_rate"] * step), config


def _learning_rate(default):
    """The learning_rate setting with ``default``: >= 0, no upper bound."""
    return {"learning_rate": (default, 0.0, None, False)}


#: What each rule reads: its settings as ``name: (default, low, high, high_open)``,
#: its state arrays, whether its config counts steps (``t``), whether it updates w in place.
_SPECS: dict[Any, dict[str, Any]] = {
    sgd: dict(settings=_learning_rate(1e-2), in_place=True),
    sgd_momentum: dict(settings={**_learning_rate(1e-2), "momentum": (0.9, 0.0, 1.0, False)},
                       state=("velocity",)),
    rmsprop: dict(settings={**_learning_rate(1e-2), "decay_rate": (0.99, 0.0, 1.0, False),
                            "epsilon": (1e-8, 0.0, None, False)}, state=("cache",)),
    adam: dict(settings={**_learning_rate(1e-3), "beta1": (0.9, 0.0, 1.0, True),
                         "beta2": (0.999, 0.0, 1.0, True), "epsilon": (1e-8, 0.0, None, False)},
               state=("m", "v"), count=True),
}
