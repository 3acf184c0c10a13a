"""fastconv.functional conv2d against PyTorch (hypothesis), the loop reference, and layout rules."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import fastconv
import fastconv.functional as F
import torch_oracle
from conftest import require_torch
from fastconv import reference as ref
from fastconv.shapes import conv_output_size
from torch_oracle import hypothesis_settings, rel_err

DTYPES = [np.float64, np.float32]
TOL = {np.float64: 1e-12, np.float32: 1e-5}  # vs the loop reference (accumulates in double)


@st.composite
def conv_cases(draw):
    """Geometry + seed of a conv2d case: batch, groups (depthwise too), every padding form."""
    n = draw(st.integers(1, 3))
    groups = draw(st.sampled_from([1, 1, 2, 3]))
    depthwise = groups > 1 and draw(st.booleans())
    cin = groups * (1 if depthwise else draw(st.integers(1, 3)))
    fout = groups * draw(st.integers(1, 3))
    kernel = (draw(st.integers(1, 4)), draw(st.integers(1, 4)))
    dilation = (draw(st.sampled_from([1, 1, 2, 3])), draw(st.sampled_from([1, 1, 2, 3])))
    mode = draw(st.sampled_from(["int", "pair", "valid", "same"]))
    if mode == "same":
        stride, padding = (1, 1), "same"
        pad_totals = [d * (k - 1) for k, d in zip(kernel, dilation)]
    else:
        stride = (draw(st.integers(1, 5)), draw(st.integers(1, 5)))  # > kernel too
        if mode == "int":
            padding = draw(st.integers(0, 3))
            pads = (padding, padding)
        elif mode == "pair":
            padding = pads = (draw(st.integers(0, 3)), draw(st.integers(0, 3)))
        else:
            padding, pads = "valid", (0, 0)
        pad_totals = [2 * p for p in pads]
    # smallest size the dilated kernel fits in (extra == 0: kernel equals the padded input)
    size = [max(1, d * (k - 1) + 1 - t) + draw(st.integers(0, 5))
            for k, d, t in zip(kernel, dilation, pad_totals)]
    return dict(x_shape=(n, cin, *size), w_shape=(fout, cin // groups, *kernel),
                bias=draw(st.booleans()), seed=draw(st.integers(0, 2**32 - 1)),
                kw=dict(stride=stride, padding=padding, dilation=dilation, groups=groups))


def _arrays(case, dtype):
    rng = np.random.default_rng(case["seed"])
    x = rng.standard_normal(case["x_shape"]).astype(dtype)
    w = rng.standard_normal(case["w_shape"]).astype(dtype)
    b = rng.standard_normal(case["w_shape"][0]).astype(dtype) if case["bias"] else None
    return rng, x, w, b


def _compare_with_torch(case):
    """Forward and all gradients of one case, in float64 and float32, against torch."""
    torch = require_torch()
    for dtype in DTYPES:
        rng, x, w, b = _arrays(case, dtype)
        t_out, dout, t_dx, t_dw, t_db = torch_oracle.conv2d(
            torch, x, w, b, lambda s: rng.standard_normal(s).astype(dtype), **case["kw"])
        out, cache = F.conv2d_forward(x, w, b, **case["kw"])
        dx, dw, db = F.conv2d_backward(dout, cache)
        pairs = dict(out=(out, t_out), dx=(dx, t_dx), dw=(dw, t_dw))
        if b is None:
            assert db is None
        else:
            pairs["db"] = (db, t_db)
        for name, (got, _) in pairs.items():
            assert got.dtype == np.dtype(dtype), f"{name} is {got.dtype}, x was {np.dtype(dtype)}"
        torch_oracle.check("conv2d", dtype, pairs)
    torch_oracle.count_case("conv2d")


@hypothesis_settings(150)
@given(case=conv_cases())
def test_conv2d_matches_torch(case):
    _compare_with_torch(case)


def _columns_per_image(case, itemsize):
    """Bytes of one image's im2col columns: C*KH*KW rows by OH*OW output positions."""
    _, cin, *size = case["x_shape"]
    _, _, *kernel = case["w_shape"]
    kw = case["kw"]
    if kw["padding"] == "same":
        out = size
    else:
        pads = {"valid": (0, 0)}.get(kw["padding"], kw["padding"])
        pads = (pads, pads) if isinstance(pads, int) else pads
        out = [conv_output_size(*args) for args in zip(size, kernel, kw["stride"], pads, kw["dilation"])]
    return cin * kernel[0] * kernel[1] * out[0] * out[1] * itemsize


