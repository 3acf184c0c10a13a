"""The cuBLAS wrapper of the GPU backend (fastconv/_gpu/gemm.py, matmul.py), without a GPU.

The NumPy model of ``cublasGemmStridedBatchedEx`` is checked against plain
matmul of matrices gathered element by element with the documented
column-major formula X_p(i, j) = X[p * strideX + i + j * ldX] (transposed
for "T"), for drawn flags, sizes, padded leading dimensions, zero and gapped
strides, batch counts, alpha/beta and dtype combinations; every element of C
outside its matrices must keep its value. The cuBLAS path runs against a
stand-in for CuPy's cublas module that executes each call with the model, so
the argument order and enum values passed to CuPy are checked too. The
row-major front (matmul.py) is checked against numpy.matmul.
"""

import ctypes

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import fastconv
from fastconv._gpu import gemm, matmul

F16, F32, F64 = np.dtype(np.float16), np.dtype(np.float32), np.dtype(np.float64)
TOL = {F16: 2e-3, F32: 1e-5, F64: 1e-12}


def gathered(flat, trans, ld, stride, rows, cols, p):
    """op(X_p), rows x cols, gathered from ``flat`` element by element (the documented formula)."""
    i, j = np.meshgrid(np.arange(rows), np.arange(cols), indexing="ij")
    stored_i, stored_j = (i, j) if trans == "N" else (j, i)
    return flat[p * stride + stored_i + stored_j * ld]


@st.composite
def gemm_cases(draw):
    """A valid call: flags, sizes, padded leading dimensions, strides and the buffers' sizes."""
    transa, transb = draw(st.sampled_from("NT")), draw(st.sampled_from("NT"))
    m, n, k = (draw(st.integers(0, 5)) for _ in range(3))
    batch = draw(st.integers(0, 3))
    ab_dtype, c_dtype, compute = draw(st.sampled_from(sorted(gemm.SUPPORTED, key=str)))
    operands = {}
    for name, (rows, cols) in (("a", (m, k) if transa == "N" else (k, m)),
                               ("b", (k, n) if transb == "N" else (n, k)), ("c", (m, n))):
        ld = max(1, rows) + draw(st.integers(0, 2))
        span = (cols - 1) * ld + rows if rows and cols else 0
        shared = name != "c" and draw(st.booleans())
        stride = 0 if shared else span + draw(st.integers(0, 3))
        last = (batch - 1) * stride + span if batch and span else 0
        operands[name] = (ld, stride, last + draw(st.integers(0, 2)))
    alpha = draw(st.sampled_from([1.0, 0.5, -2.0]))
    beta = draw(st.sampled_from([0.0, 1.0, 0.25]))
    return (transa, transb, m, n, k, alpha, beta, batch, ab_dtype, c_dtype, compute, operands)


def buffers(case, seed):
    """The flat A, B and C of a case, random; C is NaN when beta is 0 (it must not be read)."""
    *_, beta, _, ab_dtype, c_dtype, _, operands = case
    rng = np.random.default_rng(seed)
    a, b, c = (rng.standard_normal(operands[name][2]).astype(dtype)
               for name, dtype in (("a", ab_dtype), ("b", ab_dtype), ("c", c_dtype)))
    if beta == 0:
        c[:] = np.nan
    return a, b, c


def call(case, a, b, c, routine=gemm.gemm):
    transa, transb, m, n, k, alpha, beta, batch, _, _, compute, ops = case
    routine(transa, transb, m, n, k, alpha, a, ops["a"][0], ops["a"][1], b, ops["b"][0],
            ops["b"][1], beta, c, ops["c"][0], ops["c"][1], batch, compute)


