"""The communicator: rank, world size, device and the collectives of data-parallel training.

NumPy arrays travel through ``MPI.Allreduce``/``Bcast`` on raw buffers (mpi4py,
no pickling); CuPy arrays through NCCL (``cupy.cuda.nccl``, its unique id sent
over MPI) when every rank has a GPU of its own and CuPy can load NCCL,
otherwise staged through host memory with a one-time warning. mpi4py is
imported only when a job with more than one rank needs it.

MPI has no timeout, and a peer that stops answering (SIGSTOP, a hang, a lost
node) would leave the others in a collective forever: a watchdog thread aborts
the job, naming the rank and the collective, when one waits longer than
``$FASTCONV_COLLECTIVE_TIMEOUT`` seconds (default 300; 0: no limit).
"""

import functools
import os
import sys
import threading
import time
import traceback
import warnings
import zlib

import numpy

from .._validate import check_real
from ..backend import device_of, resolve_device
from ..train.parallel import launched_world_size
from ._buffers import as_list, flatten, group_by_dtype, unflatten_into
from .launcher import find_mpiexec

GPU_TRANSPORTS = ("auto", "nccl", "staged")
TIMEOUT_VAR = "FASTCONV_COLLECTIVE_TIMEOUT"
DEFAULT_TIMEOUT_S = 300.0  # what one rank may do as the others wait: load data, checkpoint


def _import_mpi():
    try:
        from mpi4py import MPI
    except ImportError as exc:
        raise RuntimeError(
            "data-parallel training needs mpi4py and an MPI runtime: "
            "pip install 'fastconv[mpi]' (mpi4py + the mpich wheel)") from exc
    return MPI


def _collective_timeout():
    """``$FASTCONV_COLLECTIVE_TIMEOUT`` in seconds (default 300; 0: no limit), checked."""
    text = os.environ.get(TIMEOUT_VAR, "").strip() or str(DEFAULT_TIMEOUT_S)
    try:
        return check_real(TIMEOUT_VAR, float(text), 0)
    except ValueError:
        raise ValueError(f"{TIMEOUT_VAR} must be a number of seconds >= 0 (0: no limit), "
                         f"got {text!r}") from None


def _watch_collectives(communicator, timeout_s):
    """Abort the job, from a daemon thread, when a collective waits longer than ``timeout_s``.

    The main thread stamps the collective it is in (:func:`_collective`); the thread checks
    the stamp ten times per timeout, at most once a second. mpi4py releases the GIL in MPI
    calls and asks for MPI_THREAD_MULTIPLE, so the thread may abort meanwhile.
    """
    def watch():
        while True:
            time.sleep(min(1.0, timeout_s / 10))
            pending = communicator._pending  # replaced whole by the main thread
            if pending is not None and time.monotonic() - pending[1] > timeout_s:
                _abort_job(communicator, f"{pending[0]} waited more than {timeout_s:g} s for "
                           f"the other ranks ({TIMEOUT_VAR}): one of them stopped answering "
                           "(stopped, hung or lost); aborting the job")

    threading.Thread(target=watch, daemon=True, name="fastconv-collective-watchdog").start()


def _collective(method):
    """Stamp the collective ``method`` while it runs, for :func:`_watch_collectives`."""
    @functools.wraps(method)
    def stamped(self, *args, **kwargs):
        self._pending = (method.__name__, time.monotonic())
        try:
            return method(self, *args, **kwargs)
        finally:
            self._pending = None
    return stamped


