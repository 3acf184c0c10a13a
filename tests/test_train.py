"""fastconv.train.Solver: determinism, early stopping, best parameters, lr decay, both model
interfaces, checkpoints (round trip, resume, corrupt/mismatched/pickled files), Ctrl-C, progress bar."""

import os
import pathlib
import pickle
import subprocess
import sys

import numpy as np
import pytest

import fastconv.nn as nn
from fastconv import optim
from fastconv.checkpoint import CheckpointError, load_arrays, save_arrays
from fastconv.functional import multiclass_hinge
from fastconv.train import Solver


def toy_data(n_train=60, n_val=30, seed=0):
    """Four Gaussian blobs in 6 dimensions: learnable in a few epochs."""
    rng = np.random.default_rng(seed)
    centers = rng.standard_normal((4, 6)) * 2

    def split(n):
        y = rng.integers(0, 4, n)
        return (centers[y] + rng.standard_normal((n, 6))).astype(np.float32), y.astype(np.int64)

    X_train, y_train = split(n_train)
    X_val, y_val = split(n_val)
    return {"X_train": X_train, "y_train": y_train, "X_val": X_val, "y_val": y_val}


def make_solver(model=None, data=None, **kw):
    model = model or nn.mlp(6, 4, hidden_dims=(16,), seed=0)
    options = dict(update_rule="adam", optim_config={"learning_rate": 1e-2}, batch_size=16,
                   num_epochs=3, progress=False, verbose=False)
    if "optimizer" in kw:
        del options["update_rule"], options["optim_config"]
    options.update(kw)
    return Solver(model, data or toy_data(), **options)


def params_of(model):
    return {k: np.array(v) for k, v in model.params.items()}


# ----------------------------------------------------------------- training behaviour

def test_same_seed_same_run_other_seed_other_run():
    a, b, c = make_solver().train(), make_solver().train(), make_solver(seed=1).train()
    assert a.loss_history == b.loss_history
    assert len(a.loss_history) == 3 * 4  # 3 epochs of ceil(60 / 16) batches
    assert a.loss_history != c.loss_history
    for k, v in params_of(a.model).items():
        np.testing.assert_array_equal(v, params_of(b.model)[k])


def test_each_epoch_visits_every_sample_once_in_a_new_order():
    solver = make_solver()
    e0, e1 = solver.batch_indices(0), solver.batch_indices(1)
    assert [len(b) for b in e0] == [16, 16, 16, 12]
    assert sorted(np.concatenate(e0)) == list(range(60))
    assert not np.array_equal(np.concatenate(e0), np.concatenate(e1))


def test_learns_and_records_history():
    solver = make_solver(num_epochs=5).train()
    assert len(solver.train_acc_history) == len(solver.val_acc_history) == 5
    assert solver.val_acc_history[-1] > 0.8
    assert np.mean(solver.loss_history[-4:]) < 0.5 * np.mean(solver.loss_history[:4])


class ScriptedSolver(Solver):
    """Validation accuracy follows a script; records the parameters each time it is measured."""

    def __init__(self, script, *args, **kw):
        self.script, self.snapshots = list(script), []
        super().__init__(*args, **kw)

    def check_accuracy(self, X, y, num_samples=None, batch_size=100):
        if X is not self.X_val:
            return super().check_accuracy(X, y, num_samples, batch_size)
        self.snapshots.append(params_of(self.model))
        return self.script[self.epoch - 1]


def test_the_model_ends_with_its_best_validation_parameters():
    data = toy_data()
    solver = ScriptedSolver([0.5, 0.9, 0.3, 0.2], nn.mlp(6, 4, hidden_dims=(8,), seed=0), data,
                            update_rule="sgd", optim_config={"learning_rate": 0.1}, batch_size=16,
                            num_epochs=4, progress=False, verbose=False).train()
    assert solver.best_epoch == 2 and solver.best_val_acc == 0.9
    for k, v in params_of(solver.model).items():
        np.testing.assert_array_equal(v, solver.snapshots[1][k])
        assert not np.array_equal(v, solver.snapshots[3][k])


