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

__all__ = [
    "conv2d_forward", "conv2d_backward",
    "max_pool2d_forward", "max_pool2d_backward",
    "avg_pool2d_forward", "avg_pool2d_backward",
    "adaptive_avg_pool2d_forward", "adaptive_avg_pool2d_backward",
]
