"""Every matrix product of the GPU backend: one cuBLAS routine behind one wrapper, and its model.

:func:`gemm` takes the documented column-major arguments of
``cublasGemmStridedBatchedEx``: for each ``p < batch``,
``C_p = alpha * op(A_p) @ op(B_p) + beta * C_p``, where element (i, j) of the
``p``-th matrix of an operand X sits at ``X[p * strideX + i + j * ldX]`` and
``op`` transposes when its flag is ``"T"``. One routine serves every dtype:
float16 inputs with float32 accumulation (``CUBLAS_COMPUTE_32F``, so no float16
partial sum is ever rounded before the end; C may be float32), float32 (FP32,
or TF32 tensor cores by opt-in) and float64. A shared operand has stride 0:
no pointer arrays.

The arguments are checked on the host first (flags, sizes, leading dimensions,
that every element the routine touches lies inside its array, that the C
matrices of a batch do not overlap): cuBLAS checks few of these and reads out
of bounds silently. Then one switch picks the routine: CuPy arrays go to
cuBLAS, NumPy arrays to :func:`model_gemm`, a NumPy model that reads and
writes the flat buffers exactly as the documentation says cuBLAS does. The
tests run the GPU backend end to end on NumPy arrays through the model, so a
wrong leading dimension, stride or flag fails without a GPU.

TF32 (:func:`set_tf32`, or ``FASTCONV_TF32=1``) is off by default: it rounds
float32 inputs to a 10-bit mantissa (relative error up to 2**-11 each), so a
product's error grows to about 1e-3 of the sum of its terms' magnitudes,
against about 1e-7 in FP32. Only the GPU path reads it; the NumPy model and
the CPU path compute in FP32 whatever it says.
"""

from __future__ import annotations

import functools
import os
from typing import Any

import numpy

from .. import _validate
from .._typing import DTypeLike

COMPUTE_TYPES = ("32F", "32F_FAST_TF32", "64F")
_COMPUTE_DTYPES = {"32F": numpy.float32, "32F_FAST_TF32": numpy.float32, "64F": numpy.float64}
_F16, _F32, _F64 = (numpy.dtype(t) for t in (numpy.float16, numpy.float32, numpy.float64))
# (A and B dtype, C dtype, compute type): the combinations cublasGemmStridedBatchedEx
# supports that fastconv uses
SUPPORTED = {(_F16, _F16, "32F"), (_F16, _F32, "32F"), (_F32, _F32, "32F"),
             (_F32, _F32, "32F_FAST_TF32"), (_F64, _F64, "64F")}
INT_LIMIT = 2**31 - 1  # m, n, k, the leading dimensions and batch are C ints in cuBLAS
_TF32_ENV = "FASTCONV_TF32"
# cublasMath_t (cublas_api.h): reductions (split-K) in the compute type, never C's type
_DISALLOW_REDUCED_PRECISION_REDUCTION = 16
_tf32 = None  # set by set_tf32; None: read FASTCONV_TF32 on first use


def set_tf32(enabled: bool) -> None:
    """Let float32 convolutions on the GPU use TF32 tensor cores, process-wide (default off).

    TF32 rounds each float32 input to a 10-bit mantissa, so results differ
    from FP32 by up to about 1e-3 of the sum of the magnitudes of their terms
    (FP32: about 1e-7), beyond the 1e-4 tolerance of float32 tests; in return
    the products run on the tensor cores of Ampere and newer GPUs. float16 and
    float64 are unaffected, and so are the CPU path and the NumPy model of
    cuBLAS (arrays on the CPU), which compute float32 in FP32 whatever it says.

    Parameters
    ----------
    enabled : bool
        True for TF32, False for FP32. Overrides ``FASTCONV_TF32``.

    Raises
    ------
    TypeError
        When ``enabled`` is not a bool.

    Examples
    --------
    >>> import fastconv
    >>> fastconv.set_tf32(True)
    >>> fastconv.get_tf32()
    True
    >>> fastconv.set_tf32(False)
    """
    global _tf32
    _tf32 = _validate.check_bool("enabled", enabled)