class Communicator:
    """The process group of a data-parallel job: rank, size and the collectives training needs.

    Built by :func:`init`. With world size 1 every collective is a cheap
    no-op, so the same training code runs with and without MPI; the transports
    and the collective timeout are the module's (see above).
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
        self._pending = None  # (collective, start) while one runs, for the watchdog
        timeout_s = _collective_timeout()
        if self.world_size > 1 and timeout_s > 0:
            _watch_collectives(self, timeout_s)
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

    @_collective
    def _all_ranks_agree(self, ok):
        """True on every rank when ``ok`` is true on every rank (one tiny all-reduce)."""
        MPI = _import_mpi()
        flag = numpy.array([1 if ok else 0], dtype=numpy.int32)
        self.comm.Allreduce(MPI.IN_PLACE, flag, op=MPI.MIN)
        return bool(flag[0])

    @_collective
    def _make_nccl_comm(self):
        from cupy.cuda import nccl
        uid = numpy.zeros(128, dtype=numpy.int64)  # an ncclUniqueId is 128 bytes
        if self.rank == 0:
            uid[:] = nccl.get_unique_id()
        self.comm.Bcast(uid, root=0)
        return nccl.NcclCommunicator(self.world_size, tuple(int(v) for v in uid), self.rank)

    # ------------------------------------------------------------------ collectives
    @_collective
    def barrier(self):
        """Wait until every rank gets here (a no-op in a one-process job)."""
        if self.world_size > 1:
            self.comm.Barrier()

    @_collective
    def broadcast_(self, arrays, root=0):
        """Overwrite ``arrays`` (a dict or sequence) on every rank with ``root``'s values.

        One flattened buffer per dtype. Also checks that every rank holds the
        same number, shapes and dtypes of arrays, so a model mismatch is a
        clear error instead of a hang or silent corruption.
        """
        arrays = as_list(arrays, "arrays")
        if self.world_size == 1:
            return
        self._check_same_layout(arrays)
        for group in group_by_dtype(arrays):
            buf = flatten(group)
            self._bcast_buffer(buf, root)
            unflatten_into(buf, group)

    @_collective
    def allreduce_mean_(self, arrays, weight=1.0):
        """Replace ``arrays`` on every rank by their ``weight``-weighted mean across ranks.

        ``sum_r weight_r * a_r / sum_r weight_r``, computed in one flattened
        buffer per dtype (the weights travel in its last element). Pass each
        rank's sample count as ``weight`` and the result is the gradient of
        the mean loss over the global batch, uneven shards included; a rank
        with weight 0 contributes nothing. Returns the total weight.
        """
        arrays = as_list(arrays, "arrays")
        weight = float(weight)
        if weight < 0:
            raise ValueError(f"weight must be >= 0 (a sample count), got {weight}")
        if self.world_size == 1:
            return weight
        total = weight
        for group in group_by_dtype(arrays) or [[]]:
            buf = flatten(group, scale=weight, extra=weight,
                           like=group[0] if group else numpy.zeros(0))
            self._allreduce_buffer(buf)
            total = float(buf[-1])
            if total > 0:
                buf /= total  # a Python number: dividing by buf[-1] would alias the divisor
            unflatten_into(buf, group)
        return total

    @_collective
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
            stream = cupy.cuda.get_current_stream()
            self._nccl.bcast(buf.data.ptr, buf.size, _nccl_dtype(buf.dtype), root, stream.ptr)
            stream.synchronize()  # within the watched collective: NCCL only queues the work
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
            stream = cupy.cuda.get_current_stream()
            self._nccl.allReduce(buf.data.ptr, buf.data.ptr, buf.size, _nccl_dtype(buf.dtype),
                                 nccl.NCCL_SUM, stream.ptr)
            stream.synchronize()  # within the watched collective: NCCL only queues the work
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

    def _differs(self, signature):
        """Per entry of the int64 ``signature``: True where the ranks hold different values."""
        MPI = _import_mpi()
        lowest, highest = signature.copy(), signature.copy()
        self.comm.Allreduce(MPI.IN_PLACE, lowest, op=MPI.MIN)
        self.comm.Allreduce(MPI.IN_PLACE, highest, op=MPI.MAX)
        return lowest != highest

    def _check_same_layout(self, arrays):
        layout = repr([(tuple(a.shape), str(a.dtype)) for a in arrays]).encode()
        signature = numpy.array([len(arrays), sum(a.size for a in arrays), zlib.crc32(layout)],
                                dtype=numpy.int64)
        if self._differs(signature).any():
            raise ValueError(
                f"the ranks hold different parameter sets (rank {self.rank}: {len(arrays)} "
                f"arrays, {int(signature[1])} numbers); build the same model on every rank")

    @_collective
    def check_same_settings(self, settings):
        """Raise ValueError on every rank, naming them, when ranks hold different ``settings``.

        ``settings`` maps names to values whose ``repr`` is compared (a CRC per
        name, two tiny all-reduces). Ranks that trained on different epoch orders
        or stopped at different epochs would otherwise diverge silently or leave
        a peer waiting in a collective forever. A no-op for one rank.
        """
        if self.world_size == 1:
            return
        names = sorted(settings)
        signature = numpy.array([zlib.crc32(repr(settings[n]).encode()) for n in names],
                                dtype=numpy.int64)
        differ = [n for n, different in zip(names, self._differs(signature)) if different]
        if differ:
            mine = ", ".join(f"{n}={settings[n]!r}" for n in differ)
            raise ValueError(f"the ranks disagree on {', '.join(differ)} (rank {self.rank}: {mine});"
                             " start every rank with the same settings and checkpoint")

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


def start_mpi():
    """Initialise MPI now if this process is one rank of several (a no-op otherwise).

    A rank that fails before MPI is initialised ends without the launcher
    noticing, and its peers wait in MPI start-up forever; a rank that fails
    after it ends the whole job. Call this first thing under a launcher
    (``fastconv train`` does), before anything that can fail.
    """
    if launched_world_size() > 1:
        _import_mpi()


def current():
    """The communicator :func:`init` returned, or None before it was called."""
    return _current


def _install_abort_hook(communicator):
    previous = sys.excepthook

    def abort_all_ranks(exc_type, exc, tb):
        if previous is not sys.__excepthook__:
            previous(exc_type, exc, tb)
        _abort_job(communicator, "".join(traceback.format_exception(exc_type, exc, tb)))

    sys.excepthook = abort_all_ranks


def _abort_job(communicator, text):
    """Write ``text`` to stderr, each line prefixed with this rank, then abort every rank."""
    prefix = f"[fastconv rank {communicator.rank}/{communicator.world_size}] "
    sys.stderr.write("".join(prefix + line + "\n" for line in text.splitlines()))
    sys.stderr.flush()
    communicator.comm.Abort(1)


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
    from ..backend import gpu_status
    available, reason = gpu_status()
    if not available:
        return f"no usable GPU ({reason})"
    reason = _nccl_unusable_reason(0, 0)
    return "NCCL (cupy.cuda.nccl)" if reason is None else f"staged through host memory ({reason})"
