"""Rung 3, on a GPU: CuPy through the CUDA kernels against the NumPy path.

Every test here but the last is marked ``gpu``: conftest skips them, with the
reason, where CuPy or a usable device is missing. Run them on a GPU machine
with ``python -m pytest -m gpu -ra``.

Each op runs on CuPy in float16/32/64 and is compared, forward and every
gradient, with the NumPy path run in float64 on the same values (max-pool
outputs and argmax exactly, in the op's own dtype). Backward passes must be
bitwise reproducible; kernels compile on first use and are memoised.
"""

import time

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import fastconv
import fastconv.functional as F
from cuda_emu.report import summary_lines
from fastconv import _backends, _cpu, _cuda, gpu_available
from fastconv._cuda_launcher import PreparedLaunch
from test_gpu_conv_host import bias_gradient_case
from test_gpu_gemm import assert_matches_plain_matmul, buffers, call, gemm_cases
from fastconv.im2col import col2im, im2col, window_geometry
from fastconv.workspace import workspace_limit

TOL = {np.float16: 5e-3, np.float32: 1e-5, np.float64: 1e-12}
DTYPES = [np.float16, np.float32, np.float64]

CONV_CASES = {
    "groups": ((2, 4, 9, 8), (6, 2, 3, 3), dict(stride=1, padding=1, groups=2)),
    "strided-dilated-asymmetric": ((2, 3, 11, 7), (4, 3, 3, 2),
                                   dict(stride=(2, 1), padding=((1, 2), (0, 1)), dilation=(2, 1))),
    "depthwise-same": ((1, 3, 8, 8), (3, 1, 3, 3), dict(padding="same", groups=3)),
    "1x1": ((2, 4, 5, 5), (3, 4, 1, 1), {}),
}


def assert_close(gpu, reference, dtype):
    """A CuPy result against the float64 NumPy reference, relative to its largest value."""
    got = gpu.get()
    assert got.dtype == dtype and got.shape == reference.shape
    tol = TOL[dtype]
    np.testing.assert_allclose(got.astype(np.float64), reference, rtol=tol,
                               atol=tol * max(np.abs(reference).max(), 1.0))


def rand(shape, dtype, seed):
    return np.random.default_rng(seed).standard_normal(shape).astype(dtype)


def bits(a, xp):
    return a.view({2: xp.uint16, 4: xp.uint32, 8: xp.uint64}[a.itemsize])


gpu = pytest.mark.gpu
# FP32 products whatever FASTCONV_TF32 says (the float32 tolerances are FP32's)
pytestmark = pytest.mark.usefixtures("fp32_products")


@gpu
@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("case", CONV_CASES)
def test_conv2d_forward_and_gradients(cp, case, dtype):
    x_shape, w_shape, args = CONV_CASES[case]
    x, w, b = rand(x_shape, dtype, 0), rand(w_shape, dtype, 1), rand(w_shape[:1], dtype, 2)
    out, cache = F.conv2d_forward(cp.asarray(x), cp.asarray(w), cp.asarray(b), **args)
    ref, ref_cache = F.conv2d_forward(*(a.astype(np.float64) for a in (x, w, b)), **args)
    assert_close(out, ref, dtype)
    assert isinstance(cache.x, cp.ndarray)
    assert isinstance(cache.x, cp.ndarray) and isinstance(cache.w, cp.ndarray)
    dout = rand(ref.shape, dtype, 3)
    grads = F.conv2d_backward(cp.asarray(dout), cache)
    for got, want in zip(grads, F.conv2d_backward(dout.astype(np.float64), ref_cache)):
        assert_close(got, want, dtype)