def get_tf32() -> bool:
    """Whether float32 products on the GPU use TF32.

    Returns
    -------
    bool
        :func:`set_tf32`'s setting, else ``FASTCONV_TF32`` (``1`` on, ``0`` or
        unset off).

    Raises
    ------
    ValueError
        When ``FASTCONV_TF32`` holds anything else.

    Examples
    --------
    >>> import fastconv
    >>> fastconv.get_tf32() in (True, False)
    True
    """
    global _tf32
    if _tf32 is None:
        value = os.environ.get(_TF32_ENV, "0").strip() or "0"
        if value not in ("0", "1"):
            raise ValueError(f"{_TF32_ENV} must be 1 or 0, got {value!r}")
        _tf32 = value == "1"
    return _tf32


def compute_type(dtype: DTypeLike) -> str:
    """The cuBLAS compute type for products of ``dtype`` inputs: float32 accumulation for
    float16 and float32 (TF32 when :func:`get_tf32`), float64 for float64.

    Parameters
    ----------
    dtype : dtype-like
        The inputs' dtype.

    Returns
    -------
    str
        One of :data:`COMPUTE_TYPES`.

    Examples
    --------
    >>> compute_type(numpy.float64), compute_type(numpy.float16)
    ('64F', '32F')
    """
    kind = numpy.dtype(dtype)
    if kind == _F64:
        return "64F"
    return "32F_FAST_TF32" if kind == _F32 and get_tf32() else "32F"


def gemm(transa, transb, m, n, k, alpha, a, lda, stride_a, b, ldb, stride_b, beta, c, ldc,
         stride_c, batch, compute):
    """``C_p = alpha * op(A_p) @ op(B_p) + beta * C_p`` for ``p < batch``: cuBLAS's
    ``cublasGemmStridedBatchedEx`` on CuPy arrays, :func:`model_gemm` on NumPy arrays.

    Parameters
    ----------
    transa, transb : {"N", "T"}
        Whether op transposes A, B.
    m, n, k : int
        op(A) is m x k, op(B) k x n, C m x n.
    alpha, beta : float
        Scalars, in the compute type's precision. With ``beta == 0`` C is not
        read (a NaN there does not propagate).
    a, b, c : ndarray
        C-contiguous arrays, each read as its flat buffer of ``size`` elements from the
        first matrix's first element on (the pointer cuBLAS takes, whatever the array's
        shape); their dtypes are the data types. A and B share a dtype;
        ``(a.dtype, c.dtype, compute)`` is one of :data:`SUPPORTED`.
    lda, ldb, ldc : int
        Leading dimensions: the distance between columns of the stored matrix.
    stride_a, stride_b, stride_c : int
        Elements from one matrix of the batch to the next; 0 shares one matrix.
    batch : int
        The number of products; with 0 nothing is computed.
    compute : str
        One of :data:`COMPUTE_TYPES` (``CUBLAS_COMPUTE_<compute>``).

    Raises
    ------
    ValueError
        A flag, size, leading dimension or stride that cuBLAS would refuse or
        that would touch memory outside an array, C matrices that overlap, or a
        CuPy array on another device than the current one.
    TypeError
        Unsupported dtypes, or arrays of two kinds.
    """
    check_buffers(a, b, c)
    if not isinstance(c, numpy.ndarray):
        _check_current_device(a, b, c)
    call = prepare_gemm(transa, transb, m, n, k, alpha, lda, stride_a, ldb, stride_b, beta, ldc,
                        stride_c, batch, compute, (a.dtype, c.dtype), (a.size, b.size, c.size))
    call(a, b, c)


def _check_current_device(a, b, c):
    """Refuse CuPy arrays on another device than the current one: the product runs on the
    current device's cuBLAS handle, where another device's addresses are not its memory."""
    current = _cupy_libraries()[1].get_device_id()
    for name, array in (("A", a), ("B", b), ("C", c)):
        if array.device.id != current:
            raise ValueError(f"gemm: {name} is on device {array.device.id} but the current "
                             f"device is {current}: call inside `with cupy.cuda.Device("
                             f"{array.device.id}):`")


