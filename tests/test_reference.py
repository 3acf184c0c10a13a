"""The loop oracle (fastconv.reference) checked against PyTorch, so the oracle itself is trusted.

Small hand-picked cases covering every option; float64 to 1e-12 relative,
float32 to 1e-5 with the dtype preserved.
"""

import numpy as np
import pytest

from fastconv import reference as ref
from torch_oracle import adaptive_avg_pool2d, avg_pool2d, conv2d, max_pool2d, rel_err

TOL = {np.float64: 1e-12, np.float32: 1e-5}
DTYPES = [np.float64, np.float32]


def _assert_close(dtype, **pairs):
    for name, (got, want) in pairs.items():
        assert got.dtype == np.dtype(dtype), f"{name}: dtype {got.dtype}, expected {np.dtype(dtype)}"
        err = rel_err(got, want)
        assert err <= TOL[dtype], f"{name}: relative error {err:.3g} vs PyTorch"


def _dout_fn(rng, dtype):
    return lambda shape: rng.standard_normal(shape).astype(dtype)


CONV_CASES = [
    # x shape, w shape, bias, kwargs
    ((2, 3, 5, 6), (4, 3, 3, 2), True, {}),
    ((2, 3, 7, 5), (2, 3, 3, 3), False, dict(stride=2, padding=1)),
    ((1, 2, 6, 7), (3, 2, 2, 3), True, dict(stride=(3, 2), padding=(2, 1), dilation=(2, 1))),
    ((2, 4, 6, 6), (6, 2, 3, 3), True, dict(padding=1, groups=2)),
    ((2, 3, 5, 5), (6, 1, 3, 3), True, dict(padding=1, groups=3)),  # depthwise, multiplier 2
    ((2, 2, 6, 5), (3, 2, 4, 2), True, dict(padding="same", dilation=(1, 2))),  # odd total pad
    ((2, 2, 4, 5), (3, 2, 2, 2), False, dict(padding="valid", stride=3)),
    ((3, 1, 1, 1), (2, 1, 1, 1), True, {}),  # 1x1 input
    ((2, 2, 3, 3), (2, 2, 5, 5), True, dict(padding=1)),  # kernel == padded input
    ((2, 2, 4, 4), (2, 2, 2, 2), False, dict(stride=5, padding=1)),  # stride > kernel
]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("x_shape, w_shape, bias, kw", CONV_CASES)
def test_reference_conv2d_matches_torch(torch, dtype, x_shape, w_shape, bias, kw):
    rng = np.random.default_rng(0)
    x = rng.standard_normal(x_shape).astype(dtype)
    w = rng.standard_normal(w_shape).astype(dtype)
    b = rng.standard_normal(w_shape[0]).astype(dtype) if bias else None
    t_out, dout, t_dx, t_dw, t_db = conv2d(torch, x, w, b, _dout_fn(rng, dtype), **kw)
    out, cache = ref.conv2d_forward(x, w, b, **kw)
    dx, dw, db = ref.conv2d_backward(dout, cache)
    _assert_close(dtype, out=(out, t_out), dx=(dx, t_dx), dw=(dw, t_dw))
    if bias:
        _assert_close(dtype, db=(db, t_db))
    else:
        assert db is None


MAX_CASES = [
    ((2, 3, 6, 7), dict(kernel_size=2)),
    ((2, 2, 7, 6), dict(kernel_size=(3, 2), stride=(2, 1), padding=(1, 1))),
    ((1, 2, 7, 8), dict(kernel_size=3, stride=2, padding=1, dilation=2)),
    ((2, 2, 6, 7), dict(kernel_size=3, stride=2, ceil_mode=True)),
    ((2, 2, 5, 5), dict(kernel_size=2, stride=3, padding=1, ceil_mode=True)),
    ((2, 1, 1, 1), dict(kernel_size=1)),
    ((2, 2, 3, 4), dict(kernel_size=(5, 6), stride=1, padding=(1, 1))),
]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("x_shape, kw", MAX_CASES)
def test_reference_max_pool2d_matches_torch(torch, dtype, x_shape, kw):
    rng = np.random.default_rng(1)
    size = int(np.prod(x_shape))
    x = (rng.permutation(size) - size / 2).reshape(x_shape).astype(dtype) * -0.25
    t_out, t_idx, dout, t_dx = max_pool2d(torch, x, _dout_fn(rng, dtype), **kw)
    out, idx, cache = ref.max_pool2d_forward(x, return_indices=True, **kw)
    dx = ref.max_pool2d_backward(dout, cache)
    _assert_close(dtype, out=(out, t_out), dx=(dx, t_dx))
    assert idx.dtype == np.int64
    np.testing.assert_array_equal(idx, t_idx)


