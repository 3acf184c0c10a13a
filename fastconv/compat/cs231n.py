"""CS231n assignment 2's layer API on fastconv: replace ``from cs231n.layers import *`` /
``from cs231n.fast_layers import *`` / ``from cs231n.layer_utils import *`` with
``from fastconv.compat.cs231n import *``.

Same function names, arguments, dict parameters and return values as the course:

- ``conv_param = {'stride': s, 'pad': p}``; ``pool_param = {'pool_height',
  'pool_width', 'stride'}``;
- ``bn_param = {'mode': 'train'|'test', 'eps' (1e-5), 'momentum' (0.9),
  'running_mean', 'running_var'}`` with the course's running-average rule
  ``running = momentum * running + (1 - momentum) * batch`` (biased batch
  variance); missing running statistics start as zeros on x's device, and
  ``bn_param['running_mean']``/``['running_var']`` hold the (updated) ones after
  every call, as in the course;
- ``dropout_param = {'mode': 'train'|'test', 'p', 'seed' (optional)}`` where
  ``p`` is the probability of KEEPING a unit, as the course defines it since
  2017 (earlier years used the drop probability); inverted dropout: kept units
  are divided by p. The same seed gives the same mask.

The ``_naive`` and ``_fast`` variants are the same fastconv functions (im2col +
GEMM, on the GPU for CuPy arrays), so their results agree exactly and their caches
are interchangeable. Caches are opaque except the sandwich layers', which are
tuples of their parts as in the course (e.g. ``(conv_cache, relu_cache,
pool_cache)``). Backward passes never modify a cache, so they can be repeated.
Max pooling gives a tied window's gradient to its first maximum (the course's
naive rule; its reshape-based fast path splits it instead). Arrays of mixed
dtypes (the course's float64 data with a float32 model) are promoted as NumPy
arithmetic would, where fastconv's own ops refuse them. Batch normalisation
of one value per channel in train mode raises, as PyTorch does (the course
returns beta).
"""

from .. import functional as F
from ..backend import get_array_module, promoted

__all__ = [
    "conv_forward_naive", "conv_backward_naive", "conv_forward_fast", "conv_backward_fast",
    "max_pool_forward_naive", "max_pool_backward_naive",
    "max_pool_forward_fast", "max_pool_backward_fast",
    "affine_forward", "affine_backward", "relu_forward", "relu_backward",
    "batchnorm_forward", "batchnorm_backward", "batchnorm_backward_alt",
    "spatial_batchnorm_forward", "spatial_batchnorm_backward",
    "dropout_forward", "dropout_backward", "softmax_loss", "svm_loss",
    "conv_relu_pool_forward", "conv_relu_pool_backward",
    "conv_relu_forward", "conv_relu_backward", "affine_relu_forward", "affine_relu_backward",
]


def _get(params, name, keys):
    """The values of ``keys`` in the dict ``params`` (named ``name``), or a clear error."""
    if not isinstance(params, dict):
        raise TypeError(f"{name} must be a dict with keys {keys}, got {type(params).__name__}")
    missing = [k for k in keys if k not in params]
    if missing:
        raise ValueError(f"{name} is missing {missing} (it needs {keys}; got {sorted(params)})")
    return [params[k] for k in keys]


def _mode(params, name):
    mode = _get(params, name, ["mode"])[0]
    if mode not in ("train", "test"):
        raise ValueError(f"{name}['mode'] must be 'train' or 'test', got {mode!r}")
    return mode == "train"


# -- convolution and pooling ------------------------------------------------

def conv_forward_naive(x, w, b, conv_param):
    """Convolution of x (N, C, H, W) with w (F, C, HH, WW) and b (F,); returns ``(out, cache)``."""
    stride, pad = _get(conv_param, "conv_param", ["stride", "pad"])
    return F.conv2d_forward(*promoted(x, w, b), stride=stride, padding=pad)


def conv_backward_naive(dout, cache):
    """Returns ``(dx, dw, db)``."""
    return F.conv2d_backward(dout, cache)


def max_pool_forward_naive(x, pool_param):
    """Max pooling; ``pool_param`` {'pool_height', 'pool_width', 'stride'}. Returns (out, cache)."""
    ph, pw, stride = _get(pool_param, "pool_param", ["pool_height", "pool_width", "stride"])
    return F.max_pool2d_forward(x, (ph, pw), stride=stride)


def max_pool_backward_naive(dout, cache):
    """Returns dx; the gradient of a window goes to its first maximum."""
    return F.max_pool2d_backward(dout, cache)


conv_forward_fast = conv_forward_naive
conv_backward_fast = conv_backward_naive
max_pool_forward_fast = max_pool_forward_naive
max_pool_backward_fast = max_pool_backward_naive


# -- dense layers, activations, normalisation, dropout, losses --------------

def affine_forward(x, w, b):
    """``x.reshape(N, D) @ w + b`` for x (N, d_1, ..., d_k), w (D, M); returns ``(out, cache)``."""
    return F.linear_forward(*promoted(x, w, b))


def affine_backward(dout, cache):
    """Returns ``(dx, dw, db)``, dx in x's shape."""
    return F.linear_backward(dout, cache)


