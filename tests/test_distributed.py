"""Data-parallel training: the sharded sampler (pure Python) and 2-rank MPI jobs (mpiexec)."""

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
