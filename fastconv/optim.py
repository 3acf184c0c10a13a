"""Optimizers: SGD (momentum, Nesterov), RMSProp, AdaGrad, Adam; weight decay; lr schedules.

Two interfaces over the same update math:

1. Optimizer objects that step a whole model::

       opt = Adam(model.params, lr=1e-3)   # any name -> array mapping (or an object with .params)
       loss, grads = model.loss(X, y)      # or: model.backward(...); grads = model.grads
       opt.step(grads)                     # updates every params[name] IN PLACE
       opt.lr = 5e-4                       # the learning rate may be changed at any time

   ``params`` is kept by reference (a :class:`fastconv.nn.Module`'s live
   ``params`` view or a course model's dict) and each array is updated in
   place, so references to it stay valid. Per-parameter state is created on the
   parameter's device at its first step and kept in ``opt.state[name]`` under
   torch's names (momentum_buffer, square_avg, sum, exp_avg, exp_avg_sq, step);
   fastconv.train.Solver saves and restores ``opt.state`` and ``opt.lr``. The
   formulas are PyTorch's (``torch.optim``), ``weight_decay`` an L2 term added
   to the gradient. Not offered: torch's RMSprop ``centered``/``momentum``,
   Adam's ``amsgrad``, AdaGrad's ``lr_decay``, SGD's ``dampening``, and
   decoupled (AdamW) weight decay. Schedules (:class:`StepLR`,
   :class:`ExponentialLR`) change ``opt.lr`` once per epoch.

2. The CS231n update rules ``rule(w, dw, config=None) -> (next_w, config)``:
   :func:`sgd`, :func:`sgd_momentum`, :func:`rmsprop`, :func:`adam`, with the
   course's config keys and defaults and their state in the config (velocity,
   cache, m, v, t). A course Solver finds them with
   ``getattr(fastconv.optim, update_rule)``; :class:`RuleOptimizer` steps a
   whole model with one of them (or any rule of that signature).
"""

from __future__ import annotations

from collections.abc import Mapping, MutableMapping
from typing import Any, Protocol, TypeAlias

from ._lr_schedules import ExponentialLR, StepLR
from ._typing import Array
from ._update_rules import (UpdateRule, adam, adam_direction, check_grads, check_rule_inputs,
                            check_step, rmsprop, rmsprop_direction, sgd, sgd_momentum)
from ._validate import check_bool, check_real
from .backend import get_array_module

__all__ = ["Optimizer", "SGD", "RMSProp", "AdaGrad", "Adam", "ExponentialLR", "StepLR",
           "RuleOptimizer", "UpdateRule", "sgd", "sgd_momentum", "rmsprop", "adam"]


class _HasParams(Protocol):
    @property
    def params(self) -> MutableMapping[str, Array]: ...


#: What an optimizer updates: a ``name -> array`` mapping or a model holding one as ``.params``.
Params: TypeAlias = MutableMapping[str, Array] | _HasParams


def _param_mapping(params):
    """``params``, the name -> array mapping it is (or holds as ``.params``), by reference."""
    if not isinstance(params, Mapping) and hasattr(params, "params"):
        params = params.params
    if not isinstance(params, Mapping):
        raise TypeError(f"params must be a name -> array mapping (e.g. model.params), "
                        f"got {type(params).__name__}")
    return params


# --------------------------------------------------------------------------
# optimizer objects
# --------------------------------------------------------------------------