def relu_forward(x):
    """Returns ``(max(x, 0), cache)``."""
    return F.relu_forward(x)


def relu_backward(dout, cache):
    """Returns dx."""
    return F.relu_backward(dout, cache)


def _batchnorm(forward, x, gamma, beta, bn_param, axes):
    """Run fastconv's batchnorm with the course's bn_param semantics (see the module docstring)."""
    train = _mode(bn_param, "bn_param")
    x, gamma, beta = promoted(x, gamma, beta)
    eps = bn_param.get("eps", 1e-5)
    momentum = bn_param.get("momentum", 0.9)
    channels = x.shape[1] if getattr(x, "ndim", 0) >= 2 else 0
    running_mean, running_var = (
        bn_param[k] if bn_param.get(k) is not None
        else get_array_module(x).zeros(channels, dtype=x.dtype)
        for k in ("running_mean", "running_var"))
    if train:  # normalise with the batch statistics; the course's running average
        out, cache = forward(x, gamma, beta, None, None, train=True, eps=eps)
        running_mean = momentum * running_mean + (1 - momentum) * x.mean(axis=axes)
        running_var = momentum * running_var + (1 - momentum) * x.var(axis=axes)
    else:
        out, cache = forward(x, gamma, beta, running_mean, running_var, train=False, eps=eps)
    bn_param["running_mean"] = running_mean.astype(x.dtype, copy=False)
    bn_param["running_var"] = running_var.astype(x.dtype, copy=False)
    return out, cache


def batchnorm_forward(x, gamma, beta, bn_param):
    """Batchnorm of x (N, D) with the course's ``bn_param``; returns ``(out, cache)``."""
    return _batchnorm(F.batchnorm_forward, x, gamma, beta, bn_param, 0)


def batchnorm_backward(dout, cache):
    """Returns ``(dx, dgamma, dbeta)``."""
    return F.batchnorm_backward(dout, cache)


batchnorm_backward_alt = batchnorm_backward


def spatial_batchnorm_forward(x, gamma, beta, bn_param):
    """Batchnorm per channel of x (N, C, H, W) with the course's ``bn_param``; (out, cache)."""
    return _batchnorm(F.spatial_batchnorm_forward, x, gamma, beta, bn_param, (0, 2, 3))


def spatial_batchnorm_backward(dout, cache):
    """Returns ``(dx, dgamma, dbeta)``."""
    return F.spatial_batchnorm_backward(dout, cache)


def dropout_forward(x, dropout_param):
    """Inverted dropout; ``dropout_param['p']`` is the KEEP probability; (out, cache)."""
    train = _mode(dropout_param, "dropout_param")
    keep = _get(dropout_param, "dropout_param", ["p"])[0]
    if not 0.0 < keep <= 1.0:
        raise ValueError(f"dropout_param['p'] is the keep probability and must be in (0, 1], "
                         f"got {keep}")
    return F.dropout_forward(x, p=1.0 - keep, train=train, seed=dropout_param.get("seed"))


def dropout_backward(dout, cache):
    """Returns dx."""
    return F.dropout_backward(dout, cache)


def softmax_loss(x, y):
    """Softmax cross-entropy of scores x (N, C) and labels y (N,); returns ``(loss, dx)``."""
    return F.softmax_cross_entropy(x, y)


def svm_loss(x, y):
    """Multiclass SVM (hinge, margin 1) loss; returns ``(loss, dx)``."""
    return F.multiclass_hinge(x, y)


# -- sandwich layers (cs231n/layer_utils.py) ---------------------------------

def affine_relu_forward(x, w, b):
    """Affine then ReLU; returns ``(out, (fc_cache, relu_cache))``."""
    a, fc_cache = affine_forward(x, w, b)
    out, relu_cache = relu_forward(a)
    return out, (fc_cache, relu_cache)


def affine_relu_backward(dout, cache):
    """Returns ``(dx, dw, db)``."""
    fc_cache, relu_cache = cache
    return affine_backward(relu_backward(dout, relu_cache), fc_cache)


def conv_relu_forward(x, w, b, conv_param):
    """Convolution then ReLU; returns ``(out, (conv_cache, relu_cache))``."""
    a, conv_cache = conv_forward_fast(x, w, b, conv_param)
    out, relu_cache = relu_forward(a)
    return out, (conv_cache, relu_cache)


def conv_relu_backward(dout, cache):
    """Returns ``(dx, dw, db)``."""
    conv_cache, relu_cache = cache
    return conv_backward_fast(relu_backward(dout, relu_cache), conv_cache)


def conv_relu_pool_forward(x, w, b, conv_param, pool_param):
    """Convolution, ReLU, max pooling; returns ``(out, (conv_cache, relu_cache, pool_cache))``."""
    a, conv_cache = conv_forward_fast(x, w, b, conv_param)
    s, relu_cache = relu_forward(a)
    out, pool_cache = max_pool_forward_fast(s, pool_param)
    return out, (conv_cache, relu_cache, pool_cache)


def conv_relu_pool_backward(dout, cache):
    """Returns ``(dx, dw, db)``."""
    conv_cache, relu_cache, pool_cache = cache
    ds = max_pool_backward_fast(dout, pool_cache)
    return conv_backward_fast(relu_backward(ds, relu_cache), conv_cache)
