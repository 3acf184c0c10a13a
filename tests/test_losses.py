"""Losses, L2 regularisation and metrics (fastconv.functional.loss) against PyTorch CPU,
numerical gradients and their label checks."""

from functools import partial

import numpy as np
import pytest

from hypothesis import given
from hypothesis import strategies as st

import fastconv.functional as F
import torch_oracle
from conftest import require_torch
from fastconv import gradcheck
from scaled_oracle import check_at_scale
from torch_oracle import check, hypothesis_settings

DTYPES = [np.float64, np.float32]


def randn(shape, dtype=np.float64, seed=0):
    return np.random.default_rng(seed).standard_normal(shape).astype(dtype)


def labels(n, c, seed=1):
    return np.random.default_rng(seed).integers(0, c, n)


def torch_loss(torch, fn, scores, *args):
    """(loss, dscores) from torch autograd."""
    s = torch.from_numpy(scores.copy()).requires_grad_(True)
    loss = fn(s, *args)
    loss.backward()
    return loss.detach().numpy(), s.grad.numpy()


def torch_multiclass(torch, name):
    f = torch.nn.functional
    if name == "softmax_cross_entropy":
        return lambda s, y: f.cross_entropy(s, torch.from_numpy(y))
    # torch's multi_margin_loss divides each sample's sum by the class count C
    return lambda s, y: f.multi_margin_loss(s, torch.from_numpy(y), p=1, margin=1.0) * s.shape[1]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", ["softmax_cross_entropy", "multiclass_hinge"])
@pytest.mark.parametrize("n, c", [(7, 5), (1, 3), (4, 2)])
def test_multiclass_loss_matches_torch(torch, name, dtype, n, c):
    scores, y = randn((n, c), dtype, n * c) * 2, labels(n, c, n)
    loss, dscores = getattr(F, name)(scores, y)
    want, want_d = torch_loss(torch, torch_multiclass(torch, name), scores, y)
    check(name, dtype, {"loss": (np.asarray(loss), want), "dscores": (dscores, want_d)})
    assert dscores.dtype == dtype and dscores.shape == scores.shape


def torch_binary(torch, name):
    f = torch.nn.functional
    if name == "binary_logistic":
        return lambda s, y: f.binary_cross_entropy_with_logits(s, torch.from_numpy(y).to(s.dtype))

    def hinge(s, y):  # two-class margin loss on scores [0, s]: max(0, 1 - t*s) times 2 / 2
        pair = torch.stack([torch.zeros_like(s), s], dim=1)
        return f.multi_margin_loss(pair, torch.from_numpy(y), p=1, margin=1.0) * 2
    return hinge


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", ["binary_logistic", "binary_hinge"])
@pytest.mark.parametrize("column", [False, True])
def test_binary_loss_matches_torch(torch, name, dtype, column):
    s = randn((9,), dtype, 3) * 2
    y = labels(9, 2, 4)
    scores = s[:, None] if column else s
    loss, dscores = getattr(F, name)(scores, y)
    want, want_d = torch_loss(torch, torch_binary(torch, name), s, y)
    check(name, dtype, {"loss": (np.asarray(loss), want),
                        "dscores": (dscores.reshape(-1), want_d)})
    assert dscores.shape == scores.shape and dscores.dtype == dtype


@hypothesis_settings(60)
@given(name=st.sampled_from(["softmax_cross_entropy", "multiclass_hinge", "binary_logistic",
                             "binary_hinge"]),
       n=st.integers(1, 8), c=st.integers(2, 7), scale=st.sampled_from([1e-2, 1.0, 30.0, 1e3]),
       dtype=st.sampled_from(DTYPES), seed=st.integers(0, 2**16))
def test_losses_match_torch_over_shapes_and_scales(name, n, c, scale, dtype, seed):
    """Against torch in float64 on the same values (the exact answer for float32 inputs too)."""
    torch = require_torch()
    binary = name.startswith("binary")
    scores = (randn((n,) if binary else (n, c), np.float64, seed) * scale).astype(dtype)
    y = labels(n, 2 if binary else c, seed + 1)
    loss, dscores = getattr(F, name)(scores, y)
    oracle = torch_binary(torch, name) if binary else torch_multiclass(torch, name)
    want, want_d = torch_loss(torch, oracle, scores.astype(np.float64), y)
    torch_oracle.count_case(name)
    # a confidently right sample's loss (and p - 1) cancels terms of size |scores| (and 1/N)
    check_at_scale(name, dtype, {"loss": (loss, want, np.abs(scores).max()),
                                 "dscores": (dscores, want_d, 1 / n)})