class GemmCall:
    """One :func:`gemm` with everything but its arrays settled (:func:`prepare_gemm`).

    Called with A, B and C (C-contiguous arrays of the prepared dtypes and at least the
    prepared sizes, all NumPy or all CuPy), it runs the product on them, unchecked: CuPy
    arrays through cuBLAS, NumPy arrays through :func:`model_gemm`, the one switch between
    the model and the GPU.
    """

    __slots__ = ("transa", "transb", "m", "n", "k", "alpha", "lda", "stride_a", "ldb",
                 "stride_b", "beta", "ldc", "stride_c", "batch", "compute")

    def __init__(self, transa, transb, m, n, k, alpha, lda, stride_a, ldb, stride_b, beta, ldc,
                 stride_c, batch, compute):
        (self.transa, self.transb, self.m, self.n, self.k, self.alpha, self.lda, self.stride_a,
         self.ldb, self.stride_b, self.beta, self.ldc, self.stride_c, self.batch,
         self.compute) = (transa, transb, m, n, k, alpha, lda, stride_a, ldb, stride_b, beta,
                          ldc, stride_c, batch, compute)

    def __call__(self, a, b, c):
        if self.batch == 0:  # no product (an empty batch of images): nothing to read or write
            return
        routine = model_gemm if isinstance(c, numpy.ndarray) else _cublas_gemm
        routine(self.transa, self.transb, self.m, self.n, self.k, self.alpha, a, self.lda,
                self.stride_a, b, self.ldb, self.stride_b, self.beta, c, self.ldc,
                self.stride_c, self.batch, self.compute)


def prepare_gemm(transa, transb, m, n, k, alpha, lda, stride_a, ldb, stride_b, beta, ldc,
                 stride_c, batch, compute, dtypes, sizes):
    """The :class:`GemmCall` of :func:`gemm`'s arguments on arrays of ``dtypes`` (A and B's,
    C's) and ``sizes`` (A's, B's and C's elements), checked as :func:`gemm` checks them.

    Memoised: a training loop repeats the same few products, each checked once. The key
    has the values' types too, so a True or 3.0 is a new key, refused, never a cached 1 or 3.

    Raises
    ------
    ValueError, TypeError
        As :func:`gemm`.
    """
    args = (transa, transb, m, n, k, alpha, lda, stride_a, ldb, stride_b, beta, ldc, stride_c,
            batch, compute, tuple(dtypes), tuple(sizes))
    try:
        return _prepared_gemm(*args)
    except TypeError:  # an unhashable argument, never a valid one: refused by the check itself
        return _prepared_gemm.__wrapped__(*args)


@functools.lru_cache(maxsize=1024, typed=True)
def _prepared_gemm(transa, transb, m, n, k, alpha, lda, stride_a, ldb, stride_b, beta, ldc,
                   stride_c, batch, compute, dtypes, sizes):
    for name, flag in (("transa", transa), ("transb", transb)):
        if flag not in ("N", "T"):
            raise ValueError(f"{name} must be 'N' or 'T', got {flag!r}")
    if compute not in COMPUTE_TYPES:
        raise ValueError(f"compute must be one of {COMPUTE_TYPES}, got {compute!r}")
    (ab_dtype, c_dtype), (size_a, size_b, size_c) = dtypes, sizes
    if (ab_dtype, c_dtype, compute) not in SUPPORTED:
        raise TypeError(f"gemm: A and B {ab_dtype}, C {c_dtype} with compute {compute} "
                        f"is not a supported combination")
    for name, value in (("m", m), ("n", n), ("k", k), ("batch", batch)):
        _check_size(name, value, 0)
    operands = (("A", size_a, lda, stride_a, _stored_shape(transa, m, k)),
                ("B", size_b, ldb, stride_b, _stored_shape(transb, k, n)),
                ("C", size_c, ldc, stride_c, (m, n)))
    for name, size, ld, stride, (rows, cols) in operands:
        _check_size(f"ld{name.lower()}", ld, max(1, rows))
        _check_int(f"stride{name}", stride, 0)
        last = (batch - 1) * stride + (cols - 1) * ld + rows - 1
        if batch and rows and cols and last >= size:
            raise ValueError(
                f"gemm: {name} ({rows} x {cols}, ld{name.lower()}={ld}, stride{name}={stride}, "
                f"batch={batch}) reaches element {last} of an array of {size}")
    if batch > 1 and m and n and stride_c < (n - 1) * ldc + m:
        raise ValueError(f"gemm: strideC={stride_c} makes the C matrices of the batch overlap "
                         f"(each spans {(n - 1) * ldc + m} elements)")
    return GemmCall(transa, transb, m, n, k, alpha, lda, stride_a, ldb, stride_b, beta, ldc,
                    stride_c, batch, compute)


