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
"""

import os
import sys
import traceback
import warnings
import zlib
from collections.abc import Mapping

import numpy

from .backend import as_numpy, device_of, get_array_module, resolve_device
from .train import Solver

# Environment variables launchers set: MPICH/hydra and Intel MPI (PMI_*), Open MPI (OMPI_*).
_SIZE_VARS = ("PMI_SIZE", "OMPI_COMM_WORLD_SIZE")
GPU_TRANSPORTS = ("auto", "nccl", "staged")


def launched_world_size():
    """The world size the MPI launcher announced in the environment, else 1.

    Reads only environment variables, so it never imports mpi4py: the Solver
    uses it to decide whether to go distributed at all.
    """
    for var in _SIZE_VARS:
        value = os.environ.get(var, "")
        if value.isdigit():
            return int(value)
    return 1


def _import_mpi():
    try:
        from mpi4py import MPI
    except ImportError as exc:
        raise RuntimeError(
            "data-parallel training needs mpi4py and an MPI runtime: "
            "pip install 'fastconv[mpi]' (mpi4py + the mpich wheel)") from exc
    return MPI


class Communicator:
    """The process group of a data-parallel job: rank, size and the collectives training needs.

    Built by :func:`init`. With world size 1 every collective is a cheap
    no-op, so the same training code runs with and without MPI. NumPy arrays
    travel through ``MPI.Allreduce``/``Bcast`` on raw buffers (no pickling);
    CuPy arrays through NCCL when it is usable, otherwise staged through host
    memory (with a one-time warning).
    """

    def __init__(self, mpi_comm=None, device="cpu", gpu_transport="auto"):
        if gpu_transport not in GPU_TRANSPORTS:
            raise ValueError(f"gpu_transport must be one of {GPU_TRANSPORTS}, "
                             f"got {gpu_transport!r}")
        self.comm = mpi_comm
        self.rank = 0 if mpi_comm is None else mpi_comm.Get_rank()
        self.world_size = 1 if mpi_comm is None else mpi_comm.Get_size()
        self.local_rank, self.local_size = 0, 1
        if mpi_comm is not None and self.world_size > 1:
            MPI = _import_mpi()
            node = mpi_comm.Split_type(MPI.COMM_TYPE_SHARED, key=self.rank)
            self.local_rank, self.local_size = node.Get_rank(), node.Get_size()
            node.Free()
        self.device = device
        self._nccl = None
        self._gpu_note = "not used (CPU job)"
        self._staging_warned = False
        if device == "gpu":
            self._setup_gpu(gpu_transport)

    @property
    def is_root(self):
        """True on rank 0, the rank that prints, writes checkpoints and plots."""
        return self.rank == 0

    def _setup_gpu(self, gpu_transport):
        import cupy
        count = cupy.cuda.runtime.getDeviceCount()
        cupy.cuda.Device(self.local_rank % count).use()
        if self.world_size == 1:
            self._gpu_note = "not exchanged (world size 1)"
            return
        if gpu_transport == "staged":
            self._gpu_note = "staged through host memory and MPI (asked for)"
            return
        reason = _nccl_unusable_reason(self.local_size, count)
        # All ranks must choose alike: NCCL set-up is collective, a lone rank would hang in it.
        if self._all_ranks_agree(reason is None):
            try:
                self._nccl = self._make_nccl_comm()
            except Exception as exc:  # an NCCL init failure: fall back, but say why
                reason = f"NCCL initialisation failed ({type(exc).__name__}: {exc})"
            if not self._all_ranks_agree(reason is None):
                self._nccl = None
                reason = reason or "NCCL initialisation failed on another rank"
        else:
            reason = reason or "another rank cannot use NCCL"
        if reason is not None:
            if gpu_transport == "nccl":
                raise RuntimeError(f"gpu_transport='nccl' was asked for but {reason}")
            self._gpu_note = f"staged through host memory and MPI ({reason})"
        else:
            from cupy.cuda import nccl
            self._gpu_note = f"NCCL {nccl.get_version()} (cupy.cuda.nccl)"

    def _all_ranks_agree(self, ok):
        """True on every rank when ``ok`` is true on every rank (one tiny all-reduce)."""
        MPI = _import_mpi()
        flag = numpy.array([1 if ok else 0], dtype=numpy.int32)
        self.comm.Allreduce(MPI.IN_PLACE, flag, op=MPI.MIN)
        return bool(flag[0])

    def _make_nccl_comm(self):
        from cupy.cuda import nccl
        uid = numpy.zeros(128, dtype=numpy.int64)  # an ncclUniqueId is 128 bytes
        if self.rank == 0:
            uid[:] = nccl.get_unique_id()
        self.comm.Bcast(uid, root=0)
        return nccl.NcclCommunicator(self.world_size, tuple(int(v) for v in uid), self.rank)

    # ------------------------------------------------------------------ collectives
    def barrier(self):
        """Wait until every rank gets here (a no-op in a one-process job)."""
        if self.world_size > 1:
            self.comm.Barrier()

    def broadcast_(self, arrays, root=0):
        """Overwrite ``arrays`` (a dict or sequence) on every rank with ``root``'s values.

        One flattened buffer per dtype. Also checks that every rank holds the
        same number, shapes and dtypes of arrays, so a model mismatch is a
        clear error instead of a hang or silent corruption.
        """
        arrays = _as_list(arrays, "arrays")
        if self.world_size == 1:
            return
        self._check_same_layout(arrays)
        for group in _group_by_dtype(arrays):
            buf = _flatten(group)
            self._bcast_buffer(buf, root)
            _unflatten_into(buf, group)

    def allreduce_mean_(self, arrays, weight=1.0):
        """Replace ``arrays`` on every rank by their ``weight``-weighted mean across ranks.

        ``sum_r weight_r * a_r / sum_r weight_r``, computed in one flattened
        buffer per dtype (the weights travel in its last element). Pass each
        rank's sample count as ``weight`` and the result is the gradient of
        the mean loss over the global batch, uneven shards included; a rank
        with weight 0 contributes nothing. Returns the total weight.
        """
        arrays = _as_list(arrays, "arrays")
        weight = float(weight)
        if weight < 0:
            raise ValueError(f"weight must be >= 0 (a sample count), got {weight}")
        if self.world_size == 1:
            return weight
        total = weight
        for group in _group_by_dtype(arrays) or [[]]:
            buf = _flatten(group, scale=weight, extra=weight,
                           like=group[0] if group else numpy.zeros(0))
            self._allreduce_buffer(buf)
            total = float(buf[-1])
            if total > 0:
                buf /= total  # a Python number: dividing by buf[-1] would alias the divisor
            _unflatten_into(buf, group)
        return total

    def allreduce_sum(self, values):
        """Sum a dict of Python numbers across ranks (one float64 message); return the dict."""
        if not isinstance(values, dict):
            raise TypeError(f"values must be a dict of numbers, got {type(values).__name__}")
        keys = sorted(values)
        buf = numpy.array([float(values[k]) for k in keys], dtype=numpy.float64)
        if self.world_size > 1:
            self._allreduce_buffer(buf)
        return {k: float(v) for k, v in zip(keys, buf)}

    def average_metrics(self, metrics, count):
        """Weighted mean across ranks of per-rank means (loss, accuracy) over ``count`` samples.

        For logging: every rank gets the global-batch value. Ranks with
        ``count`` 0 contribute nothing; with no samples anywhere the result is NaN.
        """
        sums = {k: float(v) * count for k, v in metrics.items()}
        sums["__count__"] = float(count)
        totals = self.allreduce_sum(sums)
        n = totals.pop("__count__")
        return {k: (v / n if n > 0 else float("nan")) for k, v in totals.items()}

    # ------------------------------------------------------------------ transports
    def _bcast_buffer(self, buf, root):
        if device_of(buf) == "cpu":
            self.comm.Bcast(buf, root=root)
        elif self._nccl is not None:
            import cupy
            self._nccl.bcast(buf.data.ptr, buf.size, _nccl_dtype(buf.dtype), root,
                             cupy.cuda.get_current_stream().ptr)
        else:
            host = self._stage(buf)
            self.comm.Bcast(host, root=root)
            buf.set(host)

    def _allreduce_buffer(self, buf):
        if device_of(buf) == "cpu":
            MPI = _import_mpi()  # mpi4py maps float16/32/64 from the buffer's own format
            self.comm.Allreduce(MPI.IN_PLACE, buf, op=MPI.SUM)
        elif self._nccl is not None:
            import cupy
            from cupy.cuda import nccl
            self._nccl.allReduce(buf.data.ptr, buf.data.ptr, buf.size, _nccl_dtype(buf.dtype),
                                 nccl.NCCL_SUM, cupy.cuda.get_current_stream().ptr)
        else:
            host = self._stage(buf)
            MPI = _import_mpi()
            self.comm.Allreduce(MPI.IN_PLACE, host, op=MPI.SUM)
            buf.set(host)

    def _stage(self, buf):
        if not self._staging_warned:
            warnings.warn(f"GPU arrays are exchanged {self._gpu_note}; install NCCL "
                          "(pip install nvidia-nccl-cu13) and use one GPU per rank for "
                          "GPU-to-GPU exchange", RuntimeWarning, stacklevel=3)
            self._staging_warned = True
        return buf.get()

    def _check_same_layout(self, arrays):
        layout = repr([(tuple(a.shape), str(a.dtype)) for a in arrays]).encode()
        signature = numpy.array([len(arrays), sum(a.size for a in arrays), zlib.crc32(layout)],
                                dtype=numpy.int64)
        MPI = _import_mpi()
        lowest, highest = signature.copy(), signature.copy()
        self.comm.Allreduce(MPI.IN_PLACE, lowest, op=MPI.MIN)
        self.comm.Allreduce(MPI.IN_PLACE, highest, op=MPI.MAX)
        if not numpy.array_equal(lowest, highest):
            raise ValueError(
                f"the ranks hold different parameter sets (rank {self.rank}: {len(arrays)} "
                f"arrays, {int(signature[1])} numbers); build the same model on every rank")

    def describe(self):
        """One line naming the transports in use, for logs and ``fastconv info``."""
        if self.world_size == 1:
            return "single process (world size 1): no gradient exchange"
        MPI = _import_mpi()
        library = " ".join(MPI.Get_library_version().split()[:3])
        return (f"world size {self.world_size} ({self.local_size} on this node); NumPy arrays: "
                f"MPI Allreduce via mpi4py ({library}); CuPy arrays: {self._gpu_note}")


def _nccl_unusable_reason(local_size, device_count):
    """None when NCCL can be used, else why not."""
    if local_size > device_count:
        return (f"{local_size} ranks share {device_count} GPU(s) on this node and NCCL "
                "needs one GPU per rank")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # CuPy warns on import when libnccl is missing
        try:
            from cupy.cuda import nccl
        except ImportError as exc:
            return f"cupy.cuda.nccl is not importable ({exc})"
    if not getattr(nccl, "available", False):
        return "CuPy cannot load libnccl (pip install nvidia-nccl-cu13)"
    return None


def _nccl_dtype(dtype):
    from cupy.cuda import nccl
    table = {numpy.dtype(numpy.float16): nccl.NCCL_FLOAT16,
             numpy.dtype(numpy.float32): nccl.NCCL_FLOAT32,
             numpy.dtype(numpy.float64): nccl.NCCL_FLOAT64}
    if dtype not in table:
        raise TypeError(f"NCCL exchange supports float16/32/64 arrays, got {dtype}")
    return table[dtype]


# ---------------------------------------------------------------------- buffers
def _as_list(arrays, name):
    if isinstance(arrays, Mapping):
        return [arrays[k] for k in sorted(arrays)]
    if isinstance(arrays, (list, tuple)):
        return list(arrays)
    raise TypeError(f"{name} must be a mapping or a sequence of arrays, "
                    f"got {type(arrays).__name__}")


def _group_by_dtype(arrays):
    groups = {}
    for a in arrays:
        if not hasattr(a, "dtype") or not hasattr(a, "shape"):
            raise TypeError(f"expected NumPy or CuPy arrays, got {type(a).__name__}")
        groups.setdefault((device_of(a), a.dtype.str), []).append(a)
    return [groups[k] for k in sorted(groups)]


def _flatten(arrays, scale=None, extra=None, like=None):
    """One contiguous buffer holding ``arrays`` (times ``scale``), plus ``extra`` at the end."""
    like = arrays[0] if arrays else like
    xp = sys.modules["cupy"] if device_of(like) == "gpu" else numpy
    size = sum(a.size for a in arrays) + (extra is not None)
    buf = xp.empty(size, dtype=like.dtype)
    offset = 0
    for a in arrays:
        view = buf[offset:offset + a.size]
        view[...] = a.reshape(-1)
        if scale is not None:
            view *= scale
        offset += a.size
    if extra is not None:
        buf[-1] = extra
    return buf


def _unflatten_into(buf, arrays):
    offset = 0
    for a in arrays:
        a[...] = buf[offset:offset + a.size].reshape(a.shape)
        offset += a.size


# ---------------------------------------------------------------------- initialisation
_current = None


def init(device=None, gpu_transport="auto"):
    """Join the MPI job this process was launched in and return its :class:`Communicator`.

    Without a launcher (world size 1) MPI is not touched. With one, each
    rank picks GPU ``local_rank % device_count`` when ``device`` is 'gpu',
    and an uncaught exception on any rank prints that rank's traceback and
    aborts the whole job (no hung peers). Idempotent: later calls return the
    same communicator.
    """
    global _current
    if _current is not None:
        return _current
    device = resolve_device(device)
    if launched_world_size() == 1 and "mpi4py.MPI" not in sys.modules:
        _current = Communicator(None, device, gpu_transport)
        return _current
    MPI = _import_mpi()
    _current = Communicator(MPI.COMM_WORLD, device, gpu_transport)
    if _current.world_size > 1:
        _install_abort_hook(_current)
    return _current


def current():
    """The communicator :func:`init` returned, or None before it was called."""
    return _current


def _install_abort_hook(communicator):
    previous = sys.excepthook

    def abort_all_ranks(exc_type, exc, tb):
        prefix = f"[fastconv rank {communicator.rank}/{communicator.world_size}] "
        text = "".join(traceback.format_exception(exc_type, exc, tb))
        sys.stderr.write("".join(prefix + line + "\n" for line in text.splitlines()))
        sys.stderr.flush()
        if previous is not sys.__excepthook__:
            previous(exc_type, exc, tb)
        communicator.comm.Abort(1)

    sys.excepthook = abort_all_ranks


def describe_transport():
    """How gradients would travel in this process, for ``fastconv info``; never starts MPI.

    Inside a launched job it describes the initialised communicator;
    otherwise it reports what is installed (mpi4py, the MPI runtime, NCCL).
    """
    if _current is not None and _current.world_size > 1:
        return _current.describe()
    try:
        from importlib.metadata import PackageNotFoundError, version
        import mpi4py
    except ImportError:
        return "single process; no MPI (pip install 'fastconv[mpi]' for data-parallel training)"
    try:
        runtime = f"mpich {version('mpich')} wheel"
    except PackageNotFoundError:
        runtime = "system MPI"
    launcher = find_mpiexec() or "no mpiexec found"
    gpu = _nccl_note_without_device()
    return (f"single process until launched; mpi4py {mpi4py.__version__} + {runtime} "
            f"({launcher}); NumPy arrays: MPI Allreduce; CuPy arrays: {gpu}")


def _nccl_note_without_device():
    from .backend import gpu_status
    available, reason = gpu_status()
    if not available:
        return f"no usable GPU ({reason})"
    reason = _nccl_unusable_reason(0, 0)
    return "NCCL (cupy.cuda.nccl)" if reason is None else f"staged through host memory ({reason})"


# ---------------------------------------------------------------------- sampling
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


# ---------------------------------------------------------------------- launching
def find_mpiexec():
    """Path of the ``mpiexec`` to use: the one beside this Python (the mpich wheel's), else PATH."""
    import shutil
    import sysconfig
    beside = os.path.join(sysconfig.get_path("scripts"), "mpiexec")
    if os.access(beside, os.X_OK):
        return beside
    return shutil.which("mpiexec")


def mpiexec_command(nproc, python_args):
    """The command that runs ``python -m mpi4py <python_args>`` on ``nproc`` local ranks.

    ``python_args`` is what follows ``python`` (``["-m", "fastconv", "train", ...]``
    or ``["script.py", ...]``). ``-m mpi4py`` makes an exception on one rank
    abort all ranks. Open MPI gets ``--oversubscribe`` (and
    ``--allow-run-as-root`` as root); MPICH's hydra needs neither. Raises
    RuntimeError when the ``mpi`` extra is missing.
    """
    import subprocess
    nproc = int(nproc)
    if nproc < 1:
        raise ValueError(f"nproc must be >= 1, got {nproc}")
    try:
        import mpi4py  # noqa: F401  (the ranks need it; fail here, clearly, not in N tracebacks)
    except ImportError as exc:
        raise RuntimeError("running on several processes needs the mpi extra: pip install "
                           "'fastconv[mpi]' (mpi4py and the mpich wheel, which provides "
                           "mpiexec)") from exc
    launcher = find_mpiexec()
    if launcher is None:
        raise RuntimeError("no mpiexec found beside this Python or on PATH: pip install mpich")
    flags = []
    version = subprocess.run([launcher, "--version"], capture_output=True, text=True).stdout
    if "Open MPI" in version or "OpenRTE" in version:
        flags.append("--oversubscribe")
        if hasattr(os, "geteuid") and os.geteuid() == 0:
            flags.append("--allow-run-as-root")
    return [launcher, *flags, "-n", str(nproc), sys.executable, "-m", "mpi4py", *python_args]


def launch_env(nproc, env=None):
    """A copy of ``env`` (default os.environ) with BLAS threads capped at cores // nproc per rank.

    Left alone when OMP_NUM_THREADS, OPENBLAS_NUM_THREADS or MKL_NUM_THREADS
    is already set, so the user's choice wins; otherwise N ranks with a
    full-width BLAS pool each would fight over the same cores.
    """
    env = dict(os.environ if env is None else env)
    thread_vars = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")
    if not any(v in env for v in thread_vars):
        threads = str(max(1, (os.cpu_count() or 1) // int(nproc)))
        env.update({v: threads for v in thread_vars})
    return env


def launch(nproc, python_args):
    """Run ``python -m mpi4py <python_args>`` on ``nproc`` ranks of this machine; its exit code."""
    import subprocess
    return subprocess.run(mpiexec_command(nproc, python_args), env=launch_env(nproc)).returncode


# ---------------------------------------------------------------------- the data-parallel Solver
def _model_device(model):
    for value in model.params.values():
        return device_of(value)
    return "cpu"


def _check_model_on_rank_gpu(model):
    import cupy
    here = cupy.cuda.Device().id
    ids = sorted({a.device.id for a in model.params.values() if device_of(a) == "gpu"})
    if ids and ids != [here]:
        raise ValueError(f"the model's arrays are on GPU(s) {ids} but this rank uses GPU {here}; "
                         "call fastconv.distributed.init(device='gpu') before building the model")


class DistributedSolver(Solver):
    """The Solver, data-parallel over the ranks of an MPI job (synchronous, like PyTorch's DDP).

    ``Solver(model, data, distributed=True, ...)`` (or any Solver under a
    launcher with world size > 1) is this class. ``batch_size`` is the
    per-rank batch; one step consumes a global batch of ``batch_size x
    world_size`` samples, sharded by :class:`ShardedSampler` with the
    Solver's own epoch order, so N ranks with batch B take the same steps as
    one process with batch N x B (to rounding), batch norm excepted: its batch
    statistics are per rank, and its running statistics are rank 0's (synced
    to all ranks before each evaluation), as in PyTorch's default DDP.
    Dropout masks are drawn on each rank independently.

    Rank 0's parameters (fresh or resumed) are broadcast at start. Each step:
    forward/backward on the rank's shard, ONE all-reduce of the flattened
    gradients and the loss (weighted by shard size), then the same update on
    every rank. Accuracy checks are sharded too. Only rank 0 logs, shows the
    progress bar and writes checkpoints; a checkpoint holds nothing
    rank-specific, so it can be resumed with another world size (every rank
    reads it: use a shared file system, or copy it to each machine).
    """

    def __init__(self, model, data, *, comm=None, distributed=True, **options):
        if not distributed:
            raise ValueError("DistributedSolver is always distributed; use Solver for one process")
        self.comm = comm if comm is not None else init(device=_model_device(model))
        if self.comm.device == "gpu":
            _check_model_on_rank_gpu(model)
        super().__init__(model, data, **options)
        self.progress = self.progress and self.comm.is_root
        state = dict(self.model.params)
        state.update(getattr(self.model, "buffers", {}))
        self.comm.broadcast_(state)

    def batch_indices(self, epoch):
        """This rank's shard of each global batch of the Solver's epoch order."""
        sampler = ShardedSampler(len(self.X_train), self.batch_size, self.comm.rank,
                                 self.comm.world_size, seed=self.seed)
        return list(sampler.batches(epoch))

    def step(self, X_batch, y_batch):
        """Forward/backward on this shard, ONE all-reduce (grads + loss), the update; the loss."""
        n = len(y_batch)
        if n:
            loss, grads = self.compute_gradients(X_batch, y_batch)
        else:  # the last global batch had fewer samples than ranks: contribute nothing
            params = self.model.params
            loss, grads = 0.0, {k: get_array_module(v).zeros_like(v) for k, v in params.items()}
        first = next(iter(grads.values()))
        loss_slot = get_array_module(first).full(1, float(loss), dtype=first.dtype)
        self.comm.allreduce_mean_([grads[k] for k in sorted(grads)] + [loss_slot], weight=n)
        self.apply_update(grads)
        return float(loss_slot[0])

    def check_accuracy(self, X, y, num_samples=None, batch_size=100):
        """The Solver's accuracy over the same samples, each rank scoring its shard of them."""
        self.comm.broadcast_(dict(getattr(self.model, "buffers", {})))
        idx = shard(self.accuracy_indices(len(X), num_samples), self.comm.rank,
                    self.comm.world_size)
        correct = 0
        if len(idx):
            part = get_array_module(X).asarray(idx)
            fraction = super().check_accuracy(X[part], as_numpy(y)[idx], None, batch_size)
            correct = round(fraction * len(idx))
        totals = self.comm.allreduce_sum({"correct": correct, "n": len(idx)})
        return totals["correct"] / totals["n"]

    def log(self, message):
        """Log on rank 0 only."""
        if self.comm.is_root:
            super().log(message)

    def save_checkpoint(self, path):
        """Write the checkpoint on rank 0 only (every rank holds the same state)."""
        if self.comm.is_root:
            super().save_checkpoint(path)


_data_parallel_classes = {}


def data_parallel(solver_class):
    """``solver_class`` (a Solver subclass) with DistributedSolver's hooks taking precedence.

    What ``Solver(..., distributed=True)`` instantiates, so a customised Solver
    (e.g. one that prints a line per epoch in ``save_checkpoint``) goes
    data-parallel too, its per-epoch extras running on rank 0 only.
    """
    if issubclass(solver_class, DistributedSolver):
        return solver_class
    if solver_class is Solver:
        return DistributedSolver
    if solver_class not in _data_parallel_classes:
        _data_parallel_classes[solver_class] = type(
            f"DataParallel{solver_class.__name__}", (DistributedSolver, solver_class),
            {"__doc__": f"{solver_class.__name__}, data-parallel (see DistributedSolver)."})
    return _data_parallel_classes[solver_class]
