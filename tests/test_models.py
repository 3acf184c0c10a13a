"""Model builders: shapes for every dataset size, the course interface, PyTorch and numerical
gradients of whole models, and learning (100% training accuracy on 50 real digits)."""

import numpy as np
import pytest

import fastconv.nn as nn
from fastconv import gradcheck
from fastconv.train import Solver
from torch_oracle import check

DATASET_SHAPES = {"digits": (1, 8, 8), "mnist": (1, 28, 28), "cifar10": (3, 32, 32)}


def randn(shape, dtype=np.float64, seed=0):
    return np.random.default_rng(seed).standard_normal(shape).astype(dtype)


@pytest.mark.parametrize("dataset", list(DATASET_SHAPES))
@pytest.mark.parametrize("name", list(nn.MODELS))
def test_every_builder_fits_every_dataset_shape(name, dataset):
    shape = DATASET_SHAPES[dataset]
    options = {"num_filters": 4, "filter_size": 3, "hidden_dim": 8} if name == "convnet" else {}
    if name == "cnn":
        options = {"widths": (4, 8)}
    model = nn.build_model(name, shape, 7, seed=0, **options)
    x = randn((2,) + shape, np.float32)
    scores = model.loss(x)
    assert scores.shape == (2, 7) and scores.dtype == np.float32
    loss, grads = model.loss(x, np.array([1, 6]))
    assert isinstance(loss, float) and np.isfinite(loss)
    assert set(grads) == set(model.params)
    assert all(grads[k].shape == v.shape for k, v in model.params.items())


def test_build_model_rejects_an_unknown_name_or_option():
    with pytest.raises(ValueError, match=r"unknown model 'resnet'.*'cnn'"):
        nn.build_model("resnet", (1, 8, 8), 10)
    with pytest.raises(ValueError, match=r"model 'linear' does not take \['dropout'\]"):
        nn.build_model("linear", (1, 8, 8), 10, dropout=0.5)
    assert {"hidden_dims", "batchnorm", "dropout", "reg", "seed"} <= nn.model_options("mlp")
    assert {"num_filters", "filter_size", "weight_scale"} <= nn.model_options("convnet")
    assert "hidden_dims" not in nn.model_options("two_layer")


def test_mlp_layers_follow_the_options():
    model = nn.mlp(64, 10, hidden_dims=(32, 16), batchnorm=True, dropout=0.3, seed=0)
    kinds = [type(layer).__name__ for layer in model]
    assert kinds == ["Linear", "BatchNorm1d", "ReLU", "Dropout"] * 2 + ["Linear"]
    assert nn.two_layer_mlp((1, 8, 8), 10, hidden_dim=20)[0].params["W"].shape == (64, 20)


def test_three_layer_convnet_has_the_course_params():
    model = nn.ThreeLayerConvNet(seed=0)  # the course defaults: (3, 32, 32), 32 7x7 filters, ...
    shapes = {k: v.shape for k, v in model.params.items()}
    assert shapes == {"W1": (32, 3, 7, 7), "b1": (32,), "W2": (32 * 16 * 16, 100), "b2": (100,),
                      "W3": (100, 10), "b3": (10,)}
    assert model.params["W1"].std() == pytest.approx(1e-3, rel=0.05)  # weight_scale=1e-3
    x, y = randn((3, 3, 32, 32), np.float32, 1), np.array([0, 4, 9])
    loss, _ = model.loss(x, y)
    assert loss == pytest.approx(np.log(10), abs=1e-3)  # tiny weights: uniform scores
    # the notebook's sanity check feeds float64 data to this float32 model
    loss64, grads = model.loss(x.astype(np.float64), y)
    assert loss64 == loss and all(g.dtype == np.float32 for g in grads.values())
    assert model.loss(x.astype(np.float64)).dtype == np.float32
    model.reg = 0.5
    reg_loss, _ = model.loss(x, y)
    penalty = 0.25 * sum(float((model.params[k].astype(np.float64) ** 2).sum())
                         for k in ("W1", "W2", "W3"))
    assert reg_loss - loss == pytest.approx(penalty, rel=1e-4)


def test_three_layer_convnet_loss_and_grads_match_torch(torch):
    model = nn.ThreeLayerConvNet(input_dim=(2, 6, 7), num_filters=3, filter_size=3, hidden_dim=5,
                                 num_classes=4, weight_scale=0.3, reg=0.1, dtype=np.float64,
                                 seed=0)
    for i in (1, 2, 3):
        model.params[f"b{i}"][...] = randn(model.params[f"b{i}"].shape, seed=10 + i)
    x, y = randn((3, 2, 6, 7), seed=1), np.array([3, 0, 1])
    loss, grads = model.loss(x, y)

    t = {k: torch.from_numpy(v.copy()).requires_grad_(True) for k, v in model.params.items()}
    f = torch.nn.functional
    h = f.max_pool2d(f.relu(f.conv2d(torch.from_numpy(x), t["W1"], t["b1"], padding=1)), 2)
    h = f.relu(h.reshape(3, -1) @ t["W2"] + t["b2"])
    scores = h @ t["W3"] + t["b3"]
    want = f.cross_entropy(scores, torch.from_numpy(y)) + 0.05 * sum(
        (t[k] ** 2).sum() for k in ("W1", "W2", "W3"))
    want.backward()
    check("ThreeLayerConvNet", np.float64,
          {"loss": (np.array(loss), want.detach().numpy()),
           **{f"d{k}": (grads[k], t[k].grad.numpy()) for k in t}})


