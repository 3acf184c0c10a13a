"""The two ways a model trains, and the two ways its parameters are updated, behind one face each.

A model is either

- a course model: ``model.params`` (name -> array) and ``model.loss(X, y)``
  returning ``(loss, grads)`` (the scores for ``model.loss(X)``), as CS231n's
  classifiers and every ``fastconv.nn.models`` builder provide; or
- a :class:`fastconv.nn.Module` with a ``loss_fn(scores, y) -> (loss, dscores)``
  (default ``softmax_cross_entropy``): forward, loss, backward, ``model.grads``.

:func:`adapt_model` wraps either in a :class:`ModelAdapter`. The parameters
are updated by an optimizer object from :mod:`fastconv.optim` or by a course
update rule, which :func:`adapt_optimizer` wraps in an
:class:`fastconv.optim.RuleOptimizer`, so the Solver only ever calls
``optimizer.step(grads)`` and reads ``optimizer.lr`` and ``optimizer.state``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, MutableMapping
from typing import Any, TypeAlias

from .. import optim
from .._typing import Array
from ..backend import device_of, get_array_module, is_array, model_device, to_device
from ..checkpoint import CheckpointError
from ..functional.loss import softmax_cross_entropy
from ..optim import UpdateRule

UPDATE_RULES = ("sgd", "sgd_momentum", "rmsprop", "adam")  # the course rules in fastconv.optim

#: ``loss_fn(scores, y) -> (loss, dscores)``, e.g. fastconv.functional.softmax_cross_entropy.
LossFn: TypeAlias = Callable[[Array, Array], tuple[Any, Array]]


class ModelAdapter:
    """What the Solver needs of a model: gradients, scores, and a copy of its state to keep or load.

    Subclasses implement :meth:`gradients` and :meth:`scores`; :func:`adapt_model`
    picks the one for a model.

    Parameters
    ----------
    model : course model or fastconv.nn.Module
        The model, kept by reference.

    Examples
    --------
    >>> import fastconv.nn as nn
    >>> from fastconv.train.adapters import adapt_model
    >>> adapter = adapt_model(nn.mlp(3, 2, hidden_dims=(4,), seed=0))
    >>> sorted(adapter.params), adapter.device
    (['0.W', '0.b', '2.W', '2.b'], 'cpu')
    >>> saved = adapter.state()
    >>> adapter.params["0.b"] += 1.0
    >>> adapter.load_state(saved, "the saved state")
    >>> float(abs(adapter.params["0.b"]).max())
    0.0
    """

    def __init__(self, model: Any) -> None:
        self.model = model

    @property
    def params(self) -> MutableMapping[str, Array]:
        """The model's ``name -> array`` parameters (live)."""
        return self.model.params

    @property
    def buffers(self) -> MutableMapping[str, Array]:
        """The model's saved-but-not-trained arrays (batch-norm statistics); {} if it has none."""
        return getattr(self.model, "buffers", {})

    @property
    def device(self) -> str:
        """'cpu' or 'gpu': where the model's arrays live."""
        return model_device(self.model)

    def gradients(self, X: Array, y: Array) -> tuple[float, Mapping[str, Array]]:
        """Forward and backward on one minibatch.

        Parameters
        ----------
        X : Array
            The minibatch's inputs, on the model's device.
        y : Array
            Their integer labels.

        Returns
        -------
        (float, mapping)
            The loss and the gradients, keyed like ``params``.
        """
        raise NotImplementedError

    def scores(self, X: Array) -> Array:
        """Class scores for ``X``, in evaluation mode.

        Parameters
        ----------
        X : Array
            Inputs on the model's device.

        Returns
        -------
        Array
            (N, classes) scores.
        """
        raise NotImplementedError

    def zero_grads(self) -> dict[str, Array]:
        """Zeros shaped like every parameter: the gradients of no samples at all.

        Returns
        -------
        dict
            Name -> zeros of the parameter's shape, dtype and device.
        """
        return {k: get_array_module(v).zeros_like(v) for k, v in self.params.items()}

    def state(self) -> dict[str, Array]:
        """Copies of the model's params and buffers (what "best parameters" means).

        Returns
        -------
        dict
            Name -> a copy of each parameter and buffer.
        """
        state = {k: v.copy() for k, v in self.params.items()}
        state.update({k: v.copy() for k, v in self.buffers.items()})
        return state

    def check_state(self, state: Mapping[str, Any], source: str) -> dict[str, Array]:
        """``state`` checked entry by entry against the model, converted to its dtypes and device.

        Nothing in the model changes, so a caller can check everything it is
        about to load before loading any of it.

        Parameters
        ----------
        state : mapping
            Name -> array, one for every param and buffer of the model, no more.
        source : str
            What ``state`` came from, to start each error message.

        Returns
        -------
        dict
            Name -> a new array of the model's dtype on the model's device.

        Raises
        ------
        CheckpointError
            Naming ``source`` and the first entry that is missing, extra, not
            real-valued or misshapen.
        """
        expected = {**self.params, **self.buffers}
        missing = [name for name in expected if name not in state]
        if missing:
            more = f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""
            raise CheckpointError(f"{source}: missing {missing[0]!r}{more}")
        extra = [name for name in state if name not in expected]
        if extra:
            raise CheckpointError(f"{source}: {extra[0]!r} is not a parameter or buffer of the "
                                  f"model, which has {sorted(expected)}")
        return {name: self._checked_array(name, state[name], current, source)
                for name, current in expected.items()}

    def _checked_array(self, name, value, current, source):
        """``value`` as the model's array ``current``: real-valued and of its shape, or refused."""
        what = "parameter" if name in self.params else "buffer"
        # Complex or text would be cast (losing the imaginary part) or fail half-way.
        if not is_array(value) or value.dtype.kind not in "biuf":
            raise CheckpointError(f"{source}: {what} {name!r} must be a real-valued array, got "
                                  f"{getattr(value, 'dtype', type(value).__name__)}")
        if tuple(value.shape) != tuple(current.shape):
            raise CheckpointError(f"{source}: {what} {name!r} has shape {tuple(value.shape)}, "
                                  f"the model's has {tuple(current.shape)}")
        return to_device(value, device_of(current)).astype(current.dtype)

    def load_state(self, state: Mapping[str, Any], source: str) -> None:
        """Put ``state`` into the model, all of it checked (:meth:`check_state`) before any copy.

        Parameters
        ----------
        state : mapping
            Name -> array, one for every param and buffer of the model.
        source : str
            What ``state`` came from, to start each error message.

        Raises
        ------
        CheckpointError
            Naming ``source`` and the entry that is missing, extra or misshapen;
            the model is unchanged then.
        """
        checked = self.check_state(state, source)
        if hasattr(self.model, "load_state_dict"):  # a Module: copied in place, so optimizer
            self.model.load_state_dict(checked)  # objects keep the arrays they update
            return
        for name, value in checked.items():  # a course model: its dicts' arrays replaced
            (self.params if name in self.params else self.buffers)[name] = value


