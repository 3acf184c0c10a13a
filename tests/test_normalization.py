"""Layer norm and group norm (fastconv.functional, fastconv.nn) against PyTorch CPU, float64
numerical gradients, float16 statistics and their error contracts."""

import doctest
from functools import partial

import numpy as np
import pytest

import fastconv.functional as F
import fastconv.functional.normalization
import fastconv.nn as nn
from fastconv import gradcheck
from test_functional_ops import DTYPES, randn, torch_grads
from torch_oracle import check


def run(forward, backward, x, gamma, beta, dout_seed=9):
    out, cache = forward(x, gamma, beta)
    dout = randn(out.shape, x.dtype, dout_seed)
    return out, dout, backward(dout, cache)


LAYERNORM_CASES = [((6, 5), (5,)), ((2, 3, 4, 5), (4, 5)), ((3, 4), (3, 4)), ((2, 3, 3), (3,))]
GROUPNORM_CASES = [((2, 6, 3, 4), 1), ((2, 6, 3, 4), 2), ((2, 6, 3, 4), 3), ((2, 6, 3, 4), 6),
                   ((4, 6), 2), ((3, 4, 5), 2)]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("x_shape, p_shape", LAYERNORM_CASES)
def test_layernorm_matches_torch(torch, dtype, x_shape, p_shape):
    x = randn(x_shape, dtype, 1) * 3 + 2
    gamma, beta = randn(p_shape, dtype, 2), randn(p_shape, dtype, 3)
    forward = partial(F.layernorm_forward, eps=1e-3)
    out, dout, (dx, dgamma, dbeta) = run(forward, F.layernorm_backward, x, gamma, beta)
    want, grads = torch_grads(torch, lambda a, g, b: torch.nn.functional.layer_norm(
        a, p_shape, g, b, eps=1e-3), [x, gamma, beta], dout)
    check("layernorm", dtype, {"out": (out, want), "dx": (dx, grads[0]),
                               "dgamma": (dgamma, grads[1]), "dbeta": (dbeta, grads[2])})
    assert out.dtype == dx.dtype == dgamma.dtype == dtype and dgamma.shape == p_shape


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("x_shape, groups", GROUPNORM_CASES)
def test_groupnorm_matches_torch(torch, dtype, x_shape, groups):
    c = x_shape[1]
    x = randn(x_shape, dtype, 4) * 2 - 1
    gamma, beta = randn((c,), dtype, 5), randn((c,), dtype, 6)
    forward = partial(F.groupnorm_forward, num_groups=groups)
    out, dout, (dx, dgamma, dbeta) = run(lambda a, g, b: forward(a, gamma=g, beta=b),
                                         F.groupnorm_backward, x, gamma, beta)
    want, grads = torch_grads(torch, lambda a, g, b: torch.nn.functional.group_norm(
        a, groups, g, b), [x, gamma, beta], dout)
    check("groupnorm", dtype, {"out": (out, want), "dx": (dx, grads[0]),
                               "dgamma": (dgamma, grads[1]), "dbeta": (dbeta, grads[2])})
    assert out.dtype == dx.dtype == dtype and dgamma.shape == (c,)


@pytest.mark.parametrize("op", ["layernorm", "groupnorm"])
def test_gradients_match_float64_central_differences(op):
    if op == "layernorm":
        forward, backward = F.layernorm_forward, F.layernorm_backward
        x, p_shape = randn((3, 2, 5), seed=7), (2, 5)
    else:
        forward, backward = lambda *a: F.groupnorm_forward(a[0], 2, *a[1:]), F.groupnorm_backward
        x, p_shape = randn((2, 4, 3, 2), seed=7), (4,)
    gamma, beta = randn(p_shape, seed=8), randn(p_shape, seed=9)
    assert gradcheck.check_op(forward, backward, x, gamma, beta) < 1e-7