def test_binary_hinge_accepts_plus_minus_one_labels_and_rejects_mixtures():
    s = randn((6,), seed=5)
    y01 = np.array([0, 1, 1, 0, 1, 0])
    ypm = np.where(y01 == 1, 1, -1)
    a, da = F.binary_hinge(s, y01)
    b, db = F.binary_hinge(s, ypm)
    assert a == b and np.array_equal(da, db)
    with pytest.raises(ValueError, match="all in"):
        F.binary_hinge(s, np.array([0, 1, -1, 0, 1, 0]))
    with pytest.raises(ValueError, match="0 or 1"):
        F.binary_logistic(s, ypm)


def test_losses_are_stable_for_large_scores():
    big = np.array([[1e4, 0.0, -1e4], [-1e4, 1e4, 0.0]], np.float32)
    loss, d = F.softmax_cross_entropy(big, np.array([0, 0]))
    assert np.isclose(float(loss), 1e4) and np.all(np.isfinite(d))  # sample 2 pays 2e4 / 2
    s = np.array([1000.0, -1000.0, 1000.0, -1000.0])
    with np.errstate(over="raise"):
        loss, d = F.binary_logistic(s, np.array([1, 0, 0, 1]))
    assert np.isclose(float(loss), 500.0) and np.all(np.isfinite(d))


@pytest.mark.parametrize("name", ["softmax_cross_entropy", "multiclass_hinge", "topk_error"])
def test_labels_out_of_range_name_the_label_and_class_count(name):
    with pytest.raises(ValueError, match=r"label 5 is out of range for 4 classes"):
        getattr(F, name)(randn((3, 4)), np.array([0, 5, 2]))
    with pytest.raises(ValueError, match=r"label -1"):
        getattr(F, name)(randn((3, 4)), np.array([0, -1, 2]))


@pytest.mark.parametrize("y, err", [(np.array([0.0, 1.0, 2.0]), TypeError),
                                    (np.array([0, 1]), ValueError)])
def test_labels_of_wrong_dtype_or_shape_are_rejected(y, err):
    with pytest.raises(err, match="y"):
        F.softmax_cross_entropy(randn((3, 4)), y)


def test_scores_must_be_float():
    with pytest.raises(TypeError, match="scores"):
        F.multiclass_hinge(np.ones((3, 4), np.int32), np.array([0, 1, 2]))


LOSSES = {
    "softmax_cross_entropy": (F.softmax_cross_entropy, (6, 4), 4),
    "multiclass_hinge": (F.multiclass_hinge, (6, 4), 4),
    "multiclass_hinge margin 0.5": (partial(F.multiclass_hinge, margin=0.5), (6, 4), 4),
    "binary_logistic": (F.binary_logistic, (6,), 2),
    "binary_hinge": (F.binary_hinge, (6,), 2),
}


@pytest.mark.parametrize("name", LOSSES)
def test_gradcheck_loss(name):
    fn, shape, c = LOSSES[name]
    scores = randn(shape, seed=7) * 3  # hinge kinks are a measure-zero set for these draws
    err = gradcheck.check_loss(fn, scores, labels(shape[0], c, 8))
    assert err < 1e-6, f"{name}: relative error {err:.2e}"


def test_l2_regularization_value_gradient_and_torch(torch):
    params = {"W1": np.array([[3.0, 4.0]]), "W2": randn((3, 2), seed=9)}
    loss, grads = F.l2_regularization(params, reg=0.1)
    expected = 0.5 * 0.1 * (25.0 + float((params["W2"] ** 2).sum()))
    assert np.isclose(float(loss), expected)
    tw = {k: torch.from_numpy(v.copy()).requires_grad_(True) for k, v in params.items()}
    (0.5 * 0.1 * sum((t ** 2).sum() for t in tw.values())).backward()
    for k in params:
        np.testing.assert_allclose(grads[k], tw[k].grad.numpy(), rtol=1e-14)
    with pytest.raises(ValueError, match="reg"):
        F.l2_regularization(params, -1.0)
    with pytest.raises(ValueError, match="reg"):
        F.l2_regularization(params, float("nan"))
    with pytest.raises(TypeError, match="params must be a name -> array mapping"):
        F.l2_regularization([params["W1"]], 0.1)


