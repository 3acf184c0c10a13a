"""Layer norm and group norm (fastconv.functional, fastconv.nn) against PyTorch CPU, with and
without the affine parameters (hypothesis), float64 numerical gradients, float16 statistics
and their error contracts."""

import doctest
import math

import numpy as np
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

import fastconv.functional as F
import fastconv.functional.normalization
import fastconv.nn as nn
import torch_oracle
from conftest import require_torch
from fastconv import gradcheck
from test_functional_ops import DTYPES, randn
from torch_oracle import check, hypothesis_settings


def torch_norm(torch, fn, x, gamma, beta, dout):
    """``fn(x, gamma, beta)`` with autograd: (out, dx, dgamma, dbeta), None for a missing param."""
    leaves = [None if a is None else torch.from_numpy(a.copy()).requires_grad_(True)
              for a in (x, gamma, beta)]
    out = fn(*leaves)
    out.backward(torch.from_numpy(dout))
    return (out.detach().numpy(),) + tuple(None if t is None else t.grad.numpy() for t in leaves)


def compare(op, dtype, ours, theirs, scale=0.0):
    """Our (out, dx, dgamma, dbeta) against torch's, None exactly where torch has none.

    dx and dgamma sum terms of size |dout| that cancel (to exactly 0 for a row
    of one value, where torch leaves rounding noise): they are measured at ``scale``;
    the standardised values in out at 1.
    """
    names = ("out", "dx", "dgamma", "dbeta")
    for name, got, want in zip(names, ours, theirs):
        assert (got is None) == (want is None), f"{op} {name}: {got!r} vs torch {want!r}"
    scales = {"out": 1.0, "dx": scale, "dgamma": scale, "dbeta": 0.0}
    check(op, dtype, {n: at_scale(g, w, scales[n])
                      for n, g, w in zip(names, ours, theirs) if g is not None})


def at_scale(got, want, scale):
    """(got, want) with ``scale`` appended to both: torch_oracle.check then measures
    max|got - want| / max(max|want|, scale), the error at the scale of the cancelling terms."""
    return tuple(np.append(np.asarray(a, np.float64).ravel(), scale) for a in (got, want))


LAYERNORM_CASES = [((6, 5), (5,)), ((2, 3, 4, 5), (4, 5)), ((3, 4), (3, 4)), ((2, 3, 3), (3,))]
GROUPNORM_CASES = [((2, 6, 3, 4), 1), ((2, 6, 3, 4), 2), ((2, 6, 3, 4), 3), ((2, 6, 3, 4), 6),
                   ((4, 6), 2), ((3, 4, 5), 2)]


def run(forward, backward, x, dout_seed=9):
    out, cache = forward(x)
    dout = randn(out.shape, x.dtype, dout_seed)
    return out, dout, backward(dout, cache)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("x_shape, p_shape", LAYERNORM_CASES)
def test_layer_norm_matches_torch(torch, dtype, x_shape, p_shape):
    x = randn(x_shape, dtype, 1) * 3 + 2
    gamma, beta = randn(p_shape, dtype, 2), randn(p_shape, dtype, 3)
    out, dout, grads = run(lambda a: F.layer_norm_forward(a, p_shape, gamma, beta, eps=1e-3),
                           F.layer_norm_backward, x)
    want = torch_norm(torch, lambda a, g, b: torch.nn.functional.layer_norm(
        a, p_shape, g, b, eps=1e-3), x, gamma, beta, dout)
    compare("layer_norm", dtype, (out,) + grads, want)
    assert out.dtype == grads[0].dtype == grads[1].dtype == dtype and grads[1].shape == p_shape


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("x_shape, groups", GROUPNORM_CASES)
def test_group_norm_matches_torch(torch, dtype, x_shape, groups):
    c = x_shape[1]
    x = randn(x_shape, dtype, 4) * 2 - 1
    gamma, beta = randn((c,), dtype, 5), randn((c,), dtype, 6)
    out, dout, grads = run(lambda a: F.group_norm_forward(a, groups, gamma, beta),
                           F.group_norm_backward, x)
    want = torch_norm(torch, lambda a, g, b: torch.nn.functional.group_norm(a, groups, g, b),
                      x, gamma, beta, dout)
    compare("group_norm", dtype, (out,) + grads, want)
    assert out.dtype == grads[0].dtype == dtype and grads[1].shape == (c,)