@gpu
@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
def test_max_pool_exact_and_gradient(cp, dtype):
    rng = np.random.default_rng(4)
    x = rng.integers(-3, 3, (2, 3, 9, 10)).astype(dtype)  # many ties
    x[0, 0, 2, 3] = np.nan
    x[1, 2, :3, :3] = -np.inf
    args = dict(kernel_size=3, stride=2, padding=1, dilation=(1, 2), ceil_mode=True,
                return_indices=True)
    out, idx, cache = F.max_pool2d_forward(cp.asarray(x), **args)
    ref, ref_idx, ref_cache = F.max_pool2d_forward(x, **args)
    np.testing.assert_array_equal(out.get(), ref)  # NaN == NaN here
    np.testing.assert_array_equal(idx.get(), ref_idx)
    np.testing.assert_array_equal(cache.argmax.get(), ref_cache.argmax)
    dout = rand(ref.shape, dtype, 5)
    dx = F.max_pool2d_backward(cp.asarray(dout), cache)
    ref_cache64 = F.pool.MaxPoolCache(x.shape, np.dtype(np.float64), ref_cache.geometry,
                                      ref_cache.argmax)
    assert_close(dx, F.max_pool2d_backward(dout.astype(np.float64), ref_cache64), dtype)
    # both sum a cell's gradients in float64 in window order and round once
    np.testing.assert_array_equal(dx.get(), F.max_pool2d_backward(dout, ref_cache))


@gpu
@pytest.mark.parametrize("width", [1, 2, 3, 5])
@pytest.mark.parametrize("kernel, stride", [(2, 2), (3, 1), (3, 2), (2, 1)])
def test_pool_backward_pairs_at_the_end_of_a_row_on_the_gpu(cp, width, kernel, stride):
    """The pools' backward threads take two cells of a row: rows of one cell, an odd count
    and one pair, on the unrolled windows and a run-time one (2x2/1), against the CPU path:
    the max pool's gradient bit for bit, the average's within its rounding."""
    x = rand((2, 3, 4, width), np.float32, width)
    padding = kernel // 2
    out, cache = F.max_pool2d_forward(cp.asarray(x), kernel, stride, padding, ceil_mode=True)
    ref, ref_cache = F.max_pool2d_forward(x, kernel, stride, padding, ceil_mode=True)
    dout = rand(ref.shape, np.float32, width + 1)
    np.testing.assert_array_equal(F.max_pool2d_backward(cp.asarray(dout), cache).get(),
                                  F.max_pool2d_backward(dout, ref_cache))
    out, cache = F.avg_pool2d_forward(cp.asarray(x), kernel, stride, padding)
    ref, ref_cache = F.avg_pool2d_forward(x.astype(np.float64), kernel, stride, padding)
    dout = rand(ref.shape, np.float32, width + 2)
    assert_close(F.avg_pool2d_backward(cp.asarray(dout), cache),
                 F.avg_pool2d_backward(dout.astype(np.float64), ref_cache), np.float32)


@gpu
def test_float32_max_pool_orders_subnormals_as_the_cpu_does(cp):
    """CuPy compiles with -ftz=true; the kernel's comparisons must not flush subnormals."""
    x = np.array([[[[0.0, 1e-40, -1e-40, 2e-40, -3e-40, -0.0, 0.0, -1e-45]]]], np.float32)
    out, idx, _ = F.max_pool2d_forward(cp.asarray(x), (1, 2), stride=(1, 2), return_indices=True)
    ref, ref_idx, _ = F.max_pool2d_forward(x, (1, 2), stride=(1, 2), return_indices=True)
    np.testing.assert_array_equal(out.get().view(np.uint32), ref.view(np.uint32))
    np.testing.assert_array_equal(idx.get(), ref_idx)


@gpu
def test_float16_avg_pool_of_a_window_larger_than_float16_integers(cp):
    """A 256x256 window's divisor (65536) is inf in float16: it is kept in float32."""
    x = np.ones((1, 2, 256, 256), np.float16)
    out, cache = F.avg_pool2d_forward(cp.asarray(x), 256)
    np.testing.assert_array_equal(out.get(), np.ones((1, 2, 1, 1), np.float16))
    dx = F.avg_pool2d_backward(cp.ones((1, 2, 1, 1), cp.float16), cache)
    assert float(dx.max().get()) == pytest.approx(1 / 65536, rel=1e-3)


