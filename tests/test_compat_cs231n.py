"""fastconv.compat.cs231n against its contract: every course function name with the course's
signature and return structure, the course notebook's check values, PyTorch CPU for every
layer and sandwich, the course's dict semantics (bn_param running averages, ln_param/gn_param,
dropout's keep probability and seeded mask), mixed dtypes promoted as NumPy promotes, cache
behaviour and clear errors."""

import inspect

import numpy as np
import pytest

import fastconv.functional as F
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
    # a string failed inside the comparison with "'<' not supported", naming nothing
    (lambda: cs.dropout_forward(randn((4, 3)), {"mode": "train", "p": "0.5"}), TypeError,
     r"dropout_param\['p'\] \(the keep probability\) must be a real number"),
    (lambda: cs.conv_forward_naive(randn((1, 1, 4, 4)), randn((1, 1, 3, 3)), randn((1,)),
                                   (1, 0)), TypeError, "conv_param must be a dict"),
])
def test_bad_parameters_get_clear_errors(call, err, match):
    with pytest.raises(err, match=match):
        call()


@pytest.mark.parametrize("forward, shape", [(cs.batchnorm_forward, (4, 3)),
                                            (cs.spatial_batchnorm_forward, (2, 3, 2, 2))])
@pytest.mark.parametrize("key, value, err, match", [
    # a string or None failed in the running average naming nothing; an array broadcast
    ("momentum", "0.9", TypeError, r"bn_param\['momentum'\] must be a real number"),
    ("momentum", None, TypeError, r"bn_param\['momentum'\] must be a real number"),
    ("momentum", np.array([0.9, 0.1, 0.5]), TypeError, r"bn_param\['momentum'\] must be"),
    ("momentum", 1.5, ValueError, r"bn_param\['momentum'\] must be in \[0.0, 1.0\], got 1.5"),
    ("momentum", float("nan"), ValueError, r"bn_param\['momentum'\] must be in \[0.0, 1.0\]"),
    ("eps", "1e-5", TypeError, r"bn_param\['eps'\] must be a real number"),
    ("eps", 0.0, ValueError, r"bn_param\['eps'\] must be > 0.0, got 0.0"),
])
def test_bn_param_momentum_and_eps_are_checked_naming_them(forward, shape, key, value, err,
                                                           match):
    """The functional batchnorm's limits, in the course's names."""
    x, channels = randn(shape), shape[1]
    with pytest.raises(err, match=match):
        forward(x, np.ones(channels), np.zeros(channels), {"mode": "train", key: value})


@pytest.mark.parametrize("momentum", [0, 1, np.float32(0.5)])
def test_bn_param_momentum_bounds_and_numpy_scalars_are_accepted(momentum):
    x = randn((4, 3))
    bn_param = {"mode": "train", "momentum": momentum}
    cs.batchnorm_forward(x, np.ones(3), np.zeros(3), bn_param)
    np.testing.assert_allclose(bn_param["running_mean"], (1 - float(momentum)) * x.mean(axis=0),
                               rtol=1e-6)


# -- every course name, with the course's signature and return structure ----------

CONV_VARIANTS = ("naive", "fast", "im2col", "strides")
POOL_VARIANTS = ("naive", "fast", "reshape", "im2col")
FORWARDS = {  # name: parameters, as layers.py, fast_layers.py and layer_utils.py define them
    "affine_forward": "x w b", "relu_forward": "x", "batchnorm_forward": "x gamma beta bn_param",
    "layernorm_forward": "x gamma beta ln_param", "dropout_forward": "x dropout_param",
    "spatial_batchnorm_forward": "x gamma beta bn_param",
    "spatial_groupnorm_forward": "x gamma beta G gn_param", "affine_relu_forward": "x w b",
    "conv_relu_forward": "x w b conv_param",
    "conv_bn_relu_forward": "x w b gamma beta conv_param bn_param",
    "conv_relu_pool_forward": "x w b conv_param pool_param",
    **{f"conv_forward_{v}": "x w b conv_param" for v in CONV_VARIANTS},
    **{f"max_pool_forward_{v}": "x pool_param" for v in POOL_VARIANTS},
}
COURSE_API = {
    **FORWARDS, **{name.replace("forward", "backward"): "dout cache" for name in FORWARDS},
    "batchnorm_backward_alt": "dout cache", "softmax_loss": "x y", "svm_loss": "x y",
}


