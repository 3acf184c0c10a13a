"""Each epoch's shuffled sample indices, sharded by rank so every sample is seen once per epoch."""

from __future__ import annotations

from collections.abc import Iterator
import numpy

from .._typing import ArrayLike


def shard(indices: ArrayLike, rank: int, world_size: int) -> numpy.ndarray:
    """This rank's part of one global batch of sample indices.

    The remainder rule: ``numpy.array_split(indices, world_size)[rank]``,
    contiguous parts whose sizes differ by at most one, the first
    ``len(indices) % world_size`` ranks taking one more (a part may be empty
    when the batch is smaller than the world). Nothing is dropped or padded.

    Parameters
    ----------
    indices : array_like
        The global batch's sample indices.
    rank : int
        This rank, in [0, world_size).
    world_size : int
        The number of ranks, >= 1.

    Returns
    -------
    numpy.ndarray
        This rank's contiguous part of ``indices``.

    Raises
    ------
    ValueError
        For a world size below 1 or a rank outside [0, world_size).

    Examples
    --------
    >>> from fastconv.distributed import shard
    >>> [shard(range(7), rank, 3).tolist() for rank in range(3)]
    [[0, 1, 2], [3, 4], [5, 6]]
    """
    # Uneven parts are fine: Communicator.allreduce_mean_ weights each rank by its
    # part's size, so the averaged gradient is the one of the whole global batch.
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
    number of steps.

    Parameters
    ----------
    num_samples : int
        The training set's size, >= 1.
    batch_size : int
        The per-rank batch, >= 1.
    rank, world_size : int, default 0 and 1
        This rank and the number of ranks.
    seed : int, default 0
        With the epoch, seeds ``numpy.random.default_rng([seed, epoch])``.
    shuffle : bool, default True
        False: every epoch in index order.

    Raises
    ------
    ValueError
        For sizes below 1, or a rank outside [0, world_size).

    Examples
    --------
    >>> import numpy as np
    >>> from fastconv.distributed import ShardedSampler
    >>> ranks = [ShardedSampler(10, 2, rank, 2, seed=0) for rank in range(2)]
    >>> len(ranks[0]), ranks[0].global_batch_size
    (3, 4)
    >>> steps = [list(sampler.batches(epoch=0)) for sampler in ranks]
    >>> [len(part) for part in steps[0] + steps[1]]
    [2, 2, 1, 2, 2, 1]
    >>> sorted(np.concatenate(steps[0] + steps[1]).tolist()) == list(range(10))
    True
    """

    def __init__(self, num_samples: int, batch_size: int, rank: int = 0, world_size: int = 1,
                 seed: int = 0, shuffle: bool = True) -> None:
        if int(num_samples) < 1:
            raise ValueError(f"num_samples must be >= 1, got {num_samples}")
        if int(batch_size) < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        shard(numpy.zeros(0), rank, world_size)  # validates rank and world_size
        self.num_samples, self.batch_size = int(num_samples), int(batch_size)
        self.rank, self.world_size = int(rank), int(world_size)
        self.seed, self.shuffle = seed, bool(shuffle)

    @property
    def global_batch_size(self) -> int:
        """Samples per step across all ranks: per-rank batch x world size."""
        return self.batch_size * self.world_size

    def __len__(self) -> int:
        """Steps per epoch (the same on every rank)."""
        return -(-self.num_samples // self.global_batch_size)

    def epoch_order(self, epoch: int) -> numpy.ndarray:
        """The epoch's order of all sample indices, identical on every rank.

        Parameters
        ----------
        epoch : int
            The epoch, from 0.

        Returns
        -------
        numpy.ndarray
            A permutation of ``range(num_samples)`` (the identity without ``shuffle``).
        """
        if not self.shuffle:
            return numpy.arange(self.num_samples)
        return numpy.random.default_rng([int(self.seed), int(epoch)]).permutation(self.num_samples)

    def batches(self, epoch: int) -> Iterator[numpy.ndarray]:
        """This rank's index arrays for ``epoch``, one per step (some may be empty).

        Parameters
        ----------
        epoch : int
            The epoch, from 0.

        Yields
        ------
        numpy.ndarray
            This rank's :func:`shard` of each global batch of :meth:`epoch_order`.
        """
        order = self.epoch_order(epoch)
        step = self.global_batch_size
        for start in range(0, self.num_samples, step):
            yield shard(order[start:start + step], self.rank, self.world_size)