@pytest.mark.filterwarnings("ignore:the column buffer:UserWarning")
@hypothesis_settings(40)
@given(case=conv_cases(), images=st.sampled_from([0.5, 1, 1.5, 2, 3, 4]))
def test_conv2d_matches_torch_under_any_workspace_limit(case, images):
    """A limit of a few images' columns chunks the batch (the forward and the backward may
    chunk differently); torch must still agree."""
    limit = max(1, int(images * _columns_per_image(case, 4)))
    with fastconv.workspace_limit(limit):
        _compare_with_torch(case)


def _check_against_reference(x, w, b, dout_seed=0, **kw):
    out, cache = F.conv2d_forward(x, w, b, **kw)
    r_out, r_cache = ref.conv2d_forward(x, w, b, **kw)
    dout = np.random.default_rng(dout_seed).standard_normal(r_out.shape).astype(x.dtype)
    grads = F.conv2d_backward(dout, cache)
    r_grads = ref.conv2d_backward(dout, r_cache)
    tol = TOL[x.dtype.type]
    for name, got, want in zip(("out", "dx", "dw", "db"), (out, *grads), (r_out, *r_grads)):
        if want is None:
            assert got is None, f"{name} should be None without bias"
            continue
        assert got.dtype == x.dtype, f"{name} is {got.dtype}, x was {x.dtype}"
        assert rel_err(got, want) <= tol, f"{name}: {rel_err(got, want):.3g} vs the loop reference"


@hypothesis_settings(25)
@given(case=conv_cases())
def test_conv2d_matches_reference(case):
    _, x, w, b = _arrays(case, np.float64)
    _check_against_reference(x, w, b, **case["kw"])


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("x_shape, w_shape, groups", [
    ((3, 5, 4, 7), (6, 5, 1, 1), 1),
    ((2, 4, 1, 1), (2, 4, 1, 1), 1),
    ((2, 6, 3, 5), (4, 3, 1, 1), 2),
    ((2, 4, 3, 3), (4, 1, 1, 1), 4),
])
def test_pointwise_1x1_fast_path_matches_reference(dtype, x_shape, w_shape, groups):
    rng = np.random.default_rng(7)
    x = rng.standard_normal(x_shape).astype(dtype)
    w = rng.standard_normal(w_shape).astype(dtype)
    b = rng.standard_normal(w_shape[0]).astype(dtype)
    _check_against_reference(x, w, b, groups=groups)
    _check_against_reference(x, w, None, groups=groups)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("x_shape, w_shape, kw", [
    # C*KH*KW > F: the backward sums columns on stride-phase planes
    ((3, 4, 7, 6), (3, 4, 3, 3), dict(padding=1)),
    ((2, 6, 9, 8), (3, 2, 2, 3), dict(padding="same", dilation=(2, 1), groups=3)),
    ((2, 3, 6, 7), (3, 1, 3, 2), dict(padding=(2, 0), groups=3)),  # depthwise
    ((2, 5, 5, 5), (2, 5, 3, 3), dict(padding=0, dilation=2)),
    ((2, 4, 9, 8), (3, 4, 3, 3), dict(padding=1, stride=(2, 1))),
    ((2, 3, 11, 10), (4, 3, 3, 2), dict(padding=(1, 2), stride=(3, 2), dilation=(1, 2))),
    ((2, 3, 7, 7), (2, 3, 1, 1), dict(padding=1, stride=2)),  # phases no tap reaches
    ((1, 4, 12, 9), (4, 2, 5, 4), dict(padding=2, stride=(2, 3), groups=2)),
    # C*KH*KW <= F: slab adds
    ((2, 1, 8, 8), (16, 1, 3, 3), dict(padding=1)),
    ((2, 1, 9, 8), (12, 1, 2, 3), dict(padding=1, stride=(2, 3))),
])
def test_both_col2im_paths_of_the_backward_match_reference(dtype, x_shape, w_shape, kw):
    """The CPU backward sums plane-shaped columns (more columns than dout rows) or slabs;
    each must agree with the loops, with and without bias, chunked or not."""
    rng = np.random.default_rng(12)
    x = rng.standard_normal(x_shape).astype(dtype)
    w = rng.standard_normal(w_shape).astype(dtype)
    b = rng.standard_normal(w_shape[0]).astype(dtype)
    _check_against_reference(x, w, b, **kw)
    with fastconv.workspace_limit(1):  # one image per chunk (warns: below one image's columns)
        with pytest.warns(UserWarning, match="column buffer"):
            _check_against_reference(x, w, None, **kw)


