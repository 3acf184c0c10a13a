"""fastconv.compat.dlfs against its contract: the book's 2-D im2col layout vs a loop, col2im
as its adjoint, every layer of ``common/layers.py`` vs PyTorch with the attributes the book
sets, a star-import replacement running SimpleConvNet-shaped networks, the book's scalar bias,
and mixed dtypes promoted as NumPy promotes. The optimisers: test_compat_dlfs_optimizer.py."""

from collections import OrderedDict

import numpy as np
import pytest

from fastconv.compat import dlfs
from fastconv.gradcheck import numerical_gradient, relative_error
from torch_oracle import check


def randn(shape, seed=0, dtype=np.float64):
    return np.random.default_rng(seed).standard_normal(shape).astype(dtype)


def loop_im2col(x, fh, fw, stride, pad):
    """The book's layout from its definition: one row per (n, oh, ow), columns (c, kh, kw)."""
    n, c, h, w = x.shape
    xp = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    oh, ow = (h + 2 * pad - fh) // stride + 1, (w + 2 * pad - fw) // stride + 1
    rows = []
    for i in range(n):
        for y in range(oh):
            for z in range(ow):
                rows.append([xp[i, ch, y * stride + a, z * stride + b]
                             for ch in range(c) for a in range(fh) for b in range(fw)])
    return np.array(rows, dtype=x.dtype)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("shape, fh, fw, stride, pad", [
    ((2, 3, 5, 6), 3, 3, 1, 0), ((1, 2, 7, 7), 2, 3, 2, 1), ((3, 1, 4, 5), 4, 5, 3, 2)])
def test_im2col_layout_matches_a_loop_and_keeps_dtype(dtype, shape, fh, fw, stride, pad):
    x = randn(shape, 1, dtype)
    col = dlfs.im2col(x, fh, fw, stride, pad)
    np.testing.assert_array_equal(col, loop_im2col(x, fh, fw, stride, pad))
    assert col.dtype == dtype


@pytest.mark.parametrize("shape, fh, fw, stride, pad", [
    ((2, 3, 5, 6), 3, 3, 1, 0), ((1, 2, 7, 7), 2, 3, 2, 1), ((2, 2, 6, 5), 3, 2, 2, 2)])
def test_col2im_is_the_adjoint_of_im2col(shape, fh, fw, stride, pad):
    x = randn(shape, 2)
    cols = randn(dlfs.im2col(x, fh, fw, stride, pad).shape, 3)
    back = dlfs.col2im(cols, shape, fh, fw, stride, pad)
    assert back.shape == shape
    lhs = float((dlfs.im2col(x, fh, fw, stride, pad) * cols).sum())
    assert lhs == pytest.approx(float((x * back).sum()), rel=1e-12)
    assert dlfs.col2im(cols.astype(np.float32), shape, fh, fw, stride, pad).dtype == np.float32
    with pytest.raises(ValueError, match="col2im"):
        dlfs.col2im(cols[:, 1:], shape, fh, fw, stride, pad)


def test_convolution_layer_matches_torch_and_sets_dw_db(torch):
    W, b = randn((4, 3, 3, 3), 4), randn((4,), 5)
    layer = dlfs.Convolution(W, b, stride=2, pad=1)
    x = randn((2, 3, 7, 6), 6)
    out = layer.forward(x)
    dout = randn(out.shape, 7)
    dx = layer.backward(dout)
    leaves = [torch.from_numpy(a.copy()).requires_grad_(True) for a in (x, W, b)]
    want = torch.nn.functional.conv2d(*leaves, stride=2, padding=1)
    want.backward(torch.from_numpy(dout))
    check("dlfs.Convolution", np.float64, {
        "out": (out, want.detach().numpy()), "dx": (dx, leaves[0].grad.numpy()),
        "dW": (layer.dW, leaves[1].grad.numpy()), "db": (layer.db, leaves[2].grad.numpy())})
    W *= 2  # the book's networks update the shared W in place: the layer must see it
    np.testing.assert_allclose(layer.forward(x) - b[:, None, None], 2 * (out - b[:, None, None]),
                               rtol=1e-12)


