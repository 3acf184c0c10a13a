"""Where the GPU checks run: the CUDA device CuPy uses, behind a three-method interface.

:func:`fastconv.selftest.gpu_checks` needs only ``asarray`` (move a NumPy
array there), ``run`` (call a function there and wait for it) and
``description``. :class:`CupyDevice` is the real one; the tests pass a
stand-in that runs the GPU backend on NumPy arrays with the CUDA kernels
emulated on the CPU.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

import numpy as np


class Device(Protocol):
    """What the GPU checks need of a device."""

    description: str

    def asarray(self, array: np.ndarray) -> Any:
        """A copy of ``array`` on the device."""

    def run(self, fn: Callable[[], Any]) -> Any:
        """``fn()`` on the device, its work finished before returning."""


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _version(number: int) -> str:
    """CUDA's ``1000 * major + 10 * minor`` as ``major.minor``."""
    return f"{number // 1000}.{number % 1000 // 10}"


class CupyDevice:
    """CuPy's current CUDA device.

    Raises
    ------
    ImportError
        When CuPy is not installed (check :func:`fastconv.backend.gpu_status` first).

    Examples
    --------
    >>> from fastconv.backend import gpu_available
    >>> device = CupyDevice() if gpu_available() else None
    >>> device is None or "compute capability" in device.description
    True
    """

    def __init__(self) -> None:
        import cupy

        self._cupy = cupy
        self.description = self._describe()

    def _describe(self) -> str:
        cupy = self._cupy
        runtime = cupy.cuda.runtime
        device = cupy.cuda.Device()
        parts = []
        try:
            props = runtime.getDeviceProperties(device.id)
            parts.append(f"{_text(props['name'])} (device {device.id}, "
                         f"{props['totalGlobalMem'] / 2**30:.1f} GiB")
        except Exception as exc:  # describing must not stop the checks
            parts.append(f"device {device.id} (properties unavailable: {exc}")
        cc = device.compute_capability
        parts[0] += f", compute capability {cc[:-1]}.{cc[-1]})"
        for label, read in (("CUDA runtime", runtime.runtimeGetVersion),
                            ("driver", runtime.driverGetVersion)):
            try:
                parts.append(f"{label} {_version(read())}")
            except Exception as exc:
                parts.append(f"{label} unknown ({type(exc).__name__})")
        parts.append(f"CuPy {cupy.__version__}")
        return ", ".join(parts)

    def asarray(self, array: np.ndarray) -> Any:
        """A copy of ``array`` on the device (a CuPy array).

        Parameters
        ----------
        array : numpy.ndarray
            The host array.

        Returns
        -------
        cupy.ndarray
            Its copy on the current device.
        """
        return self._cupy.asarray(array)

    def run(self, fn: Callable[[], Any]) -> Any:
        """Call ``fn`` and wait for the device, so an asynchronous error surfaces here.

        Parameters
        ----------
        fn : callable
            No arguments.

        Returns
        -------
        object
            What ``fn`` returned.
        """
        result = fn()
        self._cupy.cuda.Device().synchronize()
        return result
