"""The Solver checks its arguments when it is built, naming the bad one, before any training."""

import pathlib

import numpy as np
import pytest

import fastconv.nn as nn
from fastconv.train import Solver


def toy_data(n=12):
    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(2 * n, 6)).astype(np.float32), rng.integers(0, 4, 2 * n)
    return {"X_train": X[:n], "y_train": y[:n], "X_val": X[n:], "y_val": y[n:]}


def build(**options):
    settings = dict(update_rule="sgd", optim_config={"learning_rate": 1e-2}, batch_size=4,
                    num_epochs=1, progress=False, verbose=False)
    settings.update(options)
    return Solver(nn.mlp(6, 4, hidden_dims=(8,), seed=0), toy_data(), **settings)


BAD = [
    (dict(seed=-1), ValueError, "seed must be >= 0"),
    (dict(seed=2**63), ValueError, r"seed must be < 2\*\*63"),  # the checkpoint's int64
    (dict(seed=1.5), TypeError, "seed must be an int"),
    (dict(seed=True), TypeError, "seed must be an int"),
    (dict(num_train_samples=0), ValueError, "num_train_samples must be >= 1"),  # 0 / 0 later
    (dict(num_val_samples=-5), ValueError, "num_val_samples must be >= 1"),
    (dict(num_val_samples=2.5), TypeError, "num_val_samples must be an int"),
    (dict(lr_decay="x"), TypeError, "lr_decay must be a real number"),
    (dict(lr_decay=0), ValueError, "lr_decay must be in"),
    (dict(lr_decay=float("nan")), ValueError, "lr_decay must be in"),
    (dict(lr_decay=-0.5), ValueError, "lr_decay must be in"),
    (dict(print_every=-1), ValueError, "print_every must be >= 0"),
    (dict(print_every=None), TypeError, "print_every must be an int"),
    (dict(print_every=2.0), TypeError, "print_every must be an int"),
    (dict(progress=1), TypeError, "progress must be True or False"),
    (dict(progress="no"), TypeError, "progress must be True or False"),
    (dict(verbose=None), TypeError, "verbose must be True or False"),
    (dict(checkpoint_name=5), TypeError, "checkpoint_name must be a path"),
    (dict(checkpoint_name=["run.npz"]), TypeError, "checkpoint_name must be a path"),
    (dict(checkpoint_name="no/such/dir/run.npz"), ValueError,
     "checkpoint_name 'no/such/dir/run.npz': directory .* does not exist"),
    (dict(resume=5), TypeError, "resume must be a path"),
    (dict(callbacks=[print, 5]), TypeError, r"callbacks\[1\] must be callable"),
]


@pytest.mark.parametrize("options, error, match", BAD, ids=[repr(o) for o, _, _ in BAD])
def test_a_bad_argument_is_refused_when_the_solver_is_built(options, error, match):
    with pytest.raises(error, match=match):
        build(**options)


def test_the_edges_of_the_ranges_and_numpy_scalars_are_accepted(tmp_path):
    solver = build(seed=2**63 - 1, num_train_samples=np.int64(3), num_val_samples=1,
                   lr_decay=1, print_every=np.int32(0), progress=np.bool_(False),
                   verbose=False, checkpoint_name=pathlib.Path(tmp_path) / "run.npz").train()
    assert solver.seed == 2**63 - 1 and isinstance(solver.progress, bool)
    assert (tmp_path / "run.npz").exists()
