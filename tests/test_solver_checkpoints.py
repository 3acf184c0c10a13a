"""Solver checkpoints: older ones still resume exactly; optimizer state that the resumed run
could not use, or would turn into NaN losses, is refused at load, naming the file and the entry.

The fixtures in tests/data/ were written by the Solver of commit 55e7745 (course
rules and optimizer objects on two separate code paths, the data-parallel class
swap), from the repository root of that commit with this file copied into tests/::

    import sys

    import numpy as np

    sys.path.insert(0, "tests")
    from test_solver_checkpoints import KINDS, build_solver

    for kind in KINDS:
        build_solver(kind, 2, checkpoint_name=f"tests/data/{kind}-epoch2.npz").train()
        full = build_solver(kind, 4).train()
        np.savez(f"tests/data/{kind}-full-run.npz", loss=np.array(full.loss_history),
                 val_acc=np.array(full.val_acc_history),
                 **{f"final/{k}": v for k, v in full.model.state_dict().items()})

``<kind>-epoch2.npz`` is the checkpoint after epoch 2 of 4; ``<kind>-full-run.npz``
holds the uninterrupted 4-epoch run's loss and validation-accuracy histories and
its final model state.
"""

import pathlib

import numpy as np
import pytest

import fastconv.nn as nn
from fastconv import optim
from fastconv.checkpoint import CheckpointError, load_arrays, save_arrays
from fastconv.functional import softmax_cross_entropy
from fastconv.train import Solver

DATA = pathlib.Path(__file__).parent / "data"
KINDS = ("adam-rule", "sgd-momentum-object")


def _counting_rule(w, dw, config=None):
    """A rule of one's own that keeps a counter for the weights only: its state is its own."""
    config = {} if config is None else config
    if w.ndim == 2:
        config["calls"] = config.get("calls", 0) + 1
    return w - 0.05 * dw, config


UPDATES = {  # kind: the Solver's update arguments for a model
    "adam-rule": lambda model: dict(update_rule="adam", optim_config={"learning_rate": 2e-2},
                                    lr_decay=0.9),
    "sgd-momentum-object": lambda model: dict(
        optimizer=optim.SGD(model.params, lr=0.05, momentum=0.9), lr_decay=0.8),
    "adam-object": lambda model: dict(optimizer=optim.Adam(model.params, lr=2e-2)),
    "sgd-object": lambda model: dict(optimizer=optim.SGD(model.params, lr=0.05)),  # no state
    "sgd-rule": lambda model: dict(update_rule="sgd"),  # a learning_rate only
    "custom-rule": lambda model: dict(update_rule=_counting_rule),  # state for some params
}


def toy_data():
    rng = np.random.default_rng(7)
    X = rng.standard_normal((40, 6)).astype(np.float32)
    y = rng.integers(0, 3, 40)
    return {"X_train": X[:28], "y_train": y[:28], "X_val": X[28:], "y_val": y[28:]}


def build_solver(kind, num_epochs, model=None, data=None, **options):
    """A tiny mlp trained by the update of UPDATES[kind] (KINDS: the course adam rule with lr
    decay, or optim.SGD with momentum, the latter with batch norm, so its checkpoint holds
    buffers too), 4 steps an epoch."""
    if model is None:
        model = nn.mlp(6, 3, hidden_dims=(5,), batchnorm=kind == "sgd-momentum-object", seed=3)
    return Solver(model, toy_data() if data is None else data, batch_size=8,
                  num_epochs=num_epochs, progress=False, verbose=False, **UPDATES[kind](model),
                  **options)


@pytest.mark.parametrize("kind", KINDS)
def test_an_older_checkpoint_resumes_into_the_same_run(kind):
    """The old file's state is restored exactly, and the run it continues stays within
    float32 rounding of the old code's uninterrupted run: batch norm's statistics have since
    been summed in another order, so the bits may differ there. (That a resumed run equals
    the uninterrupted one bit for bit, within one version, is tests/test_train.py's
    test_resuming_from_a_checkpoint_continues_the_same_run.)"""
    old_run = np.load(DATA / f"{kind}-full-run.npz")
    resumed = build_solver(kind, 4, resume=DATA / f"{kind}-epoch2.npz")
    assert resumed.epoch == 2
    assert resumed.loss_history == old_run["loss"].tolist()[:8]  # the file's own history
    resumed.train()
    np.testing.assert_allclose(resumed.loss_history, old_run["loss"], rtol=1e-5)
    assert resumed.val_acc_history == old_run["val_acc"].tolist()
    state = resumed.model.state_dict()
    final = {k[len("final/"):]: old_run[k] for k in old_run.files if k.startswith("final/")}
    assert sorted(state) == sorted(final)
    for key, value in final.items():
        np.testing.assert_allclose(state[key], value, rtol=1e-4, atol=1e-6, err_msg=key)


