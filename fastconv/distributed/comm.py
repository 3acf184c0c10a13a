"""The communicator: rank, world size, device and the collectives of data-parallel training.

NumPy arrays travel through ``MPI.Allreduce``/``Bcast`` on raw buffers (mpi4py,
no pickling); CuPy arrays through NCCL (``cupy.cuda.nccl``, its unique id sent
over MPI) when every rank has a GPU of its own and CuPy can load NCCL,
otherwise staged through host memory with a one-time warning. mpi4py is
imported only when a job with more than one rank needs it.

A rank that waits in a collective longer than ``$FASTCONV_COLLECTIVE_TIMEOUT``
seconds (default 300; 0: no limit) aborts the job, naming itself and the
collective, and an uncaught exception on any rank aborts the job too
(:mod:`fastconv.distributed._watchdog`).
"""

from __future__ import annotations

import warnings
import zlib
from collections.abc import Mapping, Sequence
from typing import Any

import numpy

from .._typing import Array
from ..backend import device_of
from ._buffers import as_list, flatten, group_by_dtype, unflatten_into
from ._nccl import (_communicator, _empty_message, _nccl_dtype, _nccl_unusable_reason,
                    _unique_id_message)
from ._watchdog import collective, collective_timeout, watch_collectives

GPU_TRANSPORTS = ("auto", "nccl", "staged")
Arrays = Mapping[str, Array] | Sequence[Array]  # a mapping's arrays travel in sorted-key order

def _import_mpi() -> Any:
    """mpi4py's MPI module (initialising MPI); a RuntimeError naming the extra without it."""
    try:
        from mpi4py import MPI
    except ImportError as exc:
        raise RuntimeError(
            "data-parallel training needs mpi4py and an MPI runtime: "
            "pip install 'fastconv[mpi]' (mpi4py + the mpich wheel)") from exc
    return MPI


