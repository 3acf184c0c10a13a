"""The CUDA kernels, run unchanged on the CPU emulator (tests/cuda_emu), against the NumPy path.

Every launch goes through fastconv/_cuda.py's wrappers and launch helper, with
the grid and block sizes it computes, on output buffers poisoned with NaN.
Hypothesis draws the geometry (stride, padding, dilation, groups, ceil_mode),
half the time one of the windows with an unrolled instantiation
(fastconv/_cuda.py's WINDOWS, in float16 and float32), the dtype, a seed for
the data, and the launch shape: blocks of 32 to 1024 threads, grids capped at
1 or 2 blocks per axis (so the grid-stride loops do the work) or not at all,
threads run first-to-last or last-to-first. Every unrolled window also runs
on fixed inputs, as hypothesis may draw some of them rarely.

Oracles: the NumPy path (strided slabs and views, an independent formulation).
im2col, max-pool outputs and argmax must be bitwise equal; sums within 1e-6
(float32) or 1e-12 (float64) of the sum of the magnitudes of their terms. An
unrolled instantiation must also give the run-time instantiation's bits, sums
included: both add the same terms in the same order.
float16 kernels accumulate in float32 and are checked against the float64
result, to half an ulp plus the float32 accumulation error.

The same file runs again under AddressSanitizer and UBSan from
tests/test_cuda_sanitizers.py (FC_EMU_SANITIZE=1).
"""

import collections

import itertools

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, note, settings
from hypothesis import strategies as st

import fastconv.functional as F
from cuda_emu.emu import emu_launcher
from cuda_emu.report import built_and_reported
from fastconv import _backends, _cuda, _gpu, reference
from fastconv import _cpu as _cpu_backend
from fastconv._cuda_launcher import PreparedLaunch
from fastconv.im2col import col2im_into, im2col_into, window_geometry
from fastconv.shapes import conv_output_size
from fastconv.workspace import workspace_limit

SUM_RTOL = {np.float32: 1e-6, np.float64: 1e-12}
DTYPES = [np.float16, np.float32, np.float64]
CASES = collections.Counter()
UNROLLED = collections.Counter()  # of those, cases also run on the run-time instantiation
SETTINGS = dict(deadline=None, suppress_health_check=[HealthCheck.too_slow])

_launchers = {}


def launcher(block=None, max_blocks=None, reversed_order=False, specialize=True):
    """A cached emulator launcher for one launch shape."""
    key = (block, max_blocks, reversed_order, specialize)
    if key not in _launchers:
        _launchers[key] = emu_launcher(block=block, max_blocks=max_blocks,
                                       reversed_order=reversed_order, specialize=specialize)
    return _launchers[key]


def runtime_twin(geometry, file, dtype):
    """The launcher of the run-time instantiation when ``geometry`` has an unrolled one
    in ``file`` for ``dtype``, else None: the two must give the same bits."""
    window = _cuda.window_of(file, dtype, geometry.kernel, geometry.stride, geometry.dilation)
    if window == _cuda.RUNTIME_WINDOW:
        return None
    UNROLLED[f"{window[0]}x{window[0]}/{window[1]} {file}"] += 1
    return launcher(specialize=False)


launch_shapes = st.builds(launcher, st.sampled_from([32, 64, 256, 1024]),
                          st.sampled_from([1, 2, None]), st.booleans())


build_and_report = built_and_reported("", "the NumPy path", CASES, UNROLLED)


def bits(a):
    """The raw bits of a float array, so NaN payloads and -0.0 compare exactly."""
    return a.view({2: np.uint16, 4: np.uint32, 8: np.uint64}[a.itemsize])


# float32 gradients among both kinds of value that a float <-> double cast flushes under
# -ftz=true: subnormals, and normal values whose sums land below 2**-126 (the max pools'
# gradients and max unpooling sum in double, rounded once, as the CPU path)
SUBNORMAL_SUM_TERMS = np.array([1.5e-38, -1.4e-38, 1e-40, -3e-41, 1e-45, -2e-39,
                                1.1754942e-38, 2.0], np.float32)


