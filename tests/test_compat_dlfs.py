"""fastconv.compat.dlfs against its contract: the book's 2-D im2col layout vs a loop, col2im
as its adjoint, Convolution/Pooling vs PyTorch with dW/db attributes, and the optimisers'
update(params, grads) in place vs torch.optim (and vs the book's formulas where they agree)."""

import numpy as np
import pytest

from fastconv.compat import dlfs
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


# -- optimisers: update(params, grads) in place ------------------------------------

BOOK = {  # ours, torch class, torch kwargs (the book's defaults and its eps 1e-7)
    "SGD": (dlfs.SGD(), "SGD", dict(lr=0.01)),
    "Momentum": (dlfs.Momentum(), "SGD", dict(lr=0.01, momentum=0.9)),
    "Nesterov": (dlfs.Nesterov(lr=0.05, momentum=0.8), "SGD",
                 dict(lr=0.05, momentum=0.8, nesterov=True)),
    "AdaGrad": (dlfs.AdaGrad(), "Adagrad", dict(lr=0.01, eps=1e-7)),
    "RMSprop": (dlfs.RMSprop(decay_rate=0.9), "RMSprop", dict(lr=0.01, alpha=0.9, eps=1e-7)),
    "Adam": (dlfs.Adam(), "Adam", dict(lr=0.001, betas=(0.9, 0.999), eps=1e-7)),
}


def book_params():
    return {"W1": randn((3, 4), 10), "b1": randn((4,), 11)}


def book_grads(step):
    return {"W1": randn((3, 4), 20 + step), "b1": randn((4,), 40 + step)}


@pytest.mark.parametrize("name", BOOK)
def test_book_optimizers_update_in_place_like_torch(torch, name):
    opt, torch_name, kwargs = BOOK[name]
    params = book_params()
    arrays = dict(params)
    leaves = {k: torch.from_numpy(v.copy()).requires_grad_(True) for k, v in params.items()}
    topt = getattr(torch.optim, torch_name)(list(leaves.values()), **kwargs)
    for step in range(5):
        grads = book_grads(step)
        opt.update(params, grads)
        for k in leaves:
            leaves[k].grad = torch.from_numpy(grads[k].copy())
        topt.step()
        check(f"dlfs.{name}", np.float64, {k: (params[k], leaves[k].detach().numpy())
                                           for k in params})
    assert all(params[k] is arrays[k] for k in params)  # the same arrays, updated in place


def test_book_formulas_agree_where_documented():
    """Momentum, AdaGrad and RMSprop equal the book's code; Adam and Nesterov differ slightly."""
    def book_momentum(p, g, v, lr=0.01, mu=0.9):
        v[:] = mu * v - lr * g
        p += v

    def book_adam(p, g, m, v, t, lr=0.001, b1=0.9, b2=0.999):
        lr_t = lr * np.sqrt(1.0 - b2 ** t) / (1.0 - b1 ** t)
        m += (1 - b1) * (g - m)
        v += (1 - b2) * (g ** 2 - v)
        p -= lr_t * m / (np.sqrt(v) + 1e-7)

    ours_m, ours_a = book_params(), book_params()
    book_m, book_a = book_params(), book_params()
    state = {k: [np.zeros_like(v) for _ in range(3)] for k, v in book_m.items()}
    momentum, adam = dlfs.Momentum(), dlfs.Adam()
    for step in range(5):
        grads = book_grads(step)
        momentum.update(ours_m, grads)
        adam.update(ours_a, grads)
        for k in book_m:
            book_momentum(book_m[k], grads[k], state[k][0])
            book_adam(book_a[k], grads[k], state[k][1], state[k][2], step + 1)
    for k in book_m:
        np.testing.assert_allclose(ours_m[k], book_m[k], rtol=1e-13, atol=1e-15)
        # eps after vs before the bias correction: under 0.1% of one step (lr = 1e-3)
        np.testing.assert_allclose(ours_a[k], book_a[k], rtol=0, atol=1e-6)
        assert not np.array_equal(ours_a[k], book_a[k])


def test_book_optimizer_learning_rate_can_change_between_updates(torch):
    params = book_params()
    opt = dlfs.SGD(lr=0.1)
    opt.update(params, book_grads(0))
    opt.lr = 0.01
    before = {k: v.copy() for k, v in params.items()}
    grads = book_grads(1)
    opt.update(params, grads)
    for k in params:
        np.testing.assert_allclose(params[k], before[k] - 0.01 * grads[k], rtol=1e-15)


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
    col = dlfs.im2col(cupy.asarray(x), 3, 3, 1, 1)
    np.testing.assert_array_equal(col.get(), dlfs.im2col(x, 3, 3, 1, 1))
    params = {"W": cupy.asarray(W)}
    opt = dlfs.Adam()
    opt.update(params, {"W": cupy.asarray(conv.dW)})
    assert isinstance(opt._optimizer.state["W"]["exp_avg"], cupy.ndarray)