@st.composite
def layer_norm_cases(draw):
    """x of 1 to 4 dims (sizes 1 to 5), the normalised trailing dims, which params, eps, seed."""
    x_shape = tuple(draw(st.lists(st.integers(1, 5), min_size=1, max_size=4)))
    k = draw(st.integers(1, len(x_shape)))
    shape = x_shape[len(x_shape) - k:]
    normalized_shape = shape[0] if k == 1 and draw(st.booleans()) else draw(
        st.sampled_from([shape, list(shape)]))
    return dict(x_shape=x_shape, normalized_shape=normalized_shape, p_shape=shape,
                affine=draw(st.sampled_from([(True, True), (True, False), (False, True),
                                             (False, False)])),
                eps=draw(st.sampled_from([1e-5, 1e-3, 0.1])), seed=draw(st.integers(0, 2**16)))


@st.composite
def group_norm_cases(draw):
    """x (N, C, *) with 0 to 2 spatial dims, C a multiple of the group count, params, eps, seed."""
    groups, per_group = draw(st.integers(1, 4)), draw(st.integers(1, 3))
    spatial = tuple(draw(st.lists(st.integers(1, 4), max_size=2)))
    n = draw(st.integers(1, 3))
    # torch refuses an input whose channels have one value each over the batch (N * C/G *
    # positions == 1); fastconv normalises each group of one value to 0 (see the module notes)
    assume(n * per_group * math.prod(spatial) > 1)
    return dict(x_shape=(n, groups * per_group) + spatial, groups=groups,
                affine=draw(st.sampled_from([(True, True), (True, False), (False, True),
                                             (False, False)])),
                eps=draw(st.sampled_from([1e-5, 1e-3, 0.1])), seed=draw(st.integers(0, 2**16)))


def _params(shape, affine, dtype, seed):
    return tuple(randn(shape, dtype, seed + i) if on else None for i, on in enumerate(affine, 1))


@hypothesis_settings(25)
@given(case=layer_norm_cases())
def test_layer_norm_matches_torch_over_shapes_and_optional_params(case):
    torch = require_torch()
    for dtype in DTYPES:
        x = randn(case["x_shape"], dtype, case["seed"]) * 2 + 1
        gamma, beta = _params(case["p_shape"], case["affine"], dtype, case["seed"])
        forward = lambda a: F.layer_norm_forward(  # noqa: E731
            a, case["normalized_shape"], gamma, beta, eps=case["eps"])
        out, dout, grads = run(forward, F.layer_norm_backward, x, case["seed"] + 9)
        want = torch_norm(torch, lambda a, g, b: torch.nn.functional.layer_norm(
            a, case["p_shape"], g, b, eps=case["eps"]), x, gamma, beta, dout)
        compare("layer_norm", dtype, (out,) + grads, want, np.abs(dout).max(initial=0))
    torch_oracle.count_case("layer_norm")


@hypothesis_settings(25)
@given(case=group_norm_cases())
def test_group_norm_matches_torch_over_shapes_and_optional_params(case):
    torch = require_torch()
    for dtype in DTYPES:
        x = randn(case["x_shape"], dtype, case["seed"]) * 3 - 1
        gamma, beta = _params((case["x_shape"][1],), case["affine"], dtype, case["seed"])
        forward = lambda a: F.group_norm_forward(  # noqa: E731
            a, case["groups"], gamma, beta, eps=case["eps"])
        out, dout, grads = run(forward, F.group_norm_backward, x, case["seed"] + 9)
        want = torch_norm(torch, lambda a, g, b: torch.nn.functional.group_norm(
            a, case["groups"], _torch_weight(torch, g, b), b, eps=case["eps"]),
            x, gamma, beta, dout)
        compare("group_norm", dtype, (out,) + grads, want, np.abs(dout).max(initial=0))
    torch_oracle.count_case("group_norm")