def has_subnormals(a):
    """Whether ``a`` holds a nonzero value below the smallest normal of its dtype."""
    return bool(np.any((a != 0) & (np.abs(a) < np.finfo(a.dtype).tiny)))


def require_flushing(emu, file, name):
    """Skip unless float kernels run with the CPU's flush modes on, as the GPU's -ftz=true."""
    if not emu.module(file, np.float32).get_function(name).flushes_denormals:
        pytest.skip("this CPU's flush-to-zero mode is not emulated (x86 only)")


def cpu_references(run, x, w, b, args, dout):
    """``run(x, w, b, args, dout, True)`` (a convolution's outputs and gradients on the CPU
    path) in x's dtype, in float64 ("exact"), and the same sums over the magnitudes of the
    terms (the error scale of :func:`assert_sum_close`)."""
    same = run(x, w, b, args, dout, True)
    wide = [None if a is None else a.astype(np.float64) for a in (x, w, b, dout)]
    exact = run(*wide[:3], args, wide[3], True)
    scale = run(*(None if a is None else np.abs(a) for a in wide[:3]), args, np.abs(wide[3]),
                True)
    return same, exact, scale


def assert_sum_close(actual, expected, exact, scale):
    """Sums: float32/64 against the NumPy path, float16 against the float64 result.

    ``scale`` is the same sum over the magnitudes of the terms (float64).
    """
    assert actual.dtype == expected.dtype and actual.shape == expected.shape
    assert not np.isnan(actual).any(), "an output element was never written (NaN poison)"
    if actual.dtype == np.float16:
        err = np.abs(actual.astype(np.float64) - exact)
        bound = 2.0**-11 * np.abs(exact) + 1e-6 * scale + 2.0**-24
    else:
        err = np.abs(actual.astype(np.float64) - expected.astype(np.float64))
        bound = SUM_RTOL[actual.dtype.type] * scale
    worst = np.max(err - bound, initial=-1.0)
    assert worst <= 0, f"sum error exceeds its bound by {worst:.3g}"


def unrolled_or_any(draw, file, kernels):
    """(kernel, stride, dilation): half the time a window with an unrolled instantiation."""
    if draw(st.booleans()):
        k, s = draw(st.sampled_from(_cuda.WINDOWS[file]))
        return (k, k), (s, s), (1, 1)
    return ((draw(kernels), draw(kernels)), (draw(st.integers(1, 3)), draw(st.integers(1, 3))),
            (draw(st.integers(1, 2)), draw(st.integers(1, 2))))


@st.composite
def conv_windows(draw, file="im2col.cu"):
    """x shape, kernel, stride, ((top, bottom), (left, right)) padding, dilation; kernel fits;
    half the time one of ``file``'s unrolled windows."""
    kernel, stride, dilation = unrolled_or_any(draw, file, st.integers(1, 5))
    pads = tuple((draw(st.integers(0, 3)), draw(st.integers(0, 3))) for _ in range(2))
    size = (draw(st.integers(1, 9)), draw(st.integers(1, 9)))
    for n, k, d, (a, b) in zip(size, kernel, dilation, pads):
        assume(d * (k - 1) + 1 <= n + a + b)
    shape = (draw(st.integers(1, 2)), draw(st.integers(1, 3))) + size
    return shape, kernel, stride, pads, dilation