def assert_matches_plain_matmul(case, a, b, before, after, tol=None):
    """Each C_p against alpha op(A_p) op(B_p) + beta C_p in float64, within ``tol`` (C's dtype's
    by default) of the sum of the terms' magnitudes; the rest of C unchanged."""
    transa, transb, m, n, k, alpha, beta, batch, _, c_dtype, _, ops = case
    tol = tol or TOL[c_dtype]
    written = np.zeros(before.size, bool)
    for p in range(batch):
        op_a = gathered(a, transa, *ops["a"][:2], m, k, p).astype(np.float64)
        op_b = gathered(b, transb, *ops["b"][:2], k, n, p).astype(np.float64)
        expected = alpha * op_a @ op_b
        scale = np.abs(alpha) * np.abs(op_a) @ np.abs(op_b) + 1
        if beta:
            old = gathered(before, "N", *ops["c"][:2], m, n, p).astype(np.float64)
            expected, scale = expected + beta * old, scale + np.abs(beta * old)
        got = gathered(after, "N", *ops["c"][:2], m, n, p)
        np.testing.assert_array_less(np.abs(got - expected), tol * scale + 1e-30)
        i, j = np.meshgrid(np.arange(m), np.arange(n), indexing="ij")
        written[p * ops["c"][1] + i + j * ops["c"][0]] = True
    np.testing.assert_array_equal(after[~written], before[~written])


@settings(max_examples=300, deadline=None)
@given(gemm_cases(), st.integers(0, 2**32 - 1))
def test_model_follows_the_documented_column_major_semantics(case, seed):
    a, b, c = buffers(case, seed)
    before = c.copy()
    call(case, a, b, c)
    assert_matches_plain_matmul(case, a, b, before, c)


def test_float16_products_accumulate_in_float32():
    """4096 products of 255 * 255: float32 C holds 266342400, beyond float16's 65504."""
    a, b = np.full(4096, 255, np.float16), np.full(4096, 255, np.float16)
    c = np.zeros(1, np.float32)
    gemm.gemm("N", "N", 1, 1, 4096, 1.0, a, 1, 0, b, 4096, 0, 0.0, c, 1, 0, 1, "32F")
    assert c[0] == 4096 * 255 * 255


@settings(max_examples=50, deadline=None)
@given(gemm_cases(), st.integers(0, 2**32 - 1))
def test_an_array_of_any_shape_is_read_as_its_flat_buffer(case, seed):
    """cuBLAS takes a pointer, not a shape: A, B and C given as C-contiguous arrays of other
    ranks (the operands' own shapes, unflattened) are read and written as their flat buffers."""
    a, b, c = buffers(case, seed)
    before = c.copy()
    shaped = [array.reshape((1, array.size, 1)) for array in (a, b, c)]
    call(case, *shaped)
    assert_matches_plain_matmul(case, a, b, before, c)


def _valid():
    """A valid call: 2 x 3 @ 3 x 4, batch 2, as keyword arguments."""
    return dict(transa="N", transb="N", m=2, n=4, k=3, alpha=1.0, a=np.zeros(12, np.float32),
                lda=2, stride_a=6, b=np.zeros(24, np.float32), ldb=3, stride_b=12, beta=0.0,
                c=np.zeros(16, np.float32), ldc=2, stride_c=8, batch=2, compute="32F")


@pytest.mark.parametrize("change, error, match", [
    (dict(transa="C"), ValueError, "transa must be 'N' or 'T'"),
    (dict(lda=1), ValueError, "lda must be at least 2"),
    (dict(transa="T", lda=2), ValueError, "lda must be at least 3"),
    (dict(ldc=1), ValueError, "ldc must be at least 2"),
    (dict(a=np.zeros(11, np.float32)), ValueError, "A .* reaches element 11 of an array of 11"),
    (dict(stride_b=13), ValueError, "B .* reaches element 24"),
    (dict(stride_c=7), ValueError, "strideC=7 makes the C matrices of the batch overlap"),
    (dict(stride_a=-1), ValueError, "strideA must be at least 0"),
    (dict(m=-1), ValueError, "m must be at least 0"),
    (dict(k=3.0), ValueError, "k must be an int"),
    (dict(batch=True), ValueError, "batch must be an int"),
    (dict(batch=2**31), ValueError, "batch=2147483648 does not fit cuBLAS's 32-bit int"),
    (dict(compute="16F"), ValueError, "compute must be one of"),
    (dict(c=np.zeros(16, np.float16)), TypeError, "C float16 with compute 32F is not a supported"),
    (dict(compute="64F"), TypeError, "is not a supported combination"),
    (dict(b=np.zeros(24, np.float64)), TypeError, "A float32, B float64"),
    (dict(a=np.zeros((2, 12), np.float32)[:, ::2]), ValueError, "A must be a C-contiguous"),
    (dict(c=np.zeros(32, np.float32)[::2]), ValueError, "C must be a C-contiguous array"),
])
def test_arguments_cublas_would_misread_are_refused(change, error, match):
    gemm.gemm(**_valid())
    with pytest.raises(error, match=match):
        gemm.gemm(**(_valid() | change))


