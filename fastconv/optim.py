"""Optimisers: SGD (momentum, Nesterov), RMSProp, AdaGrad, Adam; weight decay; lr schedules.

Two interfaces over the same update math:

1. Optimiser objects that step a whole model::

       opt = Adam(model.params, lr=1e-3)   # any name -> array mapping (or an object with .params)
       loss, grads = model.loss(X, y)      # or: model.backward(...); grads = model.grads
       opt.step(grads)                     # updates every params[name] IN PLACE
       opt.lr = 5e-4                       # the learning rate may be changed at any time

   ``params`` is kept by reference: a :class:`fastconv.nn.Module`'s live
   ``params`` view or a course model's ``params`` dict. ``step(grads)`` reads
   ``grads[name]`` for every parameter name and updates the parameter array in
   place (so references to it stay valid). State (momentum buffers, moment
   estimates) is created with ``xp.zeros_like(param)``, i.e. on the parameter's
   device, the first time a parameter is stepped, and kept in ``opt.state[name]``
   under torch's names (momentum_buffer, square_avg, sum, exp_avg, exp_avg_sq,
   step); fastconv.train.Solver saves and restores ``opt.state`` and ``opt.lr``.
   The update formulas are PyTorch's (``torch.optim``), including
   ``weight_decay`` as an L2 term added to the gradient (``g + wd * w``), the
   momentum buffer ``v = mu * v + g`` with ``w -= lr * v`` (Nesterov:
   ``w -= lr * (g + mu * v)``), and ``eps`` added outside the square root, after
   Adam's bias correction (``w -= lr * m_hat / (sqrt(v_hat) + eps)``), which is
   also the paper's and CS231n's placement. Not offered: torch's RMSprop
   ``centered``/``momentum``, Adam's ``amsgrad``, AdaGrad's ``lr_decay``,
   SGD's ``dampening``, and decoupled (AdamW) weight decay.
   Schedules (:class:`StepLR`, :class:`ExponentialLR`) change ``opt.lr`` once per
   epoch when their ``step()`` is called.

2. The CS231n update rules ``rule(w, dw, config=None) -> (next_w, config)``:
   :func:`sgd`, :func:`sgd_momentum`, :func:`rmsprop`, :func:`adam`, with the
   course's config keys and defaults (learning_rate, momentum 0.9, decay_rate
   0.99, epsilon 1e-8, beta1 0.9, beta2 0.999, t) and its state stored in the
   config (velocity, cache, m, v). ``sgd_momentum`` uses the course's velocity
   form ``v = mu * v - lr * dw; w += v`` (equal to PyTorch's for a constant lr).
   A course Solver finds them with ``getattr(fastconv.optim, update_rule)``;
   :class:`RuleOptimizer` steps a whole model with one of them (or any rule of
   that signature), one config per parameter, as an optimiser object.
"""

from collections.abc import Mapping

from ._validate import check_float, check_int, check_real
from .backend import get_array_module, is_array


# --------------------------------------------------------------------------
# the update math shared by both interfaces (state arrays are updated in place)
# --------------------------------------------------------------------------

def _rmsprop_direction(g, square_avg, decay, eps):
    """Update the running mean of g**2 in place; return ``g / (sqrt(mean) + eps)``."""
    xp = get_array_module(g, square_avg)
    square_avg *= decay
    square_avg += (1 - decay) * g * g
    return g / (xp.sqrt(square_avg) + eps)


def _adam_direction(g, m, v, t, beta1, beta2, eps):
    """Update the moments in place; return ``m_hat / (sqrt(v_hat) + eps)`` for step t >= 1."""
    xp = get_array_module(g, m, v)
    m *= beta1
    m += (1 - beta1) * g
    v *= beta2
    v += (1 - beta2) * g * g
    return (m / (1 - beta1 ** t)) / (xp.sqrt(v / (1 - beta2 ** t)) + eps)


def _param_mapping(params):
    """``params``, the name -> array mapping it is (or holds as ``.params``), by reference."""
    if not isinstance(params, Mapping) and hasattr(params, "params"):
        params = params.params
    if not isinstance(params, Mapping):
        raise TypeError(f"params must be a name -> array mapping (e.g. model.params), "
                        f"got {type(params).__name__}")
    return params


def _grad_for(grads, name):
    """``grads[name]``, or a ValueError naming the parameter that has no gradient."""
    if name not in grads:
        raise ValueError(f"grads has no entry for parameter {name!r}")
    return grads[name]


def _check_grad(name, param, grad, grad_name):
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
# optimiser objects
# --------------------------------------------------------------------------