def _torch_weight(torch, weight, bias):
    """torch 2.13's group_norm fails on a bias without a weight ("tensor does not have a
    device"): ones, without a gradient, stand in for the missing weight."""
    return torch.ones_like(bias).detach() if weight is None and bias is not None else weight


@pytest.mark.parametrize("op", ["layer_norm", "group_norm"])
@pytest.mark.parametrize("affine", [(True, True), (False, True), (True, False), (False, False)])
def test_gradients_match_float64_central_differences(op, affine):
    if op == "layer_norm":
        x, p_shape = randn((3, 2, 5), seed=7), (2, 5)
        gamma, beta = _params(p_shape, affine, np.float64, 8)

        def forward(a, *params):
            return F.layer_norm_forward(a, p_shape, *_fill(params, affine))
        backward = F.layer_norm_backward
    else:
        x, p_shape = randn((2, 4, 3, 2), seed=7), (4,)
        gamma, beta = _params(p_shape, affine, np.float64, 8)

        def forward(a, *params):
            return F.group_norm_forward(a, 2, *_fill(params, affine))
        backward = F.group_norm_backward

    def grads(dout, cache):
        dx, dgamma, dbeta = backward(dout, cache)
        return (dx,) + tuple(g for g in (dgamma, dbeta) if g is not None)
    present = [p for p in (gamma, beta) if p is not None]
    assert gradcheck.check_op(forward, grads, x, *present) < 1e-7


def _fill(present, affine):
    """(gamma, beta) from the present params, None where ``affine`` says there is none."""
    present = iter(present)
    return tuple(next(present) if on else None for on in affine)


@pytest.mark.parametrize("op", ["layer_norm", "group_norm"])
def test_float16_statistics_run_in_float32(torch, op):
    """A large offset with small spread: float16 sums would lose the spread entirely."""
    x = (1000 + randn((4, 8, 4, 4), seed=10)).astype(np.float16)
    t = torch.from_numpy(x.astype(np.float32))
    if op == "layer_norm":
        gamma, beta = np.ones((8, 4, 4), np.float16), np.zeros((8, 4, 4), np.float16)
        out, cache = F.layer_norm_forward(x, (8, 4, 4), gamma, beta)
        want = torch.nn.functional.layer_norm(t, (8, 4, 4)).numpy()
        backward = F.layer_norm_backward
    else:
        gamma, beta = np.ones(8, np.float16), np.zeros(8, np.float16)
        out, cache = F.group_norm_forward(x, 4, gamma, beta)
        want = torch.nn.functional.group_norm(t, 4).numpy()
        backward = F.group_norm_backward
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


LAYERS = [
    (lambda: nn.LayerNorm(5, eps=1e-4, dtype=np.float64),
     lambda t: t.nn.LayerNorm(5, eps=1e-4, dtype=t.float64), (4, 5)),
    (lambda: nn.LayerNorm((3, 2, 2), dtype=np.float64),
     lambda t: t.nn.LayerNorm((3, 2, 2), dtype=t.float64), (2, 3, 2, 2)),
    (lambda: nn.LayerNorm((2, 2), bias=False, dtype=np.float64),
     lambda t: t.nn.LayerNorm((2, 2), bias=False, dtype=t.float64), (3, 2, 2)),
    (lambda: nn.LayerNorm(4, elementwise_affine=False, dtype=np.float64),
     lambda t: t.nn.LayerNorm(4, elementwise_affine=False, dtype=t.float64), (3, 4)),
    (lambda: nn.GroupNorm(3, 6, dtype=np.float64),
     lambda t: t.nn.GroupNorm(3, 6, dtype=t.float64), (2, 6, 3, 3)),
    (lambda: nn.GroupNorm(2, 4, affine=False, dtype=np.float64),
     lambda t: t.nn.GroupNorm(2, 4, affine=False, dtype=t.float64), (2, 4, 3)),
]