def test_star_import_has_every_course_name_with_its_signature():
    star = {}
    exec("from fastconv.compat.cs231n import *", star)
    for name, params in COURSE_API.items():
        assert name in star, name
        assert list(inspect.signature(star[name]).parameters) == params.split(), name
    assert set(cs.__all__) == set(COURSE_API)


def _course_calls():
    """(forward name, its arguments, number of gradients) for every layer."""
    x4, w, b = randn((2, 3, 6, 6), 50), randn((4, 3, 3, 3), 51), randn((4,), 52)
    x2, wa, ba = randn((5, 6), 53), randn((6, 3), 54), randn((3,), 55)
    conv = {"stride": 1, "pad": 1}

    def train():  # a bn_param keeps its layer's running statistics: one per layer
        return {"mode": "train"}
    calls = [("affine_forward", (x4, randn((108, 3), 56), ba), 3), ("relu_forward", (x4,), 1),
             ("batchnorm_forward", (x2, np.ones(6), np.zeros(6), train()), 3),
             ("layernorm_forward", (x2, np.ones(6), np.zeros(6), {}), 3),
             ("dropout_forward", (x2, {"mode": "train", "p": 0.5, "seed": 1}), 1),
             ("spatial_batchnorm_forward", (x4, np.ones(3), np.zeros(3), train()), 3),
             ("spatial_groupnorm_forward",
              (x4, np.ones((1, 3, 1, 1)), np.zeros((1, 3, 1, 1)), 3, {}), 3),
             ("affine_relu_forward", (x2, wa, ba), 3), ("conv_relu_forward", (x4, w, b, conv), 3),
             ("conv_bn_relu_forward", (x4, w, b, np.ones(4), np.zeros(4), conv, train()), 5),
             ("conv_relu_pool_forward", (x4, w, b, conv, POOL), 3)]
    calls += [(f"conv_forward_{v}", (x4, w, b, conv), 3) for v in CONV_VARIANTS]
    calls += [(f"max_pool_forward_{v}", (x4, POOL), 1) for v in POOL_VARIANTS]
    assert {name for name, _, _ in calls} == set(FORWARDS)
    return calls


@pytest.mark.parametrize("forward, args, n_grads", _course_calls(),
                         ids=lambda v: v if isinstance(v, str) else "")
def test_every_layer_returns_the_courses_structure(forward, args, n_grads):
    """forward -> (out, cache); backward -> the gradients of the array inputs, in order
    (a single array when there is one), each shaped like its input."""
    result = getattr(cs, forward)(*args)
    assert isinstance(result, tuple) and len(result) == 2
    out, cache = result
    grads = getattr(cs, forward.replace("forward", "backward"))(np.ones_like(out), cache)
    if n_grads == 1:
        assert isinstance(grads, np.ndarray) and grads.shape == args[0].shape
    else:
        assert isinstance(grads, tuple) and len(grads) == n_grads
        for g, a in zip(grads, [a for a in args if isinstance(a, np.ndarray)]):
            assert g.shape == a.shape