MODELS_F64 = {
    "linear": lambda: nn.linear_classifier((2, 3, 3), 4, reg=0.1, dtype=np.float64, seed=0),
    "mlp+batchnorm": lambda: nn.mlp((2, 3, 3), 4, hidden_dims=(6, 5), batchnorm=True, reg=0.1,
                                    dtype=np.float64, seed=0),
    "convnet": lambda: nn.ThreeLayerConvNet(input_dim=(2, 3, 3), num_filters=3, filter_size=3,
                                            hidden_dim=5, num_classes=4, weight_scale=0.5,
                                            reg=0.1, dtype=np.float64, seed=0),
    "cnn": lambda: nn.vgg_cnn((2, 3, 3), 4, widths=(3,), reg=0.1, dtype=np.float64, seed=0),
}


@pytest.mark.parametrize("name", list(MODELS_F64))
def test_whole_model_gradients_match_numerical(name):
    model = MODELS_F64[name]()
    # distinct inputs away from zero: no ties in the max pools, no ReLU kinks within +-h
    x = (np.random.default_rng(3).permutation(5 * 18) * 0.05 + 0.013).reshape(5, 2, 3, 3)
    x -= x.mean()
    err = gradcheck.check_model(model, x, np.array([0, 1, 2, 3, 1]))
    assert err < 1e-6, f"{name}: relative error {err:.2e}"


# ----------------------------------------------------------------- learning, not timing

@pytest.fixture(scope="module")
def digits50():
    """50 real handwritten digits (scikit-learn's bundled set), standardised, and 100 more for validation."""
    datasets = pytest.importorskip("sklearn.datasets", reason="the data extra (scikit-learn)")
    digits = datasets.load_digits()
    X = digits.images[:, None].astype(np.float32)
    X = (X - X[:50].mean()) / X[:50].std()
    y = digits.target.astype(np.int64)
    return {"X_train": X[:50], "y_train": y[:50], "X_val": X[50:150], "y_val": y[50:150]}


def test_three_layer_convnet_overfits_50_digits(digits50):
    model = nn.ThreeLayerConvNet(input_dim=(1, 8, 8), weight_scale=None, seed=0)  # He init
    solver = Solver(model, digits50, update_rule="adam", optim_config={"learning_rate": 1e-3},
                    batch_size=10, num_epochs=20, seed=0, progress=False, verbose=False)
    solver.train()  # at most 20 epochs x 5 iterations
    assert 1.0 in solver.train_acc_history, solver.train_acc_history
    assert solver.loss_history[-1] < 0.1 * solver.loss_history[0]


def test_mlp_with_batchnorm_overfits_50_digits(digits50):
    from fastconv.optim import Adam
    model = nn.mlp((1, 8, 8), 10, hidden_dims=(64, 64), batchnorm=True, seed=0)
    solver = Solver(model, digits50, optimizer=Adam(model.params, lr=1e-2), batch_size=25,
                    num_epochs=20, seed=0, progress=False, verbose=False)
    solver.train()  # at most 20 epochs x 2 iterations
    assert 1.0 in solver.train_acc_history, solver.train_acc_history


@pytest.mark.gpu
def test_convnet_trains_on_the_gpu_like_on_the_cpu(digits50):
    import cupy
    runs = []
    for device in ("cpu", "gpu"):
        model = nn.ThreeLayerConvNet(input_dim=(1, 8, 8), weight_scale=None, dtype=np.float64,
                                     seed=0, device=device)
        solver = Solver(model, {k: v.astype(np.float64) if v.dtype.kind == "f" else v
                                for k, v in digits50.items()},
                        update_rule="adam", optim_config={"learning_rate": 1e-3}, batch_size=10,
                        num_epochs=3, seed=0, progress=False, verbose=False)
        solver.train()
        runs.append(solver)
    assert isinstance(runs[1].model.params["W1"], cupy.ndarray)
    np.testing.assert_allclose(runs[1].loss_history, runs[0].loss_history, rtol=1e-8)
    assert runs[1].train_acc_history == runs[0].train_acc_history


@pytest.mark.parametrize("filter_size, err, message", [
    (4, ValueError, r"filter_size must be odd, got 4: the convolution keeps the 8x8 size"),
    (0, ValueError, r"filter_size"),
    (3.0, TypeError, r"filter_size"),
])
def test_three_layer_convnet_refuses_a_filter_size_that_would_not_keep_the_size(
        filter_size, err, message):
    """An even filter with the course's padding (k-1)//2 shrinks the maps by one, and W2,
    sized for H/2 x W/2, would only fail at the first loss with the affine layer's shapes."""
    with pytest.raises(err, match=message):
        nn.ThreeLayerConvNet(input_dim=(1, 8, 8), num_filters=2, filter_size=filter_size,
                             hidden_dim=3, seed=0)
