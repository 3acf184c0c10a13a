"""Element-wise activation layers: ReLU, LeakyReLU, Tanh, Sigmoid."""

from ..functional.activation import (leaky_relu_backward, leaky_relu_forward, relu_backward,
                                     relu_forward, sigmoid_backward, sigmoid_forward,
                                     tanh_backward, tanh_forward)
from .stateless import FunctionalLayer


class ReLU(FunctionalLayer):
    """``max(x, 0)``."""

    forward_fn = relu_forward
    backward_fn = relu_backward


class LeakyReLU(FunctionalLayer):
    """``x`` for x > 0, else ``negative_slope * x``."""

    forward_fn = leaky_relu_forward
    backward_fn = leaky_relu_backward

    def __init__(self, negative_slope=0.01):
        super().__init__(negative_slope=negative_slope)


class Tanh(FunctionalLayer):
    """Hyperbolic tangent."""

    forward_fn = tanh_forward
    backward_fn = tanh_backward


class Sigmoid(FunctionalLayer):
    """Logistic sigmoid, stable for large |x|."""

    forward_fn = sigmoid_forward
    backward_fn = sigmoid_backward
