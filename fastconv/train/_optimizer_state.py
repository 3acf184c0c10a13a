"""A Solver checkpoint's optimizer state, read from its ``optim/<param>/<key>`` entries and checked.

:func:`optimizer_state` turns the entries into the optimizer's ``state``
(``{param: {key: value}}``) and :func:`check_optimizer_state` refuses what
the resumed run's steps would refuse, or would use to go wrong, as a
:class:`fastconv.checkpoint.CheckpointError` naming the file and the entry.
Both change nothing: fastconv.train.checkpoints.restore loads the state only
once every entry of the file is checked.
"""

from __future__ import annotations

import copy
import numbers

import numpy

from .. import optim
from .._update_rules import check_rule_inputs, check_step
from ..backend import get_array_module, is_array, to_device
from ..checkpoint import CheckpointError


def optimizer_state(entries, source, model, array_keys):
    """``{param: {key: value}}`` from "optim/<param>/<key>" entries, checked against the model.

    A 0-d entry is a setting or counter (any plain scalar a rule's config may
    hold, complex aside); any other is a per-element state array, real-valued
    and shaped like its parameter, converted to its dtype and device.

    Parameters
    ----------
    entries : mapping
        ``"<param>/<key>" -> array``: the checkpoint's ``optim/`` section.
    source : str
        The checkpoint, to start each message.
    model : fastconv.train.adapters.ModelAdapter
        The model the state is for.
    array_keys : tuple of str
        The keys the optimizer updates in place as arrays (an optimizer
        object's ``_state_arrays``): a 0-d parameter's stay 0-d arrays, since
        a number would only be rebound by the step's ``*=``, never updated.
        (A course rule makes its 0-d parameter's numbers arrays itself.)

    Returns
    -------
    dict
        ``{param: {key: value}}``, for the parameters with entries.

    Raises
    ------
    CheckpointError
        For state of no parameter of the model, or a state array that is not
        real-valued or not shaped like its parameter.
    """
    device, params = model.device, model.params
    state = {}
    for key, value in entries.items():
        name, _, field = key.rpartition("/")
        if name not in params:
            raise CheckpointError(f"{source} has optimizer state for {name!r}, "
                                  "which is not a parameter of this model")
        param = params[name]
        if (value.ndim == 0 and value.dtype.kind in "biufU"
                and not (param.ndim == 0 and field in array_keys)):
            state.setdefault(name, {})[field] = value.item()
            continue
        want = tuple(param.shape)
        if value.dtype.kind not in "biuf" or tuple(value.shape) != want:
            raise CheckpointError(f"{source}: optimizer state {field!r} of parameter {name!r} "
                                  f"is a {value.dtype} array of shape {tuple(value.shape)}; "
                                  f"the parameter is a real array of shape {want}")
        state.setdefault(name, {})[field] = to_device(value, device).astype(param.dtype)
    return state


#: The course rules and the optimizer classes whose state this module knows the meaning of.
_COURSE_RULES = (optim.sgd, optim.sgd_momentum, optim.rmsprop, optim.adam)
_OPTIMIZERS = (optim.SGD, optim.RMSProp, optim.AdaGrad, optim.Adam)

#: Their running means or sums of squared gradients (rmsprop's cache, adam's v, ...): the
#: step takes their square root, so a negative element makes the losses NaN.
_SQUARED = frozenset({"cache", "v", "square_avg", "sum", "exp_avg_sq"})


def check_optimizer_state(optimizer, update, state, params, steps, lr, source):
    """Refuse optimizer ``state`` that the resumed steps would refuse, or use to go wrong.

    Parameters
    ----------
    optimizer : object
        The Solver's optimizer, of the kind that wrote the checkpoint.
    update : str
        Its name, as ``meta/update`` records it, for the messages.
    state : dict
        ``{param: {key: value}}``, as :func:`optimizer_state` returns it.
    params : dict
        Name -> the array each parameter will hold, standing in for its shape, dtype and device.
    steps : int
        The steps the checkpoint's run has taken (its loss history's length).
    lr : float or None
        Its ``meta/lr``.
    source : str
        The checkpoint, to start each message.

    Raises
    ------
    CheckpointError
        Naming ``source`` and the entry: one the optimizer's step checks refuse
        (a course rule's settings out of range, a count that is no int >= 0, a
        state array that is a number or of another shape); for the updates
        fastconv defines, one that is not finite, a negative squared-gradient
        average, or entries missing; for a rule's RuleOptimizer, a ``meta/lr``
        that is not the first parameter's learning_rate, which the writer reads it from.

    Notes
    -----
    Other updates (a rule or optimizer subclass of your own) get their own
    step checks only: what their state means, and whether each parameter
    has the same, is not known here.
    """
    check = _step_check(optimizer)
    writes = _first_step_keys(optimizer)
    for name, entries in state.items():
        for key, value in entries.items():
            entry = f"optim/{name}/{key}"
            if check is not None:
                try:
                    check(name, params[name], key, value)
                except (TypeError, ValueError) as error:
                    raise CheckpointError(f"{source}: entry {entry!r} cannot be used by "
                                          f"{update}: {error}") from error
            if writes is not None and key in writes:
                _check_values(value, key, entry, update, source)
    if writes is not None:
        _check_complete(state, params, writes if steps else frozenset(), steps, update, source)
    if isinstance(optimizer, optim.RuleOptimizer) and lr is not None and params:
        # RuleOptimizer.lr, which meta/lr is written from, is the first parameter's learning_rate.
        first = next(iter(params))
        written = state.get(first, {}).get("learning_rate")
        if written != lr:
            raise CheckpointError(f"{source}: entry 'meta/lr' is {lr}, but "
                                  f"'optim/{first}/learning_rate', which it is written from, "
                                  f"is {'missing' if written is None else written}")


