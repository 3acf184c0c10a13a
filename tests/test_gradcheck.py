"""fastconv.gradcheck: the numerical core against closed-form derivatives, planted bugs it
must catch in ops, losses, layers and course models, and the random-direction mode on a
whole model."""

import re
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


_LINEAR = [np.random.default_rng(0).standard_normal(shape) for shape in ((2, 3), (3, 4), (4,))]
_CHECKERS = {
    "numerical_gradient": lambda **kw: gradcheck.numerical_gradient(
        lambda: 0.0, np.zeros(3), **kw),
    "check_op": lambda **kw: gradcheck.check_op(F.linear_forward, F.linear_backward,
                                                *_LINEAR, **kw),
    "check_loss": lambda **kw: gradcheck.check_loss(F.softmax_cross_entropy, _LINEAR[0],
                                                    np.array([0, 2]), **kw),
    "check_layer": lambda **kw: gradcheck.check_layer(
        nn.Linear(3, 2, dtype=np.float64, seed=0), _LINEAR[0], **kw),
    "check_model": lambda **kw: gradcheck.check_model(
        nn.two_layer_mlp((3,), 2, hidden_dim=3, dtype=np.float64, seed=0), _LINEAR[0],
        np.array([0, 1]), **kw),
}


@pytest.mark.parametrize("checker", list(_CHECKERS))
@pytest.mark.parametrize("kw, err, message", [
    (dict(h=0), ValueError, "h must be in (0.0, inf), got 0.0"),  # was a ZeroDivisionError
    (dict(h=-1e-6), ValueError, "h must be in (0.0, inf), got -1e-06"),
    (dict(h=float("nan")), ValueError, "h must be in (0.0, inf), got nan"),  # NaN errors, before
    (dict(h=float("inf")), ValueError, "h must be in (0.0, inf), got inf"),
    (dict(h="1e-6"), TypeError, "h must be a real number"),
    (dict(directions=0), ValueError, "directions must be >= 1, got 0"),  # NumPy's zero-size max
    (dict(directions=-1), ValueError, "directions must be >= 1, got -1"),
    (dict(directions=True), TypeError, "directions must be an int, got True"),  # was 1 direction
    (dict(directions=2.0), TypeError, "directions must be an int, got 2.0"),
    (dict(seed=-1), ValueError, "seed must be >= 0, got -1"),
])
def test_bad_steps_directions_and_seeds_are_refused_by_name(checker, kw, err, message):
    with pytest.raises(err, match=re.escape(message)):
        _CHECKERS[checker](**kw)


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


@pytest.mark.parametrize("directions", [None, 4])
@pytest.mark.parametrize("index", [0, 2])
def test_a_nan_gradient_makes_the_error_nan_wherever_it_is(directions, index):
    """Python's max() skips a NaN that is not first: a NaN db used to pass as ~1e-10."""
    x, w, b = randn((3, 4), 1), randn((4, 2), 2), randn((2,), 3)
    err = gradcheck.check_op(F.linear_forward, _scaled(F.linear_backward, np.nan, index),
                             x, w, b, directions=directions)
    assert np.isnan(err)


def test_random_directions_are_not_the_upstream_gradient():
    """For an input shaped like the output, a direction equal to dout/|dout| sees only the
    component of the gradient along dout: a wrong backward that is right along dout must
    still be caught by a single direction."""
    perpendicular = np.random.default_rng(9).standard_normal((4, 5))

    def identity(x):
        return x.copy(), None

    def wrong_backward(dout, cache):
        extra = perpendicular - (perpendicular * dout).sum() / (dout * dout).sum() * dout
        return dout + extra  # exact along dout, wrong everywhere else

    x = randn((4, 5), 1)
    assert gradcheck.check_op(identity, wrong_backward, x, directions=1) > 1e-2


def test_batchnorm_without_the_mean_term_is_caught():
    """Cutting batchnorm's backward to dout*gamma/std passes with a uniform upstream gradient;
    the random upstream gradient of check_op must not let it through."""
    def truncated(dout, cache):
        xhat, gamma, inv_std = cache.xhat, cache.gamma, cache.inv_std
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


# ------------------------------------------------------------- layers and models
# (every nn layer and model builder is gradient-checked with these adapters in
#  tests/test_nn.py and tests/test_models.py; the conv/pool ops in tests/test_numgrad.py)

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