def test_convolution_promotes_float32_images_with_float64_weights_like_the_book():
    """The book's load_mnist gives float32 images, its SimpleConvNet float64 weights."""
    W, b = 0.01 * randn((3, 1, 5, 5), 8), np.zeros(3)
    x = randn((2, 1, 9, 9), 9)
    layer = dlfs.Convolution(W, b)
    out = layer.forward(x.astype(np.float32))
    assert out.dtype == np.float64
    np.testing.assert_allclose(out, dlfs.Convolution(W, b).forward(x.astype(np.float32)
                                                                   .astype(np.float64)))
    layer.backward(np.ones_like(out))
    assert layer.dW.dtype == np.float64


@pytest.mark.parametrize("kwargs, torch_kwargs", [
    (dict(pool_h=2, pool_w=2, stride=2), dict(kernel_size=2, stride=2)),
    (dict(pool_h=3, pool_w=2), dict(kernel_size=(3, 2), stride=2)),  # the default stride is 2
    (dict(pool_h=3, pool_w=3, stride=2, pad=1), dict(kernel_size=3, stride=2, padding=1)),
])
def test_pooling_layer_matches_torch(torch, kwargs, torch_kwargs):
    layer = dlfs.Pooling(**kwargs)
    x = -np.abs(randn((2, 3, 7, 6), 8))  # all negative: zero padding would show up
    out = layer.forward(x)
    dout = randn(out.shape, 9)
    dx = layer.backward(dout)
    t = torch.from_numpy(x.copy()).requires_grad_(True)
    want = torch.nn.functional.max_pool2d(t, **torch_kwargs)
    want.backward(torch.from_numpy(dout))
    check("dlfs.Pooling", np.float64, {"out": (out, want.detach().numpy()),
                                       "dx": (dx, t.grad.numpy())})


def test_backward_before_forward_is_a_clear_error():
    with pytest.raises(RuntimeError, match="before forward"):
        dlfs.Pooling(2, 2).backward(np.ones((1, 1, 1, 1)))



# -- the attributes the book's readers inspect -----------------------------------

def test_convolution_attributes_rebuild_its_output_as_the_book_computes_it():
    """The book's forward is ``col @ col_W + b`` reshaped: x, col and col_W must support it."""
    W, b, x = randn((4, 3, 3, 2), 60), randn((4,), 61), randn((2, 3, 7, 6), 62)
    layer = dlfs.Convolution(W, b, stride=2, pad=1)
    out = layer.forward(x)
    assert layer.x is x
    np.testing.assert_array_equal(layer.col, loop_im2col(x, 3, 2, 2, 1))
    assert layer.col_W.shape == (3 * 3 * 2, 4)
    n, _, oh, ow = out.shape
    book = (layer.col @ layer.col_W + b).reshape(n, oh, ow, -1).transpose(0, 3, 1, 2)
    np.testing.assert_allclose(out, book, rtol=1e-12, atol=1e-12)
    assert dlfs.Convolution(W, b).col is None


def test_pooling_arg_max_is_the_books_argmax_over_window_rows():
    """The book: ``arg_max = argmax(im2col(x, ph, pw, stride, pad).reshape(-1, ph * pw), 1)``."""
    x = randn((2, 3, 6, 8), 63)
    layer = dlfs.Pooling(2, 4, stride=2)
    out = layer.forward(x)
    rows = loop_im2col(x, 2, 4, 2, 0).reshape(-1, 2 * 4)
    np.testing.assert_array_equal(layer.arg_max, rows.argmax(axis=1))
    assert layer.x is x
    np.testing.assert_array_equal(out, rows.max(axis=1).reshape(2, 3, 3, 3).transpose(0, 3, 1, 2))
    assert dlfs.Pooling(2, 2).arg_max is None


