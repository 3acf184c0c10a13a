"""The array-module abstraction: NumPy on the CPU, CuPy on the GPU.

Everything above the kernels is written once as ``xp = get_array_module(x)``
followed by ``xp.<function>``. CuPy is imported lazily, only when a CuPy array
could exist or a GPU is asked for, so ``import fastconv`` never needs CUDA.
"""

import os
import sys

import numpy

DEVICES = ("cpu", "gpu")
_DEVICE_ENV = "FASTCONV_DEVICE"
_gpu_status = None  # (available: bool, reason: str), computed once


def _loaded_cupy():
    """CuPy if something already imported it, else None (never imports it)."""
    return sys.modules.get("cupy")


def _is_cupy_array(x):
    cupy = _loaded_cupy()
    return cupy is not None and isinstance(x, cupy.ndarray)


def is_array(x):
    """True for a NumPy or CuPy array (not a scalar, list or NumPy scalar)."""
    return isinstance(x, numpy.ndarray) or _is_cupy_array(x)


def accumulator_dtype(dtype):
    """The dtype sums over an array of ``dtype`` run in: float32 for float16, else its own.

    A float16 running sum stalls at 2048 (2048 + 1 rounds back to 2048) and
    overflows past 65504; PyTorch also accumulates half in float32.
    """
    return numpy.result_type(dtype, numpy.float32)


def promoted(*arrays):
    """The arrays cast to their common dtype, as NumPy's own arithmetic would promote them.

    ``None`` entries pass through. fastconv's ops refuse mixed dtypes; the
    course front-ends (fastconv.compat) promote first, as the course code did.
    """
    present = [a for a in arrays if a is not None]
    if not present:
        return arrays
    dtype = get_array_module(*present).result_type(*present)
    return tuple(None if a is None else a.astype(dtype, copy=False) for a in arrays)


def get_array_module(*arrays):
    """Return ``cupy`` if every array argument is a CuPy array, else ``numpy``.

    Non-array arguments (None, Python scalars) are ignored. Arrays from both
    devices in one call raise a ValueError: nothing is copied silently.
    """
    on_gpu = on_cpu = False
    for a in arrays:
        if _is_cupy_array(a):
            on_gpu = True
        elif isinstance(a, numpy.ndarray):
            on_cpu = True
    if on_gpu and on_cpu:
        kinds = ", ".join(type(a).__module__.split(".")[0] + "." + type(a).__name__
                          for a in arrays if a is not None)
        raise ValueError(
            f"arrays from two devices in one call ({kinds}); move them to one "
            "device first with fastconv.to_device(x, 'cpu' | 'gpu')")
    return _loaded_cupy() if on_gpu else numpy


def device_of(x):
    """'gpu' for a CuPy array, 'cpu' otherwise."""
    return "gpu" if _is_cupy_array(x) else "cpu"


def model_device(model):
    """'gpu' or 'cpu': where a model's first parameter (else first buffer) lives; 'cpu' if none.

    ``model`` is anything with a ``params`` mapping (a :class:`fastconv.nn.Module`
    or a course model) and, optionally, ``buffers``.
    """
    for arrays in (model.params, getattr(model, "buffers", {})):
        for value in arrays.values():
            return device_of(value)
    return "cpu"


def gpu_status():
    """(available, reason): whether CuPy imports and a CUDA device is usable.

    Never raises; the reason says why no GPU is usable (or names the device).
    """
    global _gpu_status
    if _gpu_status is None:
        _gpu_status = _probe_gpu()
    return _gpu_status


def _probe_gpu():
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
    return True, f"{count} CUDA device(s); using {name}"


def gpu_available():
    """True only when CuPy imports and a CUDA device is usable. Never raises."""
    return gpu_status()[0]


def _check_device_name(device, argname="device"):
    if device not in DEVICES:
        raise ValueError(f"{argname} must be 'cpu' or 'gpu', got {device!r}")


def _require_gpu():
    available, reason = gpu_status()
    if not available:
        raise RuntimeError(f"the GPU was asked for but none is usable: {reason}")
    import cupy
    return cupy


def default_device():
    """The device for newly created parameters, from ``FASTCONV_DEVICE``.

    ``cpu`` (the default when unset), ``gpu`` (a RuntimeError saying why when
    no GPU is usable) or ``auto`` (the GPU when usable, else the CPU).
    """
    value = os.environ.get(_DEVICE_ENV, "cpu").strip().lower() or "cpu"
    if value == "auto":
        return "gpu" if gpu_available() else "cpu"
    if value not in DEVICES:
        raise ValueError(f"{_DEVICE_ENV} must be cpu, gpu or auto, got {value!r}")
    if value == "gpu":
        _require_gpu()
    return value


def resolve_device(device=None):
    """Turn ``None``/'auto'/'cpu'/'gpu' into 'cpu' or 'gpu', checking the GPU."""
    if device is None:
        return default_device()
    if device == "auto":
        return "gpu" if gpu_available() else "cpu"
    _check_device_name(device)
    if device == "gpu":
        _require_gpu()
    return device


def to_device(x, device):
    """Return ``x`` on ``device`` ('cpu', 'gpu' or 'auto'); no copy if it is there already."""
    device = resolve_device(device)
    if device == "cpu":
        return as_numpy(x)
    cupy = _require_gpu()
    return cupy.asarray(x)


def as_numpy(x):
    """Return ``x`` as a NumPy array, copying from the GPU when it is a CuPy array."""
    if _is_cupy_array(x):
        return x.get()
    return numpy.asarray(x)


def module_for_device(device):
    """numpy for 'cpu', cupy for 'gpu' (a RuntimeError when no GPU is usable)."""
    device = resolve_device(device)
    return _require_gpu() if device == "gpu" else numpy
