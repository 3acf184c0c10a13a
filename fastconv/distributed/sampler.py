"""Each epoch's shuffled sample indices, sharded by rank so every sample is seen once per epoch."""

import numpy


def shard(indices, rank, world_size):
    """This rank's part of one global batch of sample indices.

    The remainder rule: ``numpy.array_split(indices, world_size)[rank]``,
    contiguous parts whose sizes differ by at most one, the first
    ``len(indices) % world_size`` ranks taking one more (a part may be empty
    when the batch is smaller than the world). Nothing is dropped or padded;
    :meth:`Communicator.allreduce_mean_` weights each rank by its part's size,
    so the averaged gradient is the one of the whole global batch.
    """
    world_size, rank = int(world_size), int(rank)
    if world_size < 1:
        raise ValueError(f"world_size must be >= 1, got {world_size}")
    if not 0 <= rank < world_size:
        raise ValueError(f"rank must be in [0, {world_size}), got {rank}")
    return numpy.array_split(numpy.asarray(indices), world_size)[rank]


class ShardedSampler:
    """Each epoch's shuffled sample indices, cut into global batches and sharded by rank.

    Every rank draws the same permutation (seeded by ``seed`` and the epoch),
    cuts it into global batches of ``batch_size * world_size`` (the last one
    may be shorter) and keeps its :func:`shard` of each, so every sample is
    seen exactly once per epoch across the job, and every rank takes the same
    number of steps. ``batch_size`` is the per-rank batch.
    """

    def __init__(self, num_samples, batch_size, rank=0, world_size=1, seed=0, shuffle=True):
        if int(num_samples) < 1:
            raise ValueError(f"num_samples must be >= 1, got {num_samples}")
        if int(batch_size) < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        shard(numpy.zeros(0), rank, world_size)  # validates rank and world_size
        self.num_samples, self.batch_size = int(num_samples), int(batch_size)
        self.rank, self.world_size = int(rank), int(world_size)
        self.seed, self.shuffle = seed, bool(shuffle)

    @property
    def global_batch_size(self):
        """Samples per step across all ranks: per-rank batch x world size."""
        return self.batch_size * self.world_size

    def __len__(self):
        """Steps per epoch (the same on every rank)."""
        return -(-self.num_samples // self.global_batch_size)

    def epoch_order(self, epoch):
        """The epoch's order of all sample indices, identical on every rank."""
        if not self.shuffle:
            return numpy.arange(self.num_samples)
        return numpy.random.default_rng([int(self.seed), int(epoch)]).permutation(self.num_samples)

    def batches(self, epoch):
        """This rank's index arrays for ``epoch``, one per step (some may be empty)."""
        order = self.epoch_order(epoch)
        step = self.global_batch_size
        for start in range(0, self.num_samples, step):
            yield shard(order[start:start + step], self.rank, self.world_size)