# ----------------------------------------------------------------- optimizer state

def _with(element):
    """A function of a state array: a copy with its element 1 set to ``element``."""
    def replace(value):
        value = value.copy()
        value.flat[1] = element
        return value
    return replace


CORRUPTED = {  # name: (kind, entry, its replacement (a function of it; None: deleted), error)
    "negative step count of the adam rule": (
        "adam-rule", "optim/0.W/t", np.int64(-5),
        r"entry 'optim/0.W/t' cannot be used by rule:adam: t must be >= 0, got -5"),
    "negative step count of Adam": (
        "adam-object", "optim/2.b/step", np.int64(-5),
        r"entry 'optim/2.b/step' cannot be used by optimizer:Adam: .*must be >= 0, got -5"),
    "fractional step count": ("adam-rule", "optim/0.b/t", np.float64(1.5),
                              r"'optim/0.b/t' cannot be used .*t must be an int, got 1.5"),
    "fractional step count of Adam": ("adam-object", "optim/0.W/step", np.float64(1.5),
                                      r"'optim/0.W/step' cannot .*must be an int, got 1.5"),
    "beta1 out of range": ("adam-rule", "optim/2.W/beta1", np.float64(5),
                           r"'optim/2.W/beta1' cannot be used by rule:adam: beta1 must be in "
                           r"\[0.0, 1.0\), got 5.0"),
    "infinite epsilon": ("adam-rule", "optim/0.W/epsilon", np.float64(np.inf),
                         r"entry 'optim/0.W/epsilon' is inf; rule:adam needs it finite"),
    "first moment as a scalar": ("adam-rule", "optim/0.W/m", np.float32(0.5),
                                 r"'optim/0.W/m' cannot be .*m must be an array shaped like w"),
    "first moment of Adam as a scalar": ("adam-object", "optim/2.W/exp_avg", np.float32(0.5),
                                         r"'optim/2.W/exp_avg' cannot be .*must be an array"),
    "negative second moment": ("adam-rule", "optim/0.W/v", _with(-0.25),
                               r"'optim/0.W/v' holds negative values \(the least -0.25\); it is "
                               r"a running mean or sum of squared gradients"),
    "negative second moment of Adam": ("adam-object", "optim/2.b/exp_avg_sq", _with(-0.25),
                                       r"'optim/2.b/exp_avg_sq' holds negative values"),
    "NaN in a momentum buffer": (
        "sgd-momentum-object", "optim/1.gamma/momentum_buffer", _with(np.nan),
        r"'optim/1.gamma/momentum_buffer' holds NaN or infinite values; optimizer:SGD needs it "
        r"finite"),
    "one parameter's first moment missing": (
        "adam-rule", "optim/2.b/m", None,
        r"has no entry 'optim/2.b/m': rule:adam keeps \['beta1', .*'m', 't', 'v'\] for every "
        r"parameter once it has stepped, and the checkpoint's run took 4 steps"),
    "one parameter's state missing": (
        "adam-object", "optim/0.b/", None,
        r"has no entry 'optim/0.b/exp_avg', 'optim/0.b/exp_avg_sq', 'optim/0.b/step': "
        r"optimizer:Adam keeps"),
    "every momentum buffer missing": (
        "sgd-momentum-object", "optim/", None,
        r"has no entry 'optim/0.W/momentum_buffer', 'optim/0.b/momentum_buffer', "
        r"'optim/1.gamma/momentum_buffer' \(and 3 more\): optimizer:SGD keeps "
        r"\['momentum_buffer'\]"),
    "learning rate not the configs'": (
        "adam-rule", "meta/lr", np.float64(1e18),
        r"entry 'meta/lr' is 1e\+18, but 'optim/0.W/learning_rate', which it is written from, "
        r"is 0.018"),
    "seed the next checkpoint cannot store": (
        "adam-rule", "meta/seed", np.uint64(2**63),
        r"'meta/seed' is 9223372036854775808; it must be a finite number from 0 to "
        r"9223372036854775807"),
}