@gpu
@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("count_include_pad", [True, False])
def test_avg_pool_and_gradient(cp, dtype, count_include_pad):
    x = rand((2, 3, 9, 7), dtype, 6)
    args = dict(kernel_size=(3, 2), stride=(2, 1), padding=1, ceil_mode=True,
                count_include_pad=count_include_pad)
    out, cache = F.avg_pool2d_forward(cp.asarray(x), **args)
    ref, ref_cache = F.avg_pool2d_forward(x.astype(np.float64), **args)
    assert_close(out, ref, dtype)
    dout = rand(ref.shape, dtype, 7)
    assert_close(F.avg_pool2d_backward(cp.asarray(dout), cache),
                 F.avg_pool2d_backward(dout.astype(np.float64), ref_cache), dtype)


@gpu
@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
def test_adaptive_avg_pool_and_gradient(cp, dtype):
    x = rand((2, 3, 10, 7), dtype, 8)
    out, cache = F.adaptive_avg_pool2d_forward(cp.asarray(x), (4, 3))
    ref, ref_cache = F.adaptive_avg_pool2d_forward(x.astype(np.float64), (4, 3))
    assert_close(out, ref, dtype)
    dout = rand(ref.shape, dtype, 9)
    assert_close(F.adaptive_avg_pool2d_backward(cp.asarray(dout), cache),
                 F.adaptive_avg_pool2d_backward(dout.astype(np.float64), ref_cache), dtype)


@gpu
@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
def test_im2col_exact_and_col2im(cp, dtype):
    x = rand((2, 3, 8, 7), dtype, 10)
    args = dict(kernel_size=(3, 2), stride=(2, 1), padding=((1, 0), (2, 1)), dilation=(1, 2))
    cols = im2col(cp.asarray(x), **args)
    np.testing.assert_array_equal(bits(cols, cp).get(), bits(im2col(x, **args), np))
    dcols = rand(cols.shape, dtype, 11)
    assert_close(col2im(cp.asarray(dcols), x.shape, **args),
                 col2im(dcols.astype(np.float64), x.shape, **args), dtype)


@gpu
def test_backward_is_bitwise_deterministic(cp):
    x, w = cp.asarray(rand((4, 6, 16, 16), np.float32, 12)), cp.asarray(rand((8, 3, 3, 3),
                                                                             np.float32, 13))
    out, cache = F.conv2d_forward(x, w, None, stride=1, padding=1, dilation=2, groups=2)
    dout = cp.asarray(rand(out.shape, np.float32, 14))
    first, second = F.conv2d_backward(dout, cache), F.conv2d_backward(dout, cache)
    for a, b in zip(first[:2], second[:2]):
        assert cp.array_equal(bits(a, cp), bits(b, cp))
    for forward, backward in ((F.max_pool2d_forward, F.max_pool2d_backward),
                              (F.avg_pool2d_forward, F.avg_pool2d_backward)):
        pooled, cache = forward(x, 3, 1, 1)
        grad = cp.asarray(rand(pooled.shape, np.float32, 15))
        assert cp.array_equal(bits(backward(grad, cache), cp), bits(backward(grad, cache), cp))


@gpu
def test_first_call_compiles_then_the_module_is_memoised(cp, request):
    fresh = _cuda.Launcher(cp, cp.RawModule, options=_cuda.default_launcher().options,
                           compile_errors=_cuda.default_launcher().compile_errors,
                           device_id=lambda: cp.cuda.Device().id)
    x = cp.asarray(rand((2, 3, 8, 8), np.float32, 16))
    geometry = window_geometry(x.shape, 3, 1, 1, 1)
    out = cp.empty((2, 3, 3, 3, 8, 8), cp.float32)
    start = time.perf_counter()
    _cuda.im2col_into(x, geometry, out, fresh)
    cp.cuda.Device().synchronize()
    first = time.perf_counter() - start
    module = fresh.module("im2col.cu", np.float32)
    start = time.perf_counter()
    _cuda.im2col_into(x, geometry, out, fresh)
    cp.cuda.Device().synchronize()
    second = time.perf_counter() - start
    assert fresh.module("im2col.cu", np.float32) is module
    assert list(fresh._modules) == [("im2col.cu", np.dtype(np.float32), cp.cuda.Device().id)]
    summary_lines(request.config).append(
        f"GPU first im2col call (compile or CuPy disk cache) {first * 1e3:.1f} ms, "
        f"second {second * 1e3:.3f} ms")