def test_the_memoised_layout_check_tells_a_bool_or_a_float_from_an_int():
    """The layout check is memoised per layout, by value and type: True after 1 and 3.0 after
    3 are new layouts, refused, never served the cached check of the int."""
    valid = dict(_valid(), batch=1, stride_a=0, stride_b=0, stride_c=0)
    gemm.gemm(**valid)
    with pytest.raises(ValueError, match="batch must be an int"):
        gemm.gemm(**dict(valid, batch=True))
    with pytest.raises(ValueError, match="k must be an int"):
        gemm.gemm(**dict(valid, k=3.0))


def test_tf32_is_modelled_as_fp32():
    rng = np.random.default_rng(1)
    a, b = rng.standard_normal(64).astype(np.float32), rng.standard_normal(64).astype(np.float32)
    results = []
    for compute in ("32F", "32F_FAST_TF32"):
        c = np.zeros(64, np.float32)
        gemm.gemm("N", "N", 8, 8, 8, 1.0, a, 8, 0, b, 8, 0, 0.0, c, 8, 0, 1, compute)
        results.append(c)
    np.testing.assert_array_equal(*results)


@pytest.fixture
def tf32_unset(monkeypatch):
    """TF32 as at import: read from FASTCONV_TF32 on first use (restored afterwards)."""
    monkeypatch.setattr(gemm, "_tf32", None)
    monkeypatch.delenv("FASTCONV_TF32", raising=False)
    return monkeypatch


def test_tf32_is_off_by_default_and_follows_set_tf32_and_the_environment(tf32_unset):
    assert fastconv.get_tf32() is False
    assert [gemm.compute_type(d) for d in (F16, F32, F64)] == ["32F", "32F", "64F"]
    fastconv.set_tf32(True)
    assert fastconv.get_tf32() is True
    assert [gemm.compute_type(d) for d in (F16, F32, F64)] == ["32F", "32F_FAST_TF32", "64F"]
    with pytest.raises(TypeError):
        fastconv.set_tf32(1)
    tf32_unset.setattr(gemm, "_tf32", None)
    tf32_unset.setenv("FASTCONV_TF32", "1")
    assert fastconv.get_tf32() is True
    fastconv.set_tf32(False)  # overrides the environment
    assert fastconv.get_tf32() is False


def test_a_bad_fastconv_tf32_value_is_named(tf32_unset):
    tf32_unset.setenv("FASTCONV_TF32", "yes")
    with pytest.raises(ValueError, match="FASTCONV_TF32 must be 1 or 0, got 'yes'"):
        fastconv.get_tf32()


# ----------------------------------------------------------- the cuBLAS path, CuPy stood in for
class DeviceBuffer:
    """A flat buffer that is not a NumPy array (so gemm takes the cuBLAS path), with CuPy's
    ``data.ptr``."""

    def __init__(self, array, device=0):
        self.array, self.dtype, self.ndim, self.size = array, array.dtype, 1, array.size
        self.flags = array.flags
        self.data = type("Memory", (), {"ptr": array.ctypes.data})()
        self.device = type("Device", (), {"id": device})()