def test_layernorm_matches_torch(torch):
    x, gamma, beta = randn((4, 6), 60) * 3 + 1, randn((6,), 61), randn((6,), 62)
    out, cache = cs.layernorm_forward(x, gamma, beta, {"eps": 1e-3})
    dout = randn(out.shape, 63)
    dx, dgamma, dbeta = cs.layernorm_backward(dout, cache)
    want, grads = torch_run(torch, lambda a, g, c: torch.nn.functional.layer_norm(
        a, (6,), g, c, eps=1e-3), [x, gamma, beta], dout)
    check("cs231n.layernorm", np.float64, {"out": (out, want), "dx": (dx, grads[0]),
                                           "dgamma": (dgamma, grads[1]),
                                           "dbeta": (dbeta, grads[2])})


@pytest.mark.parametrize("param_shape", [(1, 6, 1, 1), (6,)])
def test_spatial_groupnorm_matches_torch_in_the_courses_parameter_shape(torch, param_shape):
    x = randn((2, 6, 3, 4), 64) * 2 - 1
    gamma, beta = randn(param_shape, 65), randn(param_shape, 66)
    out, cache = cs.spatial_groupnorm_forward(x, gamma, beta, 3, {"eps": 1e-5})
    dout = randn(out.shape, 67)
    dx, dgamma, dbeta = cs.spatial_groupnorm_backward(dout, cache)
    assert dgamma.shape == dbeta.shape == param_shape  # the course: (1, C, 1, 1)
    want, grads = torch_run(torch, lambda a, g, c: torch.nn.functional.group_norm(
        a, 3, g.reshape(6), c.reshape(6)), [x, gamma, beta], dout)
    check("cs231n.spatial_groupnorm", np.float64, {"out": (out, want), "dx": (dx, grads[0]),
                                                   "dgamma": (dgamma, grads[1]),
                                                   "dbeta": (dbeta, grads[2])})


def test_conv_bn_relu_matches_torch_and_keeps_running_averages(torch):
    x, w, b = randn((3, 3, 6, 6), 68), randn((4, 3, 3, 3), 69), randn((4,), 70)
    gamma, beta = randn((4,), 71), randn((4,), 72)
    bn_param = {"mode": "train"}
    out, cache = cs.conv_bn_relu_forward(x, w, b, gamma, beta, {"stride": 1, "pad": 1}, bn_param)
    assert isinstance(cache, tuple) and len(cache) == 3
    dout = randn(out.shape, 73)
    grads = cs.conv_bn_relu_backward(dout, cache)
    f = torch.nn.functional

    def fn(a, k, c, g, be):
        conv = f.conv2d(a, k, c, padding=1)
        return torch.relu(f.batch_norm(conv, None, None, g, be, training=True))
    want, t_grads = torch_run(torch, fn, [x, w, b, gamma, beta], dout)
    names = ("dx", "dw", "db", "dgamma", "dbeta")
    check("cs231n.conv_bn_relu", np.float64, {"out": (out, want), **{
        name: (g, t) for name, g, t in zip(names, grads, t_grads) if name != "db"}})
    np.testing.assert_allclose(grads[2], 0, atol=1e-12)  # batchnorm removes the bias: db is 0
    conv_out, _ = cs.conv_forward_fast(x, w, b, {"stride": 1, "pad": 1})
    np.testing.assert_allclose(bn_param["running_mean"], 0.1 * conv_out.mean(axis=(0, 2, 3)),
                               rtol=1e-12)


def test_fast_layer_variants_are_one_implementation():
    x, w, b = randn((2, 3, 8, 8), 74), randn((4, 3, 3, 3), 75), randn((4,), 76)
    dout = randn((2, 4, 8, 8), 77)
    ref_out, ref_cache = cs.conv_forward_naive(x, w, b, {"stride": 1, "pad": 1})
    ref = cs.conv_backward_naive(dout, ref_cache)
    for v in ("fast", "im2col", "strides"):
        out, cache = getattr(cs, f"conv_forward_{v}")(x, w, b, {"stride": 1, "pad": 1})
        np.testing.assert_array_equal(out, ref_out)
        for got, want in zip(getattr(cs, f"conv_backward_{v}")(dout, cache), ref):
            np.testing.assert_array_equal(got, want)
    ties = np.zeros((1, 1, 2, 2))
    for v in ("naive", "fast", "reshape", "im2col"):  # first maximum (reshape splits, documented)
        _, cache = getattr(cs, f"max_pool_forward_{v}")(ties, POOL)
        dx = getattr(cs, f"max_pool_backward_{v}")(np.ones((1, 1, 1, 1)), cache)
        np.testing.assert_array_equal(dx[0, 0], [[1, 0], [0, 0]])


