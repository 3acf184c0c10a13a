"""fastconv.gradcheck: the numerical core against closed-form derivatives, planted bugs it
must catch, and relative errors below 1e-6 for the conv/pool ops, every nn layer and
whole models (course interface)."""

from functools import partial

import numpy as np
import pytest

import fastconv.functional as F
from fastconv import gradcheck, nn

TOL = 1e-6


def randn(shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape)


# ------------------------------------------------------------------ the numerical core

def test_numerical_gradient_matches_closed_form_and_restores_x():
    x = randn((3, 4))
    before = x.copy()
    num = gradcheck.numerical_gradient(lambda: (np.sin(x) * x).sum(), x)
    np.testing.assert_allclose(num, np.cos(before) * before + np.sin(before), rtol=1e-8,
                               atol=1e-10)
    np.testing.assert_array_equal(x, before)


def test_directional_derivatives_match_closed_form():
    x = randn((50, 40))
    before = x.copy()
    derivatives, vs = gradcheck.numerical_gradient(lambda: (x ** 3).sum(), x, directions=3)
    assert len(derivatives) == len(vs) == 3
    for d, v in zip(derivatives, vs):
        assert np.isclose(np.linalg.norm(v), 1.0)
        assert d == pytest.approx(float((3 * before ** 2 * v).sum()), rel=1e-7)
    np.testing.assert_array_equal(x, before)


def test_numerical_gradient_needs_float64_contiguous_arrays():
    with pytest.raises(TypeError, match="float64"):
        gradcheck.numerical_gradient(lambda: 0.0, np.zeros(3, np.float32))
    with pytest.raises(ValueError, match="contiguous"):
        gradcheck.numerical_gradient(lambda: 0.0, np.zeros((3, 4)).T)


def test_relative_error_is_relative_to_the_gradient_scale():
    a = np.array([1000.0, 1e-9])
    assert gradcheck.relative_error(a, a + [1e-3, 1e-9]) == pytest.approx(1e-6, rel=1e-4)
    assert gradcheck.relative_error(np.zeros(3), np.full(3, 1e-13)) == 0.0
    assert gradcheck.relative_error(np.ones(2), -np.ones(2)) == 2.0
    with pytest.raises(ValueError, match="shapes differ"):
        gradcheck.relative_error(np.ones(2), np.ones(3))


# ----------------------------------------------------------- planted bugs are caught

def _scaled(backward, factor, index):
    def wrong(dout, cache):
        grads = list(backward(dout, cache))
        grads[index] = grads[index] * factor
        return tuple(grads)
    return wrong


@pytest.mark.parametrize("directions", [None, 4])
def test_check_op_catches_a_wrong_gradient(directions):
    x, w, b = randn((3, 4), 1), randn((4, 2), 2), randn((2,), 3)
    ok = gradcheck.check_op(F.linear_forward, F.linear_backward, x, w, b, directions=directions)
    assert ok < TOL
    bad = gradcheck.check_op(F.linear_forward, _scaled(F.linear_backward, 1.01, 2), x, w, b,
                             directions=directions)
    assert bad > 1e-3


def test_batchnorm_without_the_mean_term_is_caught():
    """Cutting batchnorm's backward to dout*gamma/std passes with a uniform upstream gradient;
    the random upstream gradient of check_op must not let it through."""
    def truncated(dout, cache):
        xhat, gamma, inv_std = cache[:3]
        return dout * gamma * inv_std, (dout * xhat).sum(0), dout.sum(0)
    op = partial(F.batchnorm_forward, running_mean=None, running_var=None)
    x, g, b = randn((6, 3), 4), randn((3,), 5), randn((3,), 6)
    assert gradcheck.check_op(op, truncated, x, g, b) > 1e-2


def test_check_loss_catches_a_wrong_gradient():
    scores, y = randn((5, 3), 7), np.array([0, 2, 1, 1, 0])
    assert gradcheck.check_loss(F.softmax_cross_entropy, scores, y) < TOL

    def wrong(s, labels):
        loss, d = F.softmax_cross_entropy(s, labels)
        return loss, d * 2
    assert gradcheck.check_loss(wrong, scores, y) > 0.1


# ------------------------------------------------- the conv and pooling ops, in float64

OPS = {
    "conv2d": (partial(F.conv2d_forward, stride=2, padding=1), F.conv2d_backward,
               [(2, 3, 5, 6), (4, 3, 3, 2), (4,)]),
    "conv2d groups+dilation": (partial(F.conv2d_forward, padding=2, dilation=2, groups=2),
                               F.conv2d_backward, [(2, 4, 5, 5), (2, 2, 3, 3), (2,)]),
    "max_pool2d (distinct values)": (partial(F.max_pool2d_forward, kernel_size=3, stride=2,
                                             padding=1), F.max_pool2d_backward, [(2, 2, 5, 6)]),
    "avg_pool2d": (partial(F.avg_pool2d_forward, kernel_size=2, stride=1, padding=1,
                           count_include_pad=False), F.avg_pool2d_backward, [(2, 2, 4, 5)]),
    "adaptive_avg_pool2d": (partial(F.adaptive_avg_pool2d_forward, output_size=(3, 2)),
                            F.adaptive_avg_pool2d_backward, [(2, 2, 5, 7)]),
}