class CourseModel(ModelAdapter):
    """A model with the course interface: ``loss(X, y) -> (loss, grads)``, ``loss(X) -> scores``.

    Parameters
    ----------
    model : object
        With ``params`` and ``loss``, as every ``fastconv.nn.models`` builder's model.

    Examples
    --------
    >>> import numpy as np
    >>> import fastconv.nn as nn
    >>> from fastconv.train.adapters import CourseModel
    >>> adapter = CourseModel(nn.mlp(3, 2, hidden_dims=(4,), seed=0))
    >>> loss, grads = adapter.gradients(np.ones((5, 3), np.float32), np.array([0, 1, 0, 1, 1]))
    >>> sorted(grads) == sorted(adapter.params), adapter.scores(np.ones((5, 3), np.float32)).shape
    (True, (5, 2))
    """

    def gradients(self, X: Array, y: Array) -> tuple[float, Mapping[str, Array]]:
        """``model.loss(X, y)``: the loss and the gradients, keyed like ``params``.

        Parameters
        ----------
        X, y : Array
            The minibatch's inputs and labels.

        Returns
        -------
        (float, mapping)
        """
        return self.model.loss(X, y)

    def scores(self, X: Array) -> Array:
        """``model.loss(X)``: the course models score in test mode without labels.

        Parameters
        ----------
        X : Array
            Inputs on the model's device.

        Returns
        -------
        Array
            (N, classes) scores.
        """
        return self.model.loss(X)


class ModuleModel(ModelAdapter):
    """A :class:`fastconv.nn.Module` trained with ``loss_fn(scores, y) -> (loss, dscores)``.

    Parameters
    ----------
    model : fastconv.nn.Module
        The network (forward, backward, ``grads``).
    loss_fn : callable
        ``loss_fn(scores, y) -> (loss, dscores)``.

    Examples
    --------
    >>> import numpy as np
    >>> import fastconv.nn as nn
    >>> from fastconv.functional import softmax_cross_entropy
    >>> from fastconv.train.adapters import ModuleModel
    >>> adapter = ModuleModel(nn.Sequential(nn.Linear(3, 2, seed=0)), softmax_cross_entropy)
    >>> loss, grads = adapter.gradients(np.ones((4, 3), np.float32), np.array([0, 1, 1, 0]))
    >>> sorted(grads), adapter.model.training
    (['0.W', '0.b'], True)
    """

    def __init__(self, model: Any, loss_fn: LossFn) -> None:
        super().__init__(model)
        self.loss_fn = loss_fn

    def gradients(self, X: Array, y: Array) -> tuple[float, Mapping[str, Array]]:
        """Forward in training mode, the loss, backward.

        Parameters
        ----------
        X, y : Array
            The minibatch's inputs and labels.

        Returns
        -------
        (float, dict)
            The loss and a copy of ``model.grads``.
        """
        self.model.train()
        scores = self.model.forward(X)
        loss, dscores = self.loss_fn(scores, y)
        self.model.backward(dscores)
        return float(loss), dict(self.model.grads)

    def scores(self, X: Array) -> Array:
        """Forward in evaluation mode; the model's mode is restored afterwards.

        Parameters
        ----------
        X : Array
            Inputs on the model's device.

        Returns
        -------
        Array
            (N, classes) scores.
        """
        was = self.model.training
        self.model.eval()
        try:
            return self.model.forward(X)
        finally:
            self.model.train(was)