@pytest.mark.parametrize("layer, torch_layer, x_shape", LAYERS)
def test_layers_match_torch_modules_and_numerical_gradients(torch, layer, torch_layer, x_shape):
    ours, theirs = layer(), torch_layer(torch)
    x = randn(x_shape, seed=12)
    torch_params = {"gamma": theirs.weight, "beta": theirs.bias}
    assert sorted(ours.params) == sorted(k for k, v in torch_params.items() if v is not None)
    for i, name in enumerate(ours.params):
        ours.params[name] = randn(ours.params[name].shape, seed=13 + i)
        with torch.no_grad():
            torch_params[name].copy_(torch.from_numpy(ours.params[name]))
    out = ours.forward(x)
    dout = randn(out.shape, seed=15)
    dx = ours.backward(dout)
    t = torch.from_numpy(x.copy()).requires_grad_(True)
    want = theirs(t)
    want.backward(torch.from_numpy(dout))
    check(type(ours).__name__, np.float64, {
        "out": (out, want.detach().numpy()), "dx": (dx, t.grad.numpy()),
        **{f"d{name}": (ours.grads[name], torch_params[name].grad.numpy())
           for name in ours.params}})
    assert gradcheck.check_layer(ours, x) < 1e-7


@pytest.mark.parametrize("call, err, match", [
    (lambda: F.layer_norm_forward(randn((2, 4)), 3), ValueError,
     r"normalized_shape \(3,\) does not match the trailing dims \(4,\) of x \(x.shape=\(2, 4\)\)"),
    (lambda: F.layer_norm_forward(randn((4,)), (2, 4)), ValueError,
     r"normalized_shape \(2, 4\) does not match the trailing dims \(4,\)"),
    (lambda: F.layer_norm_forward(randn((2, 4)), ()), TypeError,
     "normalized_shape must be an int or a non-empty sequence"),
    (lambda: F.layer_norm_forward(randn((2, 4)), "4"), TypeError, "normalized_shape must be"),
    (lambda: F.layer_norm_forward(randn((2, 4)), (4.0,)), TypeError,
     r"normalized_shape\[0\] must be an int"),
    (lambda: F.layer_norm_forward(randn((2, 4)), 4, np.ones(3)), ValueError,
     r"gamma has shape \(3,\) but normalized_shape is \(4,\)"),
    (lambda: F.layer_norm_forward(randn((2, 4)), 4, np.ones(4), np.zeros(5)), ValueError,
     r"beta has shape \(5,\) but normalized_shape is \(4,\)"),
    (lambda: F.layer_norm_forward(randn((2, 4)), 4, np.ones(4, np.float32)), TypeError,
     "x is float64 but gamma is float32"),
    (lambda: F.layer_norm_forward(randn((2, 4)), 4, None, np.zeros(4, np.float32)), TypeError,
     "x is float64 but beta is float32"),
    (lambda: F.layer_norm_forward(randn((2, 4)), 4, eps=0.0), ValueError, "eps must be > 0"),
    (lambda: F.layer_norm_forward(randn((2, 0)), 0), ValueError, "nothing to normalise"),
    (lambda: F.group_norm_forward(randn((2, 6, 3, 3)), 4), ValueError,
     r"num_groups=4 must divide the 6 channels of x \(x.shape=\(2, 6, 3, 3\)\)"),
    (lambda: F.group_norm_forward(randn((2, 6, 3, 3)), 2, np.ones(3)), ValueError,
     r"gamma has shape \(3,\) but x has 6 channels"),
    (lambda: F.group_norm_forward(randn((2, 6, 3, 3)), 2, None, np.ones(2)), ValueError,
     r"beta has shape \(2,\) but x has 6 channels"),
    (lambda: F.group_norm_forward(randn((2, 6, 3, 3)), 0), ValueError, "num_groups must be >= 1"),
    (lambda: F.group_norm_forward(randn((2, 6, 3, 3)), 2.0), TypeError,
     "num_groups must be an int"),
    (lambda: F.group_norm_forward(randn((6,)), 1), ValueError, "at least 2 dims"),
    (lambda: F.group_norm_forward(randn((2, 6)).astype(np.int64), 1), TypeError,
     "x must be a floating-point array"),
    (lambda: F.group_norm_forward(randn((2, 6)), 1, eps=-1.0), ValueError, "eps must be > 0"),
    (lambda: nn.GroupNorm(4, 6), ValueError, "num_groups=4 must divide num_channels=6"),
    (lambda: nn.GroupNorm(2, 6, affine=1), TypeError, "affine must be a bool"),
    (lambda: nn.LayerNorm(()), ValueError, "at least one dim"),
    (lambda: nn.LayerNorm(4, elementwise_affine="no"), TypeError,
     "elementwise_affine must be a bool"),
    (lambda: nn.LayerNorm(4, bias=None), TypeError, "LayerNorm: bias must be a bool"),
])
def test_bad_input_gets_errors_naming_the_argument_and_shapes(call, err, match):
    with pytest.raises(err, match=match):
        call()