def _stored_shape(trans, rows, cols):
    """(rows, columns) of the stored matrix whose op is rows x cols."""
    return (rows, cols) if trans == "N" else (cols, rows)


def _check_int(name, value, low):
    if isinstance(value, bool) or not isinstance(value, (int, numpy.integer)):
        raise ValueError(f"gemm: {name} must be an int, got {value!r}")
    if value < low:
        raise ValueError(f"gemm: {name} must be at least {low}, got {value}")


def _check_size(name, value, low):
    """An int argument of cuBLAS's 32-bit API (m, n, k, a leading dimension, batch)."""
    _check_int(name, value, low)
    if value > INT_LIMIT:
        raise ValueError(f"gemm: {name}={value} does not fit cuBLAS's 32-bit int")


def check_buffers(a: Any, b: Any, c: Any) -> None:
    """Refuse A, B and C unless all NumPy or all CuPy arrays, each C-contiguous (read as its
    flat buffer), A's dtype B's: what :func:`gemm` checks of its arrays before
    :func:`prepare_gemm` checks their dtypes and sizes.

    Raises
    ------
    TypeError
        Arrays of two kinds, or A and B of two dtypes.
    ValueError
        An array that is not C-contiguous.
    """
    if isinstance(a, numpy.ndarray) + isinstance(b, numpy.ndarray) + isinstance(c, numpy.ndarray) \
            not in (0, 3):
        raise TypeError("gemm: A, B and C must all be NumPy arrays or all CuPy arrays")
    for name, array in (("A", a), ("B", b), ("C", c)):
        if not array.flags.c_contiguous:
            raise ValueError(f"gemm: {name} must be a C-contiguous array (read as its flat "
                             f"buffer), got shape {array.shape} with strides {array.strides}")
    if a.dtype != b.dtype:
        raise TypeError(f"gemm: A {a.dtype}, B {b.dtype}, C {c.dtype} is not a supported "
                        f"combination: A and B share a dtype")


def _matrices(flat, stride, ld, shape, trans, batch):
    """The ``batch`` matrices op(X_p), shape ``(batch,) + shape``, as a view of ``flat``.

    Element (i, j) of stored X_p is ``flat[p * stride + i + j * ld]``; op
    transposes when ``trans == "T"``.
    """
    size = flat.itemsize
    strides = (stride * size, size, ld * size) if trans == "N" else (stride * size, ld * size,
                                                                    size)
    return numpy.lib.stride_tricks.as_strided(flat, (batch,) + tuple(shape), strides)


