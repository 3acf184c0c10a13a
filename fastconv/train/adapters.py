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

from .. import optim
from ..backend import device_of, get_array_module, is_array, model_device, to_device
from ..checkpoint import CheckpointError
from ..functional.loss import softmax_cross_entropy

UPDATE_RULES = ("sgd", "sgd_momentum", "rmsprop", "adam")  # the course rules in fastconv.optim


class ModelAdapter:
    """What the Solver needs of a model: gradients, scores, and a copy of its state to keep or load.

    Subclasses implement :meth:`gradients` and :meth:`scores`.
    """

    def __init__(self, model):
        self.model = model

    @property
    def params(self):
        """The model's ``name -> array`` parameters (live)."""
        return self.model.params

    @property
    def buffers(self):
        """The model's saved-but-not-trained arrays (batch-norm statistics); {} if it has none."""
        return getattr(self.model, "buffers", {})

    @property
    def device(self):
        """'cpu' or 'gpu': where the model's arrays live."""
        return model_device(self.model)

    def gradients(self, X, y):
        """Forward and backward on one minibatch: ``(loss, grads)`` keyed like ``params``."""
        raise NotImplementedError

    def scores(self, X):
        """Class scores for ``X``, in evaluation mode."""
        raise NotImplementedError

    def zero_grads(self):
        """Zeros shaped like every parameter: the gradients of no samples at all."""
        return {k: get_array_module(v).zeros_like(v) for k, v in self.params.items()}

    def state(self):
        """Copies of the model's params and buffers (what "best parameters" means)."""
        state = {k: v.copy() for k, v in self.params.items()}
        state.update({k: v.copy() for k, v in self.buffers.items()})
        return state

    def check_state(self, state, source):
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

    def load_state(self, state, source):
        """Put ``state`` into the model, all of it checked (:meth:`check_state`) before any copy.

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
    """A model with the course interface: ``loss(X, y) -> (loss, grads)``, ``loss(X) -> scores``."""

    def gradients(self, X, y):
        """``model.loss(X, y)``."""
        return self.model.loss(X, y)

    def scores(self, X):
        """``model.loss(X)`` (the course models score in test mode without labels)."""
        return self.model.loss(X)


class ModuleModel(ModelAdapter):
    """A :class:`fastconv.nn.Module` trained with ``loss_fn(scores, y) -> (loss, dscores)``."""

    def __init__(self, model, loss_fn):
        super().__init__(model)
        self.loss_fn = loss_fn

    def gradients(self, X, y):
        """Forward in training mode, the loss, backward; ``(float loss, copy of model.grads)``."""
        self.model.train()
        scores = self.model.forward(X)
        loss, dscores = self.loss_fn(scores, y)
        self.model.backward(dscores)
        return float(loss), dict(self.model.grads)

    def scores(self, X):
        """Forward in evaluation mode; the model's mode is restored afterwards."""
        was = self.model.training
        self.model.eval()
        try:
            return self.model.forward(X)
        finally:
            self.model.train(was)


def adapt_model(model, loss_fn=None):
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
    """
    if loss_fn is None and hasattr(model, "loss"):
        return CourseModel(model)
    if not hasattr(model, "backward"):
        raise TypeError("model must have loss(X, y) (the course interface) or be a "
                        "fastconv.nn.Module (forward/backward) trained with a loss_fn")
    return ModuleModel(model, loss_fn or softmax_cross_entropy)


def resolve_rule(update_rule):
    """A course rule's function from its name in UPDATE_RULES, or the callable given."""
    if callable(update_rule):
        return update_rule
    if update_rule not in UPDATE_RULES:
        raise ValueError(f"unknown update_rule {update_rule!r}; choose one of "
                         f"{list(UPDATE_RULES)} or pass a callable")
    return getattr(optim, update_rule)


def adapt_optimizer(params, update_rule="sgd", optim_config=None, optimizer=None):
    """The optimizer object that updates ``params``, and the name checkpoints record for it.

    Parameters
    ----------
    params : mapping
        The model's parameters.
    update_rule : str or callable
        A name in UPDATE_RULES or ``rule(w, dw, config) -> (next_w, config)``;
        used when ``optimizer`` is None.
    optim_config : dict, optional
        The rule's settings, copied into one config per parameter.
    optimizer : object, optional
        An optimizer with ``step(grads)``, ``lr`` and ``state`` (fastconv.optim).

    Returns
    -------
    (optimizer, str)
        ``optimizer`` itself or a :class:`fastconv.optim.RuleOptimizer` for the
        rule, and ``"optimizer:<class>"`` or ``"rule:<update rule>"``.
    """
    if optimizer is not None:
        if optim_config:
            raise ValueError("give optim_config (course update rules) or optimizer, not both")
        return optimizer, f"optimizer:{type(optimizer).__name__}"
    rule = resolve_rule(update_rule)
    name = getattr(rule, "__name__", type(rule).__name__)
    return optim.RuleOptimizer(params, rule, optim_config), f"rule:{name}"
