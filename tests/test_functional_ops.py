"""Linear, activations, dropout and batchnorm (fastconv.functional) against PyTorch CPU,
numerical gradients (float64) and their error contracts."""

from functools import partial

import numpy as np
import pytest

from hypothesis import given
from hypothesis import strategies as st

import fastconv.functional as F
import fastconv.nn as nn
import torch_oracle
from conftest import require_torch
from fastconv import gradcheck
from scaled_oracle import check_at_scale
from torch_oracle import check, hypothesis_settings

DTYPES = [np.float64, np.float32]


def randn(shape, dtype=np.float64, seed=0):
    return np.random.default_rng(seed).standard_normal(shape).astype(dtype)


def torch_grads(torch, fn, arrays, dout):
    """Run ``fn(*tensors)`` with autograd; returns (out, [grad per array])."""
    leaves = [torch.from_numpy(a.copy()).requires_grad_(True) for a in arrays]
    out = fn(*leaves)
    out.backward(torch.from_numpy(dout))
    return out.detach().numpy(), [t.grad.numpy() for t in leaves]


# --------------------------------------------------------------------------- linear

@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("x_shape", [(4, 6), (3, 2, 3, 2), (1, 5)])
@pytest.mark.parametrize("bias", [True, False])
def test_linear_matches_torch(torch, dtype, x_shape, bias):
    d = int(np.prod(x_shape[1:]))
    x, w = randn(x_shape, dtype, 1), randn((d, 5), dtype, 2)
    b = randn((5,), dtype, 3) if bias else None
    out, cache = F.linear_forward(x, w, b)
    dout = randn(out.shape, dtype, 4)
    dx, dw, db = F.linear_backward(dout, cache)

    def fn(tx, tw, *tb):  # torch's Linear weight is (out, in): the course's w transposed
        return torch.nn.functional.linear(tx.reshape(tx.shape[0], -1), tw.T, *tb)
    want, grads = torch_grads(torch, fn, [x, w] + ([b] if bias else []), dout)
    pairs = {"out": (out, want), "dx": (dx, grads[0]), "dw": (dw, grads[1])}
    if bias:
        pairs["db"] = (db, grads[2])
    else:
        assert db is None
    check("linear", dtype, pairs)
    assert dx.shape == x.shape and out.dtype == dx.dtype == dw.dtype == dtype


def test_linear_wrong_feature_count_names_both_numbers():
    with pytest.raises(ValueError, match=r"x has 12 features.*w expects 10"):
        F.linear_forward(randn((2, 3, 4)), randn((10, 5)))


@pytest.mark.parametrize("x, w, b, err", [
    (randn((2, 3)).astype(np.int64), randn((3, 4)), None, TypeError),
    (randn((2, 3)), randn((3, 4), np.float32), None, TypeError),
    (randn((2, 3)), randn((3, 4)), randn((5,)), ValueError),
    (randn((3,)), randn((3, 4)), None, ValueError),
])
def test_linear_rejects_bad_input(x, w, b, err):
    with pytest.raises(err):
        F.linear_forward(x, w, b)


def test_backward_rejects_dout_of_wrong_shape():
    _, cache = F.linear_forward(randn((2, 3)), randn((3, 4)))
    with pytest.raises(ValueError, match=r"dout has shape \(2, 5\)"):
        F.linear_backward(randn((2, 5)), cache)


# ----------------------------------------------------------------------- activations

ACTIVATIONS = {
    "relu": (F.relu_forward, F.relu_backward, lambda t, x: t.relu(x)),
    "leaky_relu": (partial(F.leaky_relu_forward, negative_slope=0.2),
                   F.leaky_relu_backward,
                   lambda t, x: t.nn.functional.leaky_relu(x, 0.2)),
    "tanh": (F.tanh_forward, F.tanh_backward, lambda t, x: t.tanh(x)),
    "sigmoid": (F.sigmoid_forward, F.sigmoid_backward, lambda t, x: t.sigmoid(x)),
}


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", ACTIVATIONS)
def test_activation_matches_torch(torch, name, dtype):
    forward, backward, torch_fn = ACTIVATIONS[name]
    x = randn((3, 4, 5), dtype, 5) * 3
    out, cache = forward(x)
    dout = randn(out.shape, dtype, 6)
    dx = backward(dout, cache)
    want, (want_dx,) = torch_grads(torch, lambda t: torch_fn(torch, t), [x], dout)
    check(name, dtype, {"out": (out, want), "dx": (dx, want_dx)})
    assert out.dtype == dx.dtype == dtype