class Optimizer:
    """Base class: holds ``params`` (by reference), ``lr``, ``weight_decay`` and per-name ``state``.

    Subclasses implement ``_update(param, grad, state)``, changing ``param`` in place.
    """

    def __init__(self, params, lr, weight_decay=0.0):
        self.params = _param_mapping(params)
        self.lr = check_real("lr", lr, 0.0)
        self.weight_decay = check_real("weight_decay", weight_decay, 0.0)
        self.state = {}

    def step(self, grads):
        """Update every parameter in place from ``grads`` (same names and shapes as ``params``)."""
        for name, param in self.params.items():
            grad = _grad_for(grads, name)
            _check_grad(f"params[{name!r}]", param, grad, f"grads[{name!r}]")
            if self.weight_decay:
                grad = grad + self.weight_decay * param
            self._update(param, grad, self.state.setdefault(name, {}))

    def _update(self, param, grad, state):
        raise NotImplementedError

    def _zeros(self, state, key, like):
        """The state array ``key``, created as zeros on ``like``'s device on first use."""
        if key not in state:
            state[key] = get_array_module(like).zeros_like(like)
        return state[key]


class SGD(Optimizer):
    """Stochastic gradient descent, optionally with (Nesterov) momentum, as ``torch.optim.SGD``."""

    def __init__(self, params, lr=1e-3, momentum=0.0, nesterov=False, weight_decay=0.0):
        super().__init__(params, lr, weight_decay)
        self.momentum = check_real("momentum", momentum, 0.0, 1.0)
        if nesterov and momentum == 0:
            raise ValueError("nesterov=True needs momentum > 0")
        self.nesterov = nesterov

    def _update(self, param, grad, state):
        if self.momentum:
            buf = self._zeros(state, "momentum_buffer", param)
            buf *= self.momentum
            buf += grad
            grad = grad + self.momentum * buf if self.nesterov else buf
        param -= self.lr * grad


class RMSProp(Optimizer):
    """RMSProp: ``w -= lr * g / (sqrt(avg(g**2)) + eps)``, as ``torch.optim.RMSprop``."""

    def __init__(self, params, lr=1e-2, alpha=0.99, eps=1e-8, weight_decay=0.0):
        super().__init__(params, lr, weight_decay)
        self.alpha = check_real("alpha", alpha, 0.0, 1.0)
        self.eps = check_real("eps", eps, 0.0)

    def _update(self, param, grad, state):
        square_avg = self._zeros(state, "square_avg", param)
        param -= self.lr * _rmsprop_direction(grad, square_avg, self.alpha, self.eps)


class AdaGrad(Optimizer):
    """AdaGrad: ``w -= lr * g / (sqrt(sum(g**2)) + eps)``, as ``torch.optim.Adagrad``."""

    def __init__(self, params, lr=1e-2, eps=1e-10, weight_decay=0.0):
        super().__init__(params, lr, weight_decay)
        self.eps = check_real("eps", eps, 0.0)

    def _update(self, param, grad, state):
        xp = get_array_module(param)
        total = self._zeros(state, "sum", param)
        total += grad * grad
        param -= self.lr * grad / (xp.sqrt(total) + self.eps)


class Adam(Optimizer):
    """Adam with bias correction, as ``torch.optim.Adam`` (``betas=(beta1, beta2)``)."""

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0):
        super().__init__(params, lr, weight_decay)
        if not isinstance(betas, (tuple, list)) or len(betas) != 2:
            raise ValueError(f"betas must be a pair (beta1, beta2), got {betas!r}")
        self.betas = (check_real("betas[0]", betas[0], 0.0, 1.0, high_open=True),
                      check_real("betas[1]", betas[1], 0.0, 1.0, high_open=True))
        self.eps = check_real("eps", eps, 0.0)

    def _update(self, param, grad, state):
        m = self._zeros(state, "exp_avg", param)
        v = self._zeros(state, "exp_avg_sq", param)
        state["step"] = state.get("step", 0) + 1
        param -= self.lr * _adam_direction(grad, m, v, state["step"], *self.betas, self.eps)


# --------------------------------------------------------------------------
# learning-rate schedules (call step() once per epoch)
# --------------------------------------------------------------------------

class _Schedule:
    """Sets ``optimizer.lr = base_lr * factor(epoch)`` each time ``step()`` ends an epoch."""

    def __init__(self, optimizer):
        self.optimizer = optimizer
        self.base_lr = optimizer.lr
        self.epoch = 0

    def step(self):
        """End an epoch: advance the count and set the optimiser's learning rate."""
        self.epoch += 1
        self.optimizer.lr = self.base_lr * self.factor(self.epoch)
        return self.optimizer.lr