def test_a_nan_weight_poisons_only_the_inputs_its_tap_reaches():
    """NaN in w[1, 2, 0, 0] reaches dx[:, 2, :OH, :OW] only (padding 0), as in the loops."""
    rng = np.random.default_rng(13)
    x, w = rng.standard_normal((2, 4, 6, 6)), rng.standard_normal((3, 4, 3, 3))
    w[1, 2, 0, 0] = np.nan
    out, cache = F.conv2d_forward(x, w)
    dout = rng.standard_normal(out.shape)
    dx = F.conv2d_backward(dout, cache)[0]
    r_dx = ref.conv2d_backward(dout, ref.conv2d_forward(x, w)[1])[0]
    assert np.isnan(dx[:, 2, :4, :4]).all()
    np.testing.assert_array_equal(np.isnan(dx), np.isnan(r_dx))
    np.testing.assert_allclose(dx, r_dx, rtol=1e-12, atol=0, equal_nan=True)


def test_1x1_with_stride_or_padding_is_not_the_fast_path_and_still_right():
    rng = np.random.default_rng(8)
    x, w = rng.standard_normal((2, 3, 5, 6)), rng.standard_normal((4, 3, 1, 1))
    _check_against_reference(x, w, None, stride=2)
    _check_against_reference(x, w, None, padding=1)


def _views(dtype=np.float64):
    """x, w, b, dout as non-contiguous views (transposed and sliced) of ``dtype`` arrays."""
    rng = np.random.default_rng(9)
    x = rng.standard_normal((7, 2, 3, 8)).astype(dtype).transpose(2, 1, 3, 0)[:, :, ::2, 1:]
    w = rng.standard_normal((3, 3, 2, 4)).astype(dtype).transpose(3, 2, 1, 0)  # (4, 2, 3, 3)
    b = rng.standard_normal(8).astype(dtype)[::2]
    dout = rng.standard_normal((3, 4, 7, 3)).astype(dtype)[:, :, ::2, :]  # the output's shape
    return x, w, b, dout


@pytest.mark.parametrize("dtype", DTYPES)
def test_noncontiguous_inputs_give_the_contiguous_result(dtype):
    x, w, b, dout = _views(dtype)
    for a in (x, w, b, dout):
        assert not a.flags.c_contiguous
    kw = dict(stride=(1, 2), padding=1, dilation=(1, 1))
    out, cache = F.conv2d_forward(x, w, b, **kw)
    assert out.shape[2:] == dout.shape[2:], "test set-up: dout must match the output"
    grads = F.conv2d_backward(dout, cache)
    c_out, c_cache = F.conv2d_forward(*(np.ascontiguousarray(a) for a in (x, w, b)), **kw)
    c_grads = F.conv2d_backward(np.ascontiguousarray(dout), c_cache)
    for got, want in zip((out, *grads), (c_out, *c_grads)):
        assert got.flags.c_contiguous
        assert got.dtype == np.dtype(dtype)
        np.testing.assert_allclose(got, want, rtol=TOL[dtype], atol=0)