def test_early_stopping_after_patience_epochs_without_improvement():
    solver = ScriptedSolver([0.5, 0.6, 0.6, 0.55, 0.7, 0.9], nn.mlp(6, 4, seed=0), toy_data(),
                            update_rule="sgd", batch_size=16, num_epochs=6, patience=2,
                            progress=False, verbose=False).train()
    assert solver.stopped_early and solver.epoch == 4
    assert solver.val_acc_history == [0.5, 0.6, 0.6, 0.55]
    assert solver.best_epoch == 2


def test_lr_decay_per_epoch_for_rules_and_optimizer_objects():
    solver = make_solver(update_rule="sgd_momentum", optim_config={"learning_rate": 0.1},
                         lr_decay=0.5, num_epochs=3).train()
    assert all(c["learning_rate"] == pytest.approx(0.1 * 0.5 ** 3)
               for c in solver.optim_configs.values())
    model = nn.mlp(6, 4, seed=0)
    solver = make_solver(model, optimizer=optim.SGD(model.params, lr=0.1, momentum=0.9),
                         lr_decay=0.5, num_epochs=3).train()
    assert solver.optimizer.lr == pytest.approx(0.1 * 0.5 ** 3)


def test_a_module_without_loss_trains_with_a_loss_fn_and_an_optimizer():
    model = nn.Sequential(nn.Linear(6, 16, seed=0), nn.ReLU(), nn.Linear(16, 4, seed=1))
    assert not hasattr(model, "loss")
    solver = make_solver(model, optimizer=optim.Adam(model.params, lr=1e-2),
                         loss_fn=multiclass_hinge, num_epochs=5).train()
    assert solver.val_acc_history[-1] > 0.8


def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match="unknown update_rule 'adamw'"):
        make_solver(update_rule="adamw")
    with pytest.raises(ValueError, match=r"missing \['X_val'\]"):
        make_solver(data={k: v for k, v in toy_data().items() if k != "X_val"})
    bad = toy_data()
    bad["y_train"] = bad["y_train"][:-1]
    with pytest.raises(ValueError, match="X_train has 60 samples but y_train has 59"):
        make_solver(data=bad)
    with pytest.raises(ValueError, match="batch_size must be >= 1, got 0"):
        make_solver(batch_size=0)
    with pytest.raises(TypeError, match="num_epochs must be an int, got 2.5"):
        make_solver(num_epochs=2.5)


def test_progress_bar_is_optional(monkeypatch, capsys):
    pytest.importorskip("tqdm")
    make_solver(progress=True, num_epochs=1).train()
    assert "epoch 1/1" in capsys.readouterr().err
    monkeypatch.setitem(sys.modules, "tqdm", None)  # tqdm not installed: no bar, no error
    monkeypatch.setitem(sys.modules, "tqdm.auto", None)
    make_solver(progress=True, num_epochs=1).train()
    assert "epoch 1/1" not in capsys.readouterr().err


def test_verbose_prints_course_style_lines(capsys):
    make_solver(verbose=True, print_every=2, num_epochs=1).train()
    out = capsys.readouterr().out
    assert "(Iteration 2) loss:" in out and "(Epoch 1 / 1) loss:" in out and "val_acc:" in out


def test_callbacks_run_once_per_epoch_in_order_after_the_checkpoint(tmp_path):
    path = tmp_path / "c.npz"
    calls = []

    def first(solver):
        calls.append(("first", solver.epoch, len(solver.val_acc_history),
                      int(load_arrays(path)["meta/epoch"])))

    def second(solver):
        calls.append(("second", solver.epoch, solver.stopped_early))

    solver = ScriptedSolver([0.5, 0.4, 0.3, 0.9], nn.mlp(6, 4, seed=0), toy_data(),
                            update_rule="sgd", batch_size=16, num_epochs=4, patience=2,
                            checkpoint_name=path, callbacks=[first, second], progress=False,
                            verbose=False).train()
    assert solver.stopped_early and solver.epoch == 3
    assert calls == [("first", 1, 1, 1), ("second", 1, False), ("first", 2, 2, 2),
                     ("second", 2, False), ("first", 3, 3, 3), ("second", 3, True)]


