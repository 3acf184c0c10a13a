"""The CS231n update rules, and the update math they share with fastconv.optim's optimizers.

Each rule is ``rule(w, dw, config=None) -> (next_w, config)`` with the course's
config keys and defaults, its state stored in the config. Users reach them as
``fastconv.optim.sgd`` and so on; the optimizer objects of :mod:`fastconv.optim`
call the same ``*_direction`` functions, so both interfaces do the same arithmetic.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeAlias

from ._typing import Array
from ._validate import check_float, check_real
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
    """Check that ``grad`` is an array shaped like the parameter ``param`` (called ``name``)."""
    if not is_array(param):
        raise TypeError(f"{name} must be an array (updated in place), got {type(param).__name__}; "
                        f"wrap a scalar as np.array(value)")
    check_float(param, name)  # updated in place: an integer array cannot take the step
    if not is_array(grad):
        raise TypeError(f"{grad_name} must be an array, got {type(grad).__name__}")
    get_array_module(param, grad)  # one device
    if tuple(grad.shape) != tuple(param.shape):
        raise ValueError(f"{grad_name} has shape {tuple(grad.shape)}, "
                         f"{name} has shape {tuple(param.shape)}")


# --------------------------------------------------------------------------
# the CS231n update rules: rule(w, dw, config=None) -> (next_w, config)
# --------------------------------------------------------------------------

def _config(config, **defaults):
    config = {} if config is None else config
    for key, value in defaults.items():
        config.setdefault(key, value)
    return config


def _course_grad(w, dw):
    """``dw`` checked against ``w`` and in w's dtype, so that next_w keeps w's dtype."""
    check_grad("w", w, dw, "dw")
    return dw.astype(w.dtype, copy=False)


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
        When ``w`` is no float array, ``dw`` has another shape, or the
        learning rate is negative.

    Examples
    --------
    >>> import numpy as np
    >>> from fastconv.optim import sgd
    >>> w, config = sgd(np.array([1.0, 2.0]), np.array([0.5, -0.5]), {"learning_rate": 0.1})
    >>> w
    array([0.95, 2.05])
    """
    config = _config(config, learning_rate=1e-2)
    dw = _course_grad(w, dw)
    w -= check_real("learning_rate", config["learning_rate"], 0.0) * dw
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
        When ``w`` is no float array, ``dw`` has another shape, or a setting
        is out of range.

    Examples
    --------
    >>> import numpy as np
    >>> from fastconv.optim import sgd_momentum
    >>> w, config = sgd_momentum(np.zeros(2), np.array([1.0, -1.0]), {"learning_rate": 0.5})
    >>> w, config["velocity"]
    (array([-0.5,  0.5]), array([-0.5,  0.5]))
    """
    config = _config(config, learning_rate=1e-2, momentum=0.9)
    dw = _course_grad(w, dw)
    lr = check_real("learning_rate", config["learning_rate"], 0.0)
    momentum = check_real("momentum", config["momentum"], 0.0, 1.0)
    v = config.get("velocity")
    v = get_array_module(w).zeros_like(w) if v is None else v
    v = momentum * v - lr * dw
    config["velocity"] = v
    return w + v, config


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
        When ``w`` is no float array, ``dw`` has another shape, or a setting
        is out of range.

    Examples
    --------
    >>> import numpy as np
    >>> from fastconv.optim import rmsprop
    >>> w, config = rmsprop(np.zeros(2), np.array([1.0, -2.0]), {"learning_rate": 0.01})
    >>> np.round(w, 6), config["cache"]
    (array([-0.1,  0.1]), array([0.01, 0.04]))
    """
    config = _config(config, learning_rate=1e-2, decay_rate=0.99, epsilon=1e-8)
    dw = _course_grad(w, dw)
    lr = check_real("learning_rate", config["learning_rate"], 0.0)
    if config.get("cache") is None:
        config["cache"] = get_array_module(w).zeros_like(w)
    step = rmsprop_direction(dw, config["cache"],
                             check_real("decay_rate", config["decay_rate"], 0.0, 1.0),
                             check_real("epsilon", config["epsilon"], 0.0))
    return w - lr * step, config


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
        When ``w`` is no float array, ``dw`` has another shape, or a setting
        is out of range.

    Examples
    --------
    >>> import numpy as np
    >>> from fastconv.optim import adam
    >>> w, config = adam(np.zeros(2), np.array([3.0, -0.5]), {"learning_rate": 0.1})
    >>> np.round(w, 6), config["t"]
    (array([-0.1,  0.1]), 1)
    """
    config = _config(config, learning_rate=1e-3, beta1=0.9, beta2=0.999, epsilon=1e-8, t=0)
    dw = _course_grad(w, dw)
    lr = check_real("learning_rate", config["learning_rate"], 0.0)
    xp = get_array_module(w)
    for key in ("m", "v"):
        if config.get(key) is None:
            config[key] = xp.zeros_like(w)
    config["t"] += 1
    step = adam_direction(dw, config["m"], config["v"], config["t"],
                          check_real("beta1", config["beta1"], 0.0, 1.0, high_open=True),
                          check_real("beta2", config["beta2"], 0.0, 1.0, high_open=True),
                          check_real("epsilon", config["epsilon"], 0.0))
    return w - lr * step, config