def test_noncontiguous_inputs_match_reference():
    x, w, b, dout = _views()
    kw = dict(stride=(1, 2), padding=1)
    out, cache = F.conv2d_forward(x, w, b, **kw)
    dx, dw, db = F.conv2d_backward(dout, cache)
    r_out, r_cache = ref.conv2d_forward(x, w, b, **kw)
    for got, want in zip((out, dx, dw, db), (r_out, *ref.conv2d_backward(dout, r_cache))):
        assert rel_err(got, want) <= 1e-12


def test_float32_preserved_and_outputs_c_contiguous():
    rng = np.random.default_rng(10)
    x = rng.standard_normal((2, 4, 6, 5)).astype(np.float32)
    w = rng.standard_normal((6, 2, 3, 2)).astype(np.float32)
    b = rng.standard_normal(6).astype(np.float32)
    out, cache = F.conv2d_forward(x, w, b, stride=2, padding=1, groups=2)
    grads = F.conv2d_backward(np.ones_like(out), cache)
    for a in (out, *grads):
        assert a.dtype == np.float32 and a.flags.c_contiguous


def test_backward_twice_gives_identical_results_and_leaves_inputs_untouched():
    rng = np.random.default_rng(11)
    x, w, b = rng.standard_normal((2, 3, 5, 5)), rng.standard_normal((4, 3, 3, 3)), rng.standard_normal(4)
    copies = [a.copy() for a in (x, w, b)]
    out, cache = F.conv2d_forward(x, w, b, padding=1)
    dout = rng.standard_normal(out.shape)
    first = F.conv2d_backward(dout, cache)
    second = F.conv2d_backward(dout, cache)
    for g1, g2 in zip(first, second):
        np.testing.assert_array_equal(g1, g2)
    for a, c in zip((x, w, b), copies):
        np.testing.assert_array_equal(a, c)


