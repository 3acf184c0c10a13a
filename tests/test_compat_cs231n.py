"""fastconv.compat.cs231n against its contract: the course notebook's check values, PyTorch
CPU for every layer and sandwich, the course's dict semantics (bn_param running averages,
dropout's keep probability), cache behaviour and clear errors."""

import numpy as np
import pytest

from fastconv.compat import cs231n as cs
from torch_oracle import check

CONV = {"stride": 2, "pad": 1}
POOL = {"pool_height": 2, "pool_width": 2, "stride": 2}


def randn(shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape)


def course_rel_error(x, y):
    """The notebooks' rel_error."""
    return np.max(np.abs(x - y) / np.maximum(1e-8, np.abs(x) + np.abs(y)))


def torch_run(torch, fn, arrays, dout):
    leaves = [torch.from_numpy(a.copy()).requires_grad_(True) for a in arrays]
    out = fn(*leaves)
    out.backward(torch.from_numpy(dout))
    return out.detach().numpy(), [t.grad.numpy() for t in leaves]


def test_conv_forward_naive_matches_the_notebook_check_values():
    x = np.linspace(-0.1, 0.5, num=2 * 3 * 4 * 4).reshape(2, 3, 4, 4)
    w = np.linspace(-0.2, 0.3, num=3 * 3 * 4 * 4).reshape(3, 3, 4, 4)
    b = np.linspace(-0.1, 0.2, num=3)
    out, _ = cs.conv_forward_naive(x, w, b, {"stride": 2, "pad": 1})
    correct_out = np.array(  # printed in the ConvolutionalNetworks notebook (8 decimals)
        [[[[-0.08759809, -0.10987781], [-0.18387192, -0.2109216]],
          [[0.21027089, 0.21661097], [0.22847626, 0.23004637]],
          [[0.50813986, 0.54309974], [0.64082444, 0.67101435]]],
         [[[-0.98053589, -1.03143541], [-1.19128892, -1.24695841]],
          [[0.69108355, 0.66880383], [0.59480972, 0.56776003]],
          [[2.36270298, 2.36904306], [2.38090835, 2.38247847]]]])
    assert course_rel_error(out, correct_out) < 1e-7  # "difference should be around 2e-8"


@pytest.mark.parametrize("variant", ["naive", "fast"])
def test_conv_matches_torch(torch, variant):
    x, w, b = randn((3, 3, 9, 8), 1), randn((4, 3, 3, 3), 2), randn((4,), 3)
    out, cache = getattr(cs, f"conv_forward_{variant}")(x, w, b, CONV)
    dout = randn(out.shape, 4)
    dx, dw, db = getattr(cs, f"conv_backward_{variant}")(dout, cache)
    want, grads = torch_run(torch, lambda a, k, c: torch.nn.functional.conv2d(
        a, k, c, stride=2, padding=1), [x, w, b], dout)
    check(f"cs231n.conv_{variant}", np.float64,
          {"out": (out, want), "dx": (dx, grads[0]), "dw": (dw, grads[1]), "db": (db, grads[2])})


@pytest.mark.parametrize("variant", ["naive", "fast"])
@pytest.mark.parametrize("pool", [POOL, {"pool_height": 3, "pool_width": 2, "stride": 1}])
def test_max_pool_matches_torch(torch, variant, pool):
    x = randn((2, 3, 7, 6), 5)
    out, cache = getattr(cs, f"max_pool_forward_{variant}")(x, pool)
    dout = randn(out.shape, 6)
    dx = getattr(cs, f"max_pool_backward_{variant}")(dout, cache)
    kernel = (pool["pool_height"], pool["pool_width"])
    want, (want_dx,) = torch_run(torch, lambda a: torch.nn.functional.max_pool2d(
        a, kernel, stride=pool["stride"]), [x], dout)
    check(f"cs231n.max_pool_{variant}", np.float64, {"out": (out, want), "dx": (dx, want_dx)})