def test_the_update_is_adapted_once_into_an_optimizer():
    solver = make_solver(update_rule="rmsprop")
    assert isinstance(solver.optimizer, optim.RuleOptimizer)
    assert solver.update_rule is optim.rmsprop and solver.optim_configs is solver.optimizer.state
    assert solver.update_name == "rule:rmsprop"
    model = nn.mlp(6, 4, seed=0)
    adam = optim.Adam(model.params, lr=1e-2)
    solver = make_solver(model, optimizer=adam)
    assert solver.optimizer is adam and solver.update_rule is None
    assert solver.update_name == "optimizer:Adam"
    with pytest.raises(ValueError, match="optim_config .* or optimizer, not both"):
        make_solver(model, optimizer=adam, optim_config={"learning_rate": 1.0})


def test_under_a_launcher_without_a_strategy_it_warns_and_trains_alone(monkeypatch, tmp_path):
    """PMI_SIZE=2 (what mpiexec sets) must not change the run: no MPI, every rank trains alone."""
    from fastconv.train import SingleProcess
    for var in ("PMI_SIZE", "OMPI_COMM_WORLD_SIZE"):
        monkeypatch.delenv(var, raising=False)
    alone = make_solver(checkpoint_name=tmp_path / "alone.npz").train()
    monkeypatch.setenv("PMI_SIZE", "2")
    with pytest.warns(RuntimeWarning, match="one of 2 ranks started by an MPI launcher.*"
                                            "parallel=fastconv.distributed.DataParallel"):
        launched = make_solver(checkpoint_name=tmp_path / "launched.npz")
    assert type(launched.parallel) is SingleProcess
    launched.train()
    assert launched.loss_history == alone.loss_history
    assert launched.val_acc_history == alone.val_acc_history
    assert (tmp_path / "launched.npz").exists()  # this process reports, as a single one does


def test_the_solver_never_imports_the_distributed_package(tmp_path):
    """Checked in a fresh interpreter: the launcher's environment, a run, and no MPI at all."""
    script = (
        "import sys, warnings\n"
        "import numpy as np\n"
        "import fastconv.nn as nn\n"
        "from fastconv.train import Solver\n"
        "rng = np.random.default_rng(0)\n"
        "X, y = rng.normal(size=(20, 6)).astype(np.float32), rng.integers(0, 4, 20)\n"
        "data = {'X_train': X, 'y_train': y, 'X_val': X, 'y_val': y}\n"
        "with warnings.catch_warnings(record=True) as caught:\n"
        "    warnings.simplefilter('always')\n"
        "    Solver(nn.mlp(6, 4, seed=0), data, num_epochs=1, progress=False,\n"
        "           verbose=False).train()\n"
        "assert [str(w.message).count('one of 2 ranks') for w in caught] == [1], caught\n"
        "loaded = sorted(m for m in sys.modules if m.startswith(('fastconv.distributed', "
        "'mpi4py')))\n"
        "assert not loaded, loaded\n")
    env = {k: v for k, v in os.environ.items() if k != "OMPI_COMM_WORLD_SIZE"}
    env["PMI_SIZE"] = "2"
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          env=env, cwd=tmp_path, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]


# ----------------------------------------------------------------- checkpoints