class Communicator:
    """The process group of a data-parallel job: rank, size and the collectives training needs.

    Built by :func:`fastconv.distributed.init`. With world size 1 every
    collective is a no-op, so the same training code runs with and without MPI.

    Parameters
    ----------
    mpi_comm : mpi4py.MPI.Comm, optional
        The job's MPI communicator; None: a one-process job without MPI.
    device : {'cpu', 'gpu'}, default 'cpu'
        Where the arrays exchanged live; 'gpu' selects GPU ``local_rank % count``.
    gpu_transport : {'auto', 'nccl', 'staged'}, default 'auto'
        How CuPy arrays travel: NCCL when every rank can use it (``'nccl'``
        insists), else staged through host memory.

    Attributes
    ----------
    rank, world_size : int
        This process's rank and the number of ranks.
    local_rank, local_size : int
        The same among the ranks on this machine.
    device : str
        'cpu' or 'gpu'.

    Raises
    ------
    ValueError
        For an unknown ``gpu_transport``, or a bad ``$FASTCONV_COLLECTIVE_TIMEOUT``.
    RuntimeError
        When ``gpu_transport='nccl'`` cannot be honoured.

    Examples
    --------
    >>> import numpy as np
    >>> from fastconv.distributed import Communicator
    >>> comm = Communicator()
    >>> comm.rank, comm.world_size, comm.is_root
    (0, 1, True)
    >>> grads = {"W": np.ones(3)}
    >>> comm.allreduce_mean_(grads, weight=4), grads["W"]
    (4.0, array([1., 1., 1.]))
    >>> comm.allreduce_sum({"correct": 3, "n": 4})
    {'correct': 3.0, 'n': 4.0}
    """

    def __init__(self, mpi_comm: Any = None, device: str = "cpu",
                 gpu_transport: str = "auto") -> None:
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
        self._pending: tuple[str, float] | None = None  # (collective, start), for the watchdog
        timeout_s = collective_timeout()
        if self.world_size > 1 and timeout_s > 0:
            watch_collectives(self, timeout_s)
        self._nccl: Any = None
        self._gpu_note = "not used (CPU job)"
        self._staging_warned = False
        if device == "gpu":
            self._setup_gpu(gpu_transport)

    @property
    def is_root(self) -> bool:
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

    @collective
    def _all_ranks_agree(self, ok):
        """True on every rank when ``ok`` is true on every rank (one tiny all-reduce)."""
        MPI = _import_mpi()
        flag = numpy.array([1 if ok else 0], dtype=numpy.int32)
        self.comm.Allreduce(MPI.IN_PLACE, flag, op=MPI.MIN)
        return bool(flag[0])

    @collective
    def _make_nccl_comm(self):
        """This rank's ``NcclCommunicator``, from rank 0's unique id sent over MPI.

        Raises on every rank, never on some, when rank 0 cannot make the id.
        """
        # Every rank joins this one Bcast whatever happened on rank 0: a rank 0 that raised
        # before it would leave the others waiting in it while it went on to other collectives.
        message, failure = _unique_id_message() if self.rank == 0 else (_empty_message(), None)
        self.comm.Bcast(message, root=0)
        if failure is not None:
            raise failure
        return _communicator(message, self.world_size, self.rank)

    # ------------------------------------------------------------------ collectives
    @collective
    def barrier(self) -> None:
        """Wait until every rank gets here (a no-op in a one-process job)."""
        if self.world_size > 1:
            self.comm.Barrier()

    @collective
    def broadcast_(self, arrays: Arrays, root: int = 0) -> None:
        """Overwrite ``arrays`` on every rank, in place, with ``root``'s values.

        Parameters
        ----------
        arrays : mapping or sequence of Array
            The same number, shapes and dtypes on every rank (a mapping's in
            sorted-key order); one flattened buffer travels per dtype.
        root : int, default 0
            The rank whose values every rank gets.

        Raises
        ------
        ValueError
            On every rank, when the ranks hold different numbers, shapes or dtypes.
        TypeError
            When ``arrays`` is neither a mapping nor a sequence of arrays.

        Examples
        --------
        >>> import numpy as np
        >>> from fastconv.distributed import Communicator
        >>> params = {"W": np.arange(3.0)}
        >>> Communicator().broadcast_(params)  # one rank: its own values
        >>> params["W"]
        array([0., 1., 2.])
        """
        arrays = as_list(arrays, "arrays")
        if self.world_size == 1:
            return
        # A model mismatch is a clear error, not a hang or silent corruption.
        self._check_same_layout(arrays)
        for group in group_by_dtype(arrays):
            buf = flatten(group)
            self._bcast_buffer(buf, root)
            unflatten_into(buf, group)

    @collective
    def allreduce_mean_(self, arrays: Arrays, weight: float = 1.0) -> float:
        """Replace ``arrays`` on every rank, in place, by their ``weight``-weighted mean.

        ``sum_r weight_r * a_r / sum_r weight_r``, computed in one flattened
        buffer per dtype (the weights travel in its last element). Pass each
        rank's sample count as ``weight`` and the result is the gradient of
        the mean loss over the global batch, uneven shards included.

        Parameters
        ----------
        arrays : mapping or sequence of Array
            The same number, shapes and dtypes on every rank.
        weight : float, default 1
            This rank's weight, >= 0 (0: it contributes nothing).

        Returns
        -------
        float
            The total weight over the ranks.

        Raises
        ------
        ValueError
            For a negative ``weight``.
        TypeError
            When ``arrays`` is neither a mapping nor a sequence of arrays.

        Examples
        --------
        >>> import numpy as np
        >>> from fastconv.distributed import Communicator
        >>> grads = [np.array([0.5, 2.0])]
        >>> Communicator().allreduce_mean_(grads, weight=8), grads[0]
        (8.0, array([0.5, 2. ]))
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

    @collective
    def allreduce_sum(self, values: dict[str, float]) -> dict[str, float]:
        """Sum a dict of Python numbers across ranks, in one float64 message.

        Parameters
        ----------
        values : dict
            Name -> number, the same names on every rank.

        Returns
        -------
        dict
            Name -> the sum over the ranks, a float.

        Raises
        ------
        TypeError
            When ``values`` is no dict.

        Examples
        --------
        >>> from fastconv.distributed import Communicator
        >>> Communicator().allreduce_sum({"correct": 3, "n": 4})
        {'correct': 3.0, 'n': 4.0}
        """
        if not isinstance(values, dict):
            raise TypeError(f"values must be a dict of numbers, got {type(values).__name__}")
        keys = sorted(values)
        buf = numpy.array([float(values[k]) for k in keys], dtype=numpy.float64)
        if self.world_size > 1:
            self._allreduce_buffer(buf)
        return {k: float(v) for k, v in zip(keys, buf)}

    def average_metrics(self, metrics: Mapping[str, float], count: int) -> dict[str, float]:
        """Weighted mean across ranks of per-rank means (loss, accuracy) over ``count`` samples.

        For logging: every rank gets the global-batch value.

        Parameters
        ----------
        metrics : mapping
            Name -> this rank's mean over its samples.
        count : int
            This rank's number of samples (0: it contributes nothing).

        Returns
        -------
        dict
            Name -> the mean over all ranks' samples; NaN with no samples anywhere.

        Examples
        --------
        >>> from fastconv.distributed import Communicator
        >>> Communicator().average_metrics({"loss": 0.5}, count=10)
        {'loss': 0.5}
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

    @collective
    def check_same_settings(self, settings: Mapping[str, Any]) -> None:
        """Raise ValueError on every rank, naming them, when ranks hold different ``settings``.

        A no-op for one rank.

        Parameters
        ----------
        settings : mapping
            Name -> value; the values' ``repr`` is compared (a CRC per name,
            two tiny all-reduces).

        Raises
        ------
        ValueError
            On every rank, naming the settings that differ and this rank's values.

        Examples
        --------
        >>> from fastconv.distributed import Communicator
        >>> Communicator().check_same_settings({"seed": 0, "batch_size": 32})
        """
        # Ranks on different epoch orders, or stopping at different epochs, would
        # diverge silently or leave a peer waiting in a collective forever.
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

    def describe(self) -> str:
        """One line naming the transports in use, for logs and ``fastconv info``.

        Returns
        -------
        str

        Examples
        --------
        >>> from fastconv.distributed import Communicator
        >>> Communicator().describe()
        'single process (world size 1): no gradient exchange'
        """
        if self.world_size == 1:
            return "single process (world size 1): no gradient exchange"
        MPI = _import_mpi()
        library = " ".join(MPI.Get_library_version().split()[:3])
        return (f"world size {self.world_size} ({self.local_size} on this node); NumPy arrays: "
                f"MPI Allreduce via mpi4py ({library}); CuPy arrays: {self._gpu_note}")