def test_max_pool_ties_go_to_the_first_maximum_like_the_naive_course_layer():
    x = np.zeros((1, 1, 2, 2))  # one window, all tied (as after a ReLU)
    _, cache = cs.max_pool_forward_fast(x, POOL)
    dx = cs.max_pool_backward_fast(np.ones((1, 1, 1, 1)), cache)
    np.testing.assert_array_equal(dx[0, 0], [[1, 0], [0, 0]])


def test_affine_relu_softmax_and_svm_match_torch(torch):
    x, w, b = randn((4, 2, 3), 7), randn((6, 5), 8), randn((5,), 9)
    out, cache = cs.affine_relu_forward(x, w, b)
    dout = randn(out.shape, 10)
    dx, dw, db = cs.affine_relu_backward(dout, cache)
    want, grads = torch_run(torch, lambda a, k, c: torch.relu(a.reshape(4, 6) @ k + c),
                            [x, w, b], dout)
    check("cs231n.affine_relu", np.float64,
          {"out": (out, want), "dx": (dx, grads[0]), "dw": (dw, grads[1]), "db": (db, grads[2])})
    scores, y = randn((6, 4), 11), np.array([0, 3, 1, 2, 2, 0])
    t = torch.from_numpy(scores.copy()).requires_grad_(True)
    torch.nn.functional.cross_entropy(t, torch.from_numpy(y)).backward()
    loss, dscores = cs.softmax_loss(scores, y)
    check("cs231n.softmax_loss", np.float64, {"dx": (dscores, t.grad.numpy())})
    t = torch.from_numpy(scores.copy()).requires_grad_(True)
    svm = torch.nn.functional.multi_margin_loss(t, torch.from_numpy(y)) * 4  # torch divides by C
    svm.backward()
    loss, dscores = cs.svm_loss(scores, y)
    check("cs231n.svm_loss", np.float64,
          {"loss": (np.asarray(loss), svm.detach().numpy()), "dx": (dscores, t.grad.numpy())})


@pytest.mark.parametrize("sandwich", ["conv_relu", "conv_relu_pool"])
def test_conv_sandwiches_match_torch(torch, sandwich):
    x, w, b = randn((2, 3, 8, 8), 12), randn((4, 3, 3, 3), 13), randn((4,), 14)
    conv = {"stride": 1, "pad": 1}
    args = (conv, POOL) if sandwich == "conv_relu_pool" else (conv,)
    out, cache = getattr(cs, f"{sandwich}_forward")(x, w, b, *args)
    assert isinstance(cache, tuple) and len(cache) == len(args) + 1  # the course's cache tuple
    dout = randn(out.shape, 15)
    dx, dw, db = getattr(cs, f"{sandwich}_backward")(dout, cache)
    f = torch.nn.functional

    def fn(a, k, c):
        r = torch.relu(f.conv2d(a, k, c, padding=1))
        return f.max_pool2d(r, 2, 2) if sandwich == "conv_relu_pool" else r
    want, grads = torch_run(torch, fn, [x, w, b], dout)
    check(f"cs231n.{sandwich}", np.float64,
          {"out": (out, want), "dx": (dx, grads[0]), "dw": (dw, grads[1]), "db": (db, grads[2])})


def test_mixed_dtypes_are_promoted_as_the_course_numpy_code_does():
    """float64 data through float32 weights gives float64 results, as NumPy arithmetic."""
    x = randn((2, 3, 6, 6))
    w, b = randn((4, 3, 3, 3), 1).astype(np.float32), randn((4,), 2).astype(np.float32)
    out, cache = cs.conv_forward_fast(x, w, b, CONV)
    assert out.dtype == np.float64
    np.testing.assert_array_equal(
        out, cs.conv_forward_fast(x, w.astype(np.float64), b.astype(np.float64), CONV)[0])
    dx, dw, db = cs.conv_backward_fast(np.ones_like(out), cache)
    assert dx.dtype == dw.dtype == db.dtype == np.float64
    scores, _ = cs.affine_forward(x.astype(np.float32), randn((108, 5), 3), randn((5,), 4))
    assert scores.dtype == np.float64
    bn_out, _ = cs.spatial_batchnorm_forward(x, np.ones(3, np.float32), np.zeros(3, np.float32),
                                             {"mode": "train"})
    assert bn_out.dtype == np.float64


