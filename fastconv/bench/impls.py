"""The implementations the benchmark times, and how each runs and is timed.

An :class:`Impl` binds an op to inputs (through :mod:`.ops`), names its device and its
clock, and sets the mode every pass runs in:

- ``fastconv`` / ``fastconv-gpu``: fastconv's public functions on NumPy / CuPy arrays;
- ``loop``: :mod:`fastconv.reference`, the plain loops (same names and signatures);
- ``torch`` / ``torch-cuda``: ``torch.nn.functional`` with autograd, when installed;
- ``fastconv-gpu-tf32`` / ``torch-cuda-tf32``: the GPU ones with TF32 on (float32
  convolutions only); the other GPU ones run with TF32 off on both sides;
- ``torch-float64`` / ``loop-float64``: the oracles (:mod:`.oracle`).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable

import numpy as np

from ..backend import gpu_status
from .cases import Case
from .ops import TOLERANCE, Arrays, Bound, fastconv_api_bind, torch_bind
from .tf32 import TF32_TOLERANCE, fastconv_tf32, torch_tf32

TF32_OPS = ("conv2d",)  # the ops whose float32 GPU work is matrix products
# each fastconv implementation and the PyTorch one it is compared with, on the same device
TORCH_TWIN = {"fastconv": "torch", "fastconv-gpu": "torch-cuda",
              "fastconv-gpu-tf32": "torch-cuda-tf32"}


class Impl:
    """An implementation: a name, a device, a clock kind and a way to bind ops to inputs.

    Parameters
    ----------
    name : str
        Its name in the tables (``fastconv``, ``torch-cuda``, ...).
    device : {"cpu", "gpu"}
        Where it runs.
    clock : {"cpu", "cupy", "torch-cuda"}
        How its passes are timed (:func:`.timing.time_pair`).
    bind : callable or None
        ``bind(case, arrays) -> Bound``; None when unavailable.
    reason : str, optional
        Why it is unavailable (None when it is available).
    mode : callable, optional
        A context manager factory every pass runs inside (TF32 on or off).
    tf32 : bool, default False
        Whether this is a TF32 variant: it runs only float32 :data:`TF32_OPS`,
        checked within :data:`.tf32.TF32_TOLERANCE`.

    Examples
    --------
    >>> from fastconv.bench.cases import STANDARD_CONV
    >>> impl = fastconv_cpu()
    >>> impl.name, impl.available, impl.runs(Case("im2col", STANDARD_CONV[0]), "float64")
    ('fastconv', True, True)
    """

    def __init__(self, name: str, device: str, clock: str,
                 bind: Callable[[Case, Arrays], Bound] | None, reason: str | None = None,
                 mode: Callable[[], contextlib.AbstractContextManager] = contextlib.nullcontext,
                 tf32: bool = False):
        self.name, self.device, self.clock, self._bind = name, device, clock, bind
        self.reason = reason  # why it is unavailable (None when available)
        self.mode, self.tf32 = mode, tf32

    @property
    def available(self) -> bool:
        """True when this implementation can run here."""
        return self.reason is None

    def runs(self, case: Case, dtype: str) -> bool:
        """Whether this implementation takes part in ``case`` in ``dtype`` (TF32: float32
        products only)."""
        return not self.tf32 or (dtype == "float32" and case.op in TF32_OPS)

    def tolerance(self, dtype: str) -> float:
        """The largest relative error from the float64 oracle that counts as agreeing."""
        return TF32_TOLERANCE if self.tf32 else TOLERANCE[dtype]

    def bind(self, case: Case, arrays: Arrays) -> Bound:
        """Move NumPy ``arrays`` to this implementation's device and bind ``case``'s op."""
        if self._bind is None:
            raise RuntimeError(f"{self.name} is unavailable: {self.reason}")
        bound = self._bind(case, arrays)
        bound.mode = self.mode
        return bound

    def sync(self) -> None:
        """Wait for queued device work (no-op on the CPU)."""
        if self.clock == "cupy":
            import cupy
            cupy.cuda.Device().synchronize()
        elif self.clock == "torch-cuda":
            import torch
            torch.cuda.synchronize()


def _import_torch():
    """torch, or None when it cannot be imported (``sys.modules['torch'] = None`` included)."""
    try:
        import torch
    except ImportError:
        return None
    return torch


def fastconv_cpu() -> Impl:
    """fastconv's vectorised NumPy path.

    Examples
    --------
    >>> from fastconv.bench.cases import PoolShape
    >>> from fastconv.bench.ops import make_inputs, run_once
    >>> case = Case("max_pool2d", PoolShape("p", 1, 1, 4, 4, 2, 2, 0))
    >>> sorted(run_once(fastconv_cpu().bind(case, make_inputs(case, "float64"))))
    ['dx', 'out']
    """
    import fastconv
    return Impl("fastconv", "cpu", "cpu", lambda case, a: fastconv_api_bind(fastconv, case, a))


def fastconv_gpu(tf32: bool = False) -> Impl:
    """fastconv on CuPy arrays, TF32 set to ``tf32`` in every pass (unavailable, with the
    reason, when no GPU is usable)."""
    ok, reason = gpu_status()

    def bind(case, arrays):
        import cupy

        import fastconv
        return fastconv_api_bind(fastconv, case, {k: cupy.asarray(v) for k, v in arrays.items()})

    return Impl("fastconv-gpu" + ("-tf32" if tf32 else ""), "gpu", "cupy", bind,
                None if ok else reason, lambda: fastconv_tf32(tf32), tf32)


def loop() -> Impl:
    """The plain nested loops of :mod:`fastconv.reference` (same names and signatures).

    Examples
    --------
    >>> loop().name, loop().device
    ('loop', 'cpu')
    """
    from .. import reference
    return Impl("loop", "cpu", "cpu", lambda case, a: fastconv_api_bind(reference, case, a))


def torch_cpu(threads: int | None = None) -> Impl:
    """PyTorch's CPU ops (all cores unless ``threads``), or unavailable without torch."""
    torch = _import_torch()
    if torch is None:
        return Impl("torch", "cpu", "cpu", None, "torch is not installed")
    import os
    torch.set_num_threads(threads or len(os.sched_getaffinity(0)))
    return Impl("torch", "cpu", "cpu", lambda case, a: torch_bind(torch, "cpu", case, a))


