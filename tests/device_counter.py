"""A recording stand-in for CuPy: counts the device launches and allocations of the GPU path.

``with counting() as counts:`` puts a fake ``cupy`` module into ``sys.modules``
whose ``ndarray`` is a NumPy subclass (:class:`DeviceArray`), so fastconv takes
its GPU dispatch for such arrays, with the kernels emulated on the CPU and the
products in the NumPy model of cuBLAS. Every pass CuPy would launch is counted
once in ``counts.launches``, every array CuPy would allocate in
``counts.allocations``, each with a label in ``counts.log``:

- array creation through the module (``empty``, ``zeros``, ...): an allocation,
  plus a launch where it fills the memory;
- a ufunc (``+=``, ``xp.add``, a reduction such as ``sum``), ``copyto``,
  ``astype``, ``fill``, ``a[...] = b``, and a copying ``ascontiguousarray`` or
  ``reshape``: a launch, plus an allocation when it returns a new array;
- a kernel launch (a :class:`fastconv._cuda_launcher.PreparedLaunch` called, by
  ``Launcher.launch`` or by an algorithm that prepared it) and a cuBLAS product (a
  :class:`fastconv._gpu.gemm.GemmCall` called, by :func:`fastconv._gpu.gemm.gemm` or
  prepared): a launch each, unless its work is empty (what their emulation does inside
  is not counted);
- ``xp.matmul`` as CuPy 13/14 runs it (cupy/_core/_routines_linalg.pyx): one
  cuBLAS call, after 6 pointer-array kernels and 6 allocations when an operand
  broadcasts over the batch, float16 cast to float32 first and back after
  (3 launches, 3 allocations).
"""

import contextlib
import sys
import types
from dataclasses import dataclass, field

import numpy

from cuda_emu.emu import emu_launcher
from fastconv import _cuda
from fastconv._cuda_launcher import PreparedLaunch
from fastconv._gpu import gemm

_state = {"counts": None}


@dataclass
class Counts:
    """The launches and allocations recorded, with one label per event."""

    launches: int = 0
    allocations: int = 0
    log: list = field(default_factory=list)

    def record(self, what, launches=0, allocations=0):
        self.launches += launches
        self.allocations += allocations
        self.log.append((what, launches, allocations))


def _record(what, launches=0, allocations=0):
    counts = _state["counts"]
    if counts is not None:
        counts.record(what, launches, allocations)


@contextlib.contextmanager
def _not_counted():
    """What runs inside a counted device call (an emulated kernel, the cuBLAS model)."""
    counts, _state["counts"] = _state["counts"], None
    try:
        yield
    finally:
        _state["counts"] = counts


def _plain(value):
    return value.view(numpy.ndarray) if isinstance(value, DeviceArray) else value


def _overlap(a, b):
    return numpy.may_share_memory(_plain(a), _plain(b))


def _device(value):
    return value.view(DeviceArray) if type(value) is numpy.ndarray else value


class DeviceArray(numpy.ndarray):
    """NumPy memory standing in for a CuPy array: each pass over it is counted."""

    def __array_ufunc__(self, ufunc, method, *inputs, out=None, **kwargs):
        if out is not None:
            kwargs["out"] = tuple(_plain(o) for o in out)
        result = getattr(ufunc, method)(*(_plain(a) for a in inputs), **kwargs)
        _record(f"{ufunc.__name__}.{method}", 1, 0 if out else 1)
        return out[0] if out and len(out) == 1 else _device(result)

    def __array_function__(self, func, types_, args, kwargs):
        with _not_counted():
            result = super().__array_function__(func, types_, args, kwargs)
        inputs = [a for a in (*args, *kwargs.values()) if isinstance(a, numpy.ndarray)]
        if isinstance(result, numpy.ndarray) and not any(_overlap(result, a) for a in inputs):
            _record(func.__name__, 1, 1)  # a new array (a query such as may_share_memory is not)
        return result

    def astype(self, dtype, *args, copy=True, **kwargs):
        result = super().astype(dtype, *args, copy=copy, **kwargs)
        if result is not self:
            _record("astype", 1, 1)
        return result

    def copy(self, *args, **kwargs):
        _record("copy", 1, 1)
        return super().copy(*args, **kwargs)

    def fill(self, value):
        _record("fill", 1)
        return super().fill(value)

    def __setitem__(self, key, value):
        _record("setitem", 1)
        return super().__setitem__(key, value)

    def reshape(self, *shape, **kwargs):
        result = super().reshape(*shape, **kwargs)
        if self.size and not _overlap(result, self):
            _record("reshape copy", 1, 1)
        return result


