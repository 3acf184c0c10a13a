"""What the 2-D and 3-D max and average pools share: argument checks, the caches' fields, the
dispatch to a backend, PyTorch's indices and the average pool's divisor.

Each pool front (:mod:`fastconv.functional.pool`, :mod:`fastconv.functional.pool3d`) checks
its arguments here, builds its geometry, and runs the forward and backward here with its own
cache class (so a backward refuses another op's cache) and its backend role: ``pool`` for 2-D
and ``pool3d`` for 3-D (each its own CUDA kernels on the GPU); on the CPU both
roles are one N-dimensional module. The rules are those of :mod:`fastconv.functional.pool`.
"""

from __future__ import annotations

import math
from types import ModuleType
from typing import Any, ClassVar

import numpy

from .. import _backends, _validate
from .._typing import Array
from ..backend import accumulator_dtype, get_array_module
from ..shapes import IntOrTuple, WindowGeometry, spatial_ints, window_geometry
from ..workspace import whole_batch

#: The input layout of a pool over 1, 2 or 3 spatial axes, in errors.
LAYOUTS = {1: "(N, C, L)", 2: "(N, C, H, W)", 3: "(N, C, D, H, W)"}


@_validate.op_cache
class WindowMaxCache:
    """A max pool's cache: the input shape and dtype, geometry and argmax offsets (each pool
    subclasses it to name itself in ``op``).

    Examples
    --------
    >>> from fastconv.functional.pool3d import max_pool3d_forward
    >>> _, cache = max_pool3d_forward(numpy.zeros((1, 1, 2, 2, 2)), 2)
    >>> isinstance(cache, WindowMaxCache), cache.argmax.dtype
    (True, dtype('int32'))
    """

    op: ClassVar[str]  # the forward's name, each subclass's
    x_shape: tuple[int, ...]
    dtype: numpy.dtype
    geometry: WindowGeometry
    argmax: Array


@_validate.op_cache
class WindowMeanCache:
    """An average pool's cache: the input shape and dtype, geometry and divisors (each pool
    subclasses it to name itself in ``op``).

    Examples
    --------
    >>> from fastconv.functional.pool import avg_pool2d_forward
    >>> _, cache = avg_pool2d_forward(numpy.zeros((1, 1, 2, 2)), 2)
    >>> isinstance(cache, WindowMeanCache), cache.divisor
    (True, array([[4.]]))
    """

    op: ClassVar[str]  # the forward's name, each subclass's
    x_shape: tuple[int, ...]
    dtype: numpy.dtype
    geometry: WindowGeometry
    divisor: Array


def pool_settings(kernel_size: object, stride: object, padding: object, ndim: int = 2
                  ) -> tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...]]:
    """A pool's ``(kernel, stride, padding)`` tuples: the checks that need no input, which
    the layers also run when they are built.

    The stride defaults to the kernel size; padding is >= 0. Max unpooling
    (:mod:`fastconv.functional.unpool`) takes the same arguments.

    Parameters
    ----------
    kernel_size, stride, padding : int or tuple of int
        stride may be None.
    ndim : int
        The number of spatial axes, 1 to 3. Default 2.

    Returns
    -------
    kernel, stride, padding : tuple of int
        ``ndim`` ints each.

    Raises
    ------
    TypeError, ValueError
        Naming the argument.

    Examples
    --------
    >>> pool_settings(2, None, (0, 1, 0), ndim=3)
    ((2, 2, 2), (2, 2, 2), (0, 1, 0))
    """
    kernel = spatial_ints(kernel_size, "kernel_size", ndim, 1)
    stride = kernel if stride is None else spatial_ints(stride, "stride", ndim, 1)
    return kernel, stride, spatial_ints(padding, "padding", ndim, 0)


def _check_planes(x: Array, ndim: int) -> None:
    """A pool's x: float planes (N, C, *spatial) of ``ndim`` spatial axes."""
    _validate.check_float(x, "x")  # first: what is no array is a TypeError
    _validate.check_ndim(x, ndim + 2, "x", LAYOUTS[ndim])


