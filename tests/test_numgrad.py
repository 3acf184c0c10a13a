"""Analytic gradients of fastconv.functional against central differences, in float64."""

import numpy as np
import pytest

import fastconv.functional as F

STEP = 1e-5
TOL = 1e-7


def numerical_gradient(loss, a, step=STEP):
    """Central-difference gradient of the scalar ``loss()`` w.r.t. array ``a`` (perturbed in place)."""
    grad = np.zeros_like(a)
    for idx in np.ndindex(a.shape):
        old = a[idx]
        a[idx] = old + step
        up = loss()
        a[idx] = old - step
        down = loss()
        a[idx] = old
        grad[idx] = (up - down) / (2 * step)
    return grad


def assert_gradient(analytic, numeric, name):
    scale = max(np.abs(numeric).max(), np.abs(analytic).max(), 1e-300)
    err = np.abs(analytic - numeric).max() / scale
    assert err < TOL, f"d{name}: relative error {err:.3g} vs central differences"


@pytest.mark.parametrize("x_shape, w_shape, kw", [
    ((2, 4, 5, 6), (6, 2, 3, 2), dict(stride=(2, 1), padding=1, dilation=(2, 1), groups=2)),
    ((2, 3, 5, 5), (6, 1, 2, 3), dict(padding="same", dilation=(1, 2), groups=3)),  # depthwise
    ((3, 2, 4, 4), (3, 2, 3, 3), dict(stride=3, padding=(2, 0))),
])
def test_conv2d_gradients(x_shape, w_shape, kw):
    rng = np.random.default_rng(0)
    x, w, b = rng.standard_normal(x_shape), rng.standard_normal(w_shape), rng.standard_normal(w_shape[0])
    out, cache = F.conv2d_forward(x, w, b, **kw)
    dout = rng.standard_normal(out.shape)
    dx, dw, db = F.conv2d_backward(dout, cache)

    def loss():
        return float(np.sum(F.conv2d_forward(x, w, b, **kw)[0] * dout))

    for name, analytic, a in (("x", dx, x), ("w", dw, w), ("b", db, b)):
        assert_gradient(analytic, numerical_gradient(loss, a), name)


def _pool_gradient_check(forward, backward, x, kw):
    rng = np.random.default_rng(1)
    out, cache = forward(x, **kw)
    dout = rng.standard_normal(out.shape)
    dx = backward(dout, cache)
    assert_gradient(dx, numerical_gradient(lambda: float(np.sum(forward(x, **kw)[0] * dout)), x), "x")


@pytest.mark.parametrize("kw", [
    dict(kernel_size=3, stride=1, padding=1),  # overlapping windows
    dict(kernel_size=(2, 3), stride=(1, 2), padding=(1, 1), dilation=(2, 1), ceil_mode=True),
    dict(kernel_size=2),
])
def test_max_pool2d_gradient_on_well_separated_values(kw):
    shape = (2, 2, 6, 7)
    size = int(np.prod(shape))
    x = (np.random.default_rng(2).permutation(size) * 0.1).reshape(shape)  # 0.1 apart >> STEP
    _pool_gradient_check(F.max_pool2d_forward, F.max_pool2d_backward, x, kw)


@pytest.mark.parametrize("kw", [
    dict(kernel_size=3, stride=2, padding=1, ceil_mode=True),
    dict(kernel_size=3, stride=2, padding=1, ceil_mode=True, count_include_pad=False),
    dict(kernel_size=(2, 3), stride=(1, 2)),
])
def test_avg_pool2d_gradient(kw):
    x = np.random.default_rng(3).standard_normal((2, 2, 6, 7))
    _pool_gradient_check(F.avg_pool2d_forward, F.avg_pool2d_backward, x, kw)


@pytest.mark.parametrize("output_size", [(3, 4), 1, (7, 9)])
def test_adaptive_avg_pool2d_gradient(output_size):
    x = np.random.default_rng(4).standard_normal((2, 2, 6, 7))
    _pool_gradient_check(F.adaptive_avg_pool2d_forward, F.adaptive_avg_pool2d_backward, x,
                         dict(output_size=output_size))
