"""The Solver: minibatch training with history, best-parameter tracking, early stopping and checkpoints.

It trains a course model (``model.params`` and ``model.loss(X, y)``) or a
:class:`fastconv.nn.Module` with a ``loss_fn``, updated by a course update rule
(``update_rule='sgd' | 'sgd_momentum' | 'rmsprop' | 'adam'`` or a callable
``rule(w, dw, config) -> (next_w, config)``, one config per parameter, seeded
from ``optim_config``) or by an optimizer object (``optimizer=``, built over
``model.params``, see fastconv.optim). Both are adapted once, when the Solver
is built (:mod:`fastconv.train.adapters`); the training loop is the same for all.

Each epoch visits every training sample once in an order drawn from
``numpy.random.default_rng([seed, epoch])``, so a run is reproducible and a run
resumed from a checkpoint takes the same path as one that was never stopped.

How many processes train is the Solver's ``parallel`` strategy:
:class:`SingleProcess` (the default) or
:class:`fastconv.distributed.DataParallel` (one shard of every batch per MPI
rank, one all-reduce of the gradients per step). Under an MPI launcher
without ``parallel=`` every rank trains alone, with a warning.

Checkpoints are .npz files written atomically at the end of every epoch and read
with ``allow_pickle=False`` (:mod:`fastconv.train.checkpoints`): an untrusted
file cannot run code, and a corrupt or mismatched one raises an error naming
the entry. A KeyboardInterrupt stops training between two writes, so the last
checkpoint on disk stays complete; the interrupt is re-raised
(``solver.interrupted`` is set) for the caller to report.

Modules: ``solver`` (:class:`Solver`), ``adapters`` (models and update rules
behind one interface each), ``checkpoints`` (the file's entries) and
``parallel`` (:class:`SingleProcess`, :func:`launched_world_size`).
"""

from .adapters import UPDATE_RULES
from .checkpoints import FORMAT
from .parallel import SingleProcess, launched_world_size
from .solver import Solver

__all__ = ["Solver", "SingleProcess", "FORMAT", "UPDATE_RULES", "launched_world_size"]
