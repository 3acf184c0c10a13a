"""The unpooling kernels (kernels/unpool.cu), emulated on the CPU, through the functional ops.

Every case runs ``fastconv.functional.max_unpool2d_forward``,
``adaptive_max_pool2d_forward`` or ``adaptive_max_pool2d_backward`` on NumPy arrays routed
to the GPU backend (fastconv/_gpu/unpool.py), the kernels on the CPU emulator
(tests/cuda_emu) with output buffers poisoned with NaN (a +NaN: the data's NaNs are
negative, so a missed element cannot match by luck), launched through
fastconv/_cuda_unpool.py's wrappers with the grids they compute. Hypothesis draws:

- unpooling: a max pool's geometry (kernel 1 to 4 per axis, stride 1 to 3, padding up to
  half the kernel, ceil_mode; half the time a window with an unrolled instantiation),
  overlapping windows whose maxima many share (small integers, -inf, inf, NaN); the
  values unpooled (the pooled ones or others, random normals: sums that round), and
  whether some indices become -1 or a cell outside their window (the sort-based scatter
  must then take the call);
- the adaptive max pool's gradient: input and output sizes (the output larger than the
  input too), maxima shared by overlapping adaptive windows, dout random normals;
- the adaptive max pool's forward: the same sizes, 1x1 outputs and None in output_size
  among them, on maxima that overlapping windows share, or on mostly -inf, inf and -NaN
  (windows of NaN only, of -inf only, ties of inf);
- the dtype and the launch shape (blocks of 32 to 1024 threads, grids capped at 1 or 2
  blocks per axis so the grid-stride loops do the work, threads first-to-last or
  last-to-first).

Oracle: the CPU path (bincount, in float64, rounded once; for the adaptive forward its
``take`` gathers: the maxima and their int64 indices), bit for bit in float16, float32 and
float64; on an unrolled window, the run-time instantiation's bits too. The launches are
checked: the check kernel, then the gather, or the scatter when an index is outside; the
forward kernel alone for the adaptive forward.
"""

import collections

import numpy as np
import pytest
from hypothesis import assume, given, note, settings
from hypothesis import strategies as st

import fastconv.functional as F
from conftest import gpu_dispatch
from cuda_emu.emu import build_library, kernels_under_test, require_kernel_tools, sanitizing
from cuda_emu.report import report_cases
from fastconv import _backends, _cpu, _cuda, _cuda_launcher, _cuda_unpool
from fastconv.shapes import conv_output_size
from test_cuda_emulated import (DTYPES, SETTINGS, SUBNORMAL_SUM_TERMS, bits, has_subnormals,
                                launch_shapes, launcher, require_flushing)

CASES = collections.Counter()
UNPOOL = ["max_unpool_check_kernel", "max_unpool_gather_kernel"]
ADAPTIVE = ["adaptive_max_check_kernel", "adaptive_max_gather_kernel"]
FORWARD = ["adaptive_max_pool_forward_kernel"]


@pytest.fixture(scope="module", autouse=True)
def build_and_report(request):
    """Build the emulated unpool.cu up front; print the number of cases at the end."""
    require_kernel_tools("g++")
    directory = kernels_under_test()
    for dtype in _cuda.CTYPES:
        build_library(_cuda.kernel_source("unpool.cu", directory),
                      _cuda.compile_options(directory),
                      tuple(_cuda.name_expressions("unpool.cu", dtype)), sanitizing())
    yield
    report_cases(request.config, "Unpool", "the CPU path, bit for bit", CASES)