def test_book_apply_filter_passes_a_python_int_bias():
    """ch07/apply_filter.py: ``Convolution(filter, 0)`` on a float32 image, float64 filter."""
    layer = dlfs.Convolution(np.ones((1, 1, 5, 5)), 0)
    out = layer.forward(np.ones((1, 1, 12, 12), np.float32))
    assert out.shape == (1, 1, 8, 8) and out.dtype == np.float64
    np.testing.assert_array_equal(out, 25.0)
    layer.backward(np.ones_like(out))
    np.testing.assert_array_equal(layer.db, [64.0])
    affine = dlfs.Affine(np.ones((3, 2), np.float32), 0.5)
    assert affine.forward(np.ones((4, 3), np.float32)).dtype == np.float32  # NumPy: f32 + 0.5


def test_relu_sigmoid_and_affine_match_torch_with_the_books_attributes(torch):
    x = randn((3, 2, 2, 3), 64)
    dout = randn(x.shape, 65)
    relu, sigmoid = dlfs.Relu(), dlfs.Sigmoid()
    r = relu.forward(x)
    dout_before = dout.copy()
    dr = relu.backward(dout)
    np.testing.assert_array_equal(dout, dout_before)  # the book's zeroes dout in place
    np.testing.assert_array_equal(relu.mask, x <= 0)
    s = sigmoid.forward(x)
    assert sigmoid.out is s
    ds = sigmoid.backward(dout)
    W, b = randn((12, 5), 66), randn((5,), 67)
    affine = dlfs.Affine(W, b)
    a = affine.forward(x)
    assert affine.original_x_shape == x.shape and affine.x.shape == (3, 12)
    da_out = randn(a.shape, 68)
    da = affine.backward(da_out)
    t = torch.from_numpy(x.copy()).requires_grad_(True)
    tw, tb = (torch.from_numpy(v.copy()).requires_grad_(True) for v in (W, b))
    outs = [torch.relu(t), torch.sigmoid(t), t.reshape(3, 12) @ tw + tb]
    grads = torch.autograd.grad(outs, [t, tw, tb], [torch.from_numpy(g) for g in
                                                    (dout, dout, da_out)])
    torch_relu_dx, = torch.autograd.grad(torch.relu(t), t, torch.from_numpy(dout))
    torch_sig_dx, = torch.autograd.grad(torch.sigmoid(t), t, torch.from_numpy(dout))
    check("dlfs.Relu/Sigmoid/Affine", np.float64, {
        "relu": (r, outs[0].detach().numpy()), "drelu": (dr, torch_relu_dx.numpy()),
        "sigmoid": (s, outs[1].detach().numpy()), "dsigmoid": (ds, torch_sig_dx.numpy()),
        "affine": (a, outs[2].detach().numpy()),
        "daffine": (da, (grads[0] - torch_relu_dx - torch_sig_dx).numpy()),
        "dW": (affine.dW, grads[1].numpy()), "db": (affine.db, grads[2].numpy())})


@pytest.mark.parametrize("one_hot", [False, True])
def test_softmax_with_loss_takes_labels_or_one_hot_rows_like_the_book(torch, one_hot):
    scores, labels = randn((5, 4), 69), np.array([0, 3, 1, 1, 2], np.uint8)  # load_mnist's dtype
    t = np.eye(4)[labels] if one_hot else labels
    layer = dlfs.SoftmaxWithLoss()
    loss = layer.forward(scores, t)
    assert layer.t is t and layer.loss is loss
    dx = layer.backward()
    ts = torch.from_numpy(scores.copy()).requires_grad_(True)
    want = torch.nn.functional.cross_entropy(ts, torch.from_numpy(labels.astype(np.int64)))
    want.backward()
    check("dlfs.SoftmaxWithLoss", np.float64, {"loss": (np.asarray(loss), want.detach().numpy()),
                                               "dx": (dx, ts.grad.numpy())})
    np.testing.assert_allclose(layer.backward(2.0), 2 * dx, rtol=1e-15)


def test_dropout_draws_the_books_mask_from_the_global_generator():
    """The book: ``mask = np.random.rand(*x.shape) > ratio``; train ``x * mask``, test
    ``x * (1 - ratio)``, backward ``dout * mask``."""
    x, dout = randn((40, 50), 70), randn((40, 50), 71)
    layer = dlfs.Dropout(0.3)
    np.random.seed(7)
    out = layer.forward(x)
    np.random.seed(7)
    mask = np.random.rand(*x.shape) > 0.3
    np.testing.assert_array_equal(layer.mask, mask)
    np.testing.assert_allclose(out, x * mask, rtol=1e-15, atol=0)
    np.testing.assert_allclose(layer.backward(dout), dout * mask, rtol=1e-15, atol=0)
    np.testing.assert_allclose(layer.forward(x, train_flg=False), x * 0.7, rtol=1e-15)