def test_sigmoid_is_stable_for_large_inputs():
    x = np.array([-1000.0, -50.0, 0.0, 50.0, 1000.0], np.float32)
    with np.errstate(over="raise"):
        out, _ = F.sigmoid_forward(x)
    assert np.all(np.isfinite(out))
    assert out[0] == 0.0 and out[-1] == 1.0 and out[2] == 0.5


def test_relu_at_zero_and_nan_like_torch(torch):
    x = np.array([-1.0, 0.0, 2.0, np.nan])
    out, cache = F.relu_forward(x)
    want, (want_dx,) = torch_grads(torch, torch.relu, [x], np.ones(4))
    np.testing.assert_array_equal(out, want)  # NaN propagates, equal_nan by default
    np.testing.assert_array_equal(F.relu_backward(np.ones(4), cache), want_dx)


@pytest.mark.parametrize("slope", [None, "0.1", True, np.array([0.1, 0.2])])
def test_leaky_relu_refuses_a_slope_that_is_no_real_number(slope):
    """None gave NaN outputs and "0.1" was read as its number: the slope is cast to x's dtype."""
    with pytest.raises(TypeError, match="negative_slope must be a real number"):
        F.leaky_relu_forward(-np.ones(2), slope)
    with pytest.raises(TypeError, match="LeakyReLU: negative_slope"):
        nn.LeakyReLU(slope)


def test_float16_is_preserved():
    x = randn((2, 3), np.float16)
    for forward, backward, _ in ACTIVATIONS.values():
        out, cache = forward(x)
        assert out.dtype == np.float16 and backward(out, cache).dtype == np.float16


# --------------------------------------------------------------------------- dropout

def test_dropout_eval_is_identity_like_torch(torch):
    x = randn((4, 5), np.float32)
    out, cache = F.dropout_forward(x, p=0.7, train=False)
    want = torch.nn.functional.dropout(torch.from_numpy(x), 0.7, training=False).numpy()
    np.testing.assert_array_equal(out, want)
    np.testing.assert_array_equal(F.dropout_backward(x, cache), x)


def test_dropout_train_statistics_and_inverted_scaling():
    x = np.ones((200, 500))
    p = 0.3
    out, cache = F.dropout_forward(x, p=p, seed=1)
    kept = out != 0
    assert abs(kept.mean() - (1 - p)) < 0.01  # 100k draws: 5 standard deviations
    np.testing.assert_allclose(out[kept], 1 / (1 - p))  # inverted: the mean is preserved
    dout = randn(x.shape, seed=2)
    np.testing.assert_array_equal(F.dropout_backward(dout, cache), dout * out)


def test_dropout_seed_reproduces_the_mask_and_rng_is_used():
    x = randn((6, 7))
    a, _ = F.dropout_forward(x, p=0.5, seed=3)
    b, _ = F.dropout_forward(x, p=0.5, seed=3)
    c, _ = F.dropout_forward(x, p=0.5, seed=4)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    d, _ = F.dropout_forward(x, p=0.5, rng=np.random.default_rng(3))
    np.testing.assert_array_equal(a, d)


def test_dropout_edge_probabilities_and_bad_p():
    x = randn((3, 4))
    np.testing.assert_array_equal(F.dropout_forward(x, p=0.0)[0], x)
    np.testing.assert_array_equal(F.dropout_forward(x, p=1.0)[0], np.zeros_like(x))
    with pytest.raises(ValueError, match="drop probability"):
        F.dropout_forward(x, p=1.5)
    with pytest.raises(TypeError, match="drop probability"):
        F.dropout_forward(x, p=True)  # would drop everything
    with pytest.raises(TypeError):
        F.dropout_forward(x.astype(np.int32))