def _new(name, fills):
    def create(shape, dtype=float, *args, **kwargs):
        _record(name, int(fills), 1)
        return getattr(numpy, name)(shape, dtype, *args, **kwargs).view(DeviceArray)
    return create


def _ascontiguousarray(a, dtype=None):
    a = numpy.asarray(a) if not isinstance(a, numpy.ndarray) else a
    if a.flags.c_contiguous and (dtype is None or numpy.dtype(dtype) == a.dtype):
        return a
    _record("ascontiguousarray", 1, 1)
    return numpy.ascontiguousarray(_plain(a), dtype).view(DeviceArray)


def _copyto(dst, src, **kwargs):
    _record("copyto", 1)
    numpy.copyto(_plain(dst), _plain(src), **kwargs)


def _sum(a, axis=None, dtype=None, out=None, **kwargs):
    return numpy.add.reduce(a, axis=axis, dtype=dtype, out=out, **kwargs)


def _cupy_matmul(a, b, out=None):
    """CuPy's matmul: its launches and allocations, with NumPy's result."""
    batch_a, batch_b = a.shape[:-2], b.shape[:-2]
    ndim = max(a.ndim, b.ndim)
    batch_a, batch_b = (1,) * (ndim - a.ndim) + batch_a, (1,) * (ndim - b.ndim) + batch_b
    if any(x != y for x, y in zip(batch_a, batch_b)):
        _record("matmul pointer arrays", 3 * (ndim - 2), 3 * (ndim - 2))
    dtype = numpy.promote_types(a.dtype, b.dtype)
    if dtype == numpy.float16:
        _record("matmul float16 casts", 3, 3)
    elif out is None:
        _record("matmul output", 0, 1)
    _record("matmul cuBLAS", 1)
    result = numpy.matmul(_plain(a), _plain(b), out=None if out is None else _plain(out))
    return out if out is not None else _device(result)


def _fake_cupy():
    module = types.ModuleType("cupy")
    module.__getattr__ = lambda name: getattr(numpy, name)  # dtypes, ufuncs, result_type ...
    module.ndarray = DeviceArray
    for name, fills in (("empty", False), ("zeros", True), ("ones", True)):
        setattr(module, name, _new(name, fills))
    module.ascontiguousarray, module.copyto = _ascontiguousarray, _copyto
    module.sum, module.matmul = _sum, _cupy_matmul
    return module


def _counted(what, call, runs):
    """``call`` (a prepared launch's or product's ``__call__``) counted as one launch where
    ``runs(prepared)`` says it reaches the device (not for empty work)."""
    def counted(prepared, *args):
        if runs(prepared):
            _record(what, 1)
        with _not_counted():
            return call(prepared, *args)
    return counted


def device(array):
    """A copy of the NumPy ``array`` as a :class:`DeviceArray` (not counted)."""
    return numpy.array(array).view(DeviceArray)


@contextlib.contextmanager
def counting(monkeypatch):
    """Count inside the block: the fake cupy, the emulated kernels, the counted gemm."""
    launcher = emu_launcher()
    monkeypatch.setitem(sys.modules, "cupy", _fake_cupy())
    monkeypatch.setattr(_cuda, "default_launcher", lambda: launcher)
    # every launch and product, checked or prepared, runs through these two
    monkeypatch.setattr(PreparedLaunch, "__call__",
                        _counted("kernel", PreparedLaunch.__call__, lambda p: p.function))
    monkeypatch.setattr(gemm.GemmCall, "__call__",
                        _counted("gemm", gemm.GemmCall.__call__, lambda call: call.batch))
    _state["counts"] = counts = Counts()
    try:
        yield counts
    finally:
        _state["counts"] = None