class Optimizer:
    """Base class: holds ``params`` (by reference), ``lr``, ``weight_decay`` and per-name ``state``.

    Subclasses implement ``_update(param, grad, state)``, changing ``param`` in place;
    :meth:`step` adds the weight decay to the gradient first. The state arrays named in
    ``_state_arrays`` are checked against their parameter, with every gradient, first.

    Parameters
    ----------
    params : mapping or object with ``.params``
        ``name -> float array``, kept by reference (e.g. ``model.params``).
    lr : float
        The learning rate, >= 0.
    weight_decay : float, default 0
        The L2 term: each gradient becomes ``g + weight_decay * w``.

    Raises
    ------
    TypeError, ValueError
        For ``params`` that is no mapping, or a setting out of range.

    Examples
    --------
    >>> import numpy as np
    >>> from fastconv.optim import Optimizer
    >>> class SignSGD(Optimizer):
    ...     def _update(self, param, grad, state):
    ...         param -= self.lr * np.sign(grad)
    >>> params = {"w": np.array([1.0, 1.0])}
    >>> SignSGD(params, lr=0.5).step({"w": np.array([3.0, -0.1])})
    >>> params["w"]
    array([0.5, 1.5])
    """

    def __init__(self, params: Params, lr: float, weight_decay: float = 0.0) -> None:
        self.params = _param_mapping(params)
        self.lr = check_real("lr", lr, 0.0)
        self.weight_decay = check_real("weight_decay", weight_decay, 0.0)
        self.state: dict[str, dict[str, Any]] = {}

    _state_arrays: tuple[str, ...] = ()  # state keys of arrays shaped as their parameter

    def step(self, grads: Mapping[str, Array]) -> None:
        """Update every parameter in place from its gradient.

        Parameters
        ----------
        grads : mapping
            ``name -> gradient`` for every name in ``params``, each of its
            parameter's shape and device.

        Raises
        ------
        ValueError
            Naming the parameter without a gradient or whose gradient has
            another shape, a read-only parameter, or a state array of another
            shape; a negative ``lr``.
        TypeError
            When ``grads`` is no mapping, a parameter no float array, a
            gradient no float array, or ``lr`` no real number.

        Notes
        -----
        All is checked before the first parameter changes: an error changes nothing.
        """
        self._check_step(grads)
        for name, param in self.params.items():
            grad = grads[name]
            if self.weight_decay:
                grad = grad + self.weight_decay * param
            self._update(param, grad, self.state.setdefault(name, {}))

    def _check_step(self, grads, params=None):
        """Check a step with ``grads`` on ``params`` (default ``self.params``), changing
        nothing; return the mapping."""
        params = self.params if params is None else _param_mapping(params)
        # lr is set at will between steps: an array would broadcast, a negative value ascend
        check_real("lr", self.lr, 0.0)
        check_step(params, grads, self.state, self._state_arrays)
        return params

    def _update(self, param, grad, state):  # each subclass's rule, changing param in place
        raise NotImplementedError

    def _zeros(self, state, key, like):
        """The state array ``key``, created as zeros on ``like``'s device on first use."""
        if key not in state:
            state[key] = get_array_module(like).zeros_like(like)
        return state[key]


class SGD(Optimizer):
    """Stochastic gradient descent, optionally with (Nesterov) momentum, as ``torch.optim.SGD``.

    With momentum ``v = momentum * v + g`` and ``w -= lr * v`` (Nesterov:
    ``w -= lr * (g + momentum * v)``); without, ``w -= lr * g``.

    Parameters
    ----------
    params : mapping or object with ``.params``
        ``name -> float array``, kept by reference.
    lr : float, default 1e-3
    momentum : float, default 0
        In [0, 1].
    nesterov : bool, default False
        Needs ``momentum > 0``.
    weight_decay : float, default 0

    Raises
    ------
    TypeError
        For a setting that is no number, or a ``nesterov`` that is no bool.
    ValueError
        For a setting out of range, or ``nesterov`` without momentum.

    Examples
    --------
    >>> import numpy as np
    >>> from fastconv.optim import SGD
    >>> params = {"w": np.array([1.0, 2.0])}
    >>> opt = SGD(params, lr=0.5, momentum=0.5)
    >>> for _ in range(2):
    ...     opt.step({"w": np.array([1.0, -1.0])})
    >>> params["w"], opt.state["w"]["momentum_buffer"]
    (array([-0.25,  3.25]), array([ 1.5, -1.5]))
    """

    def __init__(self, params: Params, lr: float = 1e-3, momentum: float = 0.0,
                 nesterov: bool = False, weight_decay: float = 0.0) -> None:
        super().__init__(params, lr, weight_decay)
        self.momentum = check_real("momentum", momentum, 0.0, 1.0)
        # a flag taken by truth would read nesterov="False" as on
        self.nesterov = check_bool("nesterov", nesterov)
        if self.nesterov and self.momentum == 0:
            raise ValueError("nesterov=True needs momentum > 0")

    _state_arrays = ("momentum_buffer",)

    def _update(self, param, grad, state):
        if self.momentum:
            buf = self._zeros(state, "momentum_buffer", param)
            buf *= self.momentum
            buf += grad
            grad = grad + self.momentum * buf if self.nesterov else buf
        param -= self.lr * grad


