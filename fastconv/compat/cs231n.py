"""CS231n assignment 2's layer API on fastconv: replace ``from cs231n.layers import *`` /
``from cs231n.fast_layers import *`` / ``from cs231n.layer_utils import *`` with
``from fastconv.compat.cs231n import *``.

Same function names, arguments, dict parameters and return structure as the
course: every forward returns ``(out, cache)``, every backward the gradients
of its forward's inputs in order (``conv_bn_relu_backward``: ``dx, dw, db,
dgamma, dbeta``). The parameters:

- ``conv_param = {'stride': s, 'pad': p}``; ``pool_param = {'pool_height',
  'pool_width', 'stride'}``;
- ``bn_param = {'mode': 'train'|'test', 'eps' (1e-5), 'momentum' (0.9),
  'running_mean', 'running_var'}`` with the course's running-average rule
  ``running = momentum * running + (1 - momentum) * batch`` (biased batch
  variance); missing running statistics start as zeros on x's device, and
  ``bn_param['running_mean']``/``['running_var']`` hold the (updated) ones after
  every call, as in the course;
- ``ln_param = {'eps' (1e-5)}`` for ``layernorm_*`` (x (N, D), gamma and beta
  (D,)); ``gn_param = {'eps' (1e-5)}`` for ``spatial_groupnorm_*`` (x (N, C, H,
  W), G groups, gamma and beta (1, C, 1, 1) as the course's notebook makes
  them, or (C,); the gradients come back in gamma's shape);
- ``dropout_param = {'mode': 'train'|'test', 'p', 'seed' (optional)}`` where
  ``p`` is the probability of KEEPING a unit, as the course defines it since
  2017 (earlier years used the drop probability). As the course's code, a
  seed seeds the global generator (``np.random.seed(seed)``, so later draws
  from ``np.random``, such as a solver's batch order, follow from it too) and
  the mask is ``np.random.rand(*x.shape) < p``, kept units divided by p.
  float64 outputs equal the course's bitwise for p >= 0.5; below, the scale
  fastconv computes, 1 / (1 - (1 - p)), can differ from 1 / p in the last bit.
  On CuPy arrays the same rule runs on ``cupy.random``: a seed repeats the
  mask, which is not NumPy's, and NumPy's generator is left alone.

The course's three convolution and four max-pooling implementations
(``_naive``, ``_fast``, ``_im2col``, ``_strides``, ``_reshape``) are the same
fastconv functions (im2col + GEMM, on the GPU for CuPy arrays), so their
results agree exactly and their caches are interchangeable. Caches are opaque
except the sandwich layers', which are tuples of their parts as in the course
(e.g. ``(conv_cache, relu_cache, pool_cache)``). Backward passes never modify a
cache, so they can be repeated. Max pooling gives a tied window's gradient to
its first maximum (the course's naive rule; its ``_reshape`` path splits it
among the tied maxima), and none of the fast variants asserts that the windows
tile the input. Arrays of mixed dtypes (the course's float64 data with a
float32 model, a float32 ``dout`` into a float64 cache) are promoted as NumPy
arithmetic would, where fastconv's own ops refuse them; labels may be any
integer sequence, a list too. Batch normalisation of one value per channel in
train mode raises, as PyTorch does (the course returns beta).
"""

from .. import functional as F
from ..backend import get_array_module, promoted
from ._batchnorm import course_batchnorm
from ._lenient import lenient, lenient_backward

