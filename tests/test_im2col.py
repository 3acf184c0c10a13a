"""im2col / col2im against the loop reference, the adjoint identity, dtype and layout; the
caller-output versions im2col_into / col2im_into and their argument checks."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import fastconv
from fastconv import reference as ref
from fastconv.im2col import col2im_into, im2col_into, window_geometry
from fastconv.shapes import conv_output_size
from torch_oracle import hypothesis_settings, rel_err


@st.composite
def unfold_cases(draw):
    """Geometry of an unfold: padding as int, pair or ((top, bottom), (left, right))."""
    kernel = (draw(st.integers(1, 4)), draw(st.integers(1, 4)))
    stride = (draw(st.integers(1, 4)), draw(st.integers(1, 4)))
    dilation = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    pads = [(draw(st.integers(0, 2)), draw(st.integers(0, 2))) for _ in range(2)]
    form = draw(st.sampled_from(["int", "pair", "pairs"]))
    if form == "int":
        pads = [(pads[0][0], pads[0][0])] * 2
        padding = pads[0][0]
    elif form == "pair":
        pads = [(pads[0][0], pads[0][0]), (pads[1][0], pads[1][0])]
        padding = (pads[0][0], pads[1][0])
    else:
        padding = tuple(pads)
    size = [max(1, d * (k - 1) + 1 - sum(p)) + draw(st.integers(0, 4))
            for k, d, p in zip(kernel, dilation, pads)]
    x_shape = (draw(st.integers(1, 3)), draw(st.integers(1, 3)), *size)
    out_hw = [conv_output_size(s, k, st_, p, d)
              for s, k, st_, p, d in zip(size, kernel, stride, pads, dilation)]
    cols_shape = (x_shape[0], x_shape[1] * kernel[0] * kernel[1], out_hw[0] * out_hw[1])
    return dict(x_shape=x_shape, cols_shape=cols_shape, seed=draw(st.integers(0, 2**32 - 1)),
                kw=dict(kernel_size=kernel, stride=stride, padding=padding, dilation=dilation))


@hypothesis_settings(30)
@given(case=unfold_cases())
def test_im2col_and_col2im_match_reference_loops(case):
    rng = np.random.default_rng(case["seed"])
    x = rng.standard_normal(case["x_shape"])
    cols = fastconv.im2col(x, **case["kw"])
    assert cols.shape == case["cols_shape"]
    np.testing.assert_array_equal(cols, ref.im2col(x, **case["kw"]))  # a pure copy: exact
    y = rng.standard_normal(case["cols_shape"])
    back = fastconv.col2im(y, case["x_shape"], **case["kw"])
    assert rel_err(back, ref.col2im(y, case["x_shape"], **case["kw"])) <= 1e-13


@hypothesis_settings(30)
@given(case=unfold_cases())
def test_col2im_is_the_adjoint_of_im2col(case):
    """<im2col(x), y> == <x, col2im(y)> in float64."""
    rng = np.random.default_rng(case["seed"])
    x = rng.standard_normal(case["x_shape"])
    y = rng.standard_normal(case["cols_shape"])
    lhs = np.vdot(fastconv.im2col(x, **case["kw"]), y)
    rhs = np.vdot(x, fastconv.col2im(y, case["x_shape"], **case["kw"]))
    scale = np.abs(fastconv.im2col(x, **case["kw"])).sum() * np.abs(y).max() + 1e-300
    assert abs(lhs - rhs) <= 1e-13 * scale


KW = dict(kernel_size=(3, 2), stride=(2, 1), padding=((1, 0), (0, 1)), dilation=(1, 2))


def test_float32_is_preserved_and_outputs_are_c_contiguous():
    x = np.random.default_rng(1).standard_normal((2, 3, 7, 6)).astype(np.float32)
    cols = fastconv.im2col(x, **KW)
    back = fastconv.col2im(cols, x.shape, **KW)
    for a in (cols, back):
        assert a.dtype == np.float32 and a.flags.c_contiguous
    np.testing.assert_array_equal(cols, ref.im2col(x, **KW))
    assert rel_err(back, ref.col2im(cols, x.shape, **KW)) <= 1e-6


def test_noncontiguous_input_gives_the_contiguous_result():
    base = np.random.default_rng(2).standard_normal((6, 3, 2, 14))
    x = base.transpose(2, 1, 0, 3)[:, :, :, ::2]  # (2, 3, 6, 7)
    assert not x.flags.c_contiguous
    np.testing.assert_array_equal(fastconv.im2col(x, **KW), fastconv.im2col(x.copy(), **KW))
    cols = fastconv.im2col(x.copy(), **KW)
    cols_view = np.concatenate([cols, cols], axis=2)[:, :, : cols.shape[2]]
    assert not cols_view.flags.c_contiguous
    np.testing.assert_array_equal(fastconv.col2im(cols_view, x.shape, **KW),
                                  fastconv.col2im(cols, x.shape, **KW))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_row_and_column_layout_is_the_documented_one(dtype):
    """Row c*KH*KW + kh*KW + kw, column oh*OW + ow, picked out element by element."""
    x = np.arange(2 * 3 * 4 * 5, dtype=dtype).reshape(2, 3, 4, 5)
    cols = fastconv.im2col(x, (2, 3), stride=(2, 1))
    kh_size, kw_size, ow_size = 2, 3, 3
    for c, kh, kw, oh, ow in [(0, 0, 0, 0, 0), (2, 1, 2, 1, 2), (1, 0, 1, 1, 0)]:
        row, col = c * kh_size * kw_size + kh * kw_size + kw, oh * ow_size + ow
        assert cols[1, row, col] == x[1, c, 2 * oh + kh, ow + kw]


@hypothesis_settings(30)
@given(case=unfold_cases(), groups=st.sampled_from([1, 2, 3]))
def test_col2im_on_stride_phase_planes_matches_reference_loops(case, groups):
    """col2im_planes_into, fed the plane layout (per group, rows in (KH, KW, C/G) order, window
    (oh, ow) at column oh*Wq + ow of its phase plane, zeros elsewhere), equals col2im."""
    from fastconv._cpu.im2col import col2im_planes_into, col2im_planes_plan
    from fastconv.im2col import window_geometry
    from fastconv.workspace import whole_batch

    rng = np.random.default_rng(case["seed"])
    n, c, *size = case["x_shape"]
    x_shape = (n, c * groups, *size)
    kw = case["kw"]
    geometry = window_geometry(x_shape, kw["kernel_size"], kw["stride"], kw["padding"],
                               kw["dilation"])
    (kh, kwidth), (oh, ow) = geometry.kernel, geometry.out
    hq, wq = geometry.phase_size
    cols = rng.standard_normal((n, groups, c, kh, kwidth, oh, ow))
    planes = np.zeros((n, groups, kh, kwidth, c, hq, wq))
    planes[..., :oh, :ow] = cols.transpose(0, 1, 3, 4, 2, 5, 6)
    dx = np.empty(x_shape)
    with whole_batch(np, col2im_planes_plan(x_shape[1], geometry, dx.dtype), n) as buffers:
        col2im_planes_into(planes.reshape(n, groups, -1, hq * wq), geometry, groups, dx, buffers)
    want = ref.col2im(cols.reshape(n, c * groups * kh * kwidth, oh * ow), x_shape, **kw)
    assert rel_err(dx, want) <= 1e-13


def test_phase_size_is_the_padded_extent_divided_by_the_stride_rounded_up():
    from fastconv.im2col import window_geometry

    # padded 36 x 35 (32 x 31 plus 2 on each side), strides 2 and 3: ceil(36/2), ceil(35/3)
    assert window_geometry((1, 1, 32, 31), 5, (2, 3), 2, 1).phase_size == (18, 12)
    assert window_geometry((1, 1, 7, 6), 3, 1, 1, 1).phase_size == (9, 8)  # stride 1: Hp, Wp


# im2col_into / col2im_into: the caller's output, checked before anything is written

INTO_SHAPE = (2, 3, 5, 5)
INTO_GEOMETRY = window_geometry(INTO_SHAPE, 3, 1, 0, 1)  # columns (2, 3, 3, 3, 3, 3)
COLS_SHAPE = (2, 3, 3, 3, 3, 3)


def _rand(shape, seed=0, dtype=np.float64):
    return np.random.default_rng(seed).standard_normal(shape).astype(dtype)


@pytest.mark.parametrize("padding", [0, 1])
def test_into_versions_match_the_allocating_ones(padding):
    geometry = window_geometry(INTO_SHAPE, 3, 1, padding, 1)
    x = _rand(INTO_SHAPE)
    cols_shape = INTO_SHAPE[:2] + geometry.kernel + geometry.out
    cols = im2col_into(x, geometry, np.full(cols_shape, np.nan))
    np.testing.assert_array_equal(cols.reshape(2, 27, -1), fastconv.im2col(x, 3, padding=padding))
    dcols = _rand(cols_shape, seed=1)
    # a strided output: written through, not replaced
    out = np.full((4,) + INTO_SHAPE[1:], np.nan)[::2]
    assert col2im_into(dcols, geometry, out) is out
    np.testing.assert_array_equal(
        out, fastconv.col2im(dcols.reshape(2, 27, -1), INTO_SHAPE, 3, padding=padding))


@pytest.mark.parametrize("shape", [(2, 3, 7), (2, 2, 4, 5, 6)], ids=["1d", "3d"])
def test_into_versions_take_other_spatial_axes_on_the_cpu(shape):
    """The CPU passes work in the geometry's 1 to 3 axes; the 3-D convolution's tests take
    them as the reference of its kernels."""
    geometry = window_geometry(shape, 2, 2, 1, 1)
    x = _rand(shape)
    cols = im2col_into(x, geometry, np.empty(shape[:2] + geometry.kernel + geometry.out))
    for offset in geometry.kernel_offsets():  # each offset's slab of the padded input
        padded = np.pad(x, ((0, 0), (0, 0)) + ((1, 1),) * geometry.ndim)
        np.testing.assert_array_equal(cols[(slice(None),) * 2 + offset],
                                      padded[(slice(None),) * 2 + geometry.offset_slices(*offset)])
    dcols = _rand(cols.shape, seed=1)
    # the adjoint identity <im2col(x), dcols> == <x, col2im(dcols)>
    np.testing.assert_allclose(np.vdot(cols, dcols),
                               np.vdot(x, col2im_into(dcols, geometry, np.empty(shape))))


def test_col2im_into_refuses_an_output_sharing_the_columns_memory():
    buf = np.zeros(5000)
    cols = buf[:486].reshape(COLS_SHAPE)
    cols[:] = _rand(COLS_SHAPE)
    before = buf.copy()
    with pytest.raises(ValueError, match=r"out overlaps cols in memory \(shapes \(2, 3, 5, 5\) "
                                         r"and \(2, 3, 3, 3, 3, 3\)\)"):
        col2im_into(cols, INTO_GEOMETRY, buf[100:250].reshape(INTO_SHAPE))
    np.testing.assert_array_equal(buf, before)  # refused before anything was written


def test_im2col_into_refuses_an_output_sharing_the_images_memory():
    buf = np.zeros(5000)
    x = buf[:150].reshape(INTO_SHAPE)
    x[:] = _rand(INTO_SHAPE)
    before = buf.copy()
    with pytest.raises(ValueError, match=r"out overlaps x in memory \(shapes "
                                         r"\(2, 3, 3, 3, 3, 3\) and \(2, 3, 5, 5\)\)"):
        im2col_into(x, INTO_GEOMETRY, buf[100:586].reshape(COLS_SHAPE))
    with pytest.raises(ValueError, match="out overlaps x"):  # the same array, as output too
        im2col_into(x, window_geometry(INTO_SHAPE, 1, 1, 0, 1), x.reshape(2, 3, 1, 1, 5, 5))
    np.testing.assert_array_equal(buf, before)


@pytest.mark.parametrize("call, match", [
    (lambda: col2im_into(np.ones((1,) + COLS_SHAPE[1:]), INTO_GEOMETRY, np.empty(INTO_SHAPE)),
     r"cols has shape \(1, 3, 3, 3, 3, 3\) but out of shape \(2, 3, 5, 5\) with this "
     r"geometry needs \(2, 3, 3, 3, 3, 3\)"),
    (lambda: col2im_into(np.ones((2, 4, 3, 3, 3, 3)), INTO_GEOMETRY, np.empty(INTO_SHAPE)),
     r"cols has shape \(2, 4, 3, 3, 3, 3\) but out of shape \(2, 3, 5, 5\)"),
    (lambda: col2im_into(np.ones((2, 27, 9)), INTO_GEOMETRY, np.empty(INTO_SHAPE)),
     r"cols has shape \(2, 27, 9\) but out of shape"),
    (lambda: im2col_into(np.ones(INTO_SHAPE), INTO_GEOMETRY, np.empty((4,) + COLS_SHAPE[1:])),
     r"out has shape \(4, 3, 3, 3, 3, 3\) but x of shape \(2, 3, 5, 5\) with this geometry "
     r"needs \(2, 3, 3, 3, 3, 3\)"),
    (lambda: im2col_into(np.ones(INTO_SHAPE), INTO_GEOMETRY, np.empty((2, 27, 9))),
     r"out has shape \(2, 27, 9\) but x of shape \(2, 3, 5, 5\)"),
    (lambda: im2col_into(np.ones((2, 3, 6, 6)), INTO_GEOMETRY, np.empty(COLS_SHAPE)),
     r"geometry is for images of size \(5, 5\) but x has shape \(2, 3, 6, 6\)"),
    (lambda: col2im_into(np.ones(COLS_SHAPE), window_geometry((2, 3, 6, 6), 3, 1, 0, 1),
                         np.empty(INTO_SHAPE)),
     r"geometry is for images of size \(6, 6\) but out has shape \(2, 3, 5, 5\)"),
    (lambda: im2col_into(np.ones(INTO_SHAPE), window_geometry((2, 3, 4, 5, 5), 3, 1, 0, 1),
                         np.empty(COLS_SHAPE)),
     r"x must be 5-D \(N, C, D, H, W\) for a 3-D geometry, got shape \(2, 3, 5, 5\)"),
    (lambda: im2col_into(np.ones((3, 5, 5)), INTO_GEOMETRY, np.empty(COLS_SHAPE)),
     r"x must be 4-D \(N, C, H, W\) for a 2-D geometry, got shape \(3, 5, 5\)"),
    (lambda: col2im_into(np.ones(COLS_SHAPE), INTO_GEOMETRY, np.empty((2, 3, 25))),
     r"out must be 4-D \(N, C, H, W\) for a 2-D geometry, got shape \(2, 3, 25\)"),
    (lambda: im2col_into(np.ones(INTO_SHAPE), INTO_GEOMETRY,
                         np.broadcast_to(np.empty((1,) + COLS_SHAPE[1:]), COLS_SHAPE)),
     r"out \(shape \(2, 3, 3, 3, 3, 3\)\) is read-only"),
    (lambda: col2im_into(np.ones(COLS_SHAPE), INTO_GEOMETRY, np.lib.stride_tricks.as_strided(
        np.empty(INTO_SHAPE[1:]), INTO_SHAPE, (0, 200, 40, 8))),
     r"out \(shape \(2, 3, 5, 5\), strides \(0, 200, 40, 8\)\) has elements that share memory"),
], ids=["cols-batch", "cols-channels", "cols-3d", "out-batch", "out-3d", "x-size", "out-size",
        "3d-geometry", "x-3d", "out-not-4d", "out-read-only", "out-self-overlap"])
def test_into_versions_name_a_bad_shape_or_layout(call, match):
    with pytest.raises(ValueError, match=match):
        call()


@pytest.mark.parametrize("call, match", [
    (lambda: im2col_into(np.ones(INTO_SHAPE), INTO_GEOMETRY, np.empty(COLS_SHAPE, np.float32)),
     "out is float32 but x is float64: out must be float64"),
    (lambda: col2im_into(np.ones(COLS_SHAPE), INTO_GEOMETRY, np.empty(INTO_SHAPE, np.float32)),
     "out is float32 but cols is float64: out must be float64"),
    (lambda: col2im_into(np.ones(COLS_SHAPE, np.float32), INTO_GEOMETRY, np.empty(INTO_SHAPE)),
     "out is float64 but cols is float32: out must be float32"),
    (lambda: im2col_into(np.ones(INTO_SHAPE, np.int64), INTO_GEOMETRY, np.empty(COLS_SHAPE)),
     "x must be a floating-point array"),
    (lambda: col2im_into(np.ones(COLS_SHAPE, np.int64), INTO_GEOMETRY, np.empty(INTO_SHAPE)),
     "cols must be a floating-point array"),
    (lambda: im2col_into(np.ones(INTO_SHAPE), INTO_GEOMETRY, [0.0] * 486),
     "out must be a NumPy or CuPy array, got list"),
    (lambda: im2col_into(np.ones(INTO_SHAPE), (3, 3), np.empty(COLS_SHAPE)),
     "geometry must be a WindowGeometry"),
], ids=["im2col-dtype", "col2im-dtype", "col2im-dtype-32", "x-int", "cols-int", "out-list",
        "geometry-tuple"])
def test_into_versions_name_a_bad_type_or_dtype(call, match):
    with pytest.raises(TypeError, match=match):
        call()


def test_a_refused_call_writes_nothing():
    out = np.full((2, 3, 5, 5), 7.0)
    with pytest.raises(ValueError):
        col2im_into(np.ones((1,) + COLS_SHAPE[1:]), INTO_GEOMETRY, out)
    assert (out == 7.0).all()


def test_into_versions_on_the_gpu_path_refuse_mixed_devices_and_match_the_cpu(monkeypatch):
    """Device arrays (the recording CuPy stand-in, emulated kernels) go through the same
    checks to the CUDA wrappers."""
    from cuda_emu.emu import require_kernel_tools
    from device_counter import counting, device

    require_kernel_tools("g++")
    geometry = window_geometry(INTO_SHAPE, 3, 2, 1, 1)
    cols_shape = INTO_SHAPE[:2] + geometry.kernel + geometry.out
    x, dcols = _rand(INTO_SHAPE, dtype=np.float32), _rand(cols_shape, 1, np.float32)
    want_cols = im2col_into(x, geometry, np.empty(cols_shape, np.float32))
    want_dx = col2im_into(dcols, geometry, np.empty(INTO_SHAPE, np.float32))
    with counting(monkeypatch) as counts:
        with pytest.raises(ValueError, match=r"out is a numpy array but x is a cupy one"):
            im2col_into(device(x), geometry, np.empty(cols_shape, np.float32))
        with pytest.raises(ValueError, match=r"out is a cupy array but cols is a numpy one"):
            col2im_into(dcols, geometry, device(np.empty(INTO_SHAPE, np.float32)))
        with pytest.raises(TypeError, match="out is float64 but x is float32"):
            im2col_into(device(x), geometry, device(np.empty(cols_shape)))
        volume = window_geometry((1, 1, 4, 4, 4), 2, 1, 0, 1)
        with pytest.raises(ValueError, match=r"on the GPU the geometry must be 2-D, for x"):
            im2col_into(device(np.ones((1, 1, 4, 4, 4))), volume,
                        device(np.empty((1, 1, 2, 2, 2, 3, 3, 3))))
        buf = device(np.zeros(4000, np.float32))
        with pytest.raises(ValueError, match="out overlaps cols"):
            col2im_into(buf[:dcols.size].reshape(cols_shape), geometry,
                        buf[10:10 + x.size].reshape(INTO_SHAPE))
        cols = im2col_into(device(x), geometry, device(np.empty(cols_shape, np.float32)))
        dx = col2im_into(device(dcols), geometry, device(np.empty(INTO_SHAPE, np.float32)))
    assert [what for what, launches, _ in counts.log if what == "kernel"] == ["kernel"] * 2
    np.testing.assert_array_equal(np.asarray(cols), want_cols)
    np.testing.assert_allclose(np.asarray(dx), want_dx, rtol=1e-6, atol=1e-6)