def test_caches_are_reusable_and_interchangeable():
    x, w, b = randn((2, 3, 6, 6), 16), randn((2, 3, 3, 3), 17), randn((2,), 18)
    x0 = x.copy()
    out_n, cache_n = cs.conv_forward_naive(x, w, b, CONV)
    out_f, cache_f = cs.conv_forward_fast(x, w, b, CONV)
    np.testing.assert_array_equal(out_n, out_f)
    dout = randn(out_n.shape, 19)
    first = cs.conv_backward_fast(dout, cache_n)
    second = cs.conv_backward_naive(dout, cache_n)
    for a, c in zip(first, second):
        np.testing.assert_array_equal(a, c)
    np.testing.assert_array_equal(x, x0)


# -- batchnorm with the course's bn_param ------------------------------------------

def course_batchnorm(x, gamma, beta, bn_param, axes):
    """The course's batchnorm written from its definition, in NumPy (the oracle)."""
    shape = [1] * x.ndim
    shape[1] = -1
    mom, eps = bn_param.get("momentum", 0.9), bn_param.get("eps", 1e-5)
    if bn_param["mode"] == "train":
        mean, var = x.mean(axis=axes), x.var(axis=axes)
        rm = mom * bn_param.get("running_mean", 0.0) + (1 - mom) * mean
        rv = mom * bn_param.get("running_var", 0.0) + (1 - mom) * var
    else:
        mean = rm = bn_param["running_mean"]
        var = rv = bn_param["running_var"]
    out = (x - mean.reshape(shape)) / np.sqrt(var.reshape(shape) + eps)
    return out * gamma.reshape(shape) + beta.reshape(shape), rm, rv