@pytest.mark.parametrize("kind", ["course rule", "optimizer object", "convnet + batchnorm"])
def test_resuming_from_a_checkpoint_continues_the_same_run(tmp_path, kind):
    def build():
        if kind == "convnet + batchnorm":
            model = nn.Sequential(nn.Linear(6, 8, seed=0), nn.BatchNorm1d(8), nn.ReLU(),
                                  nn.Linear(8, 4, seed=1))
            return model, dict(optimizer=optim.SGD(model.params, lr=0.05, momentum=0.9),
                               lr_decay=0.9)
        model = nn.mlp(6, 4, hidden_dims=(8,), seed=0)
        if kind == "optimizer object":
            return model, dict(optimizer=optim.Adam(model.params, lr=1e-2))
        return model, dict(update_rule="adam", optim_config={"learning_rate": 1e-2}, lr_decay=0.9)

    model, kw = build()
    full = make_solver(model, num_epochs=4, **kw).train()
    path = tmp_path / "ckpt.npz"
    model, kw = build()
    make_solver(model, num_epochs=2, checkpoint_name=path, **kw).train()
    model, kw = build()  # a fresh model: everything comes from the file
    resumed = make_solver(model, num_epochs=4, resume=path, **kw)
    assert resumed.epoch == 2 and len(resumed.loss_history) == 8
    resumed.train()
    assert resumed.loss_history == full.loss_history
    assert resumed.val_acc_history == full.val_acc_history
    full_state, resumed_state = full.model.state_dict(), resumed.model.state_dict()
    for k in full_state:
        np.testing.assert_array_equal(resumed_state[k], full_state[k])


def test_checkpoint_holds_plain_arrays_only(tmp_path):
    path = tmp_path / "c.npz"
    make_solver(num_epochs=1, checkpoint_name=path).train()
    with np.load(path, allow_pickle=False) as npz:
        assert all(npz[k].dtype != object for k in npz.files)
        assert {"model/0.W", "best/0.W", "optim/0.W/m", "history/loss"} <= set(npz.files)
    assert os.listdir(tmp_path) == ["c.npz"]  # no temporary file left behind


def test_course_model_checkpoint_round_trip(tmp_path):
    class CourseNet:  # a plain course-style model: params dict + loss(X, y), no Module
        def __init__(self, seed):
            rng = np.random.default_rng(seed)
            self.params = {"W1": rng.standard_normal((6, 4)).astype(np.float32) * 0.1,
                           "b1": np.zeros(4, np.float32)}

        def loss(self, X, y=None):
            scores = X @ self.params["W1"] + self.params["b1"]
            if y is None:
                return scores
            from fastconv.functional import softmax_cross_entropy
            loss, d = softmax_cross_entropy(scores, y)
            return float(loss), {"W1": X.T @ d, "b1": d.sum(0)}

    path = tmp_path / "course.npz"
    a = make_solver(CourseNet(0), num_epochs=2, checkpoint_name=path).train()
    b = make_solver(CourseNet(1), num_epochs=2, resume=path)
    for k in ("W1", "b1"):
        np.testing.assert_array_equal(b.model.params[k], a.model.params[k])
    bad = CourseNet(0)
    bad.params["W1"] = np.zeros((6, 5), np.float32)
    with pytest.raises(CheckpointError, match=r"parameter 'W1' has shape \(6, 4\).*\(6, 5\)"):
        make_solver(bad, resume=path)
    arrays = load_arrays(path)  # its imaginary part was dropped, with a ComplexWarning
    arrays["model/W1"] = arrays["model/W1"] + 1j
    save_arrays(path, arrays)
    before = frozen(params_of(b.model))
    with pytest.raises(CheckpointError, match=r"parameter 'W1' must be a real-valued array"):
        b.load_checkpoint(path)
    assert frozen(params_of(b.model)) == before


def test_a_checkpoint_resumed_with_another_optimiser_is_refused(tmp_path):
    """Adam's state loaded into an SGD run was silently dropped, and its learning rate too."""
    path = tmp_path / "adam.npz"
    model = nn.mlp(6, 4, hidden_dims=(8,), seed=0)
    make_solver(model, num_epochs=1, checkpoint_name=path,
                optimizer=optim.Adam(model.params, lr=1e-2)).train()
    with pytest.raises(CheckpointError, match="written by optimizer:Adam.*rule:sgd"):
        make_solver(nn.mlp(6, 4, hidden_dims=(8,), seed=0), update_rule="sgd", resume=path)
    arrays = load_arrays(path)
    del arrays["meta/update"]  # a checkpoint from before the entry existed still loads
    save_arrays(path, arrays)
    model = nn.mlp(6, 4, hidden_dims=(8,), seed=0)
    make_solver(model, optimizer=optim.Adam(model.params, lr=1e-2), resume=path)


