"""im2col / col2im against the loop reference, the adjoint identity, dtype and layout."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import fastconv
from fastconv import reference as ref
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