class ExponentialLR(_Schedule):
    """Per-epoch decay ``lr = base_lr * gamma**epoch`` (the CS231n Solver's ``lr_decay``)."""

    def __init__(self, optimizer, gamma):
        check_real("gamma", gamma, 0.0)
        super().__init__(optimizer)
        self.gamma = gamma

    def factor(self, epoch):
        """gamma ** epoch."""
        return self.gamma ** epoch


class StepLR(_Schedule):
    """Step schedule ``lr = base_lr * gamma**(epoch // step_size)``, as torch's StepLR."""

    def __init__(self, optimizer, step_size, gamma=0.1):
        step_size = check_int("step_size", step_size, 1)
        check_real("gamma", gamma, 0.0)
        super().__init__(optimizer)
        self.step_size = step_size
        self.gamma = gamma

    def factor(self, epoch):
        """gamma ** (epoch // step_size)."""
        return self.gamma ** (epoch // self.step_size)


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
    _check_grad("w", w, dw, "dw")
    return dw.astype(w.dtype, copy=False)


def sgd(w, dw, config=None):
    """Vanilla SGD, in place as in the course: ``w -= learning_rate * dw`` (default 1e-2)."""
    config = _config(config, learning_rate=1e-2)
    dw = _course_grad(w, dw)
    w -= check_real("learning_rate", config["learning_rate"], 0.0) * dw
    return w, config


def sgd_momentum(w, dw, config=None):
    """SGD with momentum: ``v = momentum * v - learning_rate * dw; next_w = w + v``.

    config: learning_rate (1e-2), momentum (0.9), velocity (zeros like w).
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


def rmsprop(w, dw, config=None):
    """RMSProp: ``cache = decay_rate * cache + (1 - decay_rate) * dw**2;
    next_w = w - learning_rate * dw / (sqrt(cache) + epsilon)``.

    config: learning_rate (1e-2), decay_rate (0.99), epsilon (1e-8), cache.
    """
    config = _config(config, learning_rate=1e-2, decay_rate=0.99, epsilon=1e-8)
    dw = _course_grad(w, dw)
    lr = check_real("learning_rate", config["learning_rate"], 0.0)
    if config.get("cache") is None:
        config["cache"] = get_array_module(w).zeros_like(w)
    step = _rmsprop_direction(dw, config["cache"],
                              check_real("decay_rate", config["decay_rate"], 0.0, 1.0),
                              check_real("epsilon", config["epsilon"], 0.0))
    return w - lr * step, config


def adam(w, dw, config=None):
    """Adam with bias correction; ``t`` is incremented before use (the first update has t = 1).

    config: learning_rate (1e-3), beta1 (0.9), beta2 (0.999), epsilon (1e-8), m, v, t (0).
    """
    config = _config(config, learning_rate=1e-3, beta1=0.9, beta2=0.999, epsilon=1e-8, t=0)
    dw = _course_grad(w, dw)
    lr = check_real("learning_rate", config["learning_rate"], 0.0)
    xp = get_array_module(w)
    for key in ("m", "v"):
        if config.get(key) is None:
            config[key] = xp.zeros_like(w)
    config["t"] += 1
    step = _adam_direction(dw, config["m"], config["v"], config["t"],
                           check_real("beta1", config["beta1"], 0.0, 1.0, high_open=True),
                           check_real("beta2", config["beta2"], 0.0, 1.0, high_open=True),
                           check_real("epsilon", config["epsilon"], 0.0))
    return w - lr * step, config


# --------------------------------------------------------------------------
# a course update rule as an optimiser object
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
    config : dict, optional
        The settings every parameter's config starts from (the course's
        ``optim_config``, e.g. ``{"learning_rate": 1e-3}``); copied per parameter.

    Attributes
    ----------
    state : dict
        ``name -> config``, the rule's own state (velocity, cache, m, v, t) and
        settings for each parameter, as the course Solver's ``optim_configs``.
    """

    def __init__(self, params, rule, config=None):
        if not callable(rule):
            raise TypeError(f"rule must be callable as rule(w, dw, config), got {rule!r}")
        self.params = _param_mapping(params)
        self.rule = rule
        self.config = dict(config or {})
        self.state = {name: dict(self.config) for name in self.params}

    def step(self, grads):
        """Apply the rule to every parameter (in ``state``'s order) with ``grads[name]``."""
        for name, config in self.state.items():
            self.params[name], self.state[name] = self.rule(self.params[name],
                                                            _grad_for(grads, name), config)

    @property
    def lr(self):
        """The configs' ``learning_rate`` (one for all parameters); None until a rule sets it.

        The course rules set their default on their first call when the config has none.
        """
        for config in self.state.values():
            return config.get("learning_rate")
        return self.config.get("learning_rate")

    @lr.setter
    def lr(self, value):
        for config in self.state.values():
            config["learning_rate"] = value