@pytest.mark.parametrize("kernel, groups", [((3, 3), 1), ((1, 1), 1), ((3, 3), 2)])
def test_float16_weight_and_bias_gradients_sum_the_batch_in_float32(kernel, groups):
    """A float16 running sum stalls at 2048 (2048 + 1 rounds to 2048): db was 2048 for
    3000 images of ones. PyTorch's db is exact here; the sums must run in float32."""
    x = np.ones((3000, 2) + kernel, np.float16)
    w = np.ones((2, 2 // groups) + kernel, np.float16)
    out, cache = F.conv2d_forward(x, w, np.zeros(2, np.float16), groups=groups)
    dx, dw, db = F.conv2d_backward(np.ones_like(out), cache)
    assert dw.dtype == db.dtype == np.float16
    np.testing.assert_array_equal(db, [3000, 3000])
    np.testing.assert_array_equal(dw, np.full(w.shape, 3000, np.float16))


@pytest.mark.parametrize("filters", [1, 4])
@pytest.mark.parametrize("padding", [0, (0, 2)])
def test_float16_input_gradient_sums_the_windows_in_float32(torch, filters, padding):
    """dx adds each input's taps over the windows covering it: a float16 running sum of
    4e4 + 4e4 overflows to inf before -4e4 - 4e4 cancels it, where torch's sum (in float32,
    rounded once, as the GPU's col2im) is 0. One filter sums stride-phase planes, four
    (three of them zero) slabs; the padding adds them into a padded image first."""
    width = 7 if padding == 0 else 3
    x = np.ones((1, 1, 1, width), np.float16)
    w = np.zeros((filters, 1, 1, 4), np.float16)
    w[0] = 1
    dout = np.zeros((1, filters, 1, 4), np.float16)
    dout[0, 0, 0] = [4e4, 4e4, -4e4, -4e4]
    _, _, t_dx, _, _ = torch_oracle.conv2d(torch, x.astype(np.float32), w.astype(np.float32),
                                           None, lambda s: dout.astype(np.float32),
                                           padding=padding)
    _, cache = F.conv2d_forward(x, w, padding=padding)
    dx, _, _ = F.conv2d_backward(dout, cache)
    assert dx.dtype == np.float16
    np.testing.assert_array_equal(dx, t_dx.astype(np.float16))


@pytest.mark.parametrize("kernel, padding, groups", [((3, 2), 1, 1), ((1, 1), 0, 1), ((1, 1), 0, 3)])
def test_empty_batch_gives_empty_results_like_torch(torch, kernel, padding, groups):
    """Im2col and the 1x1 path (the input is its own column matrix) with no images."""
    rng = np.random.default_rng(12)
    x = np.zeros((0, 3, 7, 6))
    w, b = rng.standard_normal((6, 3 // groups) + kernel), rng.standard_normal(6)
    t_out, dout, t_dx, t_dw, t_db = torch_oracle.conv2d(torch, x, w, b, np.zeros,
                                                        padding=padding, groups=groups)
    out, cache = F.conv2d_forward(x, w, b, padding=padding, groups=groups)
    dx, dw, db = F.conv2d_backward(dout, cache)
    assert out.shape == t_out.shape and dx.shape == t_dx.shape
    np.testing.assert_array_equal(dw, t_dw)  # all zero: no image contributed
    np.testing.assert_array_equal(db, t_db)


# ---------------------------------------------------------------- no gradient for the input
@pytest.mark.parametrize("x_shape, w_shape, kw", [
    ((3, 4, 9, 8), (5, 4, 3, 3), dict(padding=1)),                 # im2col, slab col2im
    ((3, 4, 9, 8), (2, 4, 3, 3), dict(stride=2, padding=1)),       # im2col, phase planes
    ((3, 6, 7, 7), (6, 2, 3, 3), dict(padding=1, groups=3)),       # groups
    ((3, 4, 5, 6), (5, 4, 1, 1), dict()),                          # pointwise 1x1
])
def test_without_the_input_gradient_dw_and_db_are_unchanged(x_shape, w_shape, kw):
    rng = np.random.default_rng(11)
    x, w, b = rng.standard_normal(x_shape), rng.standard_normal(w_shape), rng.standard_normal(w_shape[0])
    out, cache = F.conv2d_forward(x, w, b, **kw)
    dout = rng.standard_normal(out.shape)
    _, dw, db = F.conv2d_backward(dout, cache)
    dx, dw_only, db_only = F.conv2d_backward(dout, cache, needs_input_grad=False)
    assert dx is None
    np.testing.assert_array_equal(dw_only, dw)
    np.testing.assert_array_equal(db_only, db)
    with pytest.raises(TypeError, match="needs_input_grad must be a bool"):
        F.conv2d_backward(dout, cache, needs_input_grad="no")


def test_the_first_layer_of_the_conv_models_computes_no_input_gradient():
    from fastconv import nn
    model = nn.vgg_cnn((1, 8, 8), 3, widths=(2,), dtype=np.float64, seed=0)
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    assert [c.needs_input_grad for c in convs] == [False, True]
    x = np.random.default_rng(0).standard_normal((2, 1, 8, 8))
    assert model.backward(np.ones_like(model.forward(x))) is None
    model[0].needs_input_grad = True
    dx = model.backward(np.ones_like(model.forward(x)))
    assert dx.shape == x.shape
    net = nn.ThreeLayerConvNet(input_dim=(1, 8, 8), num_filters=2, hidden_dim=3, seed=0,
                               dtype=np.float64)
    assert net.backward(np.ones_like(net.forward(x))) is None
    net.needs_input_grad = True
    assert net.backward(np.ones_like(net.forward(x))).shape == x.shape


@pytest.mark.parametrize("groups", [1, 2])
def test_float16_weight_gradient_partials_above_65504_stay_finite(groups):
    """Two images whose dW partials are up to +-80000 each: their sum is 0, never inf - inf."""
    x = np.full((2, 2, 4, 4), 100.0, np.float16)
    dout = np.full((2, 2, 4, 4), 50.0, np.float16)
    dout[1] *= -1  # image 1 cancels image 0
    w = np.ones((2, 2 // groups, 3, 3), np.float16)
    _, cache = F.conv2d_forward(x, w, padding=1, groups=groups)
    _, dw, _ = F.conv2d_backward(dout, cache)
    assert np.isfinite(dw).all() and np.abs(dw).max() == 0