def test_mismatched_checkpoint_names_the_parameter_and_shapes(tmp_path):
    path = tmp_path / "c.npz"
    make_solver(nn.mlp(6, 4, hidden_dims=(16,), seed=0), num_epochs=1,
                checkpoint_name=path).train()
    with pytest.raises(CheckpointError, match=r"'0.W' has shape \(6, 16\).*\(6, 8\)"):
        make_solver(nn.mlp(6, 4, hidden_dims=(8,), seed=0), resume=path)
    arrays = load_arrays(path)
    del arrays["model/2.b"]
    save_arrays(path, arrays)
    with pytest.raises(CheckpointError, match="missing '2.b'"):
        make_solver(resume=path)


def test_corrupt_checkpoints_give_clear_errors(tmp_path):
    garbage = tmp_path / "garbage.npz"
    garbage.write_bytes(b"this is not a zip file at all")
    with pytest.raises(CheckpointError, match="garbage.npz is not a readable .npz"):
        make_solver(resume=garbage)

    path = tmp_path / "c.npz"
    solver = make_solver(num_epochs=1, checkpoint_name=path).train()
    raw = bytearray(path.read_bytes())
    weights = np.ascontiguousarray(solver.model.params["2.W"]).tobytes()
    at = raw.find(weights)  # .npz members are stored uncompressed: flip a byte inside 2.W
    assert at > 0
    raw[at + len(weights) // 2] ^= 0xFF
    path.write_bytes(bytes(raw))
    with pytest.raises(CheckpointError, match=r"entry 'model/2.W' is corrupt"):
        make_solver(resume=path)

    other = tmp_path / "other.npz"
    np.savez(other, W=np.zeros(3))
    with pytest.raises(CheckpointError, match="not a fastconv Solver checkpoint"):
        make_solver(resume=other)


def frozen(value):
    """``value`` in a form that compares equal only to a bit-identical copy of it."""
    if isinstance(value, dict):
        return {k: frozen(v) for k, v in value.items()}
    if isinstance(value, np.ndarray):
        return value.dtype.str, value.shape, value.tobytes()
    return value


def resumable_state(solver):
    """Everything a resume sets: the model's arrays, best parameters, optimizer state, counters."""
    names = ("best_params", "loss_history", "train_acc_history", "val_acc_history", "epoch",
             "seed", "best_val_acc", "best_epoch", "epochs_without_improvement", "stopped_early")
    state = {name: frozen(getattr(solver, name)) for name in names}
    state.update(model=frozen(solver.model_adapter.state()),
                 optimizer=frozen(solver.optimizer.state), lr=solver.optimizer.lr)
    return state


MALFORMED = {  # name: (entry, what replaces it (None: deleted), what the error says)
    "optimizer state of the wrong shape": ("optim/0.W/m", np.zeros((16, 6), np.float32),
                                           r"optimizer state 'm' of parameter '0.W'"),
    "complex optimizer state": ("optim/0.W/m", np.zeros((6, 16), np.complex64),
                                r"optimizer state 'm' of parameter '0.W' is a complex64"),
    "optimizer state of no parameter": ("optim/9.W/m", np.zeros(3), r"'9.W'.*not a parameter"),
    "best parameter of the wrong shape": ("best/0.W", np.zeros((6, 15), np.float32),
                                          r"best/ entries\): parameter '0.W' has shape"),
    "best parameter missing": ("best/2.b", None, r"best/ entries\): missing '2.b'"),
    "best parameter extra": ("best/9.W", np.zeros(3), r"best/ entries\): '9.W' is not a param"),
    "no best parameters after an epoch": ("best/", None, r"best/ entries\): missing '0.W'"),
    "complex model parameter": ("model/0.W", np.zeros((6, 16), np.complex64),
                                r": parameter '0.W' must be a real-valued array, got complex64"),
    "text model parameter": ("model/2.b", np.array(["a"] * 4), r"parameter '2.b' must be a real"),
    "model parameter missing": ("model/2.W", None, r"missing '2.W'"),
    "model parameter extra": ("model/9.W", np.zeros(3), r"'9.W' is not a parameter or buffer"),
    "vector epoch": ("meta/epoch", np.array([1, 1]), r"'meta/epoch' is a int64 array of shape "
                                                     r"\(2,\); a single integer is expected"),
    "real epoch": ("meta/epoch", np.float64(1.0), r"'meta/epoch' is a float64 array"),
    "negative epoch": ("meta/epoch", np.int64(-1), r"'meta/epoch' is -1; it must be"),
    "epoch missing": ("meta/epoch", None, r"has no entry 'meta/epoch'"),
    "negative seed": ("meta/seed", np.int64(-3), r"'meta/seed' is -3"),
    "best epoch after the last": ("meta/best_epoch", np.int64(2), r"'meta/best_epoch' is 2"),
    "patience count past the epochs": ("meta/epochs_without_improvement", np.int64(5),
                                       r"'meta/epochs_without_improvement' is 5"),
    "best accuracy not a number": ("meta/best_val_acc", np.float64("nan"),
                                   r"'meta/best_val_acc' is nan"),
    "flag as an integer": ("meta/stopped_early", np.int64(1),
                           r"'meta/stopped_early' .*a single bool is expected"),
    "negative learning rate": ("meta/lr", np.float64(-0.1), r"'meta/lr' is -0.1"),
    "complex learning rate": ("meta/lr", np.complex128(1), r"'meta/lr' is a complex128"),
    "update as a number": ("meta/update", np.int64(1), r"'meta/update' .*a single string"),
    "meta entry of no meaning": ("meta/colour", np.int64(1), r"'meta/colour', which a Solver"),
    "accuracies for more epochs than run": ("history/val_acc", np.zeros(2),
                                            r"'history/val_acc' has 2 values for 1 finished"),
    "loss history as a matrix": ("history/loss", np.zeros((2, 2)),
                                 r"'history/loss' is a float64 array of shape \(2, 2\)"),
    "text history": ("history/train_acc", np.array(["0.5"]), r"'history/train_acc' is a <U3"),
}


@pytest.mark.parametrize("malformed", MALFORMED)
def test_a_malformed_checkpoint_is_refused_at_resume_and_changes_nothing(tmp_path, malformed):
    """Each was accepted (and train() failed later), gave a TypeError, or was refused only after
    the model already held the checkpoint's weights."""
    entry, replacement, message = MALFORMED[malformed]
    path = tmp_path / "c.npz"
    make_solver(num_epochs=1, checkpoint_name=path).train()
    arrays = {k: v for k, v in load_arrays(path).items()  # "best/": the whole section
              if not (k == entry or entry.endswith("/") and k.startswith(entry))}
    if replacement is not None:
        arrays[entry] = replacement
    save_arrays(path, arrays)
    solver = make_solver(nn.mlp(6, 4, hidden_dims=(16,), seed=1), num_epochs=2).train()
    before = resumable_state(solver)
    with pytest.raises(CheckpointError, match=message) as refused:
        solver.load_checkpoint(path)
    assert str(refused.value).startswith((f"checkpoint {path}", f"{path}"))
    assert resumable_state(solver) == before


def test_an_optimizer_object_keeps_its_state_when_a_resume_is_refused(tmp_path):
    """A Module's params are updated in place by the optimizer object, which must keep them too."""
    def build(seed):
        model = nn.mlp(6, 4, hidden_dims=(8,), batchnorm=True, seed=seed)
        return model, optim.Adam(model.params, lr=1e-2)

    path = tmp_path / "c.npz"
    model, adam = build(0)
    make_solver(model, optimizer=adam, num_epochs=1, checkpoint_name=path).train()
    arrays = load_arrays(path)
    arrays["optim/3.W/exp_avg"] = np.zeros((2, 2), np.float32)  # the last entry checked
    save_arrays(path, arrays)
    model, adam = build(1)
    solver = make_solver(model, optimizer=adam, num_epochs=1).train()
    before, params = resumable_state(solver), dict(model.params)
    with pytest.raises(CheckpointError, match="optimizer state 'exp_avg' of parameter '3.W'"):
        solver.load_checkpoint(path)
    assert resumable_state(solver) == before
    assert all(model.params[k] is v for k, v in params.items())
    assert all(adam.params[k] is v for k, v in params.items())


class _RunsCode:
    """Unpickling this would create the marker file: proof that code ran."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (pathlib.Path.touch, (pathlib.Path(self.marker),))


def test_a_pickled_object_in_a_checkpoint_is_refused_without_running_it(tmp_path):
    path = tmp_path / "c.npz"
    make_solver(num_epochs=1, checkpoint_name=path).train()
    marker = tmp_path / "code-ran"
    arrays = dict(np.load(path))
    payload = np.empty(1, dtype=object)
    payload[0] = _RunsCode(str(marker))
    arrays["model/0.W"] = payload
    np.savez(path, **arrays)  # numpy pickles the object array
    assert b"touch" in path.read_bytes() and pickle.dumps(payload[0])
    with pytest.raises(CheckpointError, match=r"'model/0.W'.*pickle"):
        make_solver(resume=path)
    assert not marker.exists()


def test_keyboard_interrupt_keeps_the_last_checkpoint(tmp_path):
    class Interrupted(Solver):
        def step(self, X_batch, y_batch):
            if self.epoch == 1 and len(self.loss_history) == 6:  # mid-way through epoch 2
                raise KeyboardInterrupt
            return super().step(X_batch, y_batch)

    path = tmp_path / "c.npz"
    solver = Interrupted(nn.mlp(6, 4, seed=0), toy_data(), update_rule="adam", batch_size=16,
                         num_epochs=3, checkpoint_name=path, progress=False, verbose=False)
    with pytest.raises(KeyboardInterrupt):
        solver.train()
    assert solver.interrupted
    assert os.listdir(tmp_path) == ["c.npz"]
    resumed = make_solver(nn.mlp(6, 4, seed=0), resume=path, update_rule="adam")
    assert resumed.epoch == 1 and len(resumed.loss_history) == 4


@pytest.mark.gpu
def test_gpu_training_checkpoint_resumes_on_the_cpu(tmp_path):
    import cupy
    path = tmp_path / "gpu.npz"
    gpu_model = nn.mlp(6, 4, hidden_dims=(8,), batchnorm=True, dtype=np.float64, seed=0).to("gpu")
    data = {k: v.astype(np.float64) if v.dtype.kind == "f" else v for k, v in toy_data().items()}
    solver = make_solver(gpu_model, data, optimizer=optim.Adam(gpu_model.params, lr=1e-2),
                         num_epochs=2, checkpoint_name=path).train()
    assert isinstance(gpu_model.params["0.W"], cupy.ndarray)
    cpu_model = nn.mlp(6, 4, hidden_dims=(8,), batchnorm=True, dtype=np.float64, seed=1)
    resumed = make_solver(cpu_model, data, optimizer=optim.Adam(cpu_model.params, lr=1e-2),
                          num_epochs=2, resume=path)
    assert type(resumed.optimizer.state["0.W"]["exp_avg"]) is np.ndarray
    assert resumed.loss_history == solver.loss_history
    cpu_model.load_state_dict(resumed.best_params)
    for k, v in gpu_model.state_dict().items():
        np.testing.assert_allclose(cpu_model.state_dict()[k], v.get(), rtol=1e-12)