@pytest.mark.parametrize("op", ["layernorm", "groupnorm"])
def test_float16_statistics_run_in_float32(torch, op):
    """A large offset with small spread: float16 sums would lose the spread entirely."""
    x = (1000 + randn((4, 8, 4, 4), seed=10)).astype(np.float16)
    gamma, beta = np.ones(8, np.float16), np.zeros(8, np.float16)
    t = torch.from_numpy(x.astype(np.float32))
    if op == "layernorm":
        gamma, beta = np.ones((8, 4, 4), np.float16), np.zeros((8, 4, 4), np.float16)
        out, cache = F.layernorm_forward(x, gamma, beta)
        want = torch.nn.functional.layer_norm(t, (8, 4, 4)).numpy()
        backward = F.layernorm_backward
    else:
        out, cache = F.groupnorm_forward(x, 4, gamma, beta)
        want = torch.nn.functional.group_norm(t, 4).numpy()
        backward = F.groupnorm_backward
    assert out.dtype == np.float16
    np.testing.assert_allclose(out.astype(np.float32), want, rtol=0, atol=5e-3)
    grads = backward(np.ones_like(out), cache)
    assert all(g.dtype == np.float16 and np.isfinite(g).all() for g in grads)


def test_normalization_is_the_same_in_train_and_eval_mode():
    """No running statistics: the layers have no buffers and eval changes nothing."""
    x = randn((3, 4, 2, 2), np.float32, 11)
    for layer in (nn.LayerNorm((4, 2, 2)), nn.GroupNorm(2, 4)):
        train_out = layer.forward(x)
        np.testing.assert_array_equal(layer.eval().forward(x), train_out)
        assert dict(layer.buffers) == {} and sorted(layer.params) == ["beta", "gamma"]


@pytest.mark.parametrize("layer, torch_layer, x_shape", [
    (lambda: nn.LayerNorm(5, eps=1e-4, dtype=np.float64),
     lambda t: t.nn.LayerNorm(5, eps=1e-4, dtype=t.float64), (4, 5)),
    (lambda: nn.LayerNorm((3, 2, 2), dtype=np.float64),
     lambda t: t.nn.LayerNorm((3, 2, 2), dtype=t.float64), (2, 3, 2, 2)),
    (lambda: nn.GroupNorm(3, 6, dtype=np.float64),
     lambda t: t.nn.GroupNorm(3, 6, dtype=t.float64), (2, 6, 3, 3)),
])
def test_layers_match_torch_modules_and_numerical_gradients(torch, layer, torch_layer, x_shape):
    ours, theirs = layer(), torch_layer(torch)
    x = randn(x_shape, seed=12)
    ours.params["gamma"] = randn(ours.params["gamma"].shape, seed=13)
    ours.params["beta"] = randn(ours.params["beta"].shape, seed=14)
    with torch.no_grad():
        theirs.weight.copy_(torch.from_numpy(ours.params["gamma"]))
        theirs.bias.copy_(torch.from_numpy(ours.params["beta"]))
    out = ours.forward(x)
    dout = randn(out.shape, seed=15)
    dx = ours.backward(dout)
    t = torch.from_numpy(x.copy()).requires_grad_(True)
    want = theirs(t)
    want.backward(torch.from_numpy(dout))
    check(type(ours).__name__, np.float64, {
        "out": (out, want.detach().numpy()), "dx": (dx, t.grad.numpy()),
        "dgamma": (ours.grads["gamma"], theirs.weight.grad.numpy()),
        "dbeta": (ours.grads["beta"], theirs.bias.grad.numpy())})
    assert gradcheck.check_layer(ours, x) < 1e-7