@st.composite
def pool_windows(draw, dilation=True):
    """Pooling arguments valid under PyTorch's rules (padding at most half the kernel)."""
    kernel, stride, dil = unrolled_or_any(draw, "pool.cu", st.integers(1, 4))
    dil = dil if dilation else (1, 1)
    pad = (draw(st.integers(0, kernel[0] // 2)), draw(st.integers(0, kernel[1] // 2)))
    size = (draw(st.integers(1, 9)), draw(st.integers(1, 9)))
    ceil_mode = draw(st.booleans())  # may keep a window that overhangs the padded input
    for n, k, s, d, p in zip(size, kernel, stride, dil, pad):
        assume(conv_output_size(n, k, s, p, d, ceil_mode) >= 1)
    shape = (draw(st.integers(1, 2)), draw(st.integers(1, 3))) + size
    return shape, kernel, stride, pad, dil, ceil_mode


def normal(seed, shape, dtype):
    return np.random.default_rng(seed).standard_normal(shape).astype(dtype)


def with_ties_and_specials(seed, shape, dtype):
    """Small integers (many ties), with -inf (in some cases most cells), +inf and NaN."""
    rng = np.random.default_rng(seed)
    x = rng.integers(-3, 3, shape).astype(dtype)
    specials = rng.random(shape)
    x[specials < rng.choice([0.04, 0.7])] = -np.inf
    x[(specials >= 0.04) & (specials < 0.06)] = np.nan
    x[(specials >= 0.06) & (specials < 0.07)] = np.inf
    return x


@settings(max_examples=120, **SETTINGS)
@given(conv_windows(), st.sampled_from(DTYPES), st.integers(0, 2**32 - 1), launch_shapes)
def test_im2col_and_col2im_match_numpy_path(window, dtype, seed, emu):
    shape, kernel, stride, pads, dilation = window
    geometry = window_geometry(shape, kernel, stride, pads, dilation)
    note(f"{geometry} block={emu.block} max_blocks={emu.max_blocks}")
    check_im2col_and_col2im(shape, geometry, dtype, seed, emu)


def check_im2col_and_col2im(shape, geometry, dtype, seed, emu):
    """im2col bitwise and col2im within the sum bound against the NumPy path; on an
    unrolled window both also bit for bit against the run-time instantiation."""
    col_shape = shape[:2] + geometry.kernel + geometry.out

    x = normal(seed, shape, dtype)
    expected = im2col_into(x, geometry, np.empty(col_shape, dtype))
    cols = _cuda.im2col_into(x, geometry, emu.empty(col_shape, dtype), emu)
    np.testing.assert_array_equal(bits(cols), bits(expected))

    dcols = normal(seed + 1, col_shape, dtype)
    expected = col2im_into(dcols, geometry, np.empty(shape, dtype))
    exact = col2im_into(dcols.astype(np.float64), geometry, np.empty(shape))
    scale = col2im_into(np.abs(dcols.astype(np.float64)), geometry, np.empty(shape))
    dx = _cuda.col2im_into(dcols, geometry, emu.empty(shape, dtype), emu)
    assert_sum_close(dx, expected, exact, scale)
    if twin := runtime_twin(geometry, "im2col.cu", dtype):
        np.testing.assert_array_equal(
            bits(_cuda.im2col_into(x, geometry, twin.empty(col_shape, dtype), twin)), bits(cols))
        np.testing.assert_array_equal(
            bits(_cuda.col2im_into(dcols, geometry, twin.empty(shape, dtype), twin)), bits(dx))
    CASES["im2col+col2im"] += 1


@settings(max_examples=100, **SETTINGS)
@given(pool_windows(), st.sampled_from(DTYPES), st.integers(0, 2**32 - 1), launch_shapes)
def test_max_pool_matches_numpy_path(window, dtype, seed, emu):
    note(f"block={emu.block} max_blocks={emu.max_blocks}")
    check_max_pool(window, dtype, seed, emu)


def check_max_pool(window, dtype, seed, emu):
    """Max pooling (values, argmax) and its gradient bitwise against the NumPy path (the
    gradient summed in window order and in float64 on both), on ties, NaN and infinities,
    the gradient also within the sum bound of the exact one; unrolled windows also against
    the run-time instantiation."""
    shape, kernel, stride, pad, dilation, ceil_mode = window
    x = with_ties_and_specials(seed, shape, dtype)
    expected, cache = F.max_pool2d_forward(x, kernel, stride, pad, dilation, ceil_mode)
    out, argmax = _cuda.max_pool2d_forward(x, cache.geometry, emu)
    np.testing.assert_array_equal(argmax, cache.argmax)
    if dtype == np.float16:  # float16 NaNs come back canonical; every other bit must match
        np.testing.assert_array_equal(out, expected)
    else:
        np.testing.assert_array_equal(bits(out), bits(expected))

    dout = normal(seed + 1, expected.shape, dtype)
    expected_dx = F.max_pool2d_backward(dout, cache)
    exact = F.max_pool2d_backward(dout.astype(np.float64), _as_float64(cache))
    scale = F.max_pool2d_backward(np.abs(dout.astype(np.float64)), _as_float64(cache))
    dx = _cuda.max_pool2d_backward(dout, argmax, shape, cache.geometry, emu)
    assert_sum_close(dx, expected_dx, exact, scale)
    np.testing.assert_array_equal(bits(dx), bits(expected_dx))
    if twin := runtime_twin(cache.geometry, "pool.cu", dtype):
        twin_out, twin_argmax = _cuda.max_pool2d_forward(x, cache.geometry, twin)
        np.testing.assert_array_equal(bits(twin_out), bits(out))
        np.testing.assert_array_equal(twin_argmax, argmax)
        np.testing.assert_array_equal(
            bits(_cuda.max_pool2d_backward(dout, argmax, shape, cache.geometry, twin)), bits(dx))
    CASES["max_pool"] += 1


@settings(max_examples=80, **SETTINGS)
@given(pool_windows(dilation=False), st.booleans(), st.sampled_from(DTYPES),
       st.integers(0, 2**32 - 1), launch_shapes)
def test_avg_pool_matches_numpy_path(window, count_include_pad, dtype, seed, emu):
    note(f"block={emu.block} max_blocks={emu.max_blocks}")
    check_avg_pool(window, count_include_pad, dtype, seed, emu)


def check_avg_pool(window, count_include_pad, dtype, seed, emu):
    """Average pooling and its gradient within the sum bound against the NumPy path;
    unrolled windows also bit for bit against the run-time instantiation."""
    shape, kernel, stride, pad, _, ceil_mode = window
    x = normal(seed, shape, dtype)
    expected, cache = F.avg_pool2d_forward(x, kernel, stride, pad, ceil_mode, count_include_pad)
    cache64 = F.avg_pool2d_forward(x.astype(np.float64), kernel, stride, pad, ceil_mode,
                                   count_include_pad)[1]
    exact = F.avg_pool2d_forward(x.astype(np.float64), kernel, stride, pad, ceil_mode,
                                 count_include_pad)[0]
    scale = F.avg_pool2d_forward(np.abs(x.astype(np.float64)), kernel, stride, pad, ceil_mode,
                                 count_include_pad)[0]
    out = _cuda.avg_pool2d_forward(x, cache.geometry, cache.divisor, emu)
    assert_sum_close(out, expected, exact, scale)

    dout = normal(seed + 1, expected.shape, dtype)
    expected_dx = F.avg_pool2d_backward(dout, cache)
    exact = F.avg_pool2d_backward(dout.astype(np.float64), cache64)
    scale = F.avg_pool2d_backward(np.abs(dout.astype(np.float64)), cache64)
    dx = _cuda.avg_pool2d_backward(dout, cache.divisor, shape, cache.geometry, emu)
    assert_sum_close(dx, expected_dx, exact, scale)
    if twin := runtime_twin(cache.geometry, "pool.cu", dtype):
        np.testing.assert_array_equal(
            bits(_cuda.avg_pool2d_forward(x, cache.geometry, cache.divisor, twin)), bits(out))
        np.testing.assert_array_equal(
            bits(_cuda.avg_pool2d_backward(dout, cache.divisor, shape, cache.geometry, twin)),
            bits(dx))
    CASES["avg_pool"] += 1


def _as_float64(cache):
    """The same max-pool cache for float64 gradients (argmax and geometry unchanged)."""
    return F.pool.MaxPoolCache(cache.x_shape, np.dtype(np.float64), cache.geometry, cache.argmax)


@pytest.fixture
def kernels_for_numpy(monkeypatch):
    """Route NumPy arrays through the dispatch to the emulated kernels, recording launches."""
    emu = emu_launcher()
    launches = []
    original = PreparedLaunch.__call__

    def recording_launch(prepared, *arrays):  # every launch, checked or prepared
        launches.append((prepared.kernel, [a.nbytes for a in arrays]))
        return original(prepared, *arrays)

    monkeypatch.setattr(PreparedLaunch, "__call__", recording_launch)
    monkeypatch.setattr(_backends, "backend_for", lambda *arrays: _gpu)
    monkeypatch.setattr(_cuda, "default_launcher", lambda: emu)
    return launches


def _cpu(fn, *args, **kwargs):
    """Run ``fn`` on the plain NumPy path, whatever the dispatch is patched to."""
    with pytest.MonkeyPatch.context() as m:
        m.setattr(_backends, "backend_for", lambda *arrays: _cpu_backend)
        return fn(*args, **kwargs)


@pytest.mark.filterwarnings("ignore:the column buffer of a single image")
@settings(max_examples=40, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                  HealthCheck.too_slow], deadline=None)
@given(conv_windows(), st.integers(1, 3), st.sampled_from([np.float32, np.float64]),
       st.integers(0, 2**32 - 1), st.sampled_from([None, 64, 600]))
def test_conv_through_the_dispatch_with_groups_and_workspace(
        kernels_for_numpy, window, groups, dtype, seed, limit):
    """conv2d forward/backward with the GPU dispatch taken (emulated kernels, NumPy GEMMs).

    With a small workspace limit the batch is chunked; every column buffer a
    kernel writes stays within the limit, and the results do not change.
    """
    shape, kernel, stride, pads, dilation = window
    n, c, h, w = shape
    shape = (n, c * groups, h, w)
    x = normal(seed, shape, dtype)
    wt = normal(seed + 1, (2 * groups, c) + kernel, dtype)
    b = normal(seed + 2, (2 * groups,), dtype)
    args = dict(stride=stride, padding=pads, dilation=dilation, groups=groups)
    out_cpu, cache_cpu = _cpu(F.conv2d_forward, x, wt, b, **args)
    dout = normal(seed + 3, out_cpu.shape, dtype)
    grads_cpu = _cpu(F.conv2d_backward, dout, cache_cpu)

    kernels_for_numpy.clear()
    with workspace_limit(limit or 2**28):
        out, cache = F.conv2d_forward(x, wt, b, **args)
        grads = F.conv2d_backward(dout, cache)
    rtol = 10 * SUM_RTOL[dtype]
    np.testing.assert_allclose(out, out_cpu, rtol=rtol, atol=rtol)
    for got, want in zip(grads, grads_cpu):
        np.testing.assert_allclose(got, want, rtol=rtol, atol=rtol * np.abs(want).max())
    used = [name for name, _ in kernels_for_numpy]
    # every backward ends with dw and db summed over the images (tests/test_cuda_weight_sum.py)
    assert used[-1] == "weight_sum_kernel" and used.count("weight_sum_kernel") == 1, used
    used = used[:-1]
    if c == 1:  # one channel per group: the depthwise kernels (tests/test_cuda_depthwise.py)
        assert {name.partition("_")[0] for name in used} == {"depthwise"}
    elif cache.geometry.is_identity:
        assert used == []
    elif dtype == np.float32 and groups == 1 and cache.geometry.stride == (1, 1):
        # dx from the implicit-product kernel (tests/test_cuda_conv_gemm.py)
        assert "im2col_kernel" in used and "conv_gemm_kernel" in used
        assert "col2im_kernel" not in used
    else:
        assert "im2col_kernel" in used and "col2im_kernel" in used
    if limit:
        per_image = c * groups * np.prod(kernel) * np.prod(cache.geometry.out) * x.itemsize
        for name, sizes in kernels_for_numpy:
            if name == "im2col_kernel":
                assert sizes[1] <= max(limit, per_image), (sizes, limit)
    CASES["conv2d dispatch"] += 1


@settings(max_examples=30, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                  HealthCheck.too_slow], deadline=None)
@given(pool_windows(), st.integers(0, 2**32 - 1))
def test_pooling_through_the_dispatch(kernels_for_numpy, window, seed):
    """max/avg pooling with the GPU dispatch taken: caches, indices and gradients."""
    shape, kernel, stride, pad, dilation, ceil_mode = window
    x = with_ties_and_specials(seed, shape, np.float64)
    out_cpu, idx_cpu, cache_cpu = _cpu(F.max_pool2d_forward, x, kernel, stride, pad, dilation,
                                       ceil_mode, return_indices=True)
    out, idx, cache = F.max_pool2d_forward(x, kernel, stride, pad, dilation, ceil_mode,
                                           return_indices=True)
    np.testing.assert_array_equal(bits(out), bits(out_cpu))
    np.testing.assert_array_equal(idx, idx_cpu)
    dout = normal(seed, out.shape, np.float64)
    np.testing.assert_array_equal(bits(F.max_pool2d_backward(dout, cache)),
                                  bits(_cpu(F.max_pool2d_backward, dout, cache_cpu)))

    x = normal(seed, shape, np.float64)
    out_cpu, cache_cpu = _cpu(F.avg_pool2d_forward, x, kernel, stride, pad, ceil_mode)
    out, cache = F.avg_pool2d_forward(x, kernel, stride, pad, ceil_mode)
    np.testing.assert_allclose(out, out_cpu, rtol=1e-12, atol=1e-15)
    dout = normal(seed + 1, out.shape, np.float64)
    np.testing.assert_allclose(F.avg_pool2d_backward(dout, cache),
                               _cpu(F.avg_pool2d_backward, dout, cache_cpu), rtol=1e-12,
                               atol=1e-15)
    assert {name for name, _ in kernels_for_numpy} == {
        "max_pool_forward_kernel", "max_pool_backward_kernel",
        "avg_pool_forward_kernel", "avg_pool_backward_kernel"}
    CASES["pool dispatch"] += 1


@pytest.mark.parametrize("dtype", _cuda.UNROLLED_DTYPES, ids=lambda d: d.name)
@pytest.mark.parametrize("window", _cuda.WINDOWS["im2col.cu"], ids=str)
def test_every_unrolled_conv_window(window, dtype):
    """Each unrolled im2col/col2im instantiation, on an input with every kind of edge
    (asymmetric padding, a partial last window), against NumPy and, bit for bit, the
    run-time instantiation; hypothesis may draw some windows rarely."""
    k, s = window
    shape = (2, 3, 11, 10)
    geometry = window_geometry(shape, k, s, ((k // 2, k - 1), (k - 1, 0)), 1)
    assert _cuda.window_of("im2col.cu", dtype, geometry.kernel, geometry.stride,
                           geometry.dilation) == window
    check_im2col_and_col2im(shape, geometry, dtype, k * 10 + s, launcher(block=64, max_blocks=2))


@pytest.mark.parametrize("ceil_mode", [False, True])
@pytest.mark.parametrize("window", _cuda.WINDOWS["pool.cu"], ids=str)
def test_every_unrolled_pool_window(window, ceil_mode):
    """Each unrolled pooling instantiation, with ties, NaN, infinities and padding,
    against NumPy and, bit for bit, the run-time instantiation."""
    k, s = window
    args = ((2, 3, 9, 10), (k, k), (s, s), (k // 2, k // 2), (1, 1), ceil_mode)
    for dtype in _cuda.UNROLLED_DTYPES:
        check_max_pool(args, dtype, k * 10 + s, launcher(block=32, max_blocks=2,
                                                         reversed_order=True))
        for count_include_pad in (False, True):
            check_avg_pool(args, count_include_pad, dtype, k * 10 + s, launcher())


@pytest.mark.parametrize("width", [1, 2, 3, 5])
def test_pool_backward_pairs_at_the_end_of_a_row(width):
    """The backward kernels take two cells of a row per thread: rows of one cell, of an odd
    count (a last pair of one) and of one pair, under every unrolled window and the
    run-time one (dilated), with and without ceil_mode, in every dtype."""
    windows = [(k, s, k // 2, 1) for k, s in _cuda.WINDOWS["pool.cu"]] + [(2, 1, 1, 2)]
    for (k, s, p, d), ceil_mode, dtype in itertools.product(windows, (False, True), DTYPES):
        if d * (k - 1) + 1 > width + 2 * p:  # no window fits the row
            continue
        args = ((2, 3, 3, width), (k, k), (s, s), (p, p), (d, d), ceil_mode)
        check_max_pool(args, dtype, width * 100 + k * 10 + s, launcher(block=32))
        for count_include_pad in ((False, True) if d == 1 else ()):  # average: no dilation
            check_avg_pool(args, count_include_pad, dtype, width * 100 + k, launcher())


@pytest.mark.parametrize("kw", [dict(kernel_size=3, stride=1, padding=1),
                                dict(kernel_size=(2, 3), stride=2, padding=(1, 1), dilation=2,
                                     ceil_mode=True)])
def test_max_pool_of_minus_infinity_picks_an_input_cell(kw):
    """-inf inputs tie with the -inf padding: the kernel's maximum is still the window's
    first input cell, as in PyTorch and the loop reference (fastconv/reference.py)."""
    x = np.full((2, 2, 4, 5), -np.inf)
    x[0, 0, 3, 3], x[1, 1, 0, 4], x[1, 0, 2, 2] = 1.0, -2.0, np.nan
    ref_out, ref_idx, _ = reference.max_pool2d_forward(x, return_indices=True, **kw)
    geometry = F.max_pool2d_forward(x, **kw)[1].geometry
    out, argmax = _cuda.max_pool2d_forward(x, geometry, launcher())
    np.testing.assert_array_equal(out, ref_out)
    np.testing.assert_array_equal(F.pool._flat_indices(argmax, geometry, np), ref_idx)
    dout = normal(0, out.shape, np.float64)
    ref_cache = reference.max_pool2d_forward(x, **kw)[1]
    np.testing.assert_allclose(_cuda.max_pool2d_backward(dout, argmax, x.shape, geometry,
                                                         launcher()),
                               reference.max_pool2d_backward(dout, ref_cache), rtol=1e-12)


def test_max_pool_window_without_input_cells():
    """A dilated window can fall entirely on padding: -inf, offset 0 and no gradient,
    as on the NumPy path."""
    x = np.arange(3.0).reshape(1, 1, 1, 3)
    kw = dict(kernel_size=(2, 1), padding=(1, 0), dilation=(2, 1))
    expected, cache = F.max_pool2d_forward(x, **kw)
    out, argmax = _cuda.max_pool2d_forward(x, cache.geometry, launcher())
    np.testing.assert_array_equal(out, expected)
    np.testing.assert_array_equal(argmax, cache.argmax)
    dx = _cuda.max_pool2d_backward(np.ones_like(out), argmax, x.shape, cache.geometry, launcher())
    np.testing.assert_array_equal(dx, F.max_pool2d_backward(np.ones_like(out), cache))