@pytest.mark.parametrize("kwargs", [dict(train=False), dict(p=0.0)])
def test_dropout_backward_checks_dout_even_where_it_is_the_identity(kwargs):
    out, cache = F.dropout_forward(randn((3, 4)), **dict(dict(p=0.5), **kwargs))
    np.testing.assert_array_equal(F.dropout_backward(np.ones((3, 4)), cache), np.ones((3, 4)))
    with pytest.raises(ValueError, match=r"dout has shape \(7,\)"):
        F.dropout_backward(np.ones(7), cache)
    with pytest.raises(TypeError, match="dout is float32"):
        F.dropout_backward(np.ones((3, 4), np.float32), cache)


# ------------------------------------------------------------------------- batchnorm

def _torch_batchnorm(torch, x, gamma, beta, rm, rv, dout, train, momentum, eps):
    trm, trv = torch.from_numpy(rm.copy()), torch.from_numpy(rv.copy())
    fn = partial(torch.nn.functional.batch_norm, running_mean=trm, running_var=trv,
                 training=train, momentum=momentum, eps=eps)
    out, grads = torch_grads(torch, lambda tx, tg, tb: fn(tx, weight=tg, bias=tb),
                             [x, gamma, beta], dout)
    return out, grads, trm.numpy(), trv.numpy()


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("train", [True, False])
@pytest.mark.parametrize("spatial", [False, True])
def test_batchnorm_matches_torch(torch, dtype, train, spatial):
    shape = (5, 3, 4, 2) if spatial else (6, 4)
    c = shape[1]
    x = randn(shape, dtype, 7) * 2 + 1
    gamma, beta = randn((c,), dtype, 8), randn((c,), dtype, 9)
    rm, rv = randn((c,), dtype, 10), np.abs(randn((c,), dtype, 11)) + 0.5
    dout = randn(shape, dtype, 12)
    our_rm, our_rv = rm.copy(), rv.copy()
    forward = F.spatial_batchnorm_forward if spatial else F.batchnorm_forward
    backward = F.spatial_batchnorm_backward if spatial else F.batchnorm_backward
    out, cache = forward(x, gamma, beta, our_rm, our_rv, train=train, momentum=0.2, eps=1e-3)
    dx, dgamma, dbeta = backward(dout, cache)
    want, grads, want_rm, want_rv = _torch_batchnorm(torch, x, gamma, beta, rm, rv, dout,
                                                     train, 0.2, 1e-3)
    check("batchnorm", dtype, {"out": (out, want), "dx": (dx, grads[0]),
                               "dgamma": (dgamma, grads[1]), "dbeta": (dbeta, grads[2]),
                               "running_mean": (our_rm, want_rm),
                               "running_var": (our_rv, want_rv)})
    if train:  # the running statistics moved, in place
        assert not np.allclose(our_rm, rm)
    else:
        np.testing.assert_array_equal(our_rm, rm)
    assert out.shape == dx.shape == shape and out.dtype == dtype


@hypothesis_settings(40)
@given(spatial=st.booleans(), train=st.booleans(), n=st.integers(2, 6), c=st.integers(1, 5),
       h=st.integers(1, 4), w=st.integers(1, 4), momentum=st.sampled_from([0.0, 0.1, 0.5, 1.0]),
       scale=st.sampled_from([1e-3, 1.0, 1e3]), dtype=st.sampled_from(DTYPES),
       seed=st.integers(0, 2**16))
def test_batchnorm_matches_torch_over_shapes(spatial, train, n, c, h, w, momentum, scale, dtype,
                                             seed):
    """Against torch in float64 on the same values (the exact answer for float32 inputs too)."""
    torch = require_torch()
    shape = (n, c, h, w) if spatial else (n, c)
    x = (randn(shape, np.float64, seed) * scale + scale).astype(dtype)
    gamma, beta = randn((c,), dtype, seed + 1), randn((c,), dtype, seed + 2)
    rm, rv = randn((c,), dtype, seed + 3), np.abs(randn((c,), dtype, seed + 4)) + 0.1
    dout = randn(shape, dtype, seed + 5)
    our_rm, our_rv = rm.copy(), rv.copy()
    forward = F.spatial_batchnorm_forward if spatial else F.batchnorm_forward
    backward = F.spatial_batchnorm_backward if spatial else F.batchnorm_backward
    out, cache = forward(x, gamma, beta, our_rm, our_rv, train=train, momentum=momentum)
    dx, dgamma, dbeta = backward(dout, cache)
    f64 = [a.astype(np.float64) for a in (x, gamma, beta, rm, rv, dout)]
    want, grads, want_rm, want_rv = _torch_batchnorm(torch, *f64, train, momentum, 1e-5)
    torch_oracle.count_case("batchnorm")
    # dx is a difference of terms of size |dout * gamma| / std: over few samples it cancels
    var = x.astype(np.float64).var(axis=(0, 2, 3) if spatial else 0) if train else rv
    terms = np.abs(f64[5]).max() * np.abs(f64[1]).max() / np.sqrt(var.min() + 1e-5)
    check_at_scale("batchnorm", dtype, {
        "out": (out, want, 0), "dx": (dx, grads[0], terms), "dgamma": (dgamma, grads[1], 0),
        "dbeta": (dbeta, grads[2], 0), "running_mean": (our_rm, want_rm, 0),
        "running_var": (our_rv, want_rv, 0)})