AVG_CASES = [
    ((2, 3, 6, 7), dict(kernel_size=2)),
    ((2, 2, 7, 6), dict(kernel_size=(3, 2), stride=(2, 1), padding=(1, 1))),
    ((2, 2, 7, 6), dict(kernel_size=(3, 2), stride=(2, 1), padding=(1, 1), count_include_pad=False)),
    ((2, 2, 6, 7), dict(kernel_size=3, stride=2, padding=1, ceil_mode=True)),
    ((2, 2, 6, 7), dict(kernel_size=3, stride=2, padding=1, ceil_mode=True, count_include_pad=False)),
    ((2, 2, 5, 5), dict(kernel_size=4, stride=3, padding=2, ceil_mode=True)),
    ((2, 1, 1, 1), dict(kernel_size=1)),
]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("x_shape, kw", AVG_CASES)
def test_reference_avg_pool2d_matches_torch(torch, dtype, x_shape, kw):
    rng = np.random.default_rng(2)
    x = rng.standard_normal(x_shape).astype(dtype)
    t_out, dout, t_dx = avg_pool2d(torch, x, _dout_fn(rng, dtype), **kw)
    out, cache = ref.avg_pool2d_forward(x, **kw)
    dx = ref.avg_pool2d_backward(dout, cache)
    _assert_close(dtype, out=(out, t_out), dx=(dx, t_dx))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("x_shape, output_size", [
    ((2, 3, 7, 5), 1), ((2, 2, 7, 5), (3, 2)), ((2, 2, 5, 6), 4), ((1, 2, 3, 2), (5, 4)),
])
def test_reference_adaptive_avg_pool2d_matches_torch(torch, dtype, x_shape, output_size):
    rng = np.random.default_rng(3)
    x = rng.standard_normal(x_shape).astype(dtype)
    t_out, dout, t_dx = adaptive_avg_pool2d(torch, x, _dout_fn(rng, dtype), output_size)
    out, cache = ref.adaptive_avg_pool2d_forward(x, output_size)
    dx = ref.adaptive_avg_pool2d_backward(dout, cache)
    _assert_close(dtype, out=(out, t_out), dx=(dx, t_dx))


@pytest.mark.parametrize("kw", [
    dict(kernel_size=3), dict(kernel_size=(2, 3), stride=(2, 1), padding=(1, 0), dilation=(1, 2)),
])
def test_reference_im2col_matches_torch_unfold(torch, kw):
    x = np.random.default_rng(4).standard_normal((2, 3, 6, 5))
    want = torch.nn.functional.unfold(torch.from_numpy(x), **kw).numpy()  # same layout
    got = ref.im2col(x, **kw)
    assert rel_err(got, want) <= 1e-15


def test_reference_col2im_matches_torch_fold(torch):
    kw = dict(kernel_size=(3, 2), stride=(1, 2), padding=(1, 1), dilation=(2, 1))
    x_shape = (2, 3, 6, 5)
    out_hw = [(6 + 2 - 2 * 2 - 1) // 1 + 1, (5 + 2 - 1 - 1) // 2 + 1]
    cols = np.random.default_rng(5).standard_normal((2, 3 * 3 * 2, out_hw[0] * out_hw[1]))
    want = torch.nn.functional.fold(torch.from_numpy(cols), output_size=x_shape[2:], **kw).numpy()
    got = ref.col2im(cols, x_shape, **kw)
    assert rel_err(got, want) <= 1e-14


def test_reference_max_pool_nan_propagates_and_ties_go_first():
    x = np.array([[[[1.0, 3.0, 3.0, np.nan], [3.0, 0.0, 2.0, 5.0]]]])
    out, idx, cache = ref.max_pool2d_forward(x, 2, return_indices=True)
    assert out[0, 0, 0, 0] == 3.0 and idx[0, 0, 0, 0] == 1  # first of the three 3s
    assert np.isnan(out[0, 0, 0, 1]) and idx[0, 0, 0, 1] == 3
    dx = ref.max_pool2d_backward(np.ones_like(out), cache)
    assert dx[0, 0, 0, 1] == 1.0 and dx[0, 0, 1, 0] == 0.0 and dx[0, 0, 0, 3] == 1.0


def test_reference_max_pool_all_negative_with_padding_is_not_zero():
    x = -np.arange(1.0, 10.0).reshape(1, 1, 3, 3)
    out, _ = ref.max_pool2d_forward(x, 2, stride=2, padding=1)
    assert (out < 0).all()


def test_reference_rejects_foreign_cache():
    _, cache = ref.avg_pool2d_forward(np.zeros((1, 1, 2, 2)), 2)
    with pytest.raises(TypeError, match="cache comes from"):
        ref.conv2d_backward(np.zeros((1, 1, 1, 1)), cache)


@pytest.mark.parametrize("kw", [dict(kernel_size=2), dict(kernel_size=3, stride=1, padding=1)])
def test_reference_max_pool_of_minus_infinity_picks_the_first_input_cell(torch, kw):
    x = np.full((1, 2, 4, 4), -np.inf)
    x[0, 0, 3, 3] = 1.0
    t_out, t_idx, dout, t_dx = max_pool2d(torch, x, _dout_fn(np.random.default_rng(6), np.float64), **kw)
    out, idx, cache = ref.max_pool2d_forward(x, return_indices=True, **kw)
    np.testing.assert_array_equal(out, t_out)
    np.testing.assert_array_equal(idx, t_idx)
    np.testing.assert_allclose(ref.max_pool2d_backward(dout, cache), t_dx, rtol=1e-12)