@pytest.mark.parametrize("ratio", [0.0, 0.3, 1.0, "draw"])
def test_dropout_draws_as_the_book_at_every_ratio_and_leaves_the_generator_where_it_does(ratio):
    """At ratio 0 and 1 nothing was drawn, so the book's later draws (its batch order) came out
    otherwise; a unit whose draw equalled the ratio was kept where the book's ``>`` drops it."""
    x = randn((40, 50), 73)
    if ratio == "draw":  # a ratio that the first unit's draw equals
        np.random.seed(9)
        ratio = float(np.random.rand(*x.shape)[0, 0])
    layer = dlfs.Dropout(ratio)
    np.random.seed(9)
    out = layer.forward(x)
    after = np.random.rand(3)
    np.random.seed(9)
    mask = np.random.rand(*x.shape) > ratio
    np.testing.assert_array_equal(layer.mask, mask)
    np.testing.assert_allclose(out, x * mask, rtol=1e-15, atol=0)
    np.testing.assert_array_equal(after, np.random.rand(3))


def test_dropout_checks_its_ratio_before_it_draws():
    layer = dlfs.Dropout(0.5)
    layer.dropout_ratio = "0.5"
    np.random.seed(10)
    with pytest.raises(TypeError, match="dropout_ratio must be a real number"):
        layer.forward(np.ones(3))
    after = np.random.rand()
    np.random.seed(10)
    assert after == np.random.rand()


@pytest.mark.parametrize("momentum, err, match", [
    # a string or None failed in the running average naming nothing; an array broadcast
    ("0.9", TypeError, "BatchNormalization: momentum must be a real number"),
    (None, TypeError, "BatchNormalization: momentum must be a real number"),
    (np.array([0.9, 0.1]), TypeError, "BatchNormalization: momentum must be a real number"),
    (1.5, ValueError, r"BatchNormalization: momentum must be in \[0.0, 1.0\], got 1.5"),
    (-0.1, ValueError, r"BatchNormalization: momentum must be in \[0.0, 1.0\], got -0.1"),
])
@pytest.mark.parametrize("train_flg", [True, False])
def test_batchnorm_checks_its_momentum_naming_it(momentum, err, match, train_flg):
    layer = dlfs.BatchNormalization(np.ones(2), np.zeros(2), momentum=momentum)
    with pytest.raises(err, match=match):
        layer.forward(randn((4, 2), 80), train_flg)
    assert layer.running_mean is None  # nothing updated


@pytest.mark.parametrize("flag, trains", [(1, True), (0, False), ("no", True), (None, False)])
def test_dropout_and_batchnorm_take_train_flg_by_truth_as_the_book(flag, trains):
    """The book tests ``if train_flg:``; both layers agree with it (and with each other)."""
    x = randn((40, 50), 72)
    layer = dlfs.Dropout(0.3)
    np.random.seed(8)
    out = layer.forward(x, train_flg=flag)
    np.random.seed(8)
    want = x * (np.random.rand(*x.shape) > 0.3) if trains else x * 0.7
    np.testing.assert_allclose(out, want, rtol=1e-15, atol=0)
    bn = dlfs.BatchNormalization(np.ones(50), np.zeros(50))
    bn.forward(x, train_flg=flag)
    assert (bn.running_mean is not None and np.any(bn.running_mean != 0)) == trains


def book_batchnorm(x, gamma, beta, running, momentum=0.9, eps=1e-6):
    """The book's training step from its definition: per feature of x (N, D)."""
    mu, var = x.mean(axis=0), x.var(axis=0)
    out = gamma * (x - mu) / np.sqrt(var + eps) + beta
    return out, [momentum * r + (1 - momentum) * s for r, s in zip(running, (mu, var))]