def _step_check(optimizer):
    """``check(name, param, key, value)``: what ``optimizer``'s step checks of one state entry.

    The step's own checks, given only that entry (a course rule fills in its
    defaults for the rest), so an error is that entry's. None for an
    optimizer that is neither a RuleOptimizer nor an :class:`fastconv.optim.Optimizer`.
    """
    if isinstance(optimizer, optim.RuleOptimizer):
        rule = optimizer.rule
        return lambda name, param, key, value: check_rule_inputs(rule, param, param,
                                                                 {key: value})
    if isinstance(optimizer, optim.Optimizer):
        arrays = optimizer._state_arrays
        return lambda name, param, key, value: check_step({name: param}, {name: param},
                                                          {name: {key: value}}, arrays)
    return None


def _first_step_keys(optimizer):
    """The state keys a step of ``optimizer`` writes for every parameter; None if not known.

    Known for the course rules and for SGD, RMSProp, AdaGrad and Adam, read
    off one step of the same update (a copy, SGD's momentum deciding whether
    it keeps a buffer) on a one-element stand-in, so that they follow the
    optimizers' code. None for any other update: its state is its own.
    """
    w = numpy.zeros(1)
    if isinstance(optimizer, optim.RuleOptimizer):
        if not any(optimizer.rule is rule for rule in _COURSE_RULES):
            return None
        probe = optim.RuleOptimizer({"w": w}, optimizer.rule)
    elif type(optimizer) in _OPTIMIZERS:  # a subclass may keep other state
        probe = copy.copy(optimizer)
        probe.params, probe.state = {"w": w}, {}
    else:
        return None
    probe.step({"w": numpy.zeros(1)})
    return frozenset(probe.state["w"])


def _check_values(value, key, entry, update, source):
    """Refuse a non-finite setting or state array, or a negative squared-gradient average.

    The step checks look at types, shapes and settings' ranges, not at every
    element: a NaN or a negative second moment would only show as NaN losses.
    """
    if isinstance(value, numbers.Real):
        xp, values = numpy, numpy.asarray(value)
    elif is_array(value):
        xp, values = get_array_module(value), value
    else:  # text: where the update reads it, its step check refused it already
        return
    if not bool(xp.isfinite(values).all()):
        found = f"is {value}" if values.ndim == 0 else "holds NaN or infinite values"
        raise CheckpointError(f"{source}: entry {entry!r} {found}; {update} needs it finite")
    if key in _SQUARED and values.size and bool((values < 0).any()):
        found = (f"is {value}" if values.ndim == 0
                 else f"holds negative values (the least {float(values.min())})")
        raise CheckpointError(f"{source}: entry {entry!r} {found}; it is a running mean or sum "
                              f"of squared gradients, whose square root {update} takes, so it "
                              f"must be >= 0")


def _check_complete(state, params, writes, steps, update, source):
    """Refuse state that one parameter lacks and others hold, or a step writes (``writes``).

    Resumed without an entry, the update would start that state afresh, and
    the run would not be the one that stopped.
    """
    held = {name: set(state.get(name, {})) for name in params}
    expected = set(writes).union(*held.values())
    missing = [f"optim/{name}/{key}" for name in params for key in sorted(expected - held[name])]
    if missing:
        shown = ", ".join(repr(entry) for entry in missing[:3])
        more = f" (and {len(missing) - 3} more)" if len(missing) > 3 else ""
        after = (f" once it has stepped, and the checkpoint's run took {steps} steps"
                 if writes else "")
        raise CheckpointError(f"{source} has no entry {shown}{more}: {update} keeps "
                              f"{sorted(expected)} for every parameter{after}")
