"""Where one training step's time goes, per layer type, for fastconv and its PyTorch twin.

The step runs as it is timed, with wall-clock timers (``time.perf_counter``) put
around its parts for the length of a ``with`` block:

- fastconv: the ``forward`` and ``backward`` of each layer (the model's own layer
  objects, found by walking its module tree) or, for a model that calls the
  functional ops itself (ThreeLayerConvNet), each op it calls; the loss functions
  ``model.loss`` calls; the optimizer's ``step``.
- PyTorch: forward pre- and post-hooks on each layer. For the backward, a hook on
  each layer's output tensor marks when that tensor's gradient arrives, which is
  when the layer's backward starts; the networks are chains, so it lasts until the
  next mark. The loss (its forward, and its backward up to the first mark) and the
  optimizer step are timed around the calls.

What no timer covers (Python glue, Flatten, the gradient dict) is "other": the
step's time minus the timed parts, per step. On a GPU every timer synchronises the
device first, which serialises work that would otherwise overlap.
"""

import contextlib
import functools
import statistics
import sys
import time
from unittest import mock

from ..nn import classifiers

KINDS = ("conv fwd", "conv bwd", "batch norm", "ReLU", "pooling", "linear", "loss", "update",
         "other")

# layer class name (the same in fastconv.nn and torch.nn) -> (forward kind, backward kind)
LAYER_KINDS = {"Conv2d": ("conv fwd", "conv bwd"),
               "BatchNorm1d": ("batch norm",) * 2, "BatchNorm2d": ("batch norm",) * 2,
               "ReLU": ("ReLU",) * 2,
               "MaxPool2d": ("pooling",) * 2, "AvgPool2d": ("pooling",) * 2,
               "AdaptiveAvgPool2d": ("pooling",) * 2,
               "Linear": ("linear",) * 2}
# functional op -> kinds, for models that call the ops themselves
OP_KINDS = {"conv2d": LAYER_KINDS["Conv2d"], "relu": LAYER_KINDS["ReLU"],
            "max_pool2d": LAYER_KINDS["MaxPool2d"], "avg_pool2d": LAYER_KINDS["AvgPool2d"],
            "linear": LAYER_KINDS["Linear"]}
LOSS_FUNCTIONS = ("softmax_cross_entropy", "l2_regularization")


class Timers:
    """Seconds per kind, summed over one step; ``sync`` waits for the device before each reading."""

    def __init__(self, sync):
        self.sync = sync
        self.seconds = {}
        self.started = None

    def now(self):
        """perf_counter once the device's queued work is done."""
        self.sync()
        return time.perf_counter()

    def add(self, kind, seconds):
        """Count ``seconds`` towards ``kind``."""
        self.seconds[kind] = self.seconds.get(kind, 0.0) + seconds

    def wrap(self, fn, kind):
        """``fn`` with its calls timed into ``kind``."""
        @functools.wraps(fn)
        def timed(*args, **kwargs):
            start = self.now()
            try:
                return fn(*args, **kwargs)
            finally:
                self.add(kind, self.now() - start)
        return timed


def _time_attribute(stack, timers, owner, name, kind):
    """Replace ``owner.name`` by its timed version until ``stack`` closes."""
    stack.enter_context(mock.patch.object(owner, name, timers.wrap(getattr(owner, name), kind)))