@gpu
def test_compile_error_on_the_gpu_carries_the_log(cp, tmp_path):
    for path in _cuda.kernel_dir().glob("*.cu*"):
        (tmp_path / path.name).write_text(path.read_text())
    (tmp_path / "pool.cu").write_text("this is not CUDA;\n")
    broken = _cuda.Launcher(cp, cp.RawModule, options=_cuda.compile_options(tmp_path),
                            compile_errors=_cuda.default_launcher().compile_errors,
                            kernel_dir=tmp_path)
    with pytest.raises(_cuda.KernelCompileError, match="(?s)pool.cu failed to compile.*error"):
        broken.module("pool.cu", np.float32)


@gpu
def test_non_contiguous_inputs_and_device_rules(cp):
    x = rand((2, 3, 9, 8), np.float32, 17)
    w = rand((4, 3, 3, 3), np.float32, 18)
    strided = cp.asarray(x.transpose(0, 1, 3, 2).copy()).transpose(0, 1, 3, 2)
    assert not strided.flags.c_contiguous
    out, _ = F.conv2d_forward(strided, cp.asarray(w), None, padding=1)
    ref, _ = F.conv2d_forward(x, w, None, padding=1)
    assert_close(out, ref.astype(np.float64), np.float32)
    pooled, _ = F.max_pool2d_forward(strided, 2)
    np.testing.assert_array_equal(pooled.get(), F.max_pool2d_forward(x, 2)[0])
    with pytest.raises(ValueError, match="two devices"):
        F.conv2d_forward(x, cp.asarray(w))
    with pytest.raises(TypeError, match="must be a cupy array"):
        _cuda.default_launcher().launch("col2im_kernel", 1, cp.asarray(x), x,
                                        *([1] * 14))


@gpu
def test_workspace_limit_holds_on_the_gpu(cp, monkeypatch):
    sizes, launch = [], PreparedLaunch.__call__

    def recording(prepared, *arrays):  # every launch, checked or prepared
        if prepared.kernel == "im2col_kernel":
            sizes.append(arrays[1].nbytes)
        return launch(prepared, *arrays)

    monkeypatch.setattr(PreparedLaunch, "__call__", recording)
    x, w = rand((16, 4, 12, 12), np.float32, 19), rand((5, 4, 3, 3), np.float32, 20)
    limit = 3 * 4 * 9 * 144 * 4  # three images' columns
    with workspace_limit(limit):
        out, cache = F.conv2d_forward(cp.asarray(x), cp.asarray(w), None, padding=1)
        dx = F.conv2d_backward(cp.ones_like(out), cache)[0]
    assert len(sizes) > 1 and max(sizes) <= limit
    ref, ref_cache = F.conv2d_forward(x.astype(np.float64), w.astype(np.float64), None,
                                      padding=1)
    assert_close(out, ref, np.float32)
    assert_close(dx, F.conv2d_backward(np.ones(ref.shape), ref_cache)[0], np.float32)