# -- seeded dropout: the course's mask and its global-generator side effect --------

def course_mask(seed, shape, keep):
    """The course's mask: ``np.random.seed(seed); mask = (np.random.rand(*shape) < p) / p``."""
    np.random.seed(seed)
    return (np.random.rand(*shape) < keep) / keep


@pytest.mark.parametrize("keep", [0.75, 0.5, 0.3])
def test_seeded_dropout_mask_is_the_courses(keep):
    x = randn((30, 40), 78)
    out, cache = cs.dropout_forward(x, {"mode": "train", "p": keep, "seed": 231})
    after = np.random.rand()  # the global generator is where the course leaves it
    mask = course_mask(231, x.shape, keep)
    assert after == np.random.rand()
    np.testing.assert_array_equal(out != 0, mask != 0)
    if keep >= 0.5:  # 1 - (1 - p) == p exactly
        np.testing.assert_array_equal(out, x * mask)
    np.testing.assert_allclose(out, x * mask, rtol=1e-15, atol=0)
    dout = randn(x.shape, 79)
    np.testing.assert_allclose(cs.dropout_backward(dout, cache), dout * mask, rtol=1e-15, atol=0)
    x32 = x.astype(np.float32)
    out32, _ = cs.dropout_forward(x32, {"mode": "train", "p": keep, "seed": 231})
    assert out32.dtype == np.float32
    np.testing.assert_allclose(out32, (x32 * mask).astype(np.float32), rtol=1e-6, atol=0)


def test_dropout_seed_reseeds_the_global_generator_in_test_mode_too():
    cs.dropout_forward(randn((3, 3)), {"mode": "test", "p": 0.5, "seed": 5})
    draw = np.random.rand()
    np.random.seed(5)
    assert draw == np.random.rand()


def test_dropout_without_seed_continues_the_global_generator():
    x = randn((6, 7), 80)
    np.random.seed(11)
    out, _ = cs.dropout_forward(x, {"mode": "train", "p": 0.6})
    np.testing.assert_array_equal(out != 0, course_mask(11, x.shape, 0.6) != 0)


# -- mixed dtypes in the backward pass, labels as lists -----------------------------

MIXED = {  # name: (forward(dtype) -> (out, cache), backward)
    "relu": (lambda dt: cs.relu_forward(randn((3, 4), 81).astype(dt)), cs.relu_backward),
    "affine": (lambda dt: cs.affine_forward(randn((3, 2, 2), 82).astype(dt),
                                            randn((4, 5), 83).astype(dt),
                                            randn((5,), 84).astype(dt)), cs.affine_backward),
    "conv": (lambda dt: cs.conv_forward_fast(randn((2, 3, 5, 5), 85).astype(dt),
                                             randn((2, 3, 3, 3), 86).astype(dt),
                                             randn((2,), 87).astype(dt), CONV),
             cs.conv_backward_fast),
    "max_pool": (lambda dt: cs.max_pool_forward_fast(randn((2, 3, 4, 4), 88).astype(dt), POOL),
                 cs.max_pool_backward_fast),
    "batchnorm": (lambda dt: cs.batchnorm_forward(randn((6, 3), 89).astype(dt),
                                                  np.ones(3, dt), np.zeros(3, dt),
                                                  {"mode": "train"}), cs.batchnorm_backward),
    "layernorm": (lambda dt: cs.layernorm_forward(randn((6, 3), 90).astype(dt),
                                                  np.ones(3, dt), np.zeros(3, dt), {}),
                  cs.layernorm_backward),
    "dropout": (lambda dt: cs.dropout_forward(randn((6, 3), 91).astype(dt),
                                              {"mode": "train", "p": 0.5, "seed": 0}),
                cs.dropout_backward),
}