def fastconv_timers(step, timers):
    """A context manager timing the parts of the fastconv ``step`` into ``timers``.

    ``step`` has ``model`` (a fastconv classifier) and ``optimizer``. A model with
    child modules has its leaf layers' ``forward``/``backward`` timed; one without
    (ThreeLayerConvNet) has the functional ops timed where its module looks them up.
    """
    with contextlib.ExitStack() as stack:  # popped whole on success, undone on an error
        model = step.model
        if model.children():
            for layer in model.modules():
                kinds = LAYER_KINDS.get(type(layer).__name__)
                if kinds and not layer.children():
                    _time_attribute(stack, timers, layer, "forward", kinds[0])
                    _time_attribute(stack, timers, layer, "backward", kinds[1])
        else:
            namespace = sys.modules[type(model).__module__]
            for op, (fwd, bwd) in OP_KINDS.items():
                for name, kind in ((op + "_forward", fwd), (op + "_backward", bwd)):
                    if hasattr(namespace, name):
                        _time_attribute(stack, timers, namespace, name, kind)
        for name in LOSS_FUNCTIONS:  # what CourseInterface.loss calls, where it looks them up
            _time_attribute(stack, timers, classifiers, name, "loss")
        _time_attribute(stack, timers, step.optimizer, "step", "update")
        return stack.pop_all()


def _timed_backward(backward, timers, marks):
    """``backward(loss)`` that splits its time at the gradient ``marks`` the layer hooks leave."""
    @functools.wraps(backward)
    def timed(loss):
        marks[:] = [(timers.now(), "loss")]
        backward(loss)
        marks.append((timers.now(), None))
        for (start, kind), (end, _) in zip(marks, marks[1:]):
            timers.add(kind, end - start)
    return timed


def torch_timers(step, timers):
    """A context manager timing the parts of the :class:`~.twin.TorchStep` ``step`` into ``timers``."""
    marks = []

    def before(module, args):
        timers.started = timers.now()

    def after(kinds, module, args, output):
        timers.add(kinds[0], timers.now() - timers.started)
        if output.requires_grad:
            output.register_hook(lambda grad: marks.append((timers.now(), kinds[1])))

    with contextlib.ExitStack() as stack:  # popped whole on success, undone on an error
        for module in step.twin.module.modules():
            kinds = LAYER_KINDS.get(type(module).__name__)
            if kinds:
                stack.callback(module.register_forward_pre_hook(before).remove)
                stack.callback(module.register_forward_hook(functools.partial(after, kinds)).remove)
        _time_attribute(stack, timers, step, "loss_of", "loss")
        _time_attribute(stack, timers, step, "update", "update")
        stack.enter_context(mock.patch.object(step, "backward",
                                              _timed_backward(step.backward, timers, marks)))
        return stack.pop_all()


def profile_step(step, install, sync, pause=0.0):
    """Run ``step()`` once with the timers ``install(step, timers)`` puts in.

    Returns ``(total seconds, {kind: seconds})``; ``pause`` seconds are slept first
    (outside the measurement), as before a timed CPU step.
    """
    timers = Timers(sync)
    with install(step, timers):
        if pause:
            time.sleep(pause)
        start = timers.now()
        step()
        total = timers.now() - start
    return total, timers.seconds


def summarize_profile(samples):
    """Per-kind shares of profiled steps, and the ms they stand for in the median step.

    ``samples`` are ``profile_step`` results. Each step's parts are taken as fractions of
    that step ("other": the step's time the timers did not cover), and each kind's share
    is the median of its fractions, so one step another process slowed moves no share far;
    the medians are then scaled to sum to 1, as the parts of one step do.
    Returns ``{"step_ms", "shares", "layers_ms"}`` (``layers_ms``: share times the median
    step), kinds in :data:`KINDS` order, those the network lacks left out.
    """
    fractions = []
    for total, seconds in samples:
        parts = dict(seconds, other=max(0.0, total - sum(seconds.values())))
        fractions.append({kind: t / total for kind, t in parts.items()})
    step_ms = statistics.median(total for total, _ in samples) * 1e3
    shares = {kind: statistics.median(f.get(kind, 0.0) for f in fractions)
              for kind in KINDS if any(kind in f for f in fractions)}
    whole = sum(shares.values()) or 1.0
    shares = {kind: share / whole for kind, share in shares.items()}
    return {"step_ms": step_ms, "shares": shares,
            "layers_ms": {kind: share * step_ms for kind, share in shares.items()}}
