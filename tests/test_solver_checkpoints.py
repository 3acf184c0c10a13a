"""Solver checkpoints written before the trainer had one training path still resume exactly.

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
from fastconv.train import Solver

DATA = pathlib.Path(__file__).parent / "data"
KINDS = ("adam-rule", "sgd-momentum-object")


def build_solver(kind, num_epochs, **options):
    """A tiny mlp trained by the course adam rule with lr decay, or by optim.SGD with momentum
    (the latter with batch norm, so its checkpoint holds buffers too)."""
    rng = np.random.default_rng(7)
    X = rng.standard_normal((40, 6)).astype(np.float32)
    y = rng.integers(0, 3, 40)
    data = {"X_train": X[:28], "y_train": y[:28], "X_val": X[28:], "y_val": y[28:]}
    model = nn.mlp(6, 3, hidden_dims=(5,), batchnorm=kind == "sgd-momentum-object", seed=3)
    if kind == "adam-rule":
        update = dict(update_rule="adam", optim_config={"learning_rate": 2e-2}, lr_decay=0.9)
    else:
        update = dict(optimizer=optim.SGD(model.params, lr=0.05, momentum=0.9), lr_decay=0.8)
    return Solver(model, data, batch_size=8, num_epochs=num_epochs, progress=False,
                  verbose=False, **update, **options)


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
