"""The array-module abstraction: NumPy on the CPU, CuPy on the GPU.

Everything above the kernels is written once as ``xp = get_array_module(x)``
followed by ``xp.<function>``. CuPy is imported lazily, only when a CuPy array
could exist or a GPU is asked for, so ``import fastconv`` never needs CUDA.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from types import ModuleType
from typing import Any, Literal

import numpy

from ._typing import Array, ArrayLike, DTypeLike

Device = Literal["cpu", "gpu"]
DEVICES: tuple[Device, Device] = ("cpu", "gpu")
_DEVICE_ENV = "FASTCONV_DEVICE"
_gpu_status: tuple[bool, str] | None = None  # (available, reason), computed once


def _loaded_cupy() -> ModuleType | None:
    """CuPy if something already imported it, else None (never imports it)."""
    return sys.modules.get("cupy")


def _is_cupy_array(x: object) -> bool:
    cupy = _loaded_cupy()
    return cupy is not None and isinstance(x, cupy.ndarray)


def is_array(x: object) -> bool:
    """Tell whether ``x`` is a NumPy or CuPy array.

    Parameters
    ----------
    x : object
        Anything.

    Returns
    -------
    bool
        True for a ``numpy.ndarray`` or ``cupy.ndarray``; False for scalars,
        NumPy scalars, lists and everything else.

    Examples
    --------
    >>> import numpy as np
    >>> is_array(np.zeros(2)), is_array(np.float32(1)), is_array([1.0])
    (True, False, False)
    """
    return isinstance(x, numpy.ndarray) or _is_cupy_array(x)


def accumulator_dtype(dtype: DTypeLike) -> numpy.dtype:
    """The dtype that sums over an array of ``dtype`` run in.

    Parameters
    ----------
    dtype : dtype-like
        The array's dtype.

    Returns
    -------
    numpy.dtype
        float32 for float16, else ``dtype`` itself (promoted with float32).

    Examples
    --------
    >>> import numpy as np
    >>> accumulator_dtype(np.float16), accumulator_dtype(np.float64)
    (dtype('float32'), dtype('float64'))
    """
    # A float16 running sum stalls at 2048 (2048 + 1 rounds back to 2048) and
    # overflows past 65504; PyTorch also accumulates half in float32.
    return numpy.result_type(dtype, numpy.float32)


def promoted(*arrays: Any, names: Sequence[str]) -> tuple[Any, ...]:
    """Cast arrays to their common dtype, as NumPy's own arithmetic would promote them.

    Parameters
    ----------
    *arrays : array or None
        NumPy arrays, or CuPy arrays, of one device; ``None`` entries pass through.
    names : sequence of str
        The arrays' argument names, for the errors.

    Returns
    -------
    tuple
        The arrays in order, each of the common dtype (uncopied where it had it).

    Raises
    ------
    TypeError
        When an entry is neither an array nor None (a list, a number).
    ValueError
        When the arrays are on two devices.

    Examples
    --------
    >>> import numpy as np
    >>> a, b, c = promoted(np.ones(2, np.float32), None, np.ones(2, np.float64),
    ...                    names=("x", "w", "b"))
    >>> a.dtype, b, c.dtype
    (dtype('float64'), None, dtype('float64'))
    """
    # fastconv's ops refuse mixed dtypes; the course front-ends (fastconv.compat)
    # promote first, as the course code did.
    for name, a in zip(names, arrays, strict=True):
        if a is not None and not is_array(a):
            raise TypeError(f"{name} must be a NumPy or CuPy array, got {type(a).__name__}")
    present = [a for a in arrays if a is not None]
    if not present:
        return arrays
    dtype = get_array_module(*present).result_type(*present)
    return tuple(None if a is None else a.astype(dtype, copy=False) for a in arrays)


def get_array_module(*arrays: Any) -> ModuleType:
    """The array module of the arguments: ``cupy`` if their arrays are CuPy arrays, else ``numpy``.

    Parameters
    ----------
    *arrays : object
        Arrays; non-array arguments (None, Python scalars) are ignored.

    Returns
    -------
    module
        ``cupy`` when every array argument is a CuPy array, else ``numpy``
        (also when no argument is an array).

    Raises
    ------
    ValueError
        When both NumPy and CuPy arrays are passed: nothing is copied silently.

    Examples
    --------
    >>> import numpy as np
    >>> get_array_module(np.zeros(2), None, 3.0).__name__
    'numpy'
    """
    cupy = _loaded_cupy()
    if cupy is None:  # nothing imported CuPy, so no argument is a CuPy array
        return numpy
    on_gpu = on_cpu = False
    for a in arrays:
        if isinstance(a, cupy.ndarray):
            on_gpu = True
        elif isinstance(a, numpy.ndarray):
            on_cpu = True
    if on_gpu and on_cpu:
        kinds = ", ".join(type(a).__module__.split(".")[0] + "." + type(a).__name__
                          for a in arrays if a is not None)
        raise ValueError(
            f"arrays from two devices in one call ({kinds}); move them to one "
            "device first with fastconv.to_device(x, 'cpu' | 'gpu')")
    return cupy if on_gpu else numpy


def device_of(x: object) -> Device:
    """The device an array lives on.

    Parameters
    ----------
    x : object
        An array, or anything else.

    Returns
    -------
    {'cpu', 'gpu'}
        'gpu' for a CuPy array, 'cpu' otherwise.

    Examples
    --------
    >>> import numpy as np
    >>> device_of(np.zeros(2))
    'cpu'
    """
    return "gpu" if _is_cupy_array(x) else "cpu"


def model_device(model: Any) -> Device:
    """Where a model's first parameter (else its first buffer) lives.

    Parameters
    ----------
    model : object
        Anything with a ``params`` mapping (a :class:`fastconv.nn.Module` or a
        course model) and, optionally, ``buffers``.

    Returns
    -------
    {'cpu', 'gpu'}
        The device of that array; 'cpu' when the model has none.

    Examples
    --------
    >>> from fastconv.nn import Linear
    >>> model_device(Linear(3, 2, seed=0))
    'cpu'
    """
    for arrays in (model.params, getattr(model, "buffers", {})):
        for value in arrays.values():
            return device_of(value)
    return "cpu"


def gpu_status() -> tuple[bool, str]:
    """Whether CuPy imports and a CUDA device is usable, and why (not). Never raises.

    Returns
    -------
    available : bool
        True when CuPy imports, a CUDA device runs a kernel and cuBLAS loads
        (the convolutions' matrix products need it).
    reason : str
        Why no GPU is usable, or which devices there are.

    Examples
    --------
    >>> available, reason = gpu_status()
    >>> isinstance(available, bool), isinstance(reason, str)
    (True, True)
    """
    global _gpu_status
    if _gpu_status is None:
        _gpu_status = _probe_gpu()
    return _gpu_status


def _probe_gpu() -> tuple[bool, str]:
    try:
        import cupy
    except Exception as exc:  # ImportError, or a broken CUDA install
        return False, f"CuPy is not importable ({type(exc).__name__}: {exc})"
    try:
        count = cupy.cuda.runtime.getDeviceCount()
    except Exception as exc:
        return False, f"CuPy is installed but CUDA reports no usable device ({exc})"
    if count < 1:
        return False, "CuPy is installed but no CUDA device is present"
    try:
        cupy.zeros(1).sum().item()  # a real allocation and kernel launch
        props = cupy.cuda.runtime.getDeviceProperties(cupy.cuda.Device().id)
        name = props["name"].decode() if isinstance(props["name"], bytes) else props["name"]
    except Exception as exc:
        return False, f"a CUDA device is present but not usable ({type(exc).__name__}: {exc})"
    # CuPy (13 and 14) loads cuBLAS only when it is first used, and every convolution uses
    # it: a machine with the driver and NVRTC but no cuBLAS would pass the kernel launch
    # above and fail at its first product.
    try:
        from cupy.cuda import cublas  # noqa: F401  (the import loads the library)
        cupy.cuda.device.get_cublas_handle()
    except Exception as exc:
        first_line = str(exc).partition("\n")[0]  # CuPy's loader then lists the folders it read
        return False, (f"cuBLAS is not loadable ({type(exc).__name__}: {first_line}); install "
                       "cupy-cudaXX[ctk] (CuPy 14+) or the CUDA toolkit")
    return True, f"{count} CUDA device(s); using {name}"


def gpu_available() -> bool:
    """Whether CuPy imports and a CUDA device is usable. Never raises.

    Returns
    -------
    bool
        The first item of :func:`gpu_status`.

    Examples
    --------
    >>> gpu_available() in (True, False)
    True
    """
    return gpu_status()[0]


def _check_device_name(device: object, argname: str = "device") -> None:
    if device not in DEVICES:
        raise ValueError(f"{argname} must be 'cpu' or 'gpu', got {device!r}")


def _require_gpu() -> ModuleType:
    available, reason = gpu_status()
    if not available:
        raise RuntimeError(f"the GPU was asked for but none is usable: {reason}")
    import cupy
    return cupy


def default_device() -> Device:
    """The device for newly created parameters, from the ``FASTCONV_DEVICE`` variable.

    Returns
    -------
    {'cpu', 'gpu'}
        'cpu' when the variable is unset or ``cpu``; 'gpu' for ``gpu``; for
        ``auto``, the GPU when one is usable, else the CPU.

    Raises
    ------
    ValueError
        When the variable is none of cpu, gpu, auto.
    RuntimeError
        When it says ``gpu`` and no GPU is usable (the message says why).

    Examples
    --------
    >>> default_device() in ("cpu", "gpu")
    True
    """
    value = os.environ.get(_DEVICE_ENV, "cpu").strip().lower() or "cpu"
    if value == "auto":
        return "gpu" if gpu_available() else "cpu"
    if value == "cpu":
        return "cpu"
    if value != "gpu":
        raise ValueError(f"{_DEVICE_ENV} must be cpu, gpu or auto, got {value!r}")
    _require_gpu()
    return "gpu"


def resolve_device(device: str | None = None) -> Device:
    """Turn a device request into 'cpu' or 'gpu', checking that a GPU asked for is usable.

    Parameters
    ----------
    device : {None, 'auto', 'cpu', 'gpu'}, optional
        None: :func:`default_device`; 'auto': the GPU when usable, else the CPU.

    Returns
    -------
    {'cpu', 'gpu'}
        The device.

    Raises
    ------
    ValueError
        When ``device`` is not one of the values above.
    RuntimeError
        When the GPU is asked for and none is usable.

    Examples
    --------
    >>> resolve_device("cpu")
    'cpu'
    """
    if device is None:
        return default_device()
    if device == "auto":
        return "gpu" if gpu_available() else "cpu"
    _check_device_name(device)
    if device == "cpu":
        return "cpu"
    _require_gpu()
    return "gpu"


def to_device(x: ArrayLike, device: str | None) -> Array:
    """Return ``x`` as an array on ``device``, without a copy when it is there already.

    Parameters
    ----------
    x : array_like
        A NumPy or CuPy array, or anything ``numpy.asarray`` accepts.
    device : {'cpu', 'gpu', 'auto', None}
        Where to put it (see :func:`resolve_device`).

    Returns
    -------
    array
        A NumPy array for 'cpu', a CuPy array for 'gpu'.

    Raises
    ------
    ValueError
        When ``device`` is not a device name.
    RuntimeError
        When the GPU is asked for and none is usable.

    Examples
    --------
    >>> import numpy as np
    >>> x = np.zeros(3)
    >>> to_device(x, "cpu") is x
    True
    """
    if resolve_device(device) == "cpu":
        return as_numpy(x)
    cupy = _require_gpu()
    return cupy.asarray(x)


def as_numpy(x: ArrayLike) -> numpy.ndarray:
    """Return ``x`` as a NumPy array, copying it from the GPU when it is a CuPy array.

    Parameters
    ----------
    x : array_like
        A NumPy or CuPy array, or anything ``numpy.asarray`` accepts.

    Returns
    -------
    numpy.ndarray
        ``x`` itself for a NumPy array.

    Examples
    --------
    >>> as_numpy([1, 2]).tolist()
    [1, 2]
    """
    if _is_cupy_array(x):
        return x.get()  # type: ignore[union-attr]  # a cupy.ndarray
    return numpy.asarray(x)


def module_for_device(device: str | None) -> ModuleType:
    """The array module of a device: ``numpy`` for 'cpu', ``cupy`` for 'gpu'.

    Parameters
    ----------
    device : {'cpu', 'gpu', 'auto', None}
        The device (see :func:`resolve_device`).

    Returns
    -------
    module
        ``numpy`` or ``cupy``.

    Raises
    ------
    ValueError
        When ``device`` is not a device name.
    RuntimeError
        When the GPU is asked for and none is usable.

    Examples
    --------
    >>> module_for_device("cpu").__name__
    'numpy'
    """
    return _require_gpu() if resolve_device(device) == "gpu" else numpy