@gpu
def test_held_columns_spare_the_backward_its_im2col(cp, monkeypatch):
    """The forward holds its device columns; the backward runs no im2col on them, gives the
    bits a backward computing them again gives, and returns the memory."""
    import dataclasses
    kernels, launch = [], PreparedLaunch.__call__

    def recording(prepared, *arrays):  # every launch, checked or prepared
        kernels.append(prepared.kernel)
        return launch(prepared, *arrays)

    monkeypatch.setattr(PreparedLaunch, "__call__", recording)
    x, w = cp.asarray(rand((8, 4, 12, 12), np.float32, 21)), cp.asarray(rand((6, 4, 3, 3),
                                                                          np.float32, 22))
    out, cache = F.conv2d_forward(x, w, None, padding=1)
    assert cache.columns is not None and isinstance(cache.columns.array, cp.ndarray)
    dout = cp.asarray(rand(out.shape, np.float32, 23))
    again = F.conv2d_backward(dout, dataclasses.replace(cache, columns=None))
    kernels.clear()
    held = F.conv2d_backward(dout, cache)
    # dx from the implicit-product kernel (float32, stride 1), then the weight sum
    assert kernels == ["conv_gemm_kernel", "weight_sum_kernel"], kernels
    assert cache.columns.array is None
    for a, b in zip(held[:2], again[:2]):
        assert cp.array_equal(a.view(cp.int32), b.view(cp.int32))