def pool_arguments(x: Array, kernel_size: object, stride: object, padding: object,
                   ndim: int = 2) -> tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...]]:
    """Check a pool's x (N, C, *spatial) floats, then return :func:`pool_settings` of the
    other arguments (raising as it does, and naming x's shape for x).

    Examples
    --------
    >>> pool_arguments(numpy.zeros((1, 1, 4, 4, 4)), 2, None, (0, 1, 0), ndim=3)
    ((2, 2, 2), (2, 2, 2), (0, 1, 0))
    """
    _check_planes(x, ndim)
    return pool_settings(kernel_size, stride, padding, ndim)


def window_settings(kernel_size: object, stride: object, padding: object,
                    dilation: IntOrTuple, ceil_mode: object, ndim: int = 2
                    ) -> tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...],
                               tuple[int, ...], bool]:
    """A pool window's settings checked without an input (PyTorch's rules: padding at most
    half the kernel): ``(kernel, stride, padding, dilation, ceil_mode)``.

    Raises
    ------
    TypeError, ValueError
        Naming the argument.

    Examples
    --------
    >>> window_settings(3, None, 1, 1, False)
    ((3, 3), (3, 3), (1, 1), (1, 1), False)
    """
    kernel, stride, pad = pool_settings(kernel_size, stride, padding, ndim)
    if any(p > k // 2 for p, k in zip(pad, kernel)):
        raise ValueError(
            f"padding {padding!r} must be at most half of kernel_size {kernel_size!r}")
    ceil_mode = _validate.check_bool("ceil_mode", ceil_mode)
    return kernel, stride, pad, spatial_ints(dilation, "dilation", ndim, 1), ceil_mode


def pool_geometry(x: Array, kernel_size: object, stride: object, padding: object,
                  dilation: IntOrTuple, ceil_mode: object, ndim: int = 2) -> WindowGeometry:
    """Validate pooling arguments (x, then :func:`window_settings`) and build the window
    geometry.

    Parameters
    ----------
    x : ndarray
    kernel_size, stride, padding, dilation : int or tuple of int
        stride may be None (the kernel size).
    ceil_mode : bool
    ndim : int
        The number of spatial axes. Default 2.

    Returns
    -------
    WindowGeometry

    Raises
    ------
    TypeError, ValueError
        Naming the argument and the shapes.

    Examples
    --------
    >>> pool_geometry(numpy.zeros((1, 1, 5, 5)), 3, 2, 1, 1, True).out
    (3, 3)
    """
    _check_planes(x, ndim)
    kernel, stride, pad, dilation, ceil_mode = window_settings(
        kernel_size, stride, padding, dilation, ceil_mode, ndim)
    return window_geometry(x.shape, kernel, stride, pad, dilation, ceil_mode)


def _backend(role: str, *arrays: Array) -> ModuleType:
    """The module of ``role`` ('pool' or 'pool3d') in the backend of the arrays' device."""
    return getattr(_backends.backend_for(*arrays), role)


def max_pool(x: Array, geometry: WindowGeometry, return_indices: object,
             cache_type: type[WindowMaxCache], role: str) -> tuple:
    """Max pooling of a checked ``x``: ``(out, cache)``, or ``(out, indices, cache)``.

    Parameters
    ----------
    x : ndarray
    geometry : WindowGeometry
    return_indices : bool
    cache_type : type
        The pool's cache class, a :class:`WindowMaxCache`.
    role : {'pool', 'pool3d'}
        The backend module that runs it.

    Returns
    -------
    tuple
        ``(out, cache)`` or ``(out, indices, cache)``.

    Raises
    ------
    TypeError
        A non-bool ``return_indices``.

    Examples
    --------
    >>> from fastconv.functional.pool import MaxPoolCache
    >>> x = numpy.array([[[[1.0, 3.0, 2.0]]]])
    >>> g = pool_geometry(x, (1, 2), 1, 0, 1, False)
    >>> max_pool(x, g, True, MaxPoolCache, "pool")[:2]
    (array([[[[3., 3.]]]]), array([[[[1, 1]]]]))
    """
    xp = get_array_module(x)
    return_indices = _validate.check_bool("return_indices", return_indices)
    backend = _backend(role, x)
    with whole_batch(xp, backend.pool_plan(x.shape, geometry, x.dtype), x.shape[0]) as buffers:
        out, argmax = backend.max_pool_forward(x, geometry, buffers)
    cache = cache_type(x.shape, x.dtype, geometry, argmax)
    if return_indices:
        return out, flat_indices(argmax, geometry, xp), cache
    return out, cache


def flat_indices(argmax: Array, geometry: WindowGeometry, xp: ModuleType) -> Array:
    """PyTorch-style indices (h * W + w in 2-D, (d * H + h) * W + w in 3-D) of each window's
    maximum from its flat kernel offset.

    A window of padding only (its argmax, offset 0, is no input cell) gets -1,
    as in the loop reference; PyTorch's index there lies outside the input.

    Parameters
    ----------
    argmax : ndarray
        (N, C, *out), the flat kernel offsets.
    geometry : WindowGeometry
    xp : module
        numpy or cupy.

    Returns
    -------
    ndarray
        int64, argmax's shape.

    Examples
    --------
    >>> g = pool_geometry(numpy.zeros((1, 1, 2, 4)), 2, None, 0, 1, False)
    >>> flat_indices(numpy.array([[[[3, 1]]]]), g, numpy)
    array([[[[5, 3]]]])
    """
    offset = argmax.astype(xp.int64)
    flat, inside = 0, True
    for axis, (n, o, k, s, d, (before, _)) in enumerate(zip(
            geometry.size, geometry.out, geometry.kernel, geometry.stride, geometry.dilation,
            geometry.pads)):
        later = math.prod(geometry.kernel[axis + 1:])  # the flat offset's step along this axis
        along = (-1,) + (1,) * (geometry.ndim - axis - 1)  # this axis, broadcast over the rest
        position = (xp.arange(o, dtype=xp.int64).reshape(along) * s - before
                    + (offset // later % k) * d)
        inside = inside & (position >= 0) & (position < n)
        flat = flat * n + position
    return xp.where(inside, flat, -1)


def max_pool_backward(dout: Array, cache: WindowMaxCache, cache_type: type[WindowMaxCache],
                      role: str) -> Array:
    """The max-pool gradient of ``cache`` (a ``cache_type``): each window's to its argmax.

    Parameters
    ----------
    dout : ndarray
    cache : WindowMaxCache
    cache_type : type
        The class ``cache`` must be.
    role : {'pool', 'pool3d'}

    Returns
    -------
    ndarray
        dx.

    Raises
    ------
    TypeError, ValueError
        A cache of another type; dout unlike the pooled output.

    Examples
    --------
    >>> from fastconv.functional.pool import MaxPoolCache, max_pool2d_forward
    >>> out, cache = max_pool2d_forward(numpy.array([[[[1.0, 3.0]]]]), (1, 2))
    >>> max_pool_backward(numpy.ones_like(out), cache, MaxPoolCache, "pool")
    array([[[[0., 1.]]]])
    """
    _validate.check_cache(cache, cache_type, cache_type.op)
    _validate.check_dout(dout, cache.argmax.shape, cache.dtype)
    backend = _backend(role, dout, cache.argmax)
    return backend.max_pool_backward(dout, cache.argmax, cache.x_shape, cache.geometry)


def _avg_divisor(geometry: WindowGeometry, count_include_pad: bool, dtype: numpy.dtype,
                 xp: ModuleType) -> Array:
    """Per-output window sizes (*out) under PyTorch's avg-pool divisor rule, in ``dtype``
    (the accumulator dtype: float16 has no 2049, and overflows at 65520)."""
    divisor: Any = 1
    for axis, (n, k, s, (before, _), o) in enumerate(zip(
            geometry.size, geometry.kernel, geometry.stride, geometry.pads, geometry.out)):
        start = xp.arange(o) * s - before
        end = xp.minimum(start + k, n + before)
        if count_include_pad:
            size = end - start
        else:
            size = xp.minimum(end, n) - xp.maximum(start, 0)
        divisor = divisor * size.reshape((-1,) + (1,) * (geometry.ndim - axis - 1))
    return divisor.astype(dtype)


def _divisor_override(value: object) -> int:
    """``divisor_override`` as an int: any but 0, as PyTorch (a negative one too)."""
    value = _validate.check_int("divisor_override", value)
    if value == 0:
        raise ValueError("divisor_override must not be 0 (None divides by the window size)")
    return value


def avg_pool(x: Array, geometry: WindowGeometry, count_include_pad: object,
             divisor_override: object, cache_type: type[WindowMeanCache],
             role: str) -> tuple[Array, Any]:
    """Average pooling of a checked ``x``: ``(out, cache)``.

    Parameters
    ----------
    x : ndarray
    geometry : WindowGeometry
    count_include_pad : bool
    divisor_override : int or None
    cache_type : type
        The pool's cache class, a :class:`WindowMeanCache`.
    role : {'pool', 'pool3d'}

    Returns
    -------
    out : ndarray
    cache : cache_type

    Raises
    ------
    TypeError, ValueError
        A non-bool ``count_include_pad``; a zero or non-int ``divisor_override``.

    Examples
    --------
    >>> from fastconv.functional.pool import AvgPoolCache
    >>> x = numpy.array([[[[1.0, 3.0]]]])
    >>> avg_pool(x, pool_geometry(x, (1, 2), 1, 0, 1, False), True, None, AvgPoolCache, "pool")[0]
    array([[[[2.]]]])
    """
    xp = get_array_module(x)
    count_include_pad = _validate.check_bool("count_include_pad", count_include_pad)
    acc = accumulator_dtype(x.dtype)
    if divisor_override is None:
        divisor = _avg_divisor(geometry, count_include_pad, acc, xp)
    else:  # the kernels take a divisor per output position: here all the same
        divisor = xp.full(geometry.out, _divisor_override(divisor_override), dtype=acc)
    backend = _backend(role, x)
    with whole_batch(xp, backend.pool_plan(x.shape, geometry, x.dtype), x.shape[0]) as buffers:
        out = backend.avg_pool_forward(x, geometry, divisor, buffers)
    return out, cache_type(x.shape, x.dtype, geometry, divisor)


def avg_pool_backward(dout: Array, cache: WindowMeanCache, cache_type: type[WindowMeanCache],
                      role: str) -> Array:
    """The average-pool gradient of ``cache`` (a ``cache_type``): dout / divisor spread evenly.

    Parameters
    ----------
    dout : ndarray
    cache : WindowMeanCache
    cache_type : type
        The class ``cache`` must be.
    role : {'pool', 'pool3d'}

    Returns
    -------
    ndarray
        dx.

    Raises
    ------
    TypeError, ValueError
        A cache of another type; dout unlike the pooled output.

    Examples
    --------
    >>> from fastconv.functional.pool import AvgPoolCache, avg_pool2d_forward
    >>> out, cache = avg_pool2d_forward(numpy.array([[[[1.0, 3.0]]]]), (1, 2))
    >>> avg_pool_backward(numpy.ones_like(out), cache, AvgPoolCache, "pool")
    array([[[[0.5, 0.5]]]])
    """
    _validate.check_cache(cache, cache_type, cache_type.op)
    _validate.check_dout(dout, cache.x_shape[:2] + cache.geometry.out, cache.dtype)
    backend = _backend(role, dout, cache.divisor)
    plan = backend.avg_pool_backward_plan(cache.x_shape, cache.geometry, cache.dtype)
    with whole_batch(get_array_module(dout), plan, cache.x_shape[0]) as buffers:
        return backend.avg_pool_backward(dout, cache.divisor, cache.x_shape, cache.geometry,
                                         buffers)

