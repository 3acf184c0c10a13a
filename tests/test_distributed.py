"""Data-parallel training: the sharded sampler (pure Python) and 2-rank MPI jobs (mpiexec)."""

import os
import signal
import subprocess
import sys

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


def test_launched_world_size_reads_the_launcher_environment(monkeypatch):
    for var in ("PMI_SIZE", "OMPI_COMM_WORLD_SIZE"):
        monkeypatch.delenv(var, raising=False)
    assert distributed.launched_world_size() == 1
    monkeypatch.setenv("OMPI_COMM_WORLD_SIZE", "4")
    assert distributed.launched_world_size() == 4


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


def run_job(nproc, python_args, under_mpi4py=True, timeout=JOB_TIMEOUT_S):
    """Run python_args on nproc ranks; return the CompletedProcess (stdout+stderr as text)."""
    require_mpi()
    command = distributed.mpiexec_command(nproc, python_args)
    if not under_mpi4py:  # drop "-m mpi4py": fastconv.distributed.init's own abort hook must do
        at = command.index(sys.executable) + 1
        assert command[at:at + 2] == ["-m", "mpi4py"]
        del command[at:at + 2]
    env = distributed.launch_env(nproc, {**os.environ, "OMP_NUM_THREADS": "1",
                                         "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"})
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


def test_two_rank_collectives_match_numpy(tmp_path):
    result = run_job(2, [WORKER, "collectives", str(tmp_path)])
    assert result.returncode == 0, result.stdout + result.stderr
    ranks = [np.load(tmp_path / f"collectives-rank{r}.npz") for r in range(2)]
    weights = [3, 1]
    for out in ranks:
        # broadcast_: everyone holds rank 0's draws
        np.testing.assert_array_equal(out["w"], np.random.default_rng(0).normal(size=(3, 4)))
        np.testing.assert_array_equal(
            out["b"], np.random.default_rng(10).normal(size=5).astype(np.float32))
        # allreduce_mean_: the sample-weighted mean, per dtype
        g0 = [np.random.default_rng(100 + r).normal(size=(2, 3)) for r in range(2)]
        g1 = [np.random.default_rng(200 + r).normal(size=7).astype(np.float32) for r in range(2)]
        np.testing.assert_allclose(out["g0"], (3 * g0[0] + 1 * g0[1]) / 4, rtol=1e-15, atol=0)
        np.testing.assert_allclose(out["g1"], (3 * g1[0] + 1 * g1[1]) / 4, rtol=1e-6)
        assert out["g1"].dtype == np.float32 and float(out["total"]) == 4.0
        # weight 0 on rank 0: rank 1's values (2.0) alone
        np.testing.assert_array_equal(out["zero_weight"], np.full(4, 2.0))
        assert float(out["loss"]) == pytest.approx((3 * 1.0 + 1 * 2.0) / 4)
        assert float(out["acc"]) == pytest.approx((3 * 0.0 + 1 * 0.25) / 4)
        assert "different parameter sets" in str(out["mismatch"])
    assert int(ranks[0]["world_size"]) == 2


@pytest.mark.parametrize("under_mpi4py", [True, False], ids=["python-m-mpi4py", "plain-python"])
def test_a_failing_rank_aborts_the_whole_job(tmp_path, under_mpi4py):
    # The bound is the timeout: a hung peer raises subprocess.TimeoutExpired, failing the test.
    result = run_job(2, [WORKER, "fail", str(tmp_path)], under_mpi4py=under_mpi4py, timeout=60)
    output = result.stdout + result.stderr
    assert result.returncode != 0, output
    assert "rank 1 failed on purpose" in output
