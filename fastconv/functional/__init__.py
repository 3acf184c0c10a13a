"""Stateless ops in the CS231n convention: ``op_forward(...) -> (out, cache)``,
``op_backward(dout, cache) -> grads``. Each runs on NumPy or CuPy arrays,
chosen by the arrays passed in."""

from .conv import conv2d_backward, conv2d_forward
from .pool import (
    adaptive_avg_pool2d_backward,
    adaptive_avg_pool2d_forward,
    avg_pool2d_backward,
    avg_pool2d_forward,
    max_pool2d_backward,
    max_pool2d_forward,
)
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
    groupnorm_backward,
    groupnorm_forward,
    layernorm_backward,
    layernorm_forward,
)
from .loss import (
    accuracy,
    binary_hinge,
    binary_logistic,
    l2_regularization,
    multiclass_hinge,
    softmax_cross_entropy,
    topk_error,
)

__all__ = [
    "conv2d_forward", "conv2d_backward",
    "max_pool2d_forward", "max_pool2d_backward",
    "avg_pool2d_forward", "avg_pool2d_backward",
    "adaptive_avg_pool2d_forward", "adaptive_avg_pool2d_backward",
    "linear_forward", "linear_backward",
    "relu_forward", "relu_backward", "leaky_relu_forward", "leaky_relu_backward",
    "tanh_forward", "tanh_backward", "sigmoid_forward", "sigmoid_backward",
    "dropout_forward", "dropout_backward",
    "batchnorm_forward", "batchnorm_backward",
    "spatial_batchnorm_forward", "spatial_batchnorm_backward",
    "layernorm_forward", "layernorm_backward", "groupnorm_forward", "groupnorm_backward",
    "softmax_cross_entropy", "multiclass_hinge", "binary_logistic", "binary_hinge",
    "l2_regularization", "accuracy", "topk_error",
]