@pytest.mark.parametrize("corrupted", CORRUPTED)
def test_optimizer_state_a_resumed_run_cannot_use_is_refused_at_load(tmp_path, corrupted):
    """Each loaded: the first step then refused it with an error naming no file, or training
    went on with NaN losses (a negative second moment), from a fresh start of the missing state
    (no longer the run that stopped), or with a learning rate the configs did not hold."""
    kind, entry, replacement, message = CORRUPTED[corrupted]
    path = tmp_path / "c.npz"
    build_solver(kind, 1, checkpoint_name=path).train()
    arrays = load_arrays(path)
    old = arrays.pop(entry, None)
    if entry.endswith("/"):  # the whole section
        arrays = {k: v for k, v in arrays.items() if not k.startswith(entry)}
    if replacement is not None:
        arrays[entry] = replacement(old) if callable(replacement) else replacement
    save_arrays(path, arrays)
    solver = build_solver(kind, 2)
    before = {name: dict(config) for name, config in solver.optimizer.state.items()}  # no arrays
    with pytest.raises(CheckpointError, match=message) as refused:
        solver.load_checkpoint(path)
    assert str(refused.value).startswith(f"checkpoint {path}")
    assert solver.epoch == 0 and solver.optimizer.state == before


@pytest.mark.parametrize("kind", ["sgd-object", "sgd-rule", "custom-rule", "adam-object"])
def test_a_run_whose_optimizer_keeps_no_state_or_its_own_resumes(tmp_path, kind):
    """Plain SGD writes no optim/ entries, the sgd rule a learning_rate only, a rule of one's own
    whatever it likes; a checkpoint written before the first step (Adam) holds no state yet."""
    path = tmp_path / "c.npz"
    if kind == "adam-object":
        build_solver(kind, 2).save_checkpoint(path)
        assert not [k for k in load_arrays(path) if k.startswith("optim/")]
        assert build_solver(kind, 2, resume=path).epoch == 0
        return
    full = build_solver(kind, 3).train()
    build_solver(kind, 1, checkpoint_name=path).train()
    if kind == "custom-rule":  # state for the weights, none for the biases
        state = sorted(k for k in load_arrays(path) if k.startswith("optim/"))
        assert state == ["optim/0.W/calls", "optim/2.W/calls"]
    resumed = build_solver(kind, 3, resume=path).train()
    assert resumed.loss_history == full.loss_history


class _ScaledLinear:
    """A course model with a 0-d parameter: a learnt scale of a linear classifier's scores."""

    def __init__(self):
        self.params = {"W": np.random.default_rng(0).standard_normal((6, 3)) * 0.1,
                       "scale": np.array(1.0)}

    def loss(self, X, y=None):
        raw = X @ self.params["W"]
        scores = raw * self.params["scale"]
        if y is None:
            return scores
        loss, dscores = softmax_cross_entropy(scores, y)
        return float(loss), {"W": X.T @ dscores * self.params["scale"],
                             "scale": np.array((raw * dscores).sum())}


def test_a_0d_parameters_adam_state_resumes_as_arrays_the_step_updates(tmp_path):
    """Its exp_avg and exp_avg_sq came back as Python floats, which Adam's in-place ``*=`` only
    rebinds: they stayed at the checkpoint's values, so the resumed run drifted from the one that
    never stopped."""
    data = {k: v.astype(np.float64) if v.dtype.kind == "f" else v for k, v in toy_data().items()}
    full = build_solver("adam-object", 3, _ScaledLinear(), data).train()
    path = tmp_path / "c.npz"
    build_solver("adam-object", 1, _ScaledLinear(), data, checkpoint_name=path).train()
    resumed = build_solver("adam-object", 3, _ScaledLinear(), data, resume=path)
    assert isinstance(resumed.optimizer.state["scale"]["exp_avg"], np.ndarray)
    resumed.train()
    assert resumed.loss_history == full.loss_history