@pytest.mark.parametrize("shape", [(8, 5), (6, 2, 3, 2)])
def test_batch_normalization_follows_the_book_and_torch_gradients(torch, shape):
    n, d = shape[0], int(np.prod(shape[1:]))  # 4-D inputs: one feature per (c, h, w)
    gamma, beta = randn((d,), 72), randn((d,), 73)
    layer = dlfs.BatchNormalization(gamma, beta, momentum=0.8)
    running = [np.zeros(d), np.zeros(d)]
    for step in range(2):
        x = randn(shape, 74 + step) * 2 + 1
        out = layer.forward(x)
        want, running = book_batchnorm(x.reshape(n, d), gamma, beta, running, momentum=0.8)
        np.testing.assert_allclose(out, want.reshape(shape), rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(layer.running_mean, running[0], rtol=1e-12)
        np.testing.assert_allclose(layer.running_var, running[1], rtol=1e-12)
    assert layer.input_shape == shape
    dout = randn(shape, 76)
    dx = layer.backward(dout)
    leaves = [torch.from_numpy(a.copy()).requires_grad_(True)
              for a in (x.reshape(n, d), gamma, beta)]
    torch.nn.functional.batch_norm(leaves[0], None, None, leaves[1], leaves[2], training=True,
                                   eps=1e-6).backward(torch.from_numpy(dout.reshape(n, d)))
    check("dlfs.BatchNormalization", np.float64, {
        "dx": (dx.reshape(n, d), leaves[0].grad.numpy()),
        "dgamma": (layer.dgamma, leaves[1].grad.numpy()),
        "dbeta": (layer.dbeta, leaves[2].grad.numpy())})
    test_out = layer.forward(x, train_flg=False)
    np.testing.assert_allclose(test_out.reshape(n, d), gamma * (x.reshape(n, d) - running[0])
                               / np.sqrt(running[1] + 1e-6) + beta, rtol=1e-12, atol=1e-12)


# -- mixed dtypes: promoted as NumPy promotes --------------------------------------

def _pair(make):
    """The same layer in float32 and in float64, from the same float32-valued parameters."""
    return make(np.float32), make(np.float64)


LAYERS = {  # name: (make(dtype), x shape)
    "Relu": (lambda dt: dlfs.Relu(), (2, 3, 4, 4)),
    "Sigmoid": (lambda dt: dlfs.Sigmoid(), (2, 3, 4, 4)),
    "Affine": (lambda dt: dlfs.Affine(randn((48, 5), 80, np.float32).astype(dt),
                                      randn((5,), 81, np.float32).astype(dt)), (2, 3, 4, 4)),
    "Convolution": (lambda dt: dlfs.Convolution(randn((2, 3, 3, 3), 82, np.float32).astype(dt),
                                                randn((2,), 83, np.float32).astype(dt), pad=1),
                    (2, 3, 4, 4)),
    "Pooling": (lambda dt: dlfs.Pooling(2, 2, 2), (2, 3, 4, 4)),
    "BatchNormalization": (lambda dt: dlfs.BatchNormalization(
        randn((48,), 84, np.float32).astype(dt), randn((48,), 85, np.float32).astype(dt)),
        (4, 3, 4, 4)),
}


@pytest.mark.parametrize("name", LAYERS)
def test_backward_promotes_a_float64_dout_into_a_float32_layer(name):
    """The issue's case: ``Pooling(2, 2, 2)`` on float32, then a float64 dout."""
    make, shape = LAYERS[name]
    layer32, layer64 = _pair(make)
    x = randn(shape, 86, np.float32)
    out32, out64 = layer32.forward(x), layer64.forward(x.astype(np.float64))
    assert out32.dtype == np.float32
    dout = randn(out32.shape, 87)
    dx = layer32.backward(dout)
    assert dx.dtype == np.float64
    # the cached values were computed in float32 (batchnorm's xhat, sigmoid's output)
    np.testing.assert_allclose(dx, layer64.backward(dout), rtol=1e-4, atol=1e-5)
    for grad in ("dW", "db", "dgamma", "dbeta"):
        if hasattr(layer32, grad):
            assert getattr(layer32, grad).dtype == np.float64


def test_dropout_backward_promotes_too():
    layer = dlfs.Dropout(0.5)
    layer.forward(np.ones((3, 4), np.float32))
    assert layer.backward(np.ones((3, 4))).dtype == np.float64


# -- star-import replacement: SimpleConvNet-shaped networks ------------------------

STAR = {}
exec("from fastconv.compat.dlfs import *", STAR)  # what ``from common.layers import *`` becomes


def test_star_import_has_every_book_layer_and_optimiser():
    for name in ("Relu", "Sigmoid", "Affine", "SoftmaxWithLoss", "Dropout", "BatchNormalization",
                 "Convolution", "Pooling", "im2col", "col2im", "SGD", "Momentum", "Nesterov",
                 "AdaGrad", "RMSprop", "Adam"):
        assert name in STAR, name


class BookConvNet:
    """The shape of the book's SimpleConvNet (ch07): conv - relu - pool - affine - relu -
    affine - softmax over a params dict W1..b3, with ``loss(x, t)`` and ``gradient(x, t)``,
    built from the star-imported names only."""

    def __init__(self, params, stride=1, pad=0):
        self.params = params
        self.layers = OrderedDict()
        self.layers["Conv1"] = STAR["Convolution"](params["W1"], params["b1"], stride, pad)
        self.layers["Relu1"] = STAR["Relu"]()
        self.layers["Pool1"] = STAR["Pooling"](pool_h=2, pool_w=2, stride=2)
        self.layers["Affine1"] = STAR["Affine"](params["W2"], params["b2"])
        self.layers["Relu2"] = STAR["Relu"]()
        self.layers["Affine2"] = STAR["Affine"](params["W3"], params["b3"])
        self.last_layer = STAR["SoftmaxWithLoss"]()

    def loss(self, x, t):
        for layer in self.layers.values():
            x = layer.forward(x)
        return self.last_layer.forward(x, t)

    def gradient(self, x, t):
        self.loss(x, t)
        dout = self.last_layer.backward(1)
        for layer in reversed(self.layers.values()):
            dout = layer.backward(dout)
        conv, a1, a2 = self.layers["Conv1"], self.layers["Affine1"], self.layers["Affine2"]
        return {"W1": conv.dW, "b1": conv.db, "W2": a1.dW, "b2": a1.db, "W3": a2.dW, "b3": a2.db}


def convnet_params(dtype=np.float64):
    """input 1x10x10, 3 filters 3x3 (8x8 out, 4x4 pooled), hidden 6, 4 classes."""
    shapes = {"W1": (3, 1, 3, 3), "b1": (3,), "W2": (48, 6), "b2": (6,), "W3": (6, 4), "b3": (4,)}
    return {k: (0.5 * randn(s, 90 + i)).astype(dtype) for i, (k, s) in enumerate(shapes.items())}


def test_simple_convnet_gradients_match_torch(torch):
    params = convnet_params()
    net = BookConvNet(params)
    x, t = randn((5, 1, 10, 10), 97), np.array([0, 1, 2, 3, 1])
    grads = net.gradient(x, t)
    leaves = {k: torch.from_numpy(v.copy()).requires_grad_(True) for k, v in params.items()}
    f = torch.nn.functional
    h = f.max_pool2d(torch.relu(f.conv2d(torch.from_numpy(x), leaves["W1"], leaves["b1"])), 2, 2)
    h = torch.relu(h.reshape(5, -1) @ leaves["W2"] + leaves["b2"]) @ leaves["W3"] + leaves["b3"]
    f.cross_entropy(h, torch.from_numpy(t)).backward()
    check("dlfs.SimpleConvNet", np.float64, {k: (grads[k], leaves[k].grad.numpy()) for k in grads})


def test_simple_convnet_trains_with_the_books_loop():
    """Shared params updated in place by a book optimiser: the layers see every update."""
    params = convnet_params()
    net, opt = BookConvNet(params), STAR["Adam"](lr=0.01)
    x, t = randn((8, 1, 10, 10), 98), np.arange(8) % 4
    first = float(net.loss(x, t))
    for _ in range(30):
        opt.update(params, net.gradient(x, t))
    assert float(net.loss(x, t)) < 0.5 * first


def test_simple_convnet_with_some_float32_params_promotes_like_numpy():
    """float32 images (load_mnist) and a float32 W2 among float64 params: every gradient comes
    back float64 and equals the float64 network's on the same values."""
    mixed = convnet_params()
    mixed["W2"] = mixed["W2"].astype(np.float32)
    same = {k: v.astype(np.float64) for k, v in mixed.items()}
    x, t = randn((4, 1, 10, 10), 99, np.float32), np.array([3, 2, 1, 0])
    grads = BookConvNet(mixed).gradient(x, t)
    want = BookConvNet(same).gradient(x.astype(np.float64), t)
    for k in grads:
        assert grads[k].dtype == np.float64, k
        np.testing.assert_allclose(grads[k], want[k], rtol=1e-12, atol=1e-15)


def test_batchnorm_dropout_network_gradients_match_central_differences():
    """The shape of the book's MultiLayerNetExtend: affine - batchnorm - relu - dropout -
    affine - softmax, the dropout mask fixed by seeding NumPy's generator before each pass."""
    params = {"W1": randn((6, 5), 100), "b1": randn((5,), 101), "gamma": 1 + randn((5,), 102),
              "beta": randn((5,), 103), "W2": randn((5, 3), 104), "b2": randn((3,), 105)}
    layers = [STAR["Affine"](params["W1"], params["b1"]),
              STAR["BatchNormalization"](params["gamma"], params["beta"]),
              STAR["Relu"](), STAR["Dropout"](0.25), STAR["Affine"](params["W2"], params["b2"])]
    last = STAR["SoftmaxWithLoss"]()
    x, t = randn((7, 6), 106), np.array([0, 1, 2, 0, 1, 2, 0])

    def loss():
        np.random.seed(3)
        h = x
        for layer in layers:
            h = layer.forward(h)
        return last.forward(h, t)

    loss()
    dout = last.backward()
    for layer in reversed(layers):
        dout = layer.backward(dout)
    analytic = {"W1": layers[0].dW, "gamma": layers[1].dgamma, "beta": layers[1].dbeta,
                "W2": layers[4].dW, "b2": layers[4].db}
    for name, grad in analytic.items():
        assert relative_error(grad, numerical_gradient(loss, params[name])) < 1e-7, name


@pytest.mark.gpu
def test_dlfs_front_end_runs_on_cupy_arrays():
    import cupy
    W, b, x = randn((4, 3, 3, 3), 50), randn((4,), 51), randn((2, 3, 8, 8), 52)
    conv, pool = dlfs.Convolution(W, b, pad=1), dlfs.Pooling(2, 2, stride=2)
    out = pool.forward(conv.forward(x))
    dx = conv.backward(pool.backward(np.ones_like(out)))
    g_conv = dlfs.Convolution(cupy.asarray(W), cupy.asarray(b), pad=1)
    g_pool = dlfs.Pooling(2, 2, stride=2)
    g_out = g_pool.forward(g_conv.forward(cupy.asarray(x)))
    g_dx = g_conv.backward(g_pool.backward(cupy.ones_like(g_out)))
    np.testing.assert_allclose(g_out.get(), out, rtol=1e-12)
    np.testing.assert_allclose(g_dx.get(), dx, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(g_conv.dW.get(), conv.dW, rtol=1e-10)
    np.testing.assert_array_equal(g_pool.arg_max.get(), pool.arg_max)
    col = dlfs.im2col(cupy.asarray(x), 3, 3, 1, 1)
    np.testing.assert_array_equal(col.get(), dlfs.im2col(x, 3, 3, 1, 1))
    g_net = BookConvNet({k: cupy.asarray(v) for k, v in convnet_params().items()})
    g_grads = g_net.gradient(cupy.asarray(randn((2, 1, 10, 10), 53)), cupy.asarray([1, 2]))
    grads = BookConvNet(convnet_params()).gradient(randn((2, 1, 10, 10), 53), np.array([1, 2]))
    for k in grads:
        np.testing.assert_allclose(g_grads[k].get(), grads[k], rtol=1e-9, atol=1e-12)