def torch_cuda(tf32: bool = False) -> Impl:
    """PyTorch on CUDA (cuDNN), its cuBLAS and cuDNN TF32 switches set to ``tf32`` in every
    pass, or unavailable with the reason."""
    name = "torch-cuda" + ("-tf32" if tf32 else "")
    torch = _import_torch()
    if torch is None:
        return Impl(name, "gpu", "torch-cuda", None, "torch is not installed", tf32=tf32)
    if not torch.cuda.is_available():
        return Impl(name, "gpu", "torch-cuda", None, "this torch build sees no CUDA device",
                    tf32=tf32)
    return Impl(name, "gpu", "torch-cuda", lambda case, a: torch_bind(torch, "cuda", case, a),
                mode=lambda: torch_tf32(torch, tf32), tf32=tf32)


def _f64(arrays):
    return {k: v.astype(np.float64) for k, v in arrays.items()}


def torch_oracle() -> Impl | None:
    """PyTorch CPU in float64: the independent oracle every timed result is checked against
    (None without torch)."""
    torch = _import_torch()
    if torch is None:
        return None
    return Impl("torch-float64", "cpu", "cpu", lambda case, a: torch_bind(torch, "cpu", case, _f64(a)))


def loop_oracle() -> Impl:
    """The reference loops in float64: the oracle when torch is missing (on a reduced problem)."""
    from .. import reference
    return Impl("loop-float64", "cpu", "cpu",
                lambda case, a: fastconv_api_bind(reference, case, _f64(a)))