def adapt_model(model: Any, loss_fn: LossFn | None = None) -> ModelAdapter:
    """The :class:`ModelAdapter` for ``model``.

    Parameters
    ----------
    model : course model or fastconv.nn.Module
        Trained through ``model.loss(X, y)`` when it has ``loss`` and no
        ``loss_fn`` is given, else through forward/``loss_fn``/backward.
    loss_fn : callable, optional
        ``loss_fn(scores, y) -> (loss, dscores)`` for a Module (default
        softmax cross-entropy).

    Returns
    -------
    CourseModel or ModuleModel

    Raises
    ------
    TypeError
        When ``model`` has neither ``loss`` nor ``backward``.

    Examples
    --------
    >>> import fastconv.nn as nn
    >>> from fastconv.train.adapters import adapt_model
    >>> type(adapt_model(nn.mlp(3, 2, seed=0))).__name__
    'CourseModel'
    >>> type(adapt_model(nn.Sequential(nn.Linear(3, 2, seed=0)))).__name__
    'ModuleModel'
    """
    if loss_fn is None and hasattr(model, "loss"):
        return CourseModel(model)
    if not hasattr(model, "backward"):
        raise TypeError("model must have loss(X, y) (the course interface) or be a "
                        "fastconv.nn.Module (forward/backward) trained with a loss_fn")
    return ModuleModel(model, loss_fn or softmax_cross_entropy)


def resolve_rule(update_rule: str | UpdateRule) -> UpdateRule:
    """A course rule's function from its name in UPDATE_RULES, or the callable given.

    Parameters
    ----------
    update_rule : str or callable
        'sgd', 'sgd_momentum', 'rmsprop', 'adam', or ``rule(w, dw, config)``.

    Returns
    -------
    callable
        ``rule(w, dw, config) -> (next_w, config)``.

    Raises
    ------
    ValueError
        For a name that is not in UPDATE_RULES.

    Examples
    --------
    >>> from fastconv import optim
    >>> from fastconv.train.adapters import resolve_rule
    >>> resolve_rule("adam") is optim.adam
    True
    """
    if callable(update_rule):
        return update_rule
    if update_rule not in UPDATE_RULES:
        raise ValueError(f"unknown update_rule {update_rule!r}; choose one of "
                         f"{list(UPDATE_RULES)} or pass a callable")
    return getattr(optim, update_rule)


def adapt_optimizer(params: MutableMapping[str, Array], update_rule: str | UpdateRule = "sgd",
                    optim_config: Mapping[str, Any] | None = None,
                    optimizer: Any = None) -> tuple[Any, str]:
    """The optimizer object that updates ``params``, and the name checkpoints record for it.

    Parameters
    ----------
    params : mapping
        The model's parameters.
    update_rule : str or callable
        A name in UPDATE_RULES or ``rule(w, dw, config) -> (next_w, config)``;
        used when ``optimizer`` is None.
    optim_config : mapping, optional
        The rule's settings, copied into one config per parameter.
    optimizer : object, optional
        An optimizer with ``step(grads)``, ``lr`` and ``state`` (fastconv.optim).

    Returns
    -------
    (optimizer, str)
        ``optimizer`` itself or a :class:`fastconv.optim.RuleOptimizer` for the
        rule, and ``"optimizer:<class>"`` or ``"rule:<update rule>"``.

    Raises
    ------
    ValueError
        When both ``optim_config`` and ``optimizer`` are given, or for an
        unknown rule name.

    Examples
    --------
    >>> import numpy as np
    >>> from fastconv import optim
    >>> from fastconv.train.adapters import adapt_optimizer
    >>> params = {"w": np.zeros(3)}
    >>> opt, name = adapt_optimizer(params, "sgd_momentum", {"learning_rate": 0.1})
    >>> type(opt).__name__, name, opt.lr
    ('RuleOptimizer', 'rule:sgd_momentum', 0.1)
    >>> adapt_optimizer(params, optimizer=optim.Adam(params))[1]
    'optimizer:Adam'
    """
    if optimizer is not None:
        if optim_config:
            raise ValueError("give optim_config (course update rules) or optimizer, not both")
        return optimizer, f"optimizer:{type(optimizer).__name__}"
    rule = resolve_rule(update_rule)
    name = getattr(rule, "__name__", type(rule).__name__)
    return optim.RuleOptimizer(params, rule, optim_config), f"rule:{name}"