def test_batchnorm_without_running_stats_uses_batch_statistics_in_eval():
    x = randn((8, 3)) * 4 + 2
    out, _ = F.batchnorm_forward(x, np.ones(3), np.zeros(3), None, None, train=False, eps=1e-12)
    np.testing.assert_allclose(out.mean(axis=0), 0, atol=1e-12)
    np.testing.assert_allclose(out.std(axis=0), 1, atol=1e-9)


def test_float16_linear_bias_gradient_sums_in_float32():
    dout = np.ones((3000, 2), np.float16)  # a float16 running sum stops at 2048
    _, cache = F.linear_forward(np.ones((3000, 4), np.float16), np.ones((4, 2), np.float16),
                                np.zeros(2, np.float16))
    _, _, db = F.linear_backward(dout, cache)
    assert db.dtype == np.float16
    np.testing.assert_array_equal(db, [3000, 3000])


def test_batchnorm_float16_is_preserved():
    x = randn((4, 3), np.float16)
    ones, zeros = np.ones(3, np.float16), np.zeros(3, np.float16)
    out, cache = F.batchnorm_forward(x, ones, zeros, zeros.copy(), ones.copy())
    assert out.dtype == np.float16
    assert all(g.dtype == np.float16 for g in F.batchnorm_backward(out, cache))


@pytest.mark.parametrize("spatial", [False, True])
@pytest.mark.parametrize("frozen", ["running_mean", "running_var"])
def test_batchnorm_refuses_a_read_only_running_statistic_in_train_mode(spatial, frozen):
    """A read-only running_var was found after running_mean had moved, with NumPy's unnamed
    'output array is read-only'; eval mode reads them only and still takes them."""
    forward = F.spatial_batchnorm_forward if spatial else F.batchnorm_forward
    x = randn((4, 3, 2, 2) if spatial else (4, 3))
    stats = {"running_mean": np.zeros(3), "running_var": np.ones(3)}
    stats[frozen].flags.writeable = False
    with pytest.raises(ValueError, match=f"{frozen} is read-only"):
        forward(x, np.ones(3), np.zeros(3), stats["running_mean"], stats["running_var"])
    np.testing.assert_array_equal(stats["running_mean"], np.zeros(3))
    np.testing.assert_array_equal(stats["running_var"], np.ones(3))
    out, _ = forward(x, np.ones(3), np.zeros(3), stats["running_mean"], stats["running_var"],
                     train=False)
    np.testing.assert_allclose(out, x / np.sqrt(1 + 1e-5))


@pytest.mark.parametrize("kwargs, err, match", [
    (dict(gamma=np.ones(4)), ValueError, r"gamma has 4 entries.*3 features"),
    (dict(running_var=None), ValueError, "both running_mean and running_var"),
    (dict(x=np.ones((1, 3))), ValueError, "more than one value"),
    (dict(x=np.ones((1, 3)), running_mean=None, running_var=None, train=False), ValueError,
     "more than one value"),  # batch statistics of one value: the output would be beta
    (dict(gamma=np.ones(3, np.float32)), TypeError, "gamma"),
    (dict(momentum=None), TypeError, "momentum=None"),
    (dict(eps=float("nan")), ValueError, "eps must be > 0"),
])
def test_batchnorm_rejects_bad_input(kwargs, err, match):
    args = dict(x=randn((4, 3)), gamma=np.ones(3), beta=np.zeros(3),
                running_mean=np.zeros(3), running_var=np.ones(3))
    args.update(kwargs)
    with pytest.raises(err, match=match):
        F.batchnorm_forward(**args)