class FakeCublas:
    """CuPy's cublas module for :func:`gemm._cublas_gemm`: records the modes and runs
    ``gemmStridedBatchedEx`` (CuPy's argument order) with the model on the host memory."""

    CUBLAS_OP_N, CUBLAS_OP_T, CUBLAS_POINTER_MODE_HOST, CUBLAS_GEMM_DEFAULT = 0, 1, 0, -1
    CUBLAS_COMPUTE_32F, CUBLAS_COMPUTE_32F_FAST_TF32, CUBLAS_COMPUTE_64F = 68, 77, 70
    TYPES = {2: F16, 0: F32, 1: F64}  # cudaDataType: CUDA_R_16F, CUDA_R_32F, CUDA_R_64F

    def __init__(self, buffers):
        # keyed by type too: two empty buffers may share an address
        self.by_pointer = {(buffer.data.ptr, buffer.dtype): buffer.array for buffer in buffers}
        self.modes, self.calls = {"pointer": 1, "math": 3}, []

    def getPointerMode(self, handle):
        return self.modes["pointer"]

    def setPointerMode(self, handle, mode):
        self.modes["pointer"] = mode

    def getMathMode(self, handle):
        return self.modes["math"]

    def setMathMode(self, handle, mode):
        self.modes["math"] = mode

    def gemmStridedBatchedEx(self, handle, transa, transb, m, n, k, alpha, a, a_type, lda,
                             stride_a, b, b_type, ldb, stride_b, beta, c, c_type, ldc, stride_c,
                             batch, compute, algo):
        assert handle == 7 and algo == self.CUBLAS_GEMM_DEFAULT
        assert self.modes == {"pointer": self.CUBLAS_POINTER_MODE_HOST, "math": 16}
        names = {68: "32F", 77: "32F_FAST_TF32", 70: "64F"}
        scalar = ctypes.c_double if compute == 70 else ctypes.c_float
        flats = [self.by_pointer[pointer, self.TYPES[data_type]]
                 for pointer, data_type in ((a, a_type), (b, b_type), (c, c_type))]
        self.calls.append(names[compute])
        gemm.model_gemm("NT"[transa], "NT"[transb], m, n, k,
                        scalar.from_address(alpha).value, flats[0], lda, stride_a, flats[1], ldb,
                        stride_b, scalar.from_address(beta).value, flats[2], ldc, stride_c, batch,
                        names[compute])


@settings(max_examples=60, deadline=None)
@given(gemm_cases(), st.integers(0, 2**32 - 1))
def test_cublas_call_passes_cupy_the_arguments_in_its_order(case, seed):
    a, b, c = buffers(case, seed)
    before = c.copy()
    device_buffers = [DeviceBuffer(x) for x in (a, b, c)]
    cublas = FakeCublas(device_buffers)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(gemm, "_cupy_libraries", lambda: (cublas, FakeDevice, FakeRuntime))
        call(case, *device_buffers)
    assert cublas.calls == ([case[10]] if case[7] else [])  # a batch of 0 calls nothing
    assert cublas.modes == {"pointer": 1, "math": 3}  # restored
    assert_matches_plain_matmul(case, a, b, before, c)


class FakeDevice:
    """CuPy's device module: handle 7 and device 0 current."""

    get_cublas_handle = staticmethod(lambda: 7)
    get_device_id = staticmethod(lambda: 0)


class FakeRuntime:
    CUDA_R_16F, CUDA_R_32F, CUDA_R_64F = 2, 0, 1


@pytest.mark.parametrize("operand", ["a", "b", "c"])
def test_an_array_on_another_device_is_refused_before_cublas_runs(operand):
    """cuBLAS runs on the current device's handle: an operand on device 1 while device 0 is
    current would be read at an address of another device's memory."""
    arrays = {name: DeviceBuffer(value, device=1 if name == operand else 0)
              for name, value in _valid().items() if name in "abc"}
    cublas = FakeCublas(list(arrays.values()))
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(gemm, "_cupy_libraries", lambda: (cublas, FakeDevice, FakeRuntime))
        with pytest.raises(ValueError, match=f"{operand.upper()} is on device 1 but the "
                                             "current device is 0"):
            gemm.gemm(**(_valid() | arrays))
    assert cublas.calls == []