__all__ = [
    "conv_forward_naive", "conv_backward_naive", "conv_forward_fast", "conv_backward_fast",
    "conv_forward_im2col", "conv_backward_im2col",
    "conv_forward_strides", "conv_backward_strides",
    "max_pool_forward_naive", "max_pool_backward_naive",
    "max_pool_forward_fast", "max_pool_backward_fast",
    "max_pool_forward_reshape", "max_pool_backward_reshape",
    "max_pool_forward_im2col", "max_pool_backward_im2col",
    "affine_forward", "affine_backward", "relu_forward", "relu_backward",
    "batchnorm_forward", "batchnorm_backward", "batchnorm_backward_alt",
    "spatial_batchnorm_forward", "spatial_batchnorm_backward",
    "layernorm_forward", "layernorm_backward",
    "spatial_groupnorm_forward", "spatial_groupnorm_backward",
    "dropout_forward", "dropout_backward", "softmax_loss", "svm_loss",
    "conv_relu_pool_forward", "conv_relu_pool_backward",
    "conv_relu_forward", "conv_relu_backward", "conv_bn_relu_forward", "conv_bn_relu_backward",
    "affine_relu_forward", "affine_relu_backward",
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
    return lenient(*F.conv2d_forward(*promoted(x, w, b), stride=stride, padding=pad))


def conv_backward_naive(dout, cache):
    """Returns ``(dx, dw, db)``."""
    return lenient_backward(F.conv2d_backward, dout, cache)


def max_pool_forward_naive(x, pool_param):
    """Max pooling; ``pool_param`` {'pool_height', 'pool_width', 'stride'}. Returns (out, cache)."""
    ph, pw, stride = _get(pool_param, "pool_param", ["pool_height", "pool_width", "stride"])
    return lenient(*F.max_pool2d_forward(x, (ph, pw), stride=stride))


def max_pool_backward_naive(dout, cache):
    """Returns dx; the gradient of a window goes to its first maximum."""
    return lenient_backward(F.max_pool2d_backward, dout, cache)


# The course's fast_layers.py: other algorithms of the same ops, one here.
conv_forward_fast = conv_forward_im2col = conv_forward_strides = conv_forward_naive
conv_backward_fast = conv_backward_im2col = conv_backward_strides = conv_backward_naive
max_pool_forward_fast = max_pool_forward_reshape = max_pool_forward_im2col = \
    max_pool_forward_naive
max_pool_backward_fast = max_pool_backward_reshape = max_pool_backward_im2col = \
    max_pool_backward_naive


# -- dense layers, activations, normalisation, dropout, losses --------------

def affine_forward(x, w, b):
    """``x.reshape(N, D) @ w + b`` for x (N, d_1, ..., d_k), w (D, M); returns ``(out, cache)``."""
    return lenient(*F.linear_forward(*promoted(x, w, b)))


def affine_backward(dout, cache):
    """Returns ``(dx, dw, db)``, dx in x's shape."""
    return lenient_backward(F.linear_backward, dout, cache)


def relu_forward(x):
    """Returns ``(max(x, 0), cache)``."""
    return lenient(*F.relu_forward(x))


def relu_backward(dout, cache):
    """Returns dx."""
    return lenient_backward(F.relu_backward, dout, cache)


def _batchnorm(forward, x, gamma, beta, bn_param, axes):
    """fastconv's batchnorm with the course's bn_param semantics (see the module docstring)."""
    train = _mode(bn_param, "bn_param")
    out, cache, bn_param["running_mean"], bn_param["running_var"] = course_batchnorm(
        forward, x, gamma, beta, train, bn_param.get("running_mean"),
        bn_param.get("running_var"), bn_param.get("momentum", 0.9), bn_param.get("eps", 1e-5),
        axes)
    return out, cache


def batchnorm_forward(x, gamma, beta, bn_param):
    """Batchnorm of x (N, D) with the course's ``bn_param``; returns ``(out, cache)``."""
    return _batchnorm(F.batchnorm_forward, x, gamma, beta, bn_param, 0)


def batchnorm_backward(dout, cache):
    """Returns ``(dx, dgamma, dbeta)``."""
    return lenient_backward(F.batchnorm_backward, dout, cache)


batchnorm_backward_alt = batchnorm_backward


def spatial_batchnorm_forward(x, gamma, beta, bn_param):
    """Batchnorm per channel of x (N, C, H, W) with the course's ``bn_param``; (out, cache)."""
    return _batchnorm(F.spatial_batchnorm_forward, x, gamma, beta, bn_param, (0, 2, 3))


def spatial_batchnorm_backward(dout, cache):
    """Returns ``(dx, dgamma, dbeta)``."""
    return lenient_backward(F.spatial_batchnorm_backward, dout, cache)


def _eps(params, name):
    """``params['eps']`` (default 1e-5) of the dict ``params``."""
    _get(params, name, [])
    return params.get("eps", 1e-5)


def layernorm_forward(x, gamma, beta, ln_param):
    """Layer norm of each row of x (N, D), gamma and beta (D,); returns ``(out, cache)``."""
    eps = _eps(ln_param, "ln_param")
    x, gamma, beta = promoted(x, gamma, beta)
    # the course's gamma and beta have the shape of the normalised trailing dims
    return lenient(*F.layer_norm_forward(x, tuple(gamma.shape), gamma, beta, eps=eps))


def layernorm_backward(dout, cache):
    """Returns ``(dx, dgamma, dbeta)``."""
    return lenient_backward(F.layer_norm_backward, dout, cache)


def spatial_groupnorm_forward(x, gamma, beta, G, gn_param):
    """Group norm of x (N, C, H, W) in G channel groups; returns ``(out, cache)``.

    gamma and beta have the course's shape (1, C, 1, 1), or (C,).
    """
    eps = _eps(gn_param, "gn_param")
    x, gamma, beta = promoted(x, gamma, beta)
    shape = tuple(gamma.shape)
    # The course's parameters broadcast against x; fastconv's op takes one value per channel.
    per_channel = [p.reshape(-1) if p.ndim == 4 and p.size == p.shape[1] else p
                   for p in (gamma, beta)]
    out, cache = lenient(*F.group_norm_forward(x, G, *per_channel, eps=eps))
    return out, (cache, shape)


def spatial_groupnorm_backward(dout, cache):
    """Returns ``(dx, dgamma, dbeta)``, dgamma and dbeta in gamma's shape."""
    cache, shape = cache
    dx, dgamma, dbeta = lenient_backward(F.group_norm_backward, dout, cache)
    return dx, dgamma.reshape(shape), dbeta.reshape(shape)


class _KeepMask:
    """A stand-in generator for ``F.dropout_forward`` whose draw is a given boolean keep mask.

    The op keeps the units whose draw u satisfies ``u >= p``; for the drop
    probability 0 < p < 1 that is exactly the True entries.
    """

    def __init__(self, kept):
        self.kept = kept

    def random(self, shape):
        return self.kept


def dropout_forward(x, dropout_param):
    """Inverted dropout; ``dropout_param['p']`` is the KEEP probability; (out, cache).

    The mask is the course's: ``xp.random.seed(seed)`` when a seed is given,
    then ``xp.random.rand(*x.shape) < p`` (xp: numpy or cupy, by x's device).
    """
    train = _mode(dropout_param, "dropout_param")
    keep = _get(dropout_param, "dropout_param", ["p"])[0]
    if not 0.0 < keep <= 1.0:
        raise ValueError(f"dropout_param['p'] is the keep probability and must be in (0, 1], "
                         f"got {keep}")
    xp = get_array_module(x)
    if "seed" in dropout_param:  # the course seeds the global generator, in both modes
        xp.random.seed(dropout_param["seed"])
    rng = _KeepMask(xp.random.rand(*x.shape) < keep) if train else None
    return lenient(*F.dropout_forward(x, p=1.0 - keep, train=train, rng=rng))


def dropout_backward(dout, cache):
    """Returns dx."""
    return lenient_backward(F.dropout_backward, dout, cache)


def _labels(x, y):
    """y as an array on x's device (the course's code indexes with lists too)."""
    return get_array_module(x).asarray(y)


def softmax_loss(x, y):
    """Softmax cross-entropy of scores x (N, C) and labels y (N,); returns ``(loss, dx)``."""
    return F.softmax_cross_entropy(x, _labels(x, y))


def svm_loss(x, y):
    """Multiclass SVM (hinge, margin 1) loss; returns ``(loss, dx)``."""
    return F.multiclass_hinge(x, _labels(x, y))


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


def conv_bn_relu_forward(x, w, b, gamma, beta, conv_param, bn_param):
    """Convolution, spatial batchnorm, ReLU; ``(out, (conv_cache, bn_cache, relu_cache))``."""
    a, conv_cache = conv_forward_fast(x, w, b, conv_param)
    an, bn_cache = spatial_batchnorm_forward(a, gamma, beta, bn_param)
    out, relu_cache = relu_forward(an)
    return out, (conv_cache, bn_cache, relu_cache)


def conv_bn_relu_backward(dout, cache):
    """Returns ``(dx, dw, db, dgamma, dbeta)``."""
    conv_cache, bn_cache, relu_cache = cache
    da, dgamma, dbeta = spatial_batchnorm_backward(relu_backward(dout, relu_cache), bn_cache)
    dx, dw, db = conv_backward_fast(da, conv_cache)
    return dx, dw, db, dgamma, dbeta


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