@pytest.mark.parametrize("name", MIXED)
@pytest.mark.parametrize("forward_dtype, dout_dtype", [(np.float64, np.float32),
                                                       (np.float32, np.float64)])
def test_backward_promotes_mixed_dtypes_like_numpy(name, forward_dtype, dout_dtype):
    """e.g. ``relu_backward(np.ones(s, np.float32), relu_forward(np.ones(s))[1])``."""
    forward, backward = MIXED[name]
    out, cache = forward(forward_dtype)
    dout = randn(out.shape, 92).astype(dout_dtype)
    grads = backward(dout, cache)
    _, cache64 = forward(np.float64)
    want = backward(dout.astype(np.float64), cache64)
    for got, ref in zip(*((g,) if isinstance(g, np.ndarray) else g for g in (grads, want))):
        assert got.dtype == np.float64
        np.testing.assert_allclose(got, ref, rtol=1e-5, atol=1e-6)


def test_a_cache_from_another_op_is_refused_by_name():
    x = randn((2, 3, 5, 5), 94)
    _, conv_cache = cs.conv_forward_fast(x, randn((2, 3, 3, 3), 95), np.zeros(2), CONV)
    with pytest.raises(TypeError, match="cache comes from conv2d_forward, not relu_forward"):
        cs.relu_backward(np.ones((2, 2, 3, 3)), conv_cache)
    _, raw = F.relu_forward(x)  # an op's own cache passes through to the op
    np.testing.assert_array_equal(cs.relu_backward(np.ones_like(x), raw), x > 0)


def test_losses_take_a_list_of_labels():
    scores, labels = randn((4, 3), 93), [2, 0, 1, 1]
    for loss_fn in (cs.softmax_loss, cs.svm_loss):
        loss, dx = loss_fn(scores, labels)
        want_loss, want_dx = loss_fn(scores, np.array(labels))
        assert float(loss) == float(want_loss)
        np.testing.assert_array_equal(dx, want_dx)


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
    np.random.seed(9)
    d_out, _ = cs.dropout_forward(cupy.asarray(x), {"mode": "train", "p": 0.5, "seed": 1})
    again, _ = cs.dropout_forward(cupy.asarray(x), {"mode": "train", "p": 0.5, "seed": 1})
    assert isinstance(d_out, cupy.ndarray)
    cupy.testing.assert_array_equal(d_out, again)  # cupy.random seeded, NumPy's left alone:
    draw = np.random.rand()
    np.random.seed(9)
    assert draw == np.random.rand()
    g = cs.layernorm_forward(cupy.asarray(x[:, :, 0, 0]), cupy.ones(3), cupy.zeros(3), {})[0]
    np.testing.assert_allclose(g.get(), cs.layernorm_forward(x[:, :, 0, 0], np.ones(3),
                                                             np.zeros(3), {})[0], rtol=1e-12)


@pytest.mark.parametrize("call, name, got", [
    (lambda: cs.conv_forward_fast(np.ones((1, 1, 3, 3)), np.ones((1, 1, 3, 3)), 0.5,
                                      {"stride": 1, "pad": 1}), "b", "float"),
    (lambda: cs.affine_forward([[1.0, 2.0]], np.ones((2, 3)), np.zeros(3)), "x", "list"),
    (lambda: cs.batchnorm_forward([[1.0, 2.0]], np.ones(2), np.zeros(2), {"mode": "train"}),
     "x", "list"),
])
def test_an_argument_that_is_no_array_is_refused_by_name(call, name, got):
    with pytest.raises(TypeError, match=rf"^{name} must be a NumPy or CuPy array, got {got}$"):
        call()