# ------------------------------------------------------------------- the row-major front
@st.composite
def matmul_cases(draw):
    images, groups = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    r, inner, c = (draw(st.integers(1, 4)) for _ in range(3))
    transpose_a, transpose_b = draw(st.booleans()), draw(st.booleans())
    shared_a, shared_b = draw(st.booleans()), draw(st.booleans())
    shape_a = ((1 if shared_a else images), groups) + ((inner, r) if transpose_a else (r, inner))
    shape_b = ((1 if shared_b else images), groups) + ((c, inner) if transpose_b else (inner, c))
    dtype, out_dtype, _ = draw(st.sampled_from(sorted(gemm.SUPPORTED, key=str)))
    return shape_a, shape_b, (images, groups, r, c), transpose_a, transpose_b, dtype, out_dtype


@settings(max_examples=200, deadline=None)
@given(matmul_cases(), st.booleans(), st.integers(0, 2**32 - 1))
def test_matmul_front_matches_numpy_matmul(case, accumulate, seed):
    shape_a, shape_b, out_shape, transpose_a, transpose_b, dtype, out_dtype = case
    rng = np.random.default_rng(seed)
    a, b = (rng.standard_normal(s).astype(dtype) for s in (shape_a, shape_b))
    out = rng.standard_normal(out_shape).astype(out_dtype)
    op_a = a.swapaxes(2, 3) if transpose_a else a
    op_b = b.swapaxes(2, 3) if transpose_b else b
    expected = np.broadcast_to(np.matmul(op_a.astype(np.float64), op_b.astype(np.float64)),
                               out_shape)
    if accumulate:
        expected = expected + out
    matmul.matmul(a, b, out, transpose_a=transpose_a, transpose_b=transpose_b,
                  accumulate=accumulate)
    np.testing.assert_allclose(out, expected, rtol=TOL[np.dtype(out_dtype)] * 4,
                               atol=TOL[np.dtype(out_dtype)] * 4)


@pytest.mark.parametrize("images, groups, calls", [(5, 1, 1), (1, 4, 1), (5, 2, 2), (2, 5, 2)])
def test_shared_weights_take_one_call_per_group_or_image_whichever_is_fewer(
        monkeypatch, images, groups, calls):
    batches = []
    monkeypatch.setattr(gemm.GemmCall, "__call__", lambda call, a, b, c: batches.append(call.batch))
    w, cols = np.ones((1, groups, 2, 3)), np.ones((images, groups, 3, 4))
    matmul.matmul(w, cols, np.empty((images, groups, 2, 4)))
    assert len(batches) == calls and sum(batches) == images * groups
    batches.clear()  # without a shared operand the grid is always one batch
    matmul.matmul(cols, cols, np.empty((images, groups, 3, 3)), transpose_b=True)
    assert batches == [images * groups]


@pytest.mark.parametrize("a_shape, b_shape, out_shape, match", [
    ((2, 1, 3, 4), (2, 1, 4, 5), (2, 1, 3, 6), "op\\(a\\) \\(3, 4\\) @ op\\(b\\) \\(4, 5\\)"),
    ((3, 1, 3, 4), (2, 1, 4, 5), (2, 1, 3, 5), "a \\(3, 1, 3, 4\\) does not match"),
    ((2, 1, 12), (2, 1, 4, 5), (2, 1, 3, 5), "a must be a C-contiguous"),
])
def test_matmul_front_refuses_mismatched_operands(a_shape, b_shape, out_shape, match):
    with pytest.raises(ValueError, match=match):
        matmul.matmul(np.ones(a_shape), np.ones(b_shape), np.empty(out_shape))