class RMSProp(Optimizer):
    """RMSProp: ``w -= lr * g / (sqrt(avg(g**2)) + eps)``, as ``torch.optim.RMSprop``.

    ``avg(g**2)`` is the running mean ``alpha * avg + (1 - alpha) * g**2``.

    Parameters
    ----------
    params : mapping or object with ``.params``
        ``name -> float array``, kept by reference.
    lr : float, default 1e-2
    alpha : float, default 0.99
        The running mean's decay, in [0, 1].
    eps : float, default 1e-8
    weight_decay : float, default 0

    Raises
    ------
    ValueError
        For a setting out of range.

    Examples
    --------
    >>> import numpy as np
    >>> from fastconv.optim import RMSProp
    >>> params = {"w": np.zeros(2)}
    >>> RMSProp(params, lr=0.01).step({"w": np.array([1.0, -2.0])})
    >>> np.round(params["w"], 6)
    array([-0.1,  0.1])
    """

    def __init__(self, params: Params, lr: float = 1e-2, alpha: float = 0.99,
                 eps: float = 1e-8, weight_decay: float = 0.0) -> None:
        super().__init__(params, lr, weight_decay)
        self.alpha = check_real("alpha", alpha, 0.0, 1.0)
        self.eps = check_real("eps", eps, 0.0)

    _state_arrays = ("square_avg",)

    def _update(self, param, grad, state):
        square_avg = self._zeros(state, "square_avg", param)
        param -= self.lr * rmsprop_direction(grad, square_avg, self.alpha, self.eps)


class AdaGrad(Optimizer):
    """AdaGrad: ``w -= lr * g / (sqrt(sum(g**2)) + eps)``, as ``torch.optim.Adagrad``.

    Parameters
    ----------
    params : mapping or object with ``.params``
        ``name -> float array``, kept by reference.
    lr : float, default 1e-2
    eps : float, default 1e-10
    weight_decay : float, default 0

    Raises
    ------
    ValueError
        For a setting out of range.

    Examples
    --------
    >>> import numpy as np
    >>> from fastconv.optim import AdaGrad
    >>> params = {"w": np.zeros(2)}
    >>> opt = AdaGrad(params, lr=0.1)
    >>> opt.step({"w": np.array([3.0, -4.0])})
    >>> np.round(params["w"], 6), opt.state["w"]["sum"]
    (array([-0.1,  0.1]), array([ 9., 16.]))
    """

    def __init__(self, params: Params, lr: float = 1e-2, eps: float = 1e-10,
                 weight_decay: float = 0.0) -> None:
        super().__init__(params, lr, weight_decay)
        self.eps = check_real("eps", eps, 0.0)

    _state_arrays = ("sum",)

    def _update(self, param, grad, state):
        xp = get_array_module(param)
        total = self._zeros(state, "sum", param)
        total += grad * grad
        param -= self.lr * grad / (xp.sqrt(total) + self.eps)


class Adam(Optimizer):
    """Adam with bias correction, as ``torch.optim.Adam``.

    ``w -= lr * m_hat / (sqrt(v_hat) + eps)``, eps outside the square root
    after the bias correction, as in the paper and CS231n.

    Parameters
    ----------
    params : mapping or object with ``.params``
        ``name -> float array``, kept by reference.
    lr : float, default 1e-3
    betas : (float, float), default (0.9, 0.999)
        The moments' decays, each in [0, 1).
    eps : float, default 1e-8
    weight_decay : float, default 0

    Raises
    ------
    ValueError
        For a setting out of range or ``betas`` that is no pair.

    Examples
    --------
    >>> import numpy as np
    >>> from fastconv.optim import Adam
    >>> params = {"w": np.zeros(2)}
    >>> opt = Adam(params, lr=0.1)
    >>> opt.step({"w": np.array([3.0, -0.5])})
    >>> np.round(params["w"], 6), opt.state["w"]["step"]
    (array([-0.1,  0.1]), 1)
    """

    def __init__(self, params: Params, lr: float = 1e-3,
                 betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 0.0) -> None:
        super().__init__(params, lr, weight_decay)
        if not isinstance(betas, (tuple, list)) or len(betas) != 2:
            raise ValueError(f"betas must be a pair (beta1, beta2), got {betas!r}")
        self.betas = (check_real("betas[0]", betas[0], 0.0, 1.0, high_open=True),
                      check_real("betas[1]", betas[1], 0.0, 1.0, high_open=True))
        self.eps = check_real("eps", eps, 0.0)

    _state_arrays = ("exp_avg", "exp_avg_sq")

    def _update(self, param, grad, state):
        m = self._zeros(state, "exp_avg", param)
        v = self._zeros(state, "exp_avg_sq", param)
        state["step"] = state.get("step", 0) + 1
        param -= self.lr * adam_direction(grad, m, v, state["step"], *self.betas, self.eps)