@pytest.mark.parametrize("call, err, match", [
    (lambda: F.layernorm_forward(randn((2, 4)), np.ones(3), np.zeros(3)), ValueError,
     r"gamma has shape \(3,\) but x's trailing dims are \(4,\) \(x.shape=\(2, 4\)\)"),
    (lambda: F.layernorm_forward(randn((4,)), np.ones((2, 4)), np.zeros((2, 4))), ValueError,
     r"gamma has shape \(2, 4\)"),
    (lambda: F.layernorm_forward(randn((2, 4)), np.ones(4), np.zeros(5)), ValueError,
     r"beta has shape \(5,\) but gamma has shape \(4,\)"),
    (lambda: F.layernorm_forward(randn((2, 4)), np.ones(4, np.float32), np.zeros(4)),
     TypeError, "x is float64 but gamma is float32"),
    (lambda: F.layernorm_forward(randn((2, 4)), np.ones(4), np.zeros(4), eps=0.0), ValueError,
     "layernorm: eps"),
    (lambda: F.layernorm_forward(randn((2, 0)), np.ones(0), np.zeros(0)), ValueError,
     "nothing to normalise"),
    (lambda: F.groupnorm_forward(randn((2, 6, 3, 3)), 4, np.ones(6), np.zeros(6)), ValueError,
     r"num_groups=4 must divide the 6 channels of x \(x.shape=\(2, 6, 3, 3\)\)"),
    (lambda: F.groupnorm_forward(randn((2, 6, 3, 3)), 2, np.ones(3), np.zeros(3)), ValueError,
     r"gamma has shape \(3,\) but x has 6 channels"),
    (lambda: F.groupnorm_forward(randn((2, 6, 3, 3)), 0, np.ones(6), np.zeros(6)), ValueError,
     "num_groups must be >= 1"),
    (lambda: F.groupnorm_forward(randn((6,)), 1, np.ones(6), np.zeros(6)), ValueError,
     "at least 2 dims"),
    (lambda: F.groupnorm_forward(randn((2, 6)).astype(np.int64), 1, np.ones(6), np.zeros(6)),
     TypeError, "x must be a floating-point array"),
    (lambda: nn.GroupNorm(4, 6), ValueError, "num_groups=4 must divide num_channels=6"),
    (lambda: nn.LayerNorm(()), ValueError, "at least one dim"),
])
def test_bad_input_gets_errors_naming_the_argument_and_shapes(call, err, match):
    with pytest.raises(err, match=match):
        call()


def test_backward_checks_the_cache_and_dout():
    x = randn((2, 4, 3))
    _, group_cache = F.groupnorm_forward(x, 2, np.ones(4), np.zeros(4))
    _, layer_cache = F.layernorm_forward(x, np.ones(3), np.zeros(3))
    with pytest.raises(TypeError, match="cache comes from groupnorm_forward, not layernorm"):
        F.layernorm_backward(np.ones_like(x), group_cache)
    with pytest.raises(TypeError, match="cache comes from layernorm_forward, not groupnorm"):
        F.groupnorm_backward(np.ones_like(x), layer_cache)
    with pytest.raises(TypeError, match="dout is float32"):
        F.layernorm_backward(np.ones(x.shape, np.float32), layer_cache)
    with pytest.raises(ValueError, match=r"dout has shape \(2, 4\)"):
        F.groupnorm_backward(np.ones((2, 4)), group_cache)


def test_empty_batch_gives_empty_results():
    x = np.zeros((0, 4, 2, 2))
    out, cache = F.groupnorm_forward(x, 2, np.ones(4), np.zeros(4))
    dx, dgamma, _ = F.groupnorm_backward(out, cache)
    assert out.shape == dx.shape == x.shape
    np.testing.assert_array_equal(dgamma, np.zeros(4))


def test_docstring_example_runs():
    assert doctest.testmod(fastconv.functional.normalization).failed == 0


@pytest.mark.gpu
def test_normalization_on_cupy_matches_numpy():
    import cupy
    x, gamma, beta = randn((3, 6, 4, 4), seed=16), randn((6,), seed=17), randn((6,), seed=18)
    dout = randn(x.shape, seed=19)
    for forward, backward, p in ((lambda a, g, b: F.groupnorm_forward(a, 3, g, b),
                                  F.groupnorm_backward, 6),
                                 (F.layernorm_forward, F.layernorm_backward, None)):
        g, b = (gamma, beta) if p else (randn((4, 4), seed=20), randn((4, 4), seed=21))
        out, cache = forward(x, g, b)
        grads = backward(dout, cache)
        g_out, g_cache = forward(*map(cupy.asarray, (x, g, b)))
        g_grads = backward(cupy.asarray(dout), g_cache)
        np.testing.assert_allclose(g_out.get(), out, rtol=1e-12, atol=1e-12)
        for got, want in zip(g_grads, grads):
            np.testing.assert_allclose(got.get(), want, rtol=1e-10, atol=1e-12)