def test_accuracy_and_topk_error_match_torch(torch):
    scores, y = randn((50, 10), seed=10), labels(50, 10, 11)
    t = torch.from_numpy(scores)
    assert F.accuracy(scores, y) == float((t.argmax(1).numpy() == y).mean())
    for k in (1, 3, 10):
        in_top = (torch.topk(t, k, dim=1).indices.numpy() == y[:, None]).any(axis=1)
        assert F.topk_error(scores, y, k=k) == pytest.approx(1 - in_top.mean())
    assert F.topk_error(scores, y, k=10) == 0.0
    assert F.topk_error(scores, y, k=1) == pytest.approx(1 - F.accuracy(scores, y))
    with pytest.raises(ValueError, match="k must be"):
        F.topk_error(scores, y, k=11)


def test_float16_losses_sum_in_float32():
    """The hinge margins of 4000 samples and the squares of 90000 weights overflowed float16."""
    scores = (randn((4000, 10), seed=20) * 5).astype(np.float16)
    y = labels(4000, 10, 21)
    loss, _ = F.multiclass_hinge(scores, y)
    want, _ = F.multiclass_hinge(scores.astype(np.float64), y)
    assert float(loss) == pytest.approx(float(want), rel=1e-3)
    reg_loss, _ = F.l2_regularization({"w": np.ones((300, 300), np.float16)}, 1e-3)
    assert float(reg_loss) == pytest.approx(45.0, rel=1e-3)


def test_float16_squares_are_formed_in_float32():
    """mse_loss and l2_regularization squared float16 values before their float32 sums, so a
    value above 256 became inf; the oracles square and sum in float64."""
    pred = np.array([300, 0, -20, 0.5], np.float16)
    target = np.array([0, 0, 150, 0], np.float16)
    loss, _ = F.mse_loss(pred, target)
    want = np.mean((pred.astype(np.float64) - target.astype(np.float64)) ** 2)
    assert loss.dtype == np.float16
    np.testing.assert_array_equal(loss, np.float16(want))
    w = np.array([300, -400, 1], np.float16)
    reg_loss, _ = F.l2_regularization({"w": w}, 0.5)
    assert np.isfinite(reg_loss)
    np.testing.assert_allclose(float(reg_loss), 0.25 * np.sum(w.astype(np.float64) ** 2),
                               rtol=1e-7)


def test_accuracy_of_binary_scores():
    scores = np.array([2.0, -1.0, 0.5, -3.0])
    assert F.accuracy(scores, np.array([1, 0, 0, 0])) == 0.75
    assert F.accuracy(scores[:, None], np.array([1, -1, 1, -1])) == 1.0


@pytest.mark.parametrize("scores, y, err, fragment", [
    (np.zeros((1, 3, 2)), np.array([1]), ValueError, r"scores must have shape \(N, C\)"),
    (np.eye(3), np.array([0, 1, 3]), ValueError, "label 3 is out of range for 3 classes"),
    (np.eye(3), np.array([0.0, 1.0, 2.0]), TypeError, "y must be an integer array"),
    (np.zeros(3), np.array([1, 0, 2]), ValueError, "binary labels must be 1"),
    (np.zeros(3), [1, 0, 1], TypeError, "y must be an array"),
])
def test_accuracy_refuses_what_it_cannot_score(scores, y, err, fragment):
    """Each of these used to give a number (3-D scores were flattened as binary ones)."""
    with pytest.raises(err, match=fragment):
        F.accuracy(scores, y)


def test_nan_scores_rank_first_in_accuracy_and_topk_error_as_in_torch(torch):
    scores = np.array([[5.0, np.nan, 6.0], [1.0, 2.0, np.nan], [3.0, 2.0, 1.0]])
    y = np.array([2, 2, 0])
    in_top1 = torch.topk(torch.from_numpy(scores), 1, dim=1).indices.numpy()[:, 0] == y
    assert F.topk_error(scores, y, k=1) == pytest.approx(1 - in_top1.mean())
    assert F.topk_error(scores, y, k=1) == pytest.approx(1 - F.accuracy(scores, y))
    with pytest.raises(TypeError, match="k must be an int"):
        F.topk_error(scores, y, k=1.5)


