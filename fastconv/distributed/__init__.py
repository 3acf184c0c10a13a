"""Data-parallel training over MPI (NumPy arrays) and NCCL (CuPy arrays).

One process per rank, started by ``mpiexec`` (or ``fastconv train --nproc N``).
Every rank holds a full copy of the model; rank 0's initial parameters are
broadcast to all; each step every rank runs forward/backward on its own shard
of the global batch, and the gradients are averaged across ranks in ONE
flattened buffer per step before the (identical) optimiser update.

Averaging is weighted by each rank's number of samples, so uneven shards (the
last batch of an epoch) give exactly the gradient of the mean loss over the
global batch, the same as one process with the whole batch. Batch-norm
statistics stay per rank, as in PyTorch's default DistributedDataParallel.

mpi4py (the ``mpi`` extra) is imported lazily: the core stays NumPy-only and a
job with world size 1 never needs MPI.

Data parallelism is asked for, never inferred: ``Solver(model, data,
parallel=DataParallel())`` on every rank. A plain Solver under a launcher
trains one whole model per rank and warns about it.

Modules: ``comm`` (the Communicator and its transports), ``job``
(:func:`init` and the other ways into the launched job), ``sampler``
(:class:`ShardedSampler`), ``launcher`` (``mpiexec`` on this machine),
``parallel`` (:class:`DataParallel`, the Solver's strategy) and ``solver``
(:class:`DistributedSolver`, a Solver with that strategy built in).
"""

from ..train.parallel import launched_world_size
from .comm import GPU_TRANSPORTS, Communicator
from .job import current, describe_transport, init, start_mpi
from .launcher import find_mpiexec, launch, launch_env, mpiexec_command
from .parallel import DataParallel
from .sampler import ShardedSampler, shard
from .solver import DistributedSolver, data_parallel

__all__ = ["GPU_TRANSPORTS", "Communicator", "current", "describe_transport", "init",
           "launched_world_size", "start_mpi", "find_mpiexec", "launch", "launch_env",
           "mpiexec_command", "DataParallel", "ShardedSampler", "shard", "DistributedSolver",
           "data_parallel"]
