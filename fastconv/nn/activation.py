"""Element-wise activation layers: ReLU, LeakyReLU, Tanh, Sigmoid."""

from __future__ import annotations

from .._validate import check_real
from ..functional.activation import (leaky_relu_backward, leaky_relu_forward, relu_backward,
                                     relu_forward, sigmoid_backward, sigmoid_forward,
                                     tanh_backward, tanh_forward)
from .stateless import FunctionalLayer


class ReLU(FunctionalLayer):
    """``max(x, 0)`` (see :func:`fastconv.functional.relu_forward`).

    Examples
    --------
    >>> import numpy as np
    >>> layer = ReLU()
    >>> layer.forward(np.array([-1.0, 2.0])), layer.backward(np.ones(2))
    (array([0., 2.]), array([0., 1.]))
    """

    forward_fn = relu_forward
    backward_fn = relu_backward


class LeakyReLU(FunctionalLayer):
    """``x`` for x > 0, else ``negative_slope * x``.

    Parameters
    ----------
    negative_slope : float, default 0.01
        The slope where x <= 0.

    Raises
    ------
    TypeError
        When built with a ``negative_slope`` that is not a real number.

    Examples
    --------
    >>> import numpy as np
    >>> LeakyReLU(0.5).forward(np.array([-2.0, 2.0]))
    array([-1.,  2.])
    """

    forward_fn = leaky_relu_forward
    backward_fn = leaky_relu_backward

    def __init__(self, negative_slope: float = 0.01) -> None:
        # the functional op's check, made when built rather than at the first forward
        super().__init__(negative_slope=check_real("LeakyReLU: negative_slope", negative_slope))


class Tanh(FunctionalLayer):
    """Hyperbolic tangent.

    Examples
    --------
    >>> import numpy as np
    >>> layer = Tanh()
    >>> layer.forward(np.zeros(2)), layer.backward(np.ones(2))
    (array([0., 0.]), array([1., 1.]))
    """

    forward_fn = tanh_forward
    backward_fn = tanh_backward


class Sigmoid(FunctionalLayer):
    """Logistic sigmoid, stable for large ``|x|``.

    Examples
    --------
    >>> import numpy as np
    >>> layer = Sigmoid()
    >>> layer.forward(np.zeros(2)), layer.backward(np.ones(2))
    (array([0.5, 0.5]), array([0.25, 0.25]))
    """

    forward_fn = sigmoid_forward
    backward_fn = sigmoid_backward
