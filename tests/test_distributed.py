"""Data-parallel training: the sharded sampler (pure Python) and 2-rank MPI jobs (mpiexec)."""

import os
import signal
import subprocess
import sys
import threading
import time
import types

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fastconv import distributed
from fastconv.distributed import ShardedSampler, shard


# ---------------------------------------------------------------- sampler (no MPI)
@pytest.mark.parametrize("world_size", [1, 2, 3, 4])
@pytest.mark.parametrize("num_samples", [1, 5, 7, 10, 13, 23])
@pytest.mark.parametrize("batch_size", [1, 2, 3])
def test_sampler_covers_every_index_once_per_epoch(world_size, num_samples, batch_size):
    samplers = [ShardedSampler(num_samples, batch_size, rank, world_size, seed=3)
                for rank in range(world_size)]
    for epoch in range(2):
        per_rank = [list(s.batches(epoch)) for s in samplers]
        steps = {len(batches) for batches in per_rank}
        assert steps == {len(samplers[0])}, "every rank must take the same number of steps"
        seen = np.concatenate([b for batches in per_rank for b in batches])
        assert sorted(seen.tolist()) == list(range(num_samples))
        for batches in per_rank:
            assert all(len(b) <= batch_size for b in batches)


@settings(max_examples=60, deadline=None)
@given(num_samples=st.integers(1, 200), batch_size=st.integers(1, 9),
       world_size=st.integers(1, 4), epoch=st.integers(0, 5))