@gpu
@settings(max_examples=150, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(gemm_cases(), st.integers(0, 2**32 - 1))
def test_cublas_matches_the_model_of_its_wrapper(cp, case, seed):
    """The real cublasGemmStridedBatchedEx against the documented semantics the NumPy model
    implements: drawn flags, sizes, leading dimensions, strides (0 included) and dtypes."""
    a, b, c = buffers(case, seed)
    on_gpu = [cp.asarray(x) for x in (a, b, c)]
    call(case, *on_gpu)
    tf32 = case[10] == "32F_FAST_TF32"
    assert_matches_plain_matmul(case, a, b, c, on_gpu[2].get(), tol=2e-3 if tf32 else None)


def _conv_error(cp, x, w, scale_inputs):
    """The GPU forward's error against float64, relative to the conv of |x| with |w|."""
    out = F.conv2d_forward(cp.asarray(x), cp.asarray(w), None, padding=1)[0].get()
    exact = F.conv2d_forward(*(a.astype(np.float64) for a in (x, w)), None, padding=1)[0]
    scale = F.conv2d_forward(*scale_inputs, None, padding=1)[0]
    return out, float((np.abs(out - exact) / scale).max())


@gpu
def test_tf32_is_opt_in_and_within_its_documented_error(cp):
    x, w = rand((8, 64, 16, 16), np.float32, 30), rand((64, 64, 3, 3), np.float32, 31)
    magnitudes = (np.abs(x.astype(np.float64)), np.abs(w.astype(np.float64)))
    fp32, fp32_error = _conv_error(cp, x, w, magnitudes)
    fastconv.set_tf32(True)
    tf32, tf32_error = _conv_error(cp, x, w, magnitudes)
    assert fp32_error <= 1e-5, fp32_error
    assert tf32_error <= 4e-3, tf32_error  # inputs rounded to 10 mantissa bits
    assert not np.array_equal(fp32, tf32), "set_tf32(True) did not change the products"


@gpu
@pytest.mark.parametrize("kernel, padding", [((3, 3), 1), ((1, 1), 0)])
def test_float16_weight_gradient_partials_above_65504_stay_finite_on_the_gpu(cp, kernel, padding):
    """Each image's dW partial is 255 * 1024 = 261120; the two images cancel to 127.5."""
    x = np.full((2, 2, 32, 32), 255, np.float16)
    w = np.ones((1, 2) + kernel, np.float16)
    dout = np.ones((2, 1, 32, 32), np.float16)
    dout[1], dout[1, :, 0, 0] = -1, -0.5
    cache = F.conv2d_forward(cp.asarray(x), cp.asarray(w), None, padding=padding)[1]
    dw = F.conv2d_backward(cp.asarray(dout), cache)[1].get()
    exact_cache = F.conv2d_forward(x.astype(np.float64), w.astype(np.float64), None,
                                   padding=padding)[1]
    exact = F.conv2d_backward(dout.astype(np.float64), exact_cache)[1]
    np.testing.assert_array_equal(dw, exact.astype(np.float16))
    assert float(dw[(0, 0) + tuple(k // 2 for k in kernel)]) == 127.5


@gpu
def test_float16_bias_gradient_sums_in_float32_on_the_gpu(cp):
    x, w, b, dout = (cp.asarray(a) for a in bias_gradient_case())
    cache = F.conv2d_forward(x, w, b, padding=1)[1]
    assert float(F.conv2d_backward(dout, cache)[2][0]) == 100.5


@gpu
def test_float16_forward_never_sums_partials_in_float16(cp):
    """A 1x1 conv over 4096 channels (a long, thin product: cuBLAS may split K): the first half
    sums to 522240, the second to -522239; a partial sum rounded to float16 would be inf."""
    x = np.full((1, 4096, 2, 2), 255, np.float16)
    x[:, 2048:] = -255
    x[:, -1] = -254
    out = F.conv2d_forward(cp.asarray(x), cp.ones((1, 4096, 1, 1), cp.float16))[0].get()
    np.testing.assert_array_equal(out, np.ones((1, 1, 2, 2), np.float16))


def _launcher(cp, **kwargs):
    """A fresh CuPy launcher with the default one's options, device rules and ``kwargs``."""
    default = _cuda.default_launcher()
    return _cuda.Launcher(cp, cp.RawModule, options=default.options,
                          compile_errors=default.compile_errors, device_id=default.device_id,
                          device_of=default.device_of, **kwargs)


@gpu
@pytest.mark.parametrize("dtype", _cuda.UNROLLED_DTYPES, ids=lambda d: d.name)
def test_unrolled_windows_give_the_run_time_instantiations_bits(cp, dtype):
    """Every unrolled instantiation against the run-time one on the GPU, bit for bit (the
    same terms in the same order), and im2col against the NumPy path."""
    unrolled, runtime = _launcher(cp), _launcher(cp, specialize=False)
    x = rand((2, 3, 11, 10), dtype, 23)
    xg = cp.asarray(x)
    for k, s in _cuda.unrolled_windows("im2col.cu", dtype):
        geometry = window_geometry(x.shape, k, s, ((k // 2, k - 1), (k - 1, 0)), 1)
        shape = x.shape[:2] + geometry.kernel + geometry.out
        cols = [_cuda.im2col_into(xg, geometry, cp.empty(shape, dtype), launcher)
                for launcher in (unrolled, runtime)]
        assert cp.array_equal(bits(cols[0], cp), bits(cols[1], cp)), (k, s)
        np.testing.assert_array_equal(cols[0].get(),
                                      im2col(x, k, s, geometry.pads).reshape(shape))
        dcols = cp.asarray(rand(shape, dtype, k + s))
        dx = [_cuda.col2im_into(dcols, geometry, cp.empty(x.shape, dtype), launcher)
              for launcher in (unrolled, runtime)]
        assert cp.array_equal(bits(dx[0], cp), bits(dx[1], cp)), (k, s)
    for k, s in _cuda.unrolled_windows("pool.cu", dtype):
        geometry = F.max_pool2d_forward(x, k, s, k // 2)[1].geometry
        (out, argmax), (out_rt, argmax_rt) = (_cuda.max_pool2d_forward(xg, geometry, launcher)
                                              for launcher in (unrolled, runtime))
        assert cp.array_equal(bits(out, cp), bits(out_rt, cp)) and cp.array_equal(argmax,
                                                                                   argmax_rt)
        dout = cp.asarray(rand(out.shape, dtype, k * s))
        dx = [_cuda.max_pool2d_backward(dout, argmax, x.shape, geometry, launcher)
              for launcher in (unrolled, runtime)]
        assert cp.array_equal(bits(dx[0], cp), bits(dx[1], cp)), (k, s)
        divisor = F.avg_pool2d_forward(xg, k, s, k // 2)[1].divisor
        pooled = [_cuda.avg_pool2d_forward(xg, geometry, divisor, launcher)
                  for launcher in (unrolled, runtime)]
        assert cp.array_equal(bits(pooled[0], cp), bits(pooled[1], cp)), (k, s)
        dx = [_cuda.avg_pool2d_backward(dout, divisor, x.shape, geometry, launcher)
              for launcher in (unrolled, runtime)]
        assert cp.array_equal(bits(dx[0], cp), bits(dx[1], cp)), (k, s)


@gpu
def test_overlapping_output_is_refused_on_the_gpu(cp):
    """The kernels read through the non-coherent cache: an output overlapping the input
    would be undefined, so the wrappers refuse it."""
    buffer = cp.zeros(2 * 3 * 9 * 25 + 150, cp.float32)
    x = buffer[:150].reshape(2, 3, 5, 5)
    geometry = window_geometry(x.shape, 3, 1, 1, 1)
    cols = buffer[100:100 + 2 * 3 * 9 * 25].reshape(2, 3, 3, 3, 5, 5)
    with pytest.raises(ValueError, match="overlaps the input"):
        _cuda.im2col_into(x, geometry, cols, _cuda.default_launcher())
    with pytest.raises(ValueError, match="overlaps the input"):
        _cuda.col2im_into(cols, geometry, x, _cuda.default_launcher())


@gpu
def test_arrays_on_another_device_are_refused_on_the_gpu(cp):
    if cp.cuda.runtime.getDeviceCount() < 2:
        pytest.skip("needs two GPUs")
    with cp.cuda.Device(1):
        x = cp.ones((1, 2, 4, 4), cp.float32)
    geometry = window_geometry(x.shape, 2, 2, 0, 1)
    with cp.cuda.Device(0), pytest.raises(ValueError, match="is on device 1 but the current "
                                                             "device is 0"):
        _cuda.max_pool2d_forward(x, geometry)
    with cp.cuda.Device(1):
        out, _ = _cuda.max_pool2d_forward(x, geometry)
        assert out.device.id == 1 and float(out.sum()) == 8.0


@gpu
def test_launches_reuse_the_kernel_functions(cp, request):
    """After the first launch of an instantiation its function object is cached: later
    launches look nothing up. Reports the host time of one launch."""
    launcher = _launcher(cp)
    x = cp.asarray(rand((2, 3, 8, 8), np.float32, 24))
    geometry = window_geometry(x.shape, 3, 1, 1, 1)
    out = cp.empty((2, 3, 3, 3, 8, 8), cp.float32)
    _cuda.im2col_into(x, geometry, out, launcher)
    functions = dict(launcher._functions)
    assert list(functions) == [(cp.cuda.Device().id, np.dtype(np.float32), "im2col_kernel",
                                (3, 1))]
    cp.cuda.Device().synchronize()
    start = time.perf_counter()
    for _ in range(100):
        _cuda.im2col_into(x, geometry, out, launcher)
    host = (time.perf_counter() - start) / 100
    cp.cuda.Device().synchronize()
    assert launcher._functions == functions
    summary_lines(request.config).append(
        f"GPU im2col launch, host time per call (cached function): {host * 1e6:.1f} us")


def test_cupy_installed_without_a_gpu_leaves_the_cpu_path_working():
    """CI installs cupy-cuda13x on a machine without a GPU: import and the CPU path work."""
    cupy = pytest.importorskip("cupy")
    if gpu_available():
        pytest.skip("a GPU is usable here; this checks the machines without one")
    assert cupy.__name__ == "cupy"
    x = rand((1, 2, 5, 5), np.float32, 21)
    out, cache = F.conv2d_forward(x, rand((3, 2, 3, 3), np.float32, 22))
    assert isinstance(out, np.ndarray) and _backends.backend_for(x) is _cpu
    assert isinstance(F.conv2d_backward(np.ones_like(out), cache)[0], np.ndarray)