# ---------------------------------------------------------------- gradient checks

def _bn(forward, train):
    def op(x, gamma, beta):
        c = gamma.shape[0]
        return forward(x, gamma, beta, np.zeros(c) + 0.3, np.ones(c) * 2, train=train)
    return op


GRADCHECK_CASES = {
    "linear": (F.linear_forward, F.linear_backward, [(3, 2, 2), (4, 5), (5,)]),
    "relu": (F.relu_forward, F.relu_backward, [(3, 4)]),
    "leaky_relu": (F.leaky_relu_forward, F.leaky_relu_backward, [(3, 4)]),
    "tanh": (F.tanh_forward, F.tanh_backward, [(3, 4)]),
    "sigmoid": (F.sigmoid_forward, F.sigmoid_backward, [(3, 4)]),
    "dropout (fixed mask)": (partial(F.dropout_forward, p=0.4, seed=5), F.dropout_backward,
                             [(3, 4)]),
    "batchnorm train": (_bn(F.batchnorm_forward, True), F.batchnorm_backward,
                        [(5, 3), (3,), (3,)]),
    "batchnorm eval": (_bn(F.batchnorm_forward, False), F.batchnorm_backward,
                       [(5, 3), (3,), (3,)]),
    "spatial batchnorm train": (_bn(F.spatial_batchnorm_forward, True),
                                F.spatial_batchnorm_backward, [(3, 2, 2, 3), (2,), (2,)]),
    "spatial batchnorm eval": (_bn(F.spatial_batchnorm_forward, False),
                               F.spatial_batchnorm_backward, [(3, 2, 2, 3), (2,), (2,)]),
}


@pytest.mark.parametrize("name", GRADCHECK_CASES)
def test_gradcheck_functional_op(name):
    forward, backward, shapes = GRADCHECK_CASES[name]
    # inputs away from relu's kink by more than the finite-difference step
    inputs = [randn(s, seed=i) + np.sign(randn(s, seed=i)) * 0.1 for i, s in enumerate(shapes)]
    err = gradcheck.check_op(forward, backward, *inputs)
    assert err < 1e-6, f"{name}: relative error {err:.2e}"


# ------------------------------------------------------------------------------ GPU

@pytest.mark.gpu
def test_every_op_runs_on_cupy_and_matches_numpy():
    import cupy
    x, w, b = randn((4, 3, 2), seed=40), randn((6, 5), seed=41), randn((5,), seed=42)
    gpu = [cupy.asarray(a) for a in (x, w, b)]
    cases = [(F.linear_forward, F.linear_backward, (x, w, b), gpu)]
    for forward, backward, _ in ACTIVATIONS.values():
        cases.append((forward, backward, (x,), gpu[:1]))
    bn = (randn((6, 3), seed=43), np.ones(3) * 1.5, np.zeros(3) + 0.2)
    cases.append((_bn(F.batchnorm_forward, True), F.batchnorm_backward, bn,
                  [cupy.asarray(a) for a in bn]))
    for forward, backward, cpu, dev in cases:
        out, cache = forward(*cpu)
        g_out, g_cache = forward(*dev)
        assert isinstance(g_out, cupy.ndarray)
        np.testing.assert_allclose(g_out.get(), out, rtol=1e-12, atol=1e-12)
        dout = randn(out.shape, seed=44)
        grads = backward(dout, cache)
        g_grads = backward(cupy.asarray(dout), g_cache)
        for g, c in zip(g_grads if isinstance(g_grads, tuple) else (g_grads,),
                        grads if isinstance(grads, tuple) else (grads,)):
            np.testing.assert_allclose(g.get(), c, rtol=1e-11, atol=1e-12)
    g_out, mask = F.dropout_forward(gpu[0], p=0.5, seed=1)
    assert isinstance(mask, cupy.ndarray)  # drawn on the device
    np.testing.assert_array_equal(g_out.get(), F.dropout_forward(gpu[0], p=0.5, seed=1)[0].get())
    assert gradcheck.check_op(F.linear_forward, F.linear_backward, *gpu) < 1e-6
    with pytest.raises(ValueError, match="two devices"):
        F.linear_forward(gpu[0], w)