# --------------------------------------------------------------------------
# a course update rule as an optimizer object
# --------------------------------------------------------------------------

class RuleOptimizer:
    """A course update rule stepping every parameter of a model, one config per parameter.

    The object interface (``step(grads)``, ``lr``, ``state``) over the course
    interface: each step applies ``rule(w, dw, config) -> (next_w, config)`` to
    every parameter in turn and stores ``next_w`` back into ``params[name]``.

    Parameters
    ----------
    params : mapping or object with ``.params``
        ``name -> array``, kept by reference (e.g. ``model.params``).
    rule : callable
        ``rule(w, dw, config) -> (next_w, config)``: :func:`sgd`,
        :func:`sgd_momentum`, :func:`rmsprop`, :func:`adam` or one of your own.
    config : mapping, optional
        The settings every parameter's config starts from (the course's
        ``optim_config``, e.g. ``{"learning_rate": 1e-3}``); copied per parameter.

    Attributes
    ----------
    state : dict
        ``name -> config``, the rule's own state (velocity, cache, m, v, t) and
        settings for each parameter, as the course Solver's ``optim_configs``.

    Raises
    ------
    TypeError
        When ``rule`` is not callable or ``params`` is no mapping.

    Examples
    --------
    >>> import numpy as np
    >>> from fastconv.optim import RuleOptimizer, sgd_momentum
    >>> params = {"w": np.zeros(2)}
    >>> opt = RuleOptimizer(params, sgd_momentum, {"learning_rate": 0.5})
    >>> opt.step({"w": np.array([1.0, -1.0])})
    >>> params["w"], opt.lr, sorted(opt.state["w"])
    (array([-0.5,  0.5]), 0.5, ['learning_rate', 'momentum', 'velocity'])
    """

    def __init__(self, params: Params, rule: UpdateRule,
                 config: Mapping[str, Any] | None = None) -> None:
        if not callable(rule):
            raise TypeError(f"rule must be callable as rule(w, dw, config), got {rule!r}")
        self.params = _param_mapping(params)
        self.rule = rule
        self.config = dict(config or {})
        self.state = {name: dict(self.config) for name in self.params}

    def step(self, grads: Mapping[str, Array]) -> None:
        """Apply the rule to every parameter (in ``state``'s order) with its gradient.

        Parameters
        ----------
        grads : mapping
            ``name -> gradient`` for every name in ``params``.

        Raises
        ------
        TypeError, ValueError
            Before any change: for ``grads`` that is no mapping, or naming the
            parameter without a float gradient of its shape or (course rules)
            whose config the rule would refuse.

        Notes
        -----
        A rule of your own runs on every parameter before any result is
        stored: one that raises without changing its arguments changes nothing.
        """
        check_grads({name: self.params[name] for name in self.state}, grads)
        for name, config in self.state.items():
            try:
                check_rule_inputs(self.rule, self.params[name], grads[name], config)
            except (TypeError, ValueError) as error:
                raise type(error)(f"state[{name!r}]: {error}") from error
        results = [(name, self.rule(self.params[name], grads[name], config))
                   for name, config in self.state.items()]
        for name, (next_w, config) in results:
            self.params[name], self.state[name] = next_w, config

    @property
    def lr(self) -> float | None:
        """The configs' ``learning_rate`` (one for all parameters); None until a rule sets it.

        The course rules set their default on their first call when the config has none.
        """
        for config in self.state.values():
            return config.get("learning_rate")
        return self.config.get("learning_rate")

    @lr.setter
    def lr(self, value: float) -> None:
        for config in self.state.values():
            config["learning_rate"] = value
