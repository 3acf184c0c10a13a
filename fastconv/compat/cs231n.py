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

The functions are written in four modules, after the course's files:
``_cs231n_conv`` (convolution and pooling, ``layers`` and ``fast_layers``),
``_cs231n_layers`` and ``_cs231n_norms`` (the rest of ``layers``) and
``_cs231n_sandwich`` (``layer_utils``).

Examples
--------
>>> import numpy as np
>>> from fastconv.compat.cs231n import conv_relu_pool_backward, conv_relu_pool_forward
>>> x, w, b = np.ones((2, 3, 8, 8)), np.ones((4, 3, 3, 3)), np.zeros(4)
>>> out, cache = conv_relu_pool_forward(x, w, b, {"stride": 1, "pad": 1},
...                                     {"pool_height": 2, "pool_width": 2, "stride": 2})
>>> out.shape, [g.shape for g in conv_relu_pool_backward(np.ones_like(out), cache)]
((2, 4, 4, 4), [(2, 3, 8, 8), (4, 3, 3, 3), (4,)])
"""

from ._cs231n_conv import (
    conv_backward_fast,
    conv_backward_im2col,
    conv_backward_naive,
    conv_backward_strides,
    conv_forward_fast,
    conv_forward_im2col,
    conv_forward_naive,
    conv_forward_strides,
    max_pool_backward_fast,
    max_pool_backward_im2col,
    max_pool_backward_naive,
    max_pool_backward_reshape,
    max_pool_forward_fast,
    max_pool_forward_im2col,
    max_pool_forward_naive,
    max_pool_forward_reshape,
)
from ._cs231n_layers import (
    affine_backward,
    affine_forward,
    dropout_backward,
    dropout_forward,
    relu_backward,
    relu_forward,
    softmax_loss,
    svm_loss,
)
from ._cs231n_norms import (
    batchnorm_backward,
    batchnorm_backward_alt,
    batchnorm_forward,
    layernorm_backward,
    layernorm_forward,
    spatial_batchnorm_backward,
    spatial_batchnorm_forward,
    spatial_groupnorm_backward,
    spatial_groupnorm_forward,
)
from ._cs231n_sandwich import (
    affine_relu_backward,
    affine_relu_forward,
    conv_bn_relu_backward,
    conv_bn_relu_forward,
    conv_relu_backward,
    conv_relu_forward,
    conv_relu_pool_backward,
    conv_relu_pool_forward,
)

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
