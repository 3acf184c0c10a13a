"""Stateless ops in the CS231n convention: ``op_forward(...) -> (out, cache)``,
``op_backward(dout, cache) -> grads``. Each runs on NumPy or CuPy arrays,
chosen by the arrays passed in."""

from .conv import conv2d_backward, conv2d_forward
from .conv1d import conv1d_backward, conv1d_forward
from .conv3d import conv3d_backward, conv3d_forward
from .conv_transpose import conv_transpose2d_backward, conv_transpose2d_forward
from .pool1d import avg_pool1d_backward, avg_pool1d_forward, max_pool1d_backward, max_pool1d_forward
from .pool3d import avg_pool3d_backward, avg_pool3d_forward, max_pool3d_backward, max_pool3d_forward
from .pool import (
    adaptive_avg_pool2d_backward,
    adaptive_avg_pool2d_forward,
    adaptive_max_pool2d_backward,
    adaptive_max_pool2d_forward,
    avg_pool2d_backward,
    avg_pool2d_forward,
    max_pool2d_backward,
    max_pool2d_forward,
)
from .unpool import max_unpool2d_backward, max_unpool2d_forward
from .interpolate import interpolate_backward, interpolate_forward
from .activation import (
    leaky_relu_backward,
    leaky_relu_forward,
    relu_backward,
    relu_forward,
    sigmoid_backward,
    sigmoid_forward,
    tanh_backward,
    tanh_forward,
)
from .batchnorm import (
    batchnorm_backward,
    batchnorm_forward,
    spatial_batchnorm_backward,
    spatial_batchnorm_forward,
)
from .dropout import dropout_backward, dropout_forward
from .linear import linear_backward, linear_forward
from .normalization import (
    group_norm_backward,
    group_norm_forward,
    layer_norm_backward,
    layer_norm_forward,
)
from .loss import (
    accuracy,
    binary_hinge,
    binary_logistic,
    l2_regularization,
    mse_loss,
    multiclass_hinge,
    softmax_cross_entropy,
    topk_error,
)

__all__ = [
    "conv2d_forward", "conv2d_backward",
    "conv_transpose2d_forward", "conv_transpose2d_backward",
    "conv1d_forward", "conv1d_backward",
    "conv3d_forward", "conv3d_backward",
    "max_pool3d_forward", "max_pool3d_backward", "avg_pool3d_forward", "avg_pool3d_backward",
    "max_pool1d_forward", "max_pool1d_backward", "avg_pool1d_forward", "avg_pool1d_backward",
    "max_pool2d_forward", "max_pool2d_backward",
    "avg_pool2d_forward", "avg_pool2d_backward",
    "adaptive_avg_pool2d_forward", "adaptive_avg_pool2d_backward",
    "adaptive_max_pool2d_forward", "adaptive_max_pool2d_backward",
    "max_unpool2d_forward", "max_unpool2d_backward",
    "interpolate_forward", "interpolate_backward",
    "linear_forward", "linear_backward",
    "relu_forward", "relu_backward", "leaky_relu_forward", "leaky_relu_backward",
    "tanh_forward", "tanh_backward", "sigmoid_forward", "sigmoid_backward",
    "dropout_forward", "dropout_backward",
    "batchnorm_forward", "batchnorm_backward",
    "spatial_batchnorm_forward", "spatial_batchnorm_backward",
    "layer_norm_forward", "layer_norm_backward", "group_norm_forward", "group_norm_backward",
    "softmax_cross_entropy", "multiclass_hinge", "binary_logistic", "binary_hinge",
    "mse_loss", "l2_regularization", "accuracy", "topk_error",
]