@pytest.mark.parametrize("spatial", [False, True])
def test_batchnorm_bn_param_semantics(spatial):
    shape = (6, 3, 4, 5) if spatial else (10, 3)
    axes = (0, 2, 3) if spatial else 0
    forward = cs.spatial_batchnorm_forward if spatial else cs.batchnorm_forward
    gamma, beta = randn((3,), 20), randn((3,), 21)
    bn_param = {"mode": "train", "momentum": 0.8}
    oracle_param = dict(bn_param)
    for step in range(3):  # running averages accumulate across calls, from zeros
        x = randn(shape, 22 + step) * 3 + 2
        out, _ = forward(x, gamma, beta, bn_param)
        want, oracle_param["running_mean"], oracle_param["running_var"] = course_batchnorm(
            x, gamma, beta, oracle_param, axes)
        np.testing.assert_allclose(out, want, rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(bn_param["running_mean"], oracle_param["running_mean"],
                                   rtol=1e-12)
        np.testing.assert_allclose(bn_param["running_var"], oracle_param["running_var"],
                                   rtol=1e-12)
    bn_param["mode"] = oracle_param["mode"] = "test"
    x = randn(shape, 30)
    out, cache = forward(x, gamma, beta, bn_param)
    want, _, _ = course_batchnorm(x, gamma, beta, oracle_param, axes)
    np.testing.assert_allclose(out, want, rtol=1e-12, atol=1e-12)
    np.testing.assert_array_equal(bn_param["running_mean"], oracle_param["running_mean"])


@pytest.mark.parametrize("spatial", [False, True])
def test_batchnorm_backward_matches_torch(torch, spatial):
    shape = (5, 3, 2, 3) if spatial else (7, 3)
    x, gamma, beta = randn(shape, 31), randn((3,), 32), randn((3,), 33)
    forward = cs.spatial_batchnorm_forward if spatial else cs.batchnorm_forward
    backward = cs.spatial_batchnorm_backward if spatial else cs.batchnorm_backward
    out, cache = forward(x, gamma, beta, {"mode": "train", "eps": 1e-3})
    dout = randn(shape, 34)
    dx, dgamma, dbeta = backward(dout, cache)
    want, grads = torch_run(torch, lambda a, g, c: torch.nn.functional.batch_norm(
        a, None, None, g, c, training=True, eps=1e-3), [x, gamma, beta], dout)
    check("cs231n.batchnorm", np.float64, {"out": (out, want), "dx": (dx, grads[0]),
                                           "dgamma": (dgamma, grads[1]),
                                           "dbeta": (dbeta, grads[2])})
    alt = cs.batchnorm_backward_alt if not spatial else backward
    np.testing.assert_array_equal(alt(dout, cache)[0], dx)


# -- dropout: p is the KEEP probability --------------------------------------------

def test_dropout_p_is_the_keep_probability_and_seed_repeats_the_mask():
    x = np.ones((500, 500)) * 10
    out, cache = cs.dropout_forward(x, {"mode": "train", "p": 0.25, "seed": 123})
    kept = out != 0
    assert abs(kept.mean() - 0.25) < 0.005  # 250k draws: about 6 standard deviations
    np.testing.assert_allclose(out[kept], 10 / 0.25)
    again, _ = cs.dropout_forward(x, {"mode": "train", "p": 0.25, "seed": 123})
    np.testing.assert_array_equal(out, again)
    dout = randn(x.shape, 35)
    np.testing.assert_allclose(cs.dropout_backward(dout, cache), dout * out / 10)
    test_out, test_cache = cs.dropout_forward(x, {"mode": "test", "p": 0.25})
    np.testing.assert_array_equal(test_out, x)
    np.testing.assert_array_equal(cs.dropout_backward(dout, test_cache), dout)


@pytest.mark.parametrize("call, err, match", [
    (lambda: cs.conv_forward_fast(randn((1, 1, 4, 4)), randn((1, 1, 3, 3)), randn((1,)),
                                  {"stride": 1}), ValueError, r"conv_param is missing \['pad'\]"),
    (lambda: cs.max_pool_forward_fast(randn((1, 1, 4, 4)), {"pool_height": 2, "stride": 2}),
     ValueError, "pool_width"),
    (lambda: cs.batchnorm_forward(randn((4, 3)), np.ones(3), np.zeros(3), {"mode": "eval"}),
     ValueError, "'train' or 'test'"),
    (lambda: cs.dropout_forward(randn((4, 3)), {"mode": "train", "p": 0.0}), ValueError,
     "keep probability"),
    (lambda: cs.conv_forward_naive(randn((1, 1, 4, 4)), randn((1, 1, 3, 3)), randn((1,)),
                                   (1, 0)), TypeError, "conv_param must be a dict"),
])
def test_bad_parameters_get_clear_errors(call, err, match):
    with pytest.raises(err, match=match):
        call()


@pytest.mark.gpu
def test_cs231n_front_end_runs_on_cupy_arrays():
    import cupy
    x, w, b = randn((2, 3, 8, 8), 40), randn((4, 3, 3, 3), 41), randn((4,), 42)
    out, cache = cs.conv_relu_pool_forward(x, w, b, {"stride": 1, "pad": 1}, POOL)
    dout = randn(out.shape, 43)
    grads = cs.conv_relu_pool_backward(dout, cache)
    g_out, g_cache = cs.conv_relu_pool_forward(*map(cupy.asarray, (x, w, b)),
                                               {"stride": 1, "pad": 1}, POOL)
    g_grads = cs.conv_relu_pool_backward(cupy.asarray(dout), g_cache)
    assert isinstance(g_out, cupy.ndarray)
    np.testing.assert_allclose(g_out.get(), out, rtol=1e-12, atol=1e-12)
    for g, c in zip(g_grads, grads):
        np.testing.assert_allclose(g.get(), c, rtol=1e-10, atol=1e-12)
    bn_param = {"mode": "train"}
    cs.spatial_batchnorm_forward(cupy.asarray(x), cupy.ones(3), cupy.zeros(3), bn_param)
    assert isinstance(bn_param["running_mean"], cupy.ndarray)
    d_out, _ = cs.dropout_forward(cupy.asarray(x), {"mode": "train", "p": 0.5, "seed": 1})
    assert isinstance(d_out, cupy.ndarray)