@pytest.mark.parametrize("name", OPS)
def test_gradcheck_conv_and_pool_ops(name):
    forward, backward, shapes = OPS[name]
    # standard normal draws: distinct values, ties within the step h have probability ~1e-5
    inputs = [randn(s, seed=10 + i) for i, s in enumerate(shapes)]
    err = gradcheck.check_op(forward, backward, *inputs)
    assert err < TOL, f"{name}: relative error {err:.2e}"


# ----------------------------------------------------------------------- every layer

def _layers():
    f64 = dict(dtype=np.float64, seed=0)
    return {
        "Linear": (nn.Linear(12, 5, **f64), (3, 3, 2, 2)),
        "Conv2d": (nn.Conv2d(3, 4, 3, stride=2, padding=1, **f64), (2, 3, 5, 5)),
        "MaxPool2d": (nn.MaxPool2d(2), (2, 2, 4, 4)),
        "AvgPool2d": (nn.AvgPool2d(3, stride=2, padding=1), (2, 2, 5, 5)),
        "AdaptiveAvgPool2d": (nn.AdaptiveAvgPool2d(2), (2, 2, 5, 3)),
        "ReLU": (nn.ReLU(), (4, 5)),
        "LeakyReLU": (nn.LeakyReLU(0.1), (4, 5)),
        "Tanh": (nn.Tanh(), (4, 5)),
        "Sigmoid": (nn.Sigmoid(), (4, 5)),
        "Dropout (eval)": (nn.Dropout(0.5).eval(), (4, 5)),
        "BatchNorm1d": (nn.BatchNorm1d(5, dtype=np.float64), (6, 5)),
        "BatchNorm2d": (nn.BatchNorm2d(3, dtype=np.float64), (2, 3, 3, 2)),
        "Flatten": (nn.Flatten(), (2, 3, 2)),
        "Sequential": (nn.Sequential(nn.Conv2d(2, 3, 3, padding=1, **f64),
                                     nn.BatchNorm2d(3, dtype=np.float64), nn.ReLU(),
                                     nn.MaxPool2d(2), nn.Flatten(),
                                     nn.Linear(12, 4, **f64)), (3, 2, 4, 4)),
    }


@pytest.mark.parametrize("name", list(_layers()))
def test_gradcheck_layer(name):
    layer, shape = _layers()[name]
    x = randn(shape, seed=20)
    x += np.sign(x) * 0.05  # keep relu inputs away from the kink by more than h
    err = gradcheck.check_layer(layer, x)
    assert err < TOL, f"{name}: relative error {err:.2e}"


def test_check_layer_requires_float64_params_and_catches_a_wrong_weight_gradient():
    with pytest.raises(TypeError, match="float64"):
        gradcheck.check_layer(nn.Linear(3, 2), randn((2, 3)))

    class WrongLinear(nn.Linear):
        def backward(self, dout):
            dx = super().backward(dout)
            self.grads["W"] = self.grads["W"] * 1.01
            return dx
    layer = WrongLinear(3, 2, dtype=np.float64, seed=0)
    assert gradcheck.check_layer(layer, randn((4, 3))) > 1e-3


# ---------------------------------------------------------------- whole models

def test_gradcheck_three_layer_convnet_course_interface():
    model = nn.ThreeLayerConvNet(input_dim=(2, 6, 6), num_filters=3, filter_size=3,
                                 hidden_dim=5, num_classes=4, weight_scale=0.5, reg=0.1,
                                 dtype=np.float64, seed=1)
    X, y = randn((3, 2, 6, 6), 21), np.array([0, 3, 1])
    assert gradcheck.check_model(model, X, y) < TOL


def test_gradcheck_mlp_with_batchnorm_along_random_directions():
    model = nn.mlp(10, 3, hidden_dims=(16, 8), batchnorm=True, reg=0.05, dtype=np.float64,
                   seed=2)
    X, y = randn((5, 10), 22), np.array([0, 1, 2, 1, 0])
    assert gradcheck.check_model(model, X, y, directions=5) < TOL


def test_check_model_catches_a_missing_or_wrong_gradient():
    class Course:  # the course interface, with a bug in the gradient of b
        def __init__(self):
            self.params = {"W": randn((4, 3), 30), "b": randn((3,), 31)}

        def loss(self, X, y):
            scores, cache = F.linear_forward(X, self.params["W"], self.params["b"])
            loss, d = F.softmax_cross_entropy(scores, y)
            _, dw, db = F.linear_backward(d, cache)
            return loss, {"W": dw, "b": db + 0.01}
    X, y = randn((6, 4), 32), np.array([0, 1, 2, 0, 1, 2])
    assert gradcheck.check_model(Course(), X, y) > 1e-2
    model = Course()
    model.loss = lambda X, y: (0.0, {"W": np.zeros((4, 3))})
    with pytest.raises(ValueError, match="'b'"):
        gradcheck.check_model(model, X, y)