@pytest.mark.gpu
def test_losses_and_metrics_run_on_cupy_and_match_numpy():
    import cupy
    scores, y = randn((7, 5), seed=50), labels(7, 5, 51)
    gs, gy = cupy.asarray(scores), cupy.asarray(y)
    for fn in (F.softmax_cross_entropy, F.multiclass_hinge):
        loss, d = fn(scores, y)
        g_loss, g_d = fn(gs, gy)
        assert isinstance(g_d, cupy.ndarray)
        assert float(g_loss) == pytest.approx(float(loss), rel=1e-12)
        np.testing.assert_allclose(g_d.get(), d, rtol=1e-12, atol=1e-15)
    for fn in (F.binary_logistic, F.binary_hinge):
        loss, d = fn(scores[:, 0], y % 2)
        g_loss, g_d = fn(gs[:, 0], gy % 2)
        assert float(g_loss) == pytest.approx(float(loss), rel=1e-12)
        np.testing.assert_allclose(g_d.get(), d, rtol=1e-12, atol=1e-15)
    assert F.accuracy(gs, gy) == F.accuracy(scores, y)
    assert F.topk_error(gs, gy, k=2) == F.topk_error(scores, y, k=2)
    with pytest.raises(ValueError, match="label 9"):
        F.softmax_cross_entropy(gs, cupy.asarray([0, 1, 9, 0, 1, 2, 3]))


# ---------------------------------------------------------------- mean squared error

@hypothesis_settings(20)
@given(shape=st.lists(st.integers(1, 5), min_size=0, max_size=4).map(tuple),
       scale=st.sampled_from([1e-3, 1.0, 50.0]), seed=st.integers(0, 2**16))
def test_mse_loss_matches_torch(shape, scale, seed):
    torch = require_torch()
    for dtype in DTYPES:
        pred, target = randn(shape, dtype, seed) * scale, randn(shape, dtype, seed + 1) * scale
        loss, dpred = F.mse_loss(pred, target)
        assert loss.shape == () and loss.dtype == dtype
        assert dpred.shape == pred.shape and dpred.dtype == dtype
        p = torch.from_numpy(np.array(pred)).requires_grad_(True)
        want = torch.nn.functional.mse_loss(p, torch.from_numpy(np.array(target)))
        want.backward()
        check("mse_loss", dtype, {"loss": (loss, want.detach().numpy()),
                                  "dpred": (dpred, p.grad.numpy())})
    torch_oracle.count_case("mse_loss")


def test_mse_loss_gradient_float16_and_empty_input():
    pred, target = randn((4, 3), seed=30), randn((4, 3), seed=31)
    assert gradcheck.check_loss(F.mse_loss, pred, target) < 1e-8
    big = np.full((300, 300), 20.0, np.float16)  # 90000 squares of 400 overflow a float16 sum
    loss, dpred = F.mse_loss(big, np.zeros_like(big))
    assert loss.dtype == dpred.dtype == np.float16 and float(loss) == 400.0
    loss, dpred = F.mse_loss(np.zeros((0, 3)), np.zeros((0, 3)))
    assert np.isnan(loss) and dpred.shape == (0, 3)  # torch: nan too


@pytest.mark.parametrize("pred, target, err, fragment", [
    (np.zeros(3), np.zeros(4), ValueError, r"pred has shape \(3,\) but target has shape \(4,\)"),
    (np.zeros((3, 1)), np.zeros(3), ValueError, "they must match"),
    (np.zeros(3), np.zeros(3, np.float32), TypeError, "pred is float64 but target is float32"),
    (np.zeros(3, np.int64), np.zeros(3, np.int64), TypeError, "pred must be a floating-point"),
    (np.zeros(3), [0.0, 0.0, 0.0], TypeError, "target must be a NumPy or CuPy array"),
])
def test_mse_loss_refuses_mismatched_input(pred, target, err, fragment):
    with pytest.raises(err, match=fragment):
        F.mse_loss(pred, target)


@pytest.mark.gpu
def test_mse_loss_on_cupy_matches_numpy():
    import cupy
    pred, target = randn((6, 4), seed=40), randn((6, 4), seed=41)
    loss, dpred = F.mse_loss(pred, target)
    g_loss, g_dpred = F.mse_loss(cupy.asarray(pred), cupy.asarray(target))
    assert isinstance(g_dpred, cupy.ndarray)
    assert float(g_loss) == pytest.approx(float(loss), rel=1e-13)
    np.testing.assert_allclose(g_dpred.get(), dpred, rtol=1e-13)


def test_docstring_examples_run():
    import doctest

    import fastconv.functional.loss
    assert doctest.testmod(fastconv.functional.loss).failed == 0


@pytest.mark.parametrize("margin", ["1", True, None, np.array([1.0, 2.0])])
def test_multiclass_hinge_refuses_a_margin_that_is_no_real_number(margin):
    """"1" was read as 1.0, True as 1, and an array broadcast against the scores' rows."""
    with pytest.raises(TypeError, match="margin must be a real number"):
        F.multiclass_hinge(np.zeros((2, 3)), np.array([0, 1]), margin=margin)