def test_sampler_steps_are_the_global_batches_of_one_process(num_samples, batch_size,
                                                             world_size, epoch):
    # Step k of the job, all ranks together, is step k of one process with the global batch.
    single = list(ShardedSampler(num_samples, batch_size * world_size, seed=7).batches(epoch))
    ranks = [list(ShardedSampler(num_samples, batch_size, r, world_size, seed=7).batches(epoch))
             for r in range(world_size)]
    assert len(single) == -(-num_samples // (batch_size * world_size))
    for k, expected in enumerate(single):
        got = np.concatenate([ranks[r][k] for r in range(world_size)])
        np.testing.assert_array_equal(got, expected)
        sizes = [len(ranks[r][k]) for r in range(world_size)]
        assert max(sizes) - min(sizes) <= 1 and sizes == sorted(sizes, reverse=True)


def test_sampler_shuffles_differently_per_epoch_and_seed():
    s = ShardedSampler(50, 5, seed=1)
    assert not np.array_equal(s.epoch_order(0), s.epoch_order(1))
    assert not np.array_equal(s.epoch_order(0), ShardedSampler(50, 5, seed=2).epoch_order(0))
    assert np.array_equal(ShardedSampler(50, 5, shuffle=False).epoch_order(3), np.arange(50))


def test_shard_remainder_rule():
    parts = [shard(np.arange(7), r, 3).tolist() for r in range(3)]
    assert parts == [[0, 1, 2], [3, 4], [5, 6]]
    assert shard(np.arange(1), 1, 2).size == 0


@pytest.mark.parametrize("kwargs, match", [
    (dict(num_samples=0, batch_size=1), "num_samples"),
    (dict(num_samples=5, batch_size=0), "batch_size"),
    (dict(num_samples=5, batch_size=1, rank=2, world_size=2), "rank"),
    (dict(num_samples=5, batch_size=1, world_size=0), "world_size"),
])
def test_sampler_rejects_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        ShardedSampler(**kwargs)


# ---------------------------------------------------------------- one process, no MPI
def test_single_process_communicator_is_a_no_op():
    comm = distributed.Communicator(None, "cpu")
    grads = {"w": np.arange(3.0), "b": np.ones(2)}
    assert comm.allreduce_mean_(grads, weight=5) == 5.0
    np.testing.assert_array_equal(grads["w"], np.arange(3.0))
    assert comm.average_metrics({"loss": 2.5}, 4) == {"loss": 2.5}
    assert comm.allreduce_sum({"n": 3}) == {"n": 3.0}
    assert comm.is_root and comm.world_size == 1
    comm.barrier()
    with pytest.raises(TypeError, match="arrays must be"):
        comm.allreduce_mean_(np.ones(3))
    with pytest.raises(ValueError, match="weight"):
        comm.allreduce_mean_([np.ones(3)], weight=-1)
    with pytest.raises(ValueError, match="gpu_transport"):
        distributed.Communicator(None, "cpu", gpu_transport="carrier-pigeon")


def test_solver_subclasses_go_data_parallel_when_asked(monkeypatch):
    # World size 1 (no launcher): the data-parallel Solver must train exactly as the plain one.
    from mpi_worker import build_solver
    from fastconv.train import SingleProcess, Solver
    for var in ("PMI_SIZE", "OMPI_COMM_WORLD_SIZE"):
        monkeypatch.delenv(var, raising=False)
    lines = []

    class Chatty(Solver):
        def save_checkpoint(self, path):
            lines.append(self.epoch)

    plain = build_solver(False, 20, batch_size=8, epochs=2).train()
    assert type(plain) is Solver and type(plain.parallel) is SingleProcess
    chatty = build_solver(False, 20, batch_size=8, epochs=2, solver_class=Chatty,
                          checkpoint_name="unused.npz", parallel=distributed.DataParallel())
    assert type(chatty) is Chatty and type(chatty.parallel) is distributed.DataParallel
    chatty.train()
    assert lines == [1, 2]  # the subclass's per-epoch hook still runs (on rank 0)
    for key, value in plain.model.state_dict().items():
        np.testing.assert_array_equal(chatty.model.state_dict()[key], value, err_msg=key)


def world_size_1_solver(solver_class=None, **options):
    """A float32 mlp with batch norm and dropout: every source of a difference shows in it."""
    from fastconv.nn.models import mlp
    from fastconv.train import Solver
    rng = np.random.default_rng(3)
    X, y = rng.normal(size=(46, 6)).astype(np.float32), rng.integers(0, 3, 46)
    data = {"X_train": X[:34], "y_train": y[:34], "X_val": X[34:], "y_val": y[34:]}
    model = mlp(6, 3, hidden_dims=(8,), batchnorm=True, dropout=0.3, seed=2)
    return (solver_class or Solver)(model, data, update_rule="adam",
                                    optim_config={"learning_rate": 1e-2}, lr_decay=0.9,
                                    batch_size=8, num_epochs=3, num_train_samples=20, seed=4,
                                    progress=False, verbose=False, **options)


@pytest.mark.parametrize("how", ["DataParallel()", "DataParallel(comm)", "DistributedSolver"])
def test_data_parallel_at_world_size_1_trains_bit_identically_to_one_process(monkeypatch, how):
    from fastconv.train import SingleProcess
    for var in ("PMI_SIZE", "OMPI_COMM_WORLD_SIZE"):
        monkeypatch.delenv(var, raising=False)
    plain = world_size_1_solver().train()
    assert type(plain.parallel) is SingleProcess
    if how == "DistributedSolver":
        solver = world_size_1_solver(distributed.DistributedSolver)
        assert type(solver) is distributed.DistributedSolver and solver.comm.world_size == 1
    else:
        comm = distributed.Communicator(None, "cpu") if how == "DataParallel(comm)" else None
        solver = world_size_1_solver(parallel=distributed.DataParallel(comm))
    assert type(solver.parallel) is distributed.DataParallel
    assert solver.parallel.world_size == 1 and solver.parallel.is_root
    solver.train()
    assert solver.loss_history == plain.loss_history
    assert solver.train_acc_history == plain.train_acc_history
    assert solver.val_acc_history == plain.val_acc_history
    for key, value in plain.model.state_dict().items():
        np.testing.assert_array_equal(solver.model.state_dict()[key], value, err_msg=key)


def test_data_parallel_class_factory_is_deprecated_but_still_builds(monkeypatch):
    from fastconv.train import Solver
    for var in ("PMI_SIZE", "OMPI_COMM_WORLD_SIZE"):
        monkeypatch.delenv(var, raising=False)

    class Custom(Solver):
        pass

    with pytest.warns(DeprecationWarning, match="parallel=fastconv.distributed.DataParallel"):
        build = distributed.data_parallel(Custom)
    solver = world_size_1_solver(build)
    assert type(solver) is Custom and type(solver.parallel) is distributed.DataParallel
    plain = world_size_1_solver().train()
    assert solver.train().loss_history == plain.loss_history


def test_launched_world_size_reads_the_launcher_environment(monkeypatch):
    for var in ("PMI_SIZE", "OMPI_COMM_WORLD_SIZE"):
        monkeypatch.delenv(var, raising=False)
    assert distributed.launched_world_size() == 1
    monkeypatch.setenv("OMPI_COMM_WORLD_SIZE", "4")
    assert distributed.launched_world_size() == 4


# ---------------------------------------------------------------- launch helpers (no MPI job)
def test_launch_env_caps_blas_threads_unless_the_user_chose():
    env = distributed.launch_env(2, {"PATH": "/bin"})
    expected = str(max(1, (os.cpu_count() or 1) // 2))
    assert env["OMP_NUM_THREADS"] == env["OPENBLAS_NUM_THREADS"] == expected
    assert distributed.launch_env(2, {"OMP_NUM_THREADS": "3"}) == {"OMP_NUM_THREADS": "3"}


@pytest.mark.parametrize("banner, flags", [
    ("HYDRA build details:\n    Version: 5.0.2", []),
    ("mpiexec (Open MPI) 5.0.3", ["--oversubscribe"]
     + (["--allow-run-as-root"] if os.geteuid() == 0 else [])),
], ids=["mpich-hydra", "open-mpi"])
def test_mpiexec_command_adds_the_flags_open_mpi_needs(monkeypatch, tmp_path, banner, flags):
    pytest.importorskip("mpi4py", reason="mpiexec_command checks that mpi4py is installed")
    fake = tmp_path / "mpiexec"
    fake.write_text(f"#!/bin/sh\necho '{banner}'\n")
    fake.chmod(0o755)
    monkeypatch.setattr(distributed.launcher, "find_mpiexec", lambda: str(fake))
    command = distributed.mpiexec_command(3, ["-m", "fastconv", "info"])
    assert command == [str(fake), *flags, "-n", "3", sys.executable, "-m", "mpi4py",
                       "-m", "fastconv", "info"]
    with pytest.raises(ValueError, match="nproc"):
        distributed.mpiexec_command(0, [])


# ---------------------------------------------------------------- 2 ranks under mpiexec
WORKER = os.path.join(os.path.dirname(__file__), "mpi_worker.py")
JOB_TIMEOUT_S = 120


def require_mpi():
    """Skip without mpi4py/mpiexec, unless FASTCONV_REQUIRE_MPI=1 (CI), where that fails."""
    reason = None
    try:
        import mpi4py  # noqa: F401
    except ImportError:
        reason = "mpi4py is not installed"
    if reason is None and distributed.find_mpiexec() is None:
        reason = "no mpiexec beside this Python or on PATH"
    if reason is not None:
        if os.environ.get("FASTCONV_REQUIRE_MPI") == "1":
            pytest.fail(f"FASTCONV_REQUIRE_MPI=1 but {reason}: the 2-rank tests would vanish")
        pytest.skip(f"{reason} (pip install 'fastconv[mpi]')")


def run_job(nproc, python_args, under_mpi4py=True, timeout=JOB_TIMEOUT_S, env=None):
    """Run python_args on nproc ranks (``env``: variables to add); return the CompletedProcess."""
    require_mpi()
    command = distributed.mpiexec_command(nproc, python_args)
    if not under_mpi4py:  # drop "-m mpi4py": fastconv.distributed.init's own abort hook must do
        at = command.index(sys.executable) + 1
        assert command[at:at + 2] == ["-m", "mpi4py"]
        del command[at:at + 2]
    env = distributed.launch_env(nproc, {**os.environ, "OMP_NUM_THREADS": "1",
                                         "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
                                         **(env or {})})
    # A session of its own, so a timeout kills mpiexec and every rank it started.
    with subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                          env=env, start_new_session=True) as proc:
        try:
            stdout, stderr = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.communicate()
            raise
    return subprocess.CompletedProcess(command, proc.returncode, stdout, stderr)


def check_collectives(out_dir):
    """Check the collectives job's results against NumPy; return rank 0's transport line."""
    ranks = [np.load(out_dir / f"collectives-rank{r}.npz") for r in range(2)]
    g0 = [np.random.default_rng(100 + r).normal(size=(2, 3)) for r in range(2)]
    g1 = [np.random.default_rng(200 + r).normal(size=7).astype(np.float32) for r in range(2)]
    g2 = [np.random.default_rng(300 + r).normal(size=5).astype(np.float16) for r in range(2)]
    for out in ranks:
        # broadcast_: everyone holds rank 0's draws
        np.testing.assert_array_equal(out["w"], np.random.default_rng(0).normal(size=(3, 4)))
        np.testing.assert_array_equal(
            out["b"], np.random.default_rng(10).normal(size=5).astype(np.float32))
        # allreduce_mean_: the sample-weighted mean (weights 3 and 1), per dtype
        np.testing.assert_allclose(out["g0"], (3 * g0[0] + 1 * g0[1]) / 4, rtol=1e-15, atol=0)
        np.testing.assert_allclose(out["g1"], (3 * g1[0] + 1 * g1[1]) / 4, rtol=1e-6)
        np.testing.assert_allclose(out["g2"], (3 * g2[0].astype(np.float64) + g2[1]) / 4,
                                   rtol=3e-3, atol=3e-3)
        assert out["g1"].dtype == np.float32 and out["g2"].dtype == np.float16
        assert float(out["total"]) == 4.0
        # weight 0 on rank 0: rank 1's values (2.0) alone
        np.testing.assert_array_equal(out["zero_weight"], np.full(4, 2.0))
        assert float(out["loss"]) == pytest.approx((3 * 1.0 + 1 * 2.0) / 4)
        assert float(out["acc"]) == pytest.approx((3 * 0.0 + 1 * 0.25) / 4)
        assert "different parameter sets" in str(out["mismatch"])
        assert int(out["world_size"]) == 2
    return str(ranks[0]["transport"])


def test_two_rank_collectives_match_numpy(tmp_path):
    result = run_job(2, [WORKER, "collectives", str(tmp_path)])
    assert result.returncode == 0, result.stdout + result.stderr
    assert "MPI Allreduce" in check_collectives(tmp_path)


@pytest.mark.parametrize("under_mpi4py", [True, False], ids=["python-m-mpi4py", "plain-python"])
def test_a_failing_rank_aborts_the_whole_job(tmp_path, under_mpi4py):
    # The bound is the timeout: a hung peer raises subprocess.TimeoutExpired, failing the test.
    result = run_job(2, [WORKER, "fail", str(tmp_path)], under_mpi4py=under_mpi4py, timeout=60)
    output = result.stdout + result.stderr
    assert result.returncode != 0, output
    # The evidence that rank 1's exception ended the job is its marker file, not the
    # traceback: under load MPICH's hydra sometimes tears the job down on MPI_Abort before
    # it forwards the rank's stderr (seen in 1 of 30 runs with a busy core), so the
    # output can be empty although the rank wrote and flushed it.
    assert (tmp_path / "fail-rank1.npz.raised").read_text() == "rank 1 failed on purpose\n"
    assert not (tmp_path / "fail-rank0.npz.raised").exists()


@pytest.mark.parametrize("setting", ["num_epochs", "validation samples", "num_val_samples"])
def test_ranks_that_disagree_on_the_settings_all_stop_with_the_reason(tmp_path, setting):
    """num_epochs 1 on rank 0 and 2 on rank 1 used to leave rank 1 waiting forever; validation
    sets of 20 and 19 samples gave one accuracy counted over two different sets."""
    result = run_job(2, [WORKER, "disagree", str(tmp_path), setting], timeout=60)
    assert result.returncode != 0, result.stdout + result.stderr
    errors = [(tmp_path / f"disagree-rank{r}.npz.error") for r in range(2)]
    raised = [e.read_text() for e in errors if e.exists()]
    assert raised and all(f"disagree on {setting}" in text for text in raised)


def test_a_stopped_rank_ends_the_job_at_the_collective_timeout(tmp_path):
    """Rank 1 stops itself (SIGSTOP) in training; rank 0 used to wait in the all-reduce forever.
    The bound is run_job's timeout: a hung job raises subprocess.TimeoutExpired."""
    started = time.monotonic()
    result = run_job(2, [WORKER, "stall", str(tmp_path)], timeout=60,
                     env={"FASTCONV_COLLECTIVE_TIMEOUT": "2"})
    assert result.returncode != 0, result.stdout + result.stderr
    assert time.monotonic() - started < 45
    err = (tmp_path / "stall-rank0.npz.stderr").read_text()
    assert ("[fastconv rank 0/2] allreduce_mean_ waited more than 2 s for the other ranks "
            "(FASTCONV_COLLECTIVE_TIMEOUT)") in err, err


@pytest.mark.parametrize("value", ["soon", "-1", "nan"])
def test_a_bad_collective_timeout_is_refused_naming_the_variable(monkeypatch, value):
    monkeypatch.setenv("FASTCONV_COLLECTIVE_TIMEOUT", value)
    with pytest.raises(ValueError, match=f"FASTCONV_COLLECTIVE_TIMEOUT must be a number of "
                                         f"seconds >= 0 .*got '{value}'"):
        distributed.Communicator(None, "cpu")


def test_data_parallel_runs_a_subclass_gradient_hook_and_draws_dropout_per_rank(tmp_path):
    from mpi_worker import problem
    result = run_job(2, [WORKER, "hooks", str(tmp_path)])
    assert result.returncode == 0, result.stdout + result.stderr
    ranks = [np.load(tmp_path / f"hooks-rank{r}.npz") for r in range(2)]
    # the user's class, with the strategy: no class is swapped in
    assert all(str(r["kind"]) == "Frozen" and str(r["strategy"]) == "DataParallel" for r in ranks)
    assert all(float(r["moved"]) == 0.0 for r in ranks)  # the hook's zeroed gradients were used
    assert not np.array_equal(ranks[0]["mask"], ranks[1]["mask"])
    # A hook that does not call super sees the global batch's gradients: the first step's
    # 8 samples (two shards of 4) as one process computes them, the same bits on both ranks.
    model, data = problem(False, 24)
    batch = np.random.default_rng([SEED, 0]).permutation(24)[:8]
    loss, grads = model.loss(data["X_train"][batch], data["y_train"][batch])
    for key, grad in grads.items():
        np.testing.assert_array_equal(ranks[0][f"first/{key}"], ranks[1][f"first/{key}"])
        np.testing.assert_allclose(ranks[0][f"first/{key}"], grad, rtol=1e-12, atol=1e-15,
                                   err_msg=key)
    assert float(ranks[0]["first_loss"]) == pytest.approx(loss, rel=1e-12)


# ---------------------------------------------------------------- training equivalence
LR, MOMENTUM, SEED = 0.05, 0.9, 5  # as in mpi_worker.train


def oracle_training(batchnorm, num_samples, global_batch, epochs, parts=1, state=None):
    """Hand-written SGD-momentum loop over one process's global batches (independent of the Solver).

    With ``parts`` > 1 each global batch is cut as the ranks cut it and each part
    is normalised on its own (batch norm statistics per rank); the gradients are
    combined weighted by part size and the running statistics follow part 0 only
    (rank 0's, as the distributed Solver keeps them). Returns params and buffers.
    """
    from mpi_worker import problem
    model, data = problem(batchnorm, num_samples)
    if state is not None:
        model.load_state_dict(state)
    X, y = data["X_train"], data["y_train"]
    velocity = {k: np.zeros_like(v) for k, v in model.params.items()}
    losses = []
    for epoch in range(epochs):
        order = np.random.default_rng([SEED, epoch]).permutation(num_samples)
        for start in range(0, num_samples, global_batch):
            batch = order[start:start + global_batch]
            total = {k: np.zeros_like(v) for k, v in model.params.items()}
            rank0_buffers, loss = None, 0.0
            for r, part in enumerate(np.array_split(batch, parts)):
                if len(part) == 0:
                    continue
                part_loss, grads = model.loss(X[part], y[part])
                loss += len(part) * part_loss / len(batch)
                for k in total:
                    total[k] += len(part) * grads[k]
                if r == 0:
                    rank0_buffers = {k: v.copy() for k, v in model.buffers.items()}
            losses.append(loss)
            for k, v in rank0_buffers.items():
                model.buffers[k] = v
            for k in velocity:
                velocity[k] = MOMENTUM * velocity[k] - LR * total[k] / len(batch)
                model.params[k] = model.params[k] + velocity[k]
    return model.state_dict(), np.array(losses)


def max_abs_diff(state, reference):
    assert sorted(state) == sorted(reference)
    return max(float(np.max(np.abs(state[k] - reference[k]))) for k in reference)


def checkpoint_model_state(path):
    with np.load(path) as ck:
        return {k[len("model/"):]: ck[k] for k in ck.files if k.startswith("model/")}


@pytest.mark.parametrize("batchnorm, num_samples", [(False, 49), (False, 51), (True, 52)],
                         ids=["mlp-last-shard-empty", "mlp-last-shards-2-1", "mlp-batchnorm"])
def test_two_ranks_train_like_one_process_with_the_global_batch(tmp_path, batchnorm, num_samples):
    # 2 ranks x batch 4 for 2 epochs. The last global batch holds 49 % 8 = 1 sample (rank 1
    # gets none) or 51 % 8 = 3 (shards of 2 and 1: the weighting by shard size matters).
    checkpoint = tmp_path / "ck.npz"
    args = [WORKER, "train", str(tmp_path), "--samples", str(num_samples),
            "--checkpoint", str(checkpoint)] + (["--batchnorm"] if batchnorm else [])
    result = run_job(2, args)
    assert result.returncode == 0, result.stdout + result.stderr
    ranks = [np.load(tmp_path / f"train-rank{r}.npz") for r in range(2)]
    assert str(ranks[0]["kind"]) == "Solver" and str(ranks[0]["strategy"]) == "DataParallel"
    for key in ranks[0].files:  # every rank ends with the same bits and the same history
        np.testing.assert_array_equal(ranks[0][key], ranks[1][key], err_msg=key)
    # checkpoint = the state after the last epoch (train() then restores the best epoch's)
    reference, losses = oracle_training(batchnorm, num_samples, global_batch=8, epochs=2,
                                        parts=2 if batchnorm else 1)
    error = max_abs_diff(checkpoint_model_state(checkpoint), reference)
    np.testing.assert_allclose(ranks[0]["loss"], losses, rtol=1e-12)  # the global batch's loss
    kind = "batchnorm per rank" if batchnorm else "mlp"
    print(f"\n2 ranks x batch 4 vs 1 process x batch 8 ({kind}): "
          f"max |param difference| = {error:.2e}")
    assert error < 1e-10
    if batchnorm:  # the per-rank statistics matter: one process normalising all 8 differs
        whole, _ = oracle_training(True, num_samples, global_batch=8, epochs=2, parts=1)
        assert max_abs_diff(reference, whole) > 1e-6


def test_resume_across_world_sizes_1_2_1(tmp_path):
    # Epoch 1 in this process (world size 1, batch 8), epoch 2 on 2 ranks x batch 4, epoch 3
    # here again: the same path as 3 uninterrupted epochs with global batch 8.
    from mpi_worker import build_solver
    first = tmp_path / "epoch1.npz"
    solver = build_solver(False, 51, batch_size=8, epochs=1, checkpoint_name=str(first))
    assert type(solver).__name__ == "Solver"
    solver.train()
    second = tmp_path / "epoch2.npz"
    result = run_job(2, [WORKER, "train", str(tmp_path), "--samples", "51", "--epochs", "2",
                         "--resume", str(first), "--checkpoint", str(second)])
    assert result.returncode == 0, result.stdout + result.stderr
    reference, losses = oracle_training(False, 51, global_batch=8, epochs=2)
    error = max_abs_diff(checkpoint_model_state(second), reference)
    print(f"\nresumed 1 -> 2 ranks vs 1 process: max |param difference| = {error:.2e}")
    assert error < 1e-10
    np.testing.assert_allclose(np.load(tmp_path / "train-rank0.npz")["loss"], losses, rtol=1e-12)
    third = tmp_path / "epoch3.npz"
    build_solver(False, 51, batch_size=8, epochs=3, resume=str(second),
                 checkpoint_name=str(third)).train()
    reference, _ = oracle_training(False, 51, global_batch=8, epochs=3)
    assert max_abs_diff(checkpoint_model_state(third), reference) < 1e-10


# ---------------------------------------------------------------- the command line
def test_fastconv_train_nproc_runs_two_ranks_and_only_rank_0_reports(tmp_path):
    require_mpi()
    pytest.importorskip("sklearn", reason="the digits dataset needs the data extra")
    out = tmp_path / "run"
    command = [sys.executable, "-m", "fastconv", "train", "--model", "mlp", "--epochs", "1",
               "--batch-size", "32", "--no-progress", "--nproc", "2", "--out", str(out)]
    result = subprocess.run(command, capture_output=True, text=True, timeout=JOB_TIMEOUT_S)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert result.stdout.count("epoch 1/1:") == 1, output  # one report, from rank 0
    assert result.stdout.count("test accuracy") == 1, output
    assert (out / "checkpoint.npz").exists() and (out / "history.json").exists()


def test_fastconv_train_nproc_without_the_mpi_extra_is_a_clear_error(monkeypatch, capsys, tmp_path):
    from fastconv import cli
    for var in ("PMI_SIZE", "OMPI_COMM_WORLD_SIZE"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setitem(sys.modules, "mpi4py", None)  # makes `import mpi4py` raise ImportError
    status = cli.main(["train", "--nproc", "2", "--out", str(tmp_path)])
    assert status == 2
    assert "pip install 'fastconv[mpi]'" in capsys.readouterr().err


def test_a_bad_option_under_nproc_is_reported_once_before_any_rank_starts(monkeypatch, capsys,
                                                                           tmp_path):
    from fastconv import cli
    for var in ("PMI_SIZE", "OMPI_COMM_WORLD_SIZE"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setattr(distributed, "launch", lambda *a: pytest.fail("ranks started"))
    status = cli.main(["train", "--nproc", "2", "--model", "linear", "--dropout", "0.5",
                       "--out", str(tmp_path)])
    err = capsys.readouterr().err
    assert status == 2 and err.count("apply to mlp and cnn") == 1


def test_ctrl_c_under_nproc_waits_for_the_ranks_and_exits_130(monkeypatch, tmp_path):
    """The terminal's SIGINT reaches mpiexec and the ranks alike: the launcher must let the
    ranks finish their checkpoint (subprocess.run killed mpiexec 0.25 s later) and exit 130."""
    import subprocess
    from fastconv import cli
    waits = []

    class Job:
        def __init__(self, *args, **kwargs):
            pass

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

        def wait(self):
            waits.append(len(waits))
            if len(waits) == 1:
                raise KeyboardInterrupt
            return 130

    for var in ("PMI_SIZE", "OMPI_COMM_WORLD_SIZE"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setattr(distributed.launcher, "mpiexec_command", lambda n, args: ["mpiexec"])
    monkeypatch.setattr(subprocess, "Popen", Job)
    assert cli.main(["train", "--nproc", "2", "--out", str(tmp_path)]) == 130
    assert waits == [0, 1]  # waited again after the interrupt


def test_a_rank_whose_options_fail_ends_the_job(tmp_path):
    """Rank 1 asks for a GPU this machine lacks and exits 2 at its option check; it used to
    do so before MPI started, leaving rank 0 in MPI start-up forever."""
    require_mpi()
    from fastconv.backend import gpu_available
    if gpu_available():
        pytest.skip("a GPU is usable here: --device gpu would not fail")
    mpiexec = distributed.find_mpiexec()
    train = [sys.executable, "-m", "mpi4py", "-m", "fastconv", "train", "--model", "linear",
             "--epochs", "1", "--no-progress", "--out", str(tmp_path)]
    command = [mpiexec, "-n", "1", *train, "--device", "cpu", ":", "-n", "1", *train,
               "--device", "gpu"]
    env = distributed.launch_env(2, {**os.environ, "OMP_NUM_THREADS": "1"})
    with subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                          env=env, start_new_session=True) as proc:
        try:
            _, err = proc.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.communicate()
            pytest.fail("rank 0 hung after rank 1 failed its option check")
    assert proc.returncode != 0, err


def test_fastconv_info_names_the_transport(capsys):
    from fastconv import cli
    assert cli.main(["info"]) == 0
    line = [x for x in capsys.readouterr().out.splitlines() if x.startswith("data-parallel:")]
    assert len(line) == 1 and "MPI" in line[0]


# ---------------------------------------------------------------- NCCL set-up, with stand-ins
class ThreadedJob:
    """A job whose ranks are threads of this process, for the MPI calls the communicator
    makes. Every collective checks that all ranks are in the same call with the same buffer
    layout: where real MPI would hang (or mix up messages) this raises on every rank."""

    IN_PLACE, COMM_TYPE_SHARED = object(), object()
    MIN = staticmethod(lambda values: np.min(values, axis=0))
    SUM = staticmethod(lambda values: np.sum(values, axis=0))

    def __init__(self, size):
        self.size = size
        self.barrier = threading.Barrier(size, timeout=20)
        self.slots = [None] * size

    def comm(self, rank):
        return RankComm(self, rank)

    def exchange(self, rank, call, buf):
        """Every rank's ``buf`` (a copy), once all ranks have made the same ``call``."""
        self.slots[rank] = ((call, buf.dtype.str, buf.shape), buf.copy())
        self.barrier.wait()
        calls = [slot[0] for slot in self.slots]
        values = [slot[1] for slot in self.slots]
        self.barrier.wait()  # nobody writes the next call's slot before all have read
        if len(set(calls)) > 1:
            raise AssertionError(f"the ranks are in different collectives: {calls}")
        return values


class RankComm:
    """One rank's stand-in for an ``mpi4py.MPI.Comm`` in a :class:`ThreadedJob`."""

    def __init__(self, job, rank):
        self.job, self.rank = job, rank

    def Get_rank(self):
        return self.rank

    def Get_size(self):
        return self.job.size

    def Split_type(self, split_type, key):
        return self  # one machine: the node's ranks are the job's

    def Free(self):
        pass

    def Bcast(self, buf, root=0):
        buf[...] = self.job.exchange(self.rank, f"Bcast from {root}", buf)[root]

    def Allreduce(self, sendbuf, recvbuf, op):
        assert sendbuf is ThreadedJob.IN_PLACE
        recvbuf[...] = op(self.job.exchange(self.rank, "Allreduce", recvbuf))


def fake_nccl(unique_id, takes):
    """A ``cupy.cuda.nccl`` stand-in: ``get_unique_id()`` returns ``unique_id`` (or raises
    it, an exception); ``NcclCommunicator(ndev, commId, rank)`` takes only a ``takes``
    (bytes or tuple, as CuPy 14 and 13 do) and records the id each rank passed."""
    received = {}

    def get_unique_id():
        if isinstance(unique_id, Exception):
            raise unique_id
        return unique_id

    class NcclCommunicator:
        def __init__(self, ndev, comm_id, rank):
            if not isinstance(comm_id, takes):  # what Cython's typed argument says
                raise TypeError(f"Argument 'commId' has incorrect type (expected "
                                f"{takes.__name__}, got {type(comm_id).__name__})")
            assert len(comm_id) == 128  # sizeof(ncclUniqueId)
            received[rank] = comm_id

    return types.SimpleNamespace(available=True, get_unique_id=get_unique_id,
                                 get_version=lambda: 22703, NcclCommunicator=NcclCommunicator,
                                 received=received)


@pytest.fixture
def gpu_job(monkeypatch):
    """Build the communicators of a 2-rank GPU job, one per thread, over ``nccl`` (from
    :func:`fake_nccl`), with a one-GPU-per-rank CuPy stand-in: a list, per rank, of its
    Communicator or the exception its construction raised."""
    monkeypatch.setenv("FASTCONV_COLLECTIVE_TIMEOUT", "0")  # no watchdog thread
    monkeypatch.setattr(distributed.comm, "_import_mpi", lambda: ThreadedJob)

    def build(nccl, gpu_transport="auto", size=2):
        cuda = types.ModuleType("cupy.cuda")
        cuda.runtime = types.SimpleNamespace(getDeviceCount=lambda: size)
        cuda.Device = lambda index: types.SimpleNamespace(use=lambda: None)
        cuda.nccl = nccl
        cupy = types.ModuleType("cupy")
        cupy.cuda = cuda
        for name, module in [("cupy", cupy), ("cupy.cuda", cuda), ("cupy.cuda.nccl", nccl)]:
            monkeypatch.setitem(sys.modules, name, module)
        job, outcome = ThreadedJob(size), [None] * size

        def rank(r):
            try:
                outcome[r] = distributed.Communicator(job.comm(r), "gpu", gpu_transport)
            except Exception as exc:
                outcome[r] = exc

        threads = [threading.Thread(target=rank, args=(r,)) for r in range(size)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
        assert not any(thread.is_alive() for thread in threads), "a rank hung"
        return outcome
    return build


UNIQUE_ID = bytes(range(0, 256, 2))  # 128 bytes, half of them above 127 (negative as chars)


@pytest.mark.parametrize("spelling", ["bytes (CuPy 14)", "signed chars (CuPy 13, x86-64)",
                                      "unsigned chars (CuPy 13, aarch64)"])
def test_every_rank_passes_rank_0s_nccl_id_as_its_cupy_spells_it(gpu_job, spelling):
    raw = np.frombuffer(UNIQUE_ID, dtype=np.uint8)
    unique_id, takes = {
        "bytes (CuPy 14)": (UNIQUE_ID, bytes),
        "signed chars (CuPy 13, x86-64)": (tuple(int(v) for v in raw.view(np.int8)), tuple),
        "unsigned chars (CuPy 13, aarch64)": (tuple(int(v) for v in raw), tuple),
    }[spelling]
    nccl = fake_nccl(unique_id, takes)
    comms = gpu_job(nccl, "nccl")
    assert all(isinstance(c, distributed.Communicator) for c in comms), comms
    assert nccl.received == {0: unique_id, 1: unique_id}
    assert [c._gpu_note for c in comms] == ["NCCL 22703 (cupy.cuda.nccl)"] * 2


@pytest.mark.parametrize("gpu_transport", ["auto", "nccl"])
def test_a_rank_0_that_cannot_make_the_nccl_id_stops_no_rank_in_a_collective(gpu_job,
                                                                             gpu_transport):
    nccl = fake_nccl(RuntimeError("NCCL error: unhandled system error"), bytes)
    comms = gpu_job(nccl, gpu_transport)
    assert nccl.received == {}
    if gpu_transport == "nccl":  # asked for: every rank refuses, naming why
        assert all(isinstance(c, RuntimeError) for c in comms), comms
        assert "unhandled system error" in str(comms[0])
        assert "rank 0 could not make the NCCL unique id" in str(comms[1])
    else:  # every rank falls back to staging, saying why
        notes = [c._gpu_note for c in comms]
        assert notes[0].startswith("staged through host memory and MPI (NCCL initialisation "
                                   "failed (RuntimeError: NCCL error: unhandled system"), notes
        assert "rank 0 could not make the NCCL unique id" in notes[1], notes
        assert all(c._nccl is None for c in comms)


def test_an_nccl_id_of_an_unknown_spelling_is_refused_on_every_rank(gpu_job):
    comms = gpu_job(fake_nccl([0] * 128, bytes), "nccl")
    assert "returned a list; expected bytes (CuPy 14+) or a tuple" in str(comms[0])
    assert "rank 0 could not make the NCCL unique id" in str(comms[1])


# ---------------------------------------------------------------- GPU (NCCL, staged)
def gpu_count():
    import cupy
    return cupy.cuda.runtime.getDeviceCount()


@pytest.mark.gpu
def test_one_process_gpu_communicator_uses_the_first_gpu():
    import cupy
    comm = distributed.Communicator(None, "gpu")
    grads = [cupy.arange(4.0)]
    assert comm.allreduce_mean_(grads, weight=3) == 3.0
    cupy.testing.assert_array_equal(grads[0], cupy.arange(4.0))
    assert cupy.cuda.Device().id == 0


@pytest.mark.gpu
@pytest.mark.parametrize("transport", ["staged", "nccl"])
def test_two_rank_collectives_on_the_gpu(tmp_path, transport):
    if transport == "nccl":
        reason = distributed.comm._nccl_unusable_reason(2, gpu_count())
        if reason is not None:
            pytest.skip(f"2 ranks over NCCL cannot run here: {reason}")
    result = run_job(2, [WORKER, "collectives", str(tmp_path), "--device", "gpu",
                         "--gpu-transport", transport])
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    line = check_collectives(tmp_path)
    if transport == "nccl":
        assert "CuPy arrays: NCCL" in line, line
    else:
        assert "CuPy arrays: staged through host memory" in line, line
        assert output.count("GPU arrays are exchanged staged") == 2, output  # once per rank


@pytest.mark.gpu
def test_two_ranks_on_the_gpu_train_like_one_cpu_process(tmp_path):
    # NCCL where there is a GPU per rank, else staged through the host (with its warning).
    checkpoint = tmp_path / "ck.npz"
    result = run_job(2, [WORKER, "train", str(tmp_path), "--device", "gpu", "--samples", "51",
                         "--checkpoint", str(checkpoint)])
    assert result.returncode == 0, result.stdout + result.stderr
    reference, losses = oracle_training(False, 51, global_batch=8, epochs=2)
    error = max_abs_diff(checkpoint_model_state(checkpoint), reference)
    print(f"\n2 GPU ranks x batch 4 vs 1 CPU process x batch 8: "
          f"max |param difference| = {error:.2e}")
    assert error < 1e-10