def model_gemm(transa, transb, m, n, k, alpha, a, lda, stride_a, b, ldb, stride_b, beta, c,
               ldc, stride_c, batch, compute):
    """The NumPy model of ``cublasGemmStridedBatchedEx``, on NumPy arrays read as their flat
    buffers (as :func:`gemm`).

    The products are computed in the compute type's dtype (float32 for float16
    inputs) and rounded once to C's dtype. ``32F_FAST_TF32`` computes in FP32:
    TF32 is not modelled. Only C's matrices are written; the elements between
    them (ld padding, gaps between strides) keep their values.
    """
    acc = _COMPUTE_DTYPES[compute]
    op_a = _matrices(a, stride_a, lda, (m, k), transa, batch)
    op_b = _matrices(b, stride_b, ldb, (k, n), transb, batch)
    product = numpy.matmul(op_a.astype(acc), op_b.astype(acc))
    product *= acc(alpha)
    target = _matrices(c, stride_c, ldc, (m, n), "N", batch)
    if beta != 0:  # beta == 0: C is not read, as cuBLAS documents
        product += acc(beta) * target.astype(acc)
    target[...] = product


@functools.cache
def _cupy_libraries():
    """CuPy's ``(cublas, device, runtime)`` modules (imported here only: CuPy is optional)."""
    from cupy.cuda import cublas, device, runtime

    return cublas, device, runtime


@functools.lru_cache(maxsize=64)
def _cublas_constants(cublas, runtime, transa, transb, alpha, beta, ab_dtype, c_dtype, compute):
    """The arguments of a ``cublasGemmStridedBatchedEx`` that are neither sizes nor arrays:
    the operations, the host addresses of alpha and beta (in the compute type's precision),
    the data types and the compute type, as CuPy's enums; and the two host scalars, kept as
    long as their addresses are (cuBLAS reads them during the call). Looked up once per
    product kind: a call pays no enum lookup and no NumPy ``ctypes`` query."""
    types = {_F16: runtime.CUDA_R_16F, _F32: runtime.CUDA_R_32F, _F64: runtime.CUDA_R_64F}
    ops = {"N": cublas.CUBLAS_OP_N, "T": cublas.CUBLAS_OP_T}
    scalars = tuple(numpy.array(value, _COMPUTE_DTYPES[compute]) for value in (alpha, beta))
    for scalar in scalars:
        scalar.flags.writeable = False
    return (ops[transa], ops[transb], scalars[0].ctypes.data, types[ab_dtype],
            scalars[1].ctypes.data, types[c_dtype],
            getattr(cublas, f"CUBLAS_COMPUTE_{compute}"), scalars)


def _cublas_gemm(transa, transb, m, n, k, alpha, a, lda, stride_a, b, ldb, stride_b, beta, c,
                 ldc, stride_c, batch, compute):
    """:func:`gemm` on CuPy arrays: one ``cublasGemmStridedBatchedEx`` on CuPy's handle and
    current stream (CuPy's wrapper sets the stream), in host pointer mode (alpha and beta
    are host scalars) with reductions in the compute type
    (``CUBLAS_MATH_DISALLOW_REDUCED_PRECISION_REDUCTION``: the math mode, not the compute
    type, would otherwise pick TF32, and a split-K product of float16 would sum partials in
    float16); both modes are restored afterwards."""
    cublas, device, runtime = _cupy_libraries()
    op_a, op_b, alpha_at, type_ab, beta_at, type_c, compute_type_, _ = _cublas_constants(
        cublas, runtime, transa, transb, float(alpha), float(beta), a.dtype, c.dtype, compute)
    handle = device.get_cublas_handle()
    pointer, math = cublas.getPointerMode(handle), cublas.getMathMode(handle)
    cublas.setPointerMode(handle, cublas.CUBLAS_POINTER_MODE_HOST)
    cublas.setMathMode(handle, _DISALLOW_REDUCED_PRECISION_REDUCTION)
    try:
        cublas.gemmStridedBatchedEx(
            handle, op_a, op_b, m, n, k, alpha_at, a.data.ptr, type_ab, lda, stride_a,
            b.data.ptr, type_ab, ldb, stride_b, beta_at, c.data.ptr, type_c, ldc, stride_c,
            batch, compute_type_, cublas.CUBLAS_GEMM_DEFAULT)
    finally:
        cublas.setMathMode(handle, math)
        cublas.setPointerMode(handle, pointer)