def test_backward_checks_the_cache_and_dout():
    x = randn((2, 4, 3))
    _, group_cache = F.group_norm_forward(x, 2, np.ones(4), np.zeros(4))
    _, layer_cache = F.layer_norm_forward(x, 3, np.ones(3), np.zeros(3))
    with pytest.raises(TypeError, match="cache comes from group_norm_forward, not layer_norm"):
        F.layer_norm_backward(np.ones_like(x), group_cache)
    with pytest.raises(TypeError, match="cache comes from layer_norm_forward, not group_norm"):
        F.group_norm_backward(np.ones_like(x), layer_cache)
    with pytest.raises(TypeError, match="dout is float32"):
        F.layer_norm_backward(np.ones(x.shape, np.float32), layer_cache)
    with pytest.raises(ValueError, match=r"dout has shape \(2, 4\)"):
        F.group_norm_backward(np.ones((2, 4)), group_cache)


def test_the_old_names_are_gone_from_functional():
    """functional has PyTorch's names only; the course front-end keeps the course's."""
    for old in ("layernorm_forward", "layernorm_backward", "groupnorm_forward",
                "groupnorm_backward"):
        assert not hasattr(F, old) and not hasattr(fastconv.functional.normalization, old)


def test_empty_batch_gives_empty_results():
    x = np.zeros((0, 4, 2, 2))
    out, cache = F.group_norm_forward(x, 2, np.ones(4), np.zeros(4))
    dx, dgamma, _ = F.group_norm_backward(out, cache)
    assert out.shape == dx.shape == x.shape
    np.testing.assert_array_equal(dgamma, np.zeros(4))


def test_docstring_examples_run():
    assert doctest.testmod(fastconv.functional.normalization).failed == 0


@pytest.mark.gpu
def test_normalization_on_cupy_matches_numpy():
    import cupy
    x = randn((3, 6, 4, 4), seed=16)
    dout = randn(x.shape, seed=19)
    cases = [(lambda a, g, b: F.group_norm_forward(a, 3, g, b), F.group_norm_backward, (6,)),
             (lambda a, g, b: F.layer_norm_forward(a, (4, 4), g, b), F.layer_norm_backward,
              (4, 4))]
    for forward, backward, p_shape in cases:
        for affine in ((True, True), (False, True), (False, False)):
            g, b = _params(p_shape, affine, np.float64, 20)
            out, cache = forward(x, g, b)
            grads = backward(dout, cache)
            on_gpu = [None if a is None else cupy.asarray(a) for a in (x, g, b)]
            g_out, g_cache = forward(*on_gpu)
            g_grads = backward(cupy.asarray(dout), g_cache)
            np.testing.assert_allclose(g_out.get(), out, rtol=1e-12, atol=1e-12)
            for got, want in zip(g_grads, grads):
                assert (got is None) == (want is None)
                if got is not None:
                    np.testing.assert_allclose(got.get(), want, rtol=1e-10, atol=1e-12)