def on_cpu(fn, *args, **kwargs):
    """``fn`` on the NumPy backend, whatever the dispatch is patched to."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(_backends, "backend_for", lambda *arrays: _cpu)
        return fn(*args, **kwargs)


def assert_bits(got, want, what=""):
    assert got.dtype == want.dtype and got.shape == want.shape, what
    np.testing.assert_array_equal(bits(got), bits(want), err_msg=what)


def shared_maxima(seed, shape, dtype):
    """Small integers (maxima shared by overlapping windows, ties), some -inf, inf and -NaN."""
    rng = np.random.default_rng(seed)
    x = rng.integers(-3, 3, shape).astype(dtype)
    specials = rng.random(shape)
    x[specials < 0.03] = -np.nan
    x[(specials >= 0.03) & (specials < 0.05)] = -np.inf
    x[(specials >= 0.05) & (specials < 0.06)] = np.inf
    return x


def sent_values(seed, shape, dtype):
    """What is sent: random normals (sums that round), a few of them -NaN."""
    rng = np.random.default_rng(seed)
    values = rng.standard_normal(shape).astype(dtype)
    values[rng.random(shape) < 0.02] = -np.nan
    return values


def outside_window(indices, out_size, kernel, stride, padding):
    """Where an index is neither -1 nor a cell of its own pooling window (NumPy)."""
    rows, columns = np.divmod(indices, out_size[1])
    inside = indices == -1
    starts = [np.arange(n) * s - p for n, s, p in zip(indices.shape[2:], stride, padding)]
    row_in = (rows >= starts[0][:, None]) & (rows < starts[0][:, None] + kernel[0])
    column_in = (columns >= starts[1]) & (columns < starts[1] + kernel[1])
    return ~(inside | (row_in & column_in))


@st.composite
def unpool_cases(draw):
    """A max pool's kernel, stride, padding, ceil_mode and input shape; half the time one of
    unpool.cu's unrolled windows."""
    if draw(st.booleans()):
        k, s = draw(st.sampled_from(_cuda.WINDOWS["unpool.cu"]))
        kernel, stride = (k, k), (s, s)
    else:
        kernel = (draw(st.integers(1, 4)), draw(st.integers(1, 4)))
        stride = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    padding = (draw(st.integers(0, kernel[0] // 2)), draw(st.integers(0, kernel[1] // 2)))
    size = (draw(st.integers(1, 9)), draw(st.integers(1, 9)))
    ceil_mode = draw(st.booleans())
    for n, k, s, p in zip(size, kernel, stride, padding):
        assume(conv_output_size(n, k, s, (p, p), 1, ceil_mode) >= 1)
    shape = (draw(st.integers(1, 2)), draw(st.integers(1, 3))) + size
    return shape, kernel, stride, padding, ceil_mode


def check_unpool(case, dtype, seed, emu, send_pooled, plant):
    """Unpool a max pool's indices (``plant``: "-1" sets some to -1, "outside" moves some
    out of their window) through the dispatch on ``emu``, against the CPU path."""
    shape, kernel, stride, padding, ceil_mode = case
    source = shared_maxima(seed, shape, dtype)
    pooled, indices, _ = on_cpu(F.max_pool2d_forward, source, kernel, stride, padding,
                                ceil_mode=ceil_mode, return_indices=True)
    rng = np.random.default_rng(seed + 1)
    chosen = rng.random(indices.shape) < 0.3
    if plant == "-1":
        indices[chosen] = -1
    elif plant == "outside":
        indices[chosen] = rng.integers(0, shape[2] * shape[3], indices.shape)[chosen]
    x = pooled if send_pooled else sent_values(seed + 2, pooled.shape, dtype)
    args = (x, indices, kernel, stride, padding, shape[2:])
    want = on_cpu(F.max_unpool2d_forward, *args)[0]
    with gpu_dispatch(emu) as calls:
        got = F.max_unpool2d_forward(*args)[0]
    outside = bool(outside_window(indices, shape[2:], kernel, stride, padding).any())
    assert calls == UNPOOL[:1] + (["scatter"] if outside else UNPOOL[1:]), calls
    assert_bits(got, want)
    window = _cuda.window_of("unpool.cu", dtype, kernel, stride, (1, 1))
    if window != _cuda.RUNTIME_WINDOW and not outside:
        with gpu_dispatch(launcher(specialize=False)):
            assert_bits(F.max_unpool2d_forward(*args)[0], got, "run-time instantiation")
        CASES[f"unrolled {window[0]}x{window[0]}/{window[1]}"] += 1
    CASES["unpool scatter" if outside else f"unpool {np.dtype(dtype).name}"] += 1


@settings(max_examples=110, **SETTINGS)
@given(unpool_cases(), st.sampled_from(DTYPES), st.integers(0, 2**32 - 1), launch_shapes,
       st.booleans(), st.sampled_from(["", "", "-1", "outside"]))
def test_max_unpool_matches_the_cpu_path(case, dtype, seed, emu, send_pooled, plant):
    note(f"block={emu.block} max_blocks={emu.max_blocks}")
    check_unpool(case, dtype, seed, emu, send_pooled, plant)


@pytest.mark.parametrize("dtype", _cuda.UNROLLED_DTYPES, ids=lambda d: d.name)
@pytest.mark.parametrize("window", _cuda.WINDOWS["unpool.cu"], ids=str)
def test_every_unrolled_unpool_window(window, dtype):
    """Each unrolled instantiation with padding, a partial last window (ceil_mode) and the
    values sent by its overlapping windows, threads last to first on two blocks per axis."""
    k, s = window
    case = ((2, 3, 11, 10), (k, k), (s, s), (k // 2, k // 2), True)
    check_unpool(case, dtype, k * 10 + s, launcher(block=64, max_blocks=2, reversed_order=True),
                 False, "")


@st.composite
def adaptive_cases(draw):
    """x shape and an output size per axis, from a quarter of the input to twice it."""
    size = (draw(st.integers(1, 9)), draw(st.integers(1, 9)))
    out = tuple(draw(st.integers(max(1, n // 4), 2 * n)) for n in size)
    return (draw(st.integers(1, 2)), draw(st.integers(1, 3))) + size, out


@settings(max_examples=70, **SETTINGS)
@given(adaptive_cases(), st.sampled_from(DTYPES), st.integers(0, 2**32 - 1), launch_shapes)
def test_adaptive_max_pool_backward_matches_the_cpu_path(case, dtype, seed, emu):
    shape, output_size = case
    note(f"block={emu.block} max_blocks={emu.max_blocks}")
    out, cache = on_cpu(F.adaptive_max_pool2d_forward, shared_maxima(seed, shape, dtype),
                        output_size)
    dout = sent_values(seed + 1, out.shape, dtype)
    want = on_cpu(F.adaptive_max_pool2d_backward, dout, cache)
    with gpu_dispatch(emu) as calls:
        got = F.adaptive_max_pool2d_backward(dout, cache)
    assert calls == ADAPTIVE, calls
    assert_bits(got, want)
    CASES[f"adaptive {np.dtype(dtype).name}"] += 1


def test_adaptive_indices_moved_out_of_their_window_take_the_scatter():
    """A cache whose indices were changed (one out of its window, one -1) is still summed
    right: the check finds it and the sort-based scatter runs."""
    x = shared_maxima(3, (2, 2, 7, 6), np.float32)
    out, cache = F.adaptive_max_pool2d_forward(x, (3, 4))
    cache.indices[0, 1, 0, 0] = 41  # row 6: not in window 0's rows 0..2
    cache.indices[1, 0, 2, 3] = -1
    dout = sent_values(4, out.shape, np.float32)
    want = on_cpu(F.adaptive_max_pool2d_backward, dout, cache)
    with gpu_dispatch(launcher()) as calls:
        got = F.adaptive_max_pool2d_backward(dout, cache)
    assert calls == ADAPTIVE[:1] + ["scatter"]
    assert_bits(got, want)


@pytest.mark.filterwarnings("ignore:overflow encountered in cast")
def test_float16_sums_round_once_from_the_exact_sum():
    """Three values in one cell whose float32 sum would round twice: 1 + 2**-11 + 2**-24 is
    above the halfway point of 1 and 1 + 2**-10 (float32: exactly on it, then to even: 1);
    ties to even; 65504 + 16 rounds to inf, 65504 + 8 to 65504; subnormal sums."""
    cells = [(1.0, 2**-11, 2**-24), (1.0, 2**-11, 0.0), (1 + 2**-10, 2**-11, 0.0),
             (65504.0, 16.0, 0.0), (65504.0, 8.0, 0.0), (2**-24, 2**-24, -2**-23 * 3),
             (2**-14, -2**-24, 0.0), (-1.0, -2**-11, -2**-24)]
    # 1 x 3 windows at stride 1 over rows of 5: cell 2 is held by windows 0, 1 and 2, and
    # each image's row sends its three values there
    x = np.array([v for cell in cells for v in cell], np.float16).reshape(len(cells), 1, 1, 3)
    indices = np.full(x.shape, 2, np.int64)
    args = (x, indices, (1, 3), (1, 1), (0, 0), (1, 5))
    want = on_cpu(F.max_unpool2d_forward, *args)[0]
    with gpu_dispatch(launcher()) as calls:
        got = F.max_unpool2d_forward(*args)[0]
    assert calls == UNPOOL
    assert_bits(got, want)
    exact = [sum(cell) for cell in cells]
    np.testing.assert_array_equal(got[:, 0, 0, 2], np.array(exact).astype(np.float16))
    assert got[0, 0, 0, 2] == 1 + 2**-10 and np.isinf(got[3, 0, 0, 2])


def test_float32_sums_keep_subnormals_under_flush_to_zero():
    """The gathers' double sums of float32 values, rounded once, keep the subnormals that a
    cast flushes under -ftz=true (here the CPU's flush modes): subnormal values, and sums of
    normal ones below 2**-126, sent to one cell by overlapping windows that share a maximum
    (max unpooling, unrolled 3x3/1 and run-time 4x4/1, and the adaptive max pool's
    gradient)."""
    emu = launcher()
    require_flushing(emu, "unpool.cu", "max_unpool_gather_kernel<float, 0, 0>")
    rng = np.random.default_rng(7)
    x = rng.integers(0, 2, (2, 3, 7, 9)).astype(np.float32)
    for window in (3, 4):
        pooled, indices, _ = on_cpu(F.max_pool2d_forward, x, window, 1, 1, return_indices=True)
        args = (rng.choice(SUBNORMAL_SUM_TERMS, pooled.shape), indices, window, 1, 1, x.shape[2:])
        want = on_cpu(F.max_unpool2d_forward, *args)[0]
        assert has_subnormals(want)
        with gpu_dispatch(emu) as calls:
            got = F.max_unpool2d_forward(*args)[0]
        assert calls == UNPOOL, calls
        assert_bits(got, want)
    out, cache = on_cpu(F.adaptive_max_pool2d_forward, x, (5, 4))
    dout = rng.choice(SUBNORMAL_SUM_TERMS, out.shape)
    want = on_cpu(F.adaptive_max_pool2d_backward, dout, cache)
    assert has_subnormals(want)
    with gpu_dispatch(emu) as calls:
        got = F.adaptive_max_pool2d_backward(dout, cache)
    assert calls == ADAPTIVE, calls
    assert_bits(got, want)


def test_indices_of_a_dilated_pool_and_empty_batches():
    """A dilated pool's maxima lie outside the undilated windows unpooling knows (the scatter
    sums them); an empty batch launches nothing and has the unpooled shape."""
    x = shared_maxima(5, (1, 2, 9, 7), np.float64)
    pooled, indices, _ = F.max_pool2d_forward(x, 2, 2, dilation=2, return_indices=True)
    args = (sent_values(6, pooled.shape, np.float64), indices, 2, 2, 0, (9, 7))
    with gpu_dispatch(launcher()) as calls:
        got = F.max_unpool2d_forward(*args)[0]
    assert calls == UNPOOL[:1] + ["scatter"]
    assert_bits(got, on_cpu(F.max_unpool2d_forward, *args)[0])
    empty = np.zeros((0, 3, 2, 2))
    with gpu_dispatch(launcher()):
        out = F.max_unpool2d_forward(empty, np.zeros(empty.shape, np.int64), 2)[0]
    assert out.shape == (0, 3, 4, 4)


def test_non_contiguous_operands():
    """Strided x, indices and dout go through contiguous copies."""
    x = shared_maxima(7, (2, 3, 8, 10), np.float32)
    pooled, indices, _ = F.max_pool2d_forward(x, 3, 2, 1, return_indices=True)
    def strided(a):  # a's values in a transposed layout
        return np.ascontiguousarray(a.transpose(0, 1, 3, 2)).transpose(0, 1, 3, 2)

    args = (strided(sent_values(8, pooled.shape, np.float32)), strided(indices), 3, 2, 1,
            (8, 10))
    assert not args[0].flags.c_contiguous and not args[1].flags.c_contiguous
    with gpu_dispatch(launcher()) as calls:
        got = F.max_unpool2d_forward(*args)[0]
    assert calls == UNPOOL
    assert_bits(got, on_cpu(F.max_unpool2d_forward, *args)[0])
    out, cache = F.adaptive_max_pool2d_forward(x, (3, 4))
    dout = strided(sent_values(9, out.shape, np.float32))
    with gpu_dispatch(launcher()):
        assert_bits(F.adaptive_max_pool2d_backward(dout, cache),
                    on_cpu(F.adaptive_max_pool2d_backward, dout, cache))


def test_planes_beyond_the_kernels_limit_take_the_scatter(monkeypatch):
    """Planes at or past the kernels' 32-bit in-plane limit (here lowered to 50) go to the
    sort-based scatter with the same bits; the wrappers refuse them before allocating."""
    x = shared_maxima(10, (1, 2, 8, 8), np.float64)
    pooled, indices, _ = F.max_pool2d_forward(x, 2, return_indices=True)
    out, cache = F.adaptive_max_pool2d_forward(x, (3, 3))
    dout = sent_values(11, out.shape, np.float64)
    want = (on_cpu(F.max_unpool2d_forward, pooled, indices, 2)[0],
            on_cpu(F.adaptive_max_pool2d_backward, dout, cache))
    monkeypatch.setattr(_cuda_launcher, "PLANE_LIMIT", 50)
    with gpu_dispatch(launcher()) as calls:
        got = (F.max_unpool2d_forward(pooled, indices, 2)[0],
               F.adaptive_max_pool2d_backward(dout, cache))
    assert calls == ["scatter", "scatter"]
    for value, expected in zip(got, want):
        assert_bits(value, expected)
    with pytest.raises(ValueError, match=r"unpooling x of shape \(1, 2, 4, 4\) to \(8, 8\) is "
                                         r"too large for the CUDA kernels"):
        _cuda.max_unpool2d_gather(pooled, indices, (8, 8), (2, 2), (2, 2), (0, 0), launcher())
    with pytest.raises(ValueError, match=r"the adaptive max pool of x of shape \(1, 2, 8, 8\) "
                                         r"to \(3, 3\) is too large"):
        _cuda.adaptive_max_pool2d_outside(cache.indices, np.float64, x.shape, launcher())


def mostly_extremes(seed, shape, dtype):
    """Mostly -inf, inf and -NaN among a few small integers: windows of NaN or -inf only,
    ties of inf, a NaN after a maximum and before one."""
    rng = np.random.default_rng(seed)
    x = rng.integers(-2, 2, shape).astype(dtype)
    specials = rng.random(shape)
    x[specials < 0.3] = -np.inf
    x[(specials >= 0.3) & (specials < 0.5)] = np.inf
    x[(specials >= 0.5) & (specials < 0.65)] = -np.nan
    return x


def check_adaptive_forward(x, output_size, emu):
    """The adaptive forward of ``x`` through the dispatch on ``emu`` (outputs poisoned) against
    the CPU path: the maxima's bits, the indices, the cache's indices."""
    want, want_indices, want_cache = on_cpu(F.adaptive_max_pool2d_forward, x, output_size,
                                            return_indices=True)
    with gpu_dispatch(emu) as calls:
        got, indices, cache = F.adaptive_max_pool2d_forward(x, output_size, return_indices=True)
    assert calls == FORWARD, calls
    assert_bits(got, want)
    assert indices.dtype == np.int64
    np.testing.assert_array_equal(indices, want_indices)
    np.testing.assert_array_equal(cache.indices, want_cache.indices)
    return got, indices


@st.composite
def adaptive_forward_cases(draw):
    """An adaptive case whose output size is an int, a pair, or a pair with None (the input's
    size along that axis) a quarter of the time each; 1x1 outputs among them."""
    shape, out = draw(adaptive_cases())
    form = draw(st.sampled_from(["pair", "pair", "int", "None"]))
    if form == "int":
        return shape, draw(st.sampled_from([1, out[0]]))
    if form == "None":
        axis = draw(st.integers(0, 1))
        return shape, tuple(None if a == axis else n for a, n in enumerate(out))
    return shape, out


@settings(max_examples=90, **SETTINGS)
@given(adaptive_forward_cases(), st.sampled_from(DTYPES), st.integers(0, 2**32 - 1),
       launch_shapes, st.booleans())
def test_adaptive_max_pool_forward_matches_the_cpu_path(case, dtype, seed, emu, extremes):
    shape, output_size = case
    note(f"block={emu.block} max_blocks={emu.max_blocks}")
    x = (mostly_extremes if extremes else shared_maxima)(seed, shape, dtype)
    check_adaptive_forward(x, output_size, emu)
    CASES[f"adaptive forward {np.dtype(dtype).name}"] += 1


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
def test_adaptive_forward_ties_nan_and_infinities(dtype):
    """Named windows of (1, 6, 4, 5) pooled to (2, 2) (rows [0, 2) and [2, 4), columns
    [0, 3) and [2, 5)): ties keep the first maximum in row-major order, the first NaN wins
    over inf and over a later NaN, a window of -inf only has -inf at its first cell, and
    the column shared by both column windows serves both; threads last to first."""
    x = np.zeros((1, 6, 4, 5), dtype)
    x[0, 0] = [[1, 2, 2, 0, 0], [2, 0, 0, 0, 0], [0, 0, 0, 3, 3], [0, 3, 3, 0, 0]]
    x[0, 1] = -np.inf
    x[0, 2] = np.inf
    x[0, 3, 1, 0], x[0, 3, 0, 2], x[0, 3, 1, 1] = -np.nan, np.inf, np.nan
    x[0, 4] = -np.nan
    x[0, 5, 0, 2], x[0, 5, 3, 3] = 5, 7  # column 2 is in both column windows
    got, indices = check_adaptive_forward(x, (2, 2), launcher(block=32, max_blocks=1,
                                                              reversed_order=True))
    np.testing.assert_array_equal(indices[0], [[[1, 2], [16, 13]], [[0, 2], [10, 12]],
                                               [[0, 2], [10, 12]], [[5, 2], [10, 12]],
                                               [[0, 2], [10, 12]], [[2, 2], [10, 18]]])
    assert np.isneginf(got[0, 1]).all() and np.isposinf(got[0, 2]).all()
    assert np.isnan(got[0, 3, 0, 0]) and np.signbit(got[0, 3, 0, 0])  # the first NaN's bits


@pytest.mark.parametrize("output_size", [1, (1, None), (None, 1), (13, 11), (None, None)],
                         ids=str)
def test_adaptive_forward_global_kept_and_overlapping_sizes(output_size):
    """Global pooling, an axis kept (None), windows of one or two cells overlapping where the
    output is larger than the input; float16 ties and NaN, two blocks per axis."""
    x = shared_maxima(12, (2, 3, 7, 6), np.float16)
    check_adaptive_forward(x, output_size, launcher(block=64, max_blocks=2))


def test_adaptive_forward_contiguous_copies_empty_batches_and_the_limit(monkeypatch):
    """A strided x goes through a contiguous copy; an empty batch launches nothing; planes
    at the kernels' 32-bit in-plane limit (here lowered to 42) are refused before
    allocating."""
    x = np.ascontiguousarray(shared_maxima(13, (2, 3, 9, 7), np.float32).transpose(0, 1, 3, 2))
    check_adaptive_forward(x.transpose(0, 1, 3, 2), (4, 5), launcher())
    check_adaptive_forward(np.zeros((0, 2, 5, 4)), (3, 2), launcher())
    monkeypatch.setattr(_cuda_launcher, "PLANE_LIMIT", 42)
    allocations = []
    emu = launcher()
    monkeypatch.setattr(emu, "empty", lambda *args: allocations.append(args))
    with gpu_dispatch(emu), pytest.raises(ValueError, match=r"the adaptive max pool of x of "
                                          r"shape \(1, 1, 6, 7\) to \(2, 2\) is too large"):
        F.adaptive_max_pool2d_forward(np.ones((1, 1, 6, 7)), 2)
    assert allocations == []
