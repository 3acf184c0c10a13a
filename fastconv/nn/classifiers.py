"""Classifiers with the course interface: ``model.params`` and ``model.loss(X, y=None)``.

:class:`CourseInterface` gives a :class:`~fastconv.nn.Module` the course's
``loss``: the class scores when ``y`` is None, else ``(loss, grads)`` for the
softmax cross-entropy plus ``0.5 * reg * sum(W**2)`` over the weights.
:class:`Classifier` is a Sequential with it (the builders of
:mod:`fastconv.nn.models` return one); :class:`ThreeLayerConvNet` is the
course's network, written over the functional ops.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy

from .._typing import Array, DTypeLike
from .._validate import check_bool, check_float, check_int
from ..backend import is_array
from ..functional.activation import relu_backward, relu_forward
from ..functional.conv import conv2d_backward, conv2d_forward
from ..functional.linear import linear_backward, linear_forward
from ..functional.loss import l2_regularization, softmax_cross_entropy
from ..functional.pool import max_pool2d_backward, max_pool2d_forward
from .init import constant, make_rng, normal_weight, weight_std
from .module import Module, Sequential


class CourseInterface(Module):
    """A classifier Module with the course's ``loss(X, y=None)``.

    Weights are the params whose last name component starts with "W"; they
    get the L2 penalty ``0.5 * reg * sum(W**2)``. With ``y`` the forward runs
    in training mode, without it in eval mode (as the course's ``mode``); the
    module's own mode is restored afterwards. Floating-point ``X`` is cast to
    the parameters' dtype: the course feeds float64 data to float32 models.

    Attributes
    ----------
    reg : float
        The L2 strength, 0 by default.

    Examples
    --------
    >>> import numpy as np
    >>> from fastconv.nn import Linear
    >>> model = Classifier(Linear(4, 3, seed=0), reg=0.1)
    >>> loss, grads = model.loss(np.ones((2, 4)), np.array([0, 2]))
    >>> model.weight_names(), sorted(grads), model.loss(np.ones((2, 4))).shape
    (['0.W'], ['0.W', '0.b'], (2, 3))
    """

    reg = 0.0

    def _in_param_dtype(self, X: Any) -> Any:
        dtype = next(iter(self.params.values())).dtype
        if is_array(X) and X.dtype.kind == "f" and X.dtype != dtype:
            return X.astype(dtype)
        return X

    def _forward_in_mode(self, X: Any, training: bool) -> Any:
        was = self.training
        self.train(training)
        try:
            return self.forward(self._in_param_dtype(X))
        finally:
            self.train(was)

    def weight_names(self) -> list[str]:
        """Names of the params that get the L2 penalty (the weights, not biases or gammas)."""
        return [k for k in self.params if k.rsplit(".", 1)[-1].startswith("W")]

    def loss(self, X: Array, y: Array | None = None) -> Any:
        """The class scores of ``X``, or with labels the loss and the gradients.

        Parameters
        ----------
        X : array
            The inputs (N, ...).
        y : array, optional
            Integer labels (N,) in [0, num_classes).

        Returns
        -------
        array or tuple
            Without ``y``, the scores (N, num_classes); with it, ``(loss,
            grads)``: the loss as a Python float and the gradients keyed like
            ``params``.
        """
        if y is None:
            return self._forward_in_mode(X, False)
        was = self.training
        self.train(True)
        try:
            scores = self.forward(self._in_param_dtype(X))
            loss, dscores = softmax_cross_entropy(scores, y)
            self.backward(dscores)
        finally:
            self.train(was)
        grads = dict(self.grads)
        if self.reg:
            reg_loss, reg_grads = l2_regularization(
                {k: self.params[k] for k in self.weight_names()}, self.reg)
            loss = loss + reg_loss
            for k, g in reg_grads.items():
                grads[k] = grads[k] + g
        return float(loss), grads


class Classifier(CourseInterface, Sequential):
    """A Sequential whose output is class scores, with the course ``loss`` and a ``reg``.

    Parameters
    ----------
    *layers : Module
        The layers, as for :class:`~fastconv.nn.Sequential`.
    reg : float, default 0.0
        The L2 strength on the weights.

    Examples
    --------
    >>> import numpy as np
    >>> from fastconv.nn import Linear, ReLU
    >>> model = Classifier(Linear(4, 8, seed=0), ReLU(), Linear(8, 3, seed=1))
    >>> model.forward(np.ones((5, 4), np.float32)).shape
    (5, 3)
    """

    def __init__(self, *layers: Module, reg: float = 0.0) -> None:
        super().__init__(*layers)
        self.reg = reg


class ThreeLayerConvNet(CourseInterface):
    """The course's conv - relu - 2x2 max pool - affine - relu - affine network.

    Same constructor and params as CS231n's ``ThreeLayerConvNet``: W1 (F, C, k, k),
    b1, W2 (F*(H//2)*(W//2), hidden_dim), b2, W3 (hidden_dim, num_classes), b3;
    the convolution keeps the spatial size (stride 1, padding (k-1)//2).

    Parameters
    ----------
    input_dim : sequence of int, default (3, 32, 32)
        One image's (C, H, W).
    num_filters : int, default 32
        F.
    filter_size : int, default 7
        k.
    hidden_dim : int, default 100
        The hidden affine layer's width.
    num_classes : int, default 10
        The scores per image.
    weight_scale : float or None, default 1e-3
        Normal(0, weight_scale) weights, as in the course; None: He initialisation.
    reg : float, default 0.0
        The L2 strength on the weights.
    dtype : {numpy.float32, numpy.float64}, default numpy.float32
        The parameters' dtype.
    device : {'cpu', 'gpu', 'auto'}, optional
        Where they live; default :func:`fastconv.backend.default_device`.
    seed : int, optional
        Seeds the initialisation; give it or ``rng``.
    rng : numpy.random.Generator, optional
        Draws the initialisation.
    needs_input_grad : bool, default False
        False: ``backward`` skips dx and returns None. An attribute too.

    Raises
    ------
    TypeError, ValueError
        When ``input_dim`` is not (C, H, W) with H and W at least 2, or ``filter_size`` is not
        an odd int (padding (k-1)//2 keeps the size only for odd k, as W2's shape assumes).

    Examples
    --------
    >>> import numpy as np
    >>> model = ThreeLayerConvNet((1, 8, 8), num_filters=4, filter_size=3, hidden_dim=10, seed=0)
    >>> loss, grads = model.loss(np.zeros((2, 1, 8, 8)), np.array([1, 2]))
    >>> model.loss(np.zeros((2, 1, 8, 8))).shape, grads["W1"].shape
    ((2, 10), (4, 1, 3, 3))
    """

    def __init__(self, input_dim: Sequence[int] = (3, 32, 32), num_filters: int = 32,
                 filter_size: int = 7, hidden_dim: int = 100, num_classes: int = 10,
                 weight_scale: float | None = 1e-3, reg: float = 0.0,
                 dtype: DTypeLike = numpy.float32, *, device: str | None = None,
                 seed: Any = None, rng: numpy.random.Generator | None = None,
                 needs_input_grad: bool = False) -> None:
        super().__init__()
        self.needs_input_grad = check_bool("ThreeLayerConvNet: needs_input_grad",
                                           needs_input_grad)
        if len(input_dim) != 3:
            raise ValueError(f"ThreeLayerConvNet: input_dim must be (C, H, W), got {input_dim!r}")
        c, h, w = input_dim
        if h < 2 or w < 2:
            raise ValueError(f"ThreeLayerConvNet: input_dim {tuple(input_dim)} is too small "
                             "for the 2x2 pooling")
        filter_size = check_int("ThreeLayerConvNet: filter_size", filter_size, 1)
        if filter_size % 2 == 0:
            raise ValueError(f"ThreeLayerConvNet: filter_size must be odd, got {filter_size}: "
                             f"the convolution keeps the {h}x{w} size with padding "
                             f"(filter_size - 1) // 2 only for an odd size, and W2's shape "
                             f"assumes it does")
        self.reg = reg
        self.filter_size = filter_size
        rng = make_rng(seed, rng)
        shapes = {"W1": (num_filters, c, filter_size, filter_size),
                  "W2": (num_filters * (h // 2) * (w // 2), hidden_dim),
                  "W3": (hidden_dim, num_classes)}
        for i, (name, shape) in enumerate(shapes.items(), 1):
            fan_in = int(numpy.prod(shape[1:])) if i == 1 else shape[0]
            std = weight_std("he", weight_scale, fan_in, 0)  # 'he' reads fan_in only
            self.add_param(name, normal_weight(shape, std, dtype, device, rng))
            self.add_param(f"b{i}", constant((shape[0] if i == 1 else shape[1],), 0.0,
                                             dtype, device))
        self._cache: Any = None

    def forward(self, x: Array) -> Array:
        """Class scores (N, num_classes) for images x (N, C, H, W).

        Parameters
        ----------
        x : array
            (N, C, H, W).

        Returns
        -------
        array
            (N, num_classes).

        Raises
        ------
        TypeError
            When x is not a float NumPy or CuPy array.
        ValueError
            When x is not 4-D with C channels.
        """
        p = self.params
        check_float(x, "x")  # first: what is no array is a TypeError, not a shape of ()
        if x.ndim != 4 or x.shape[1] != p["W1"].shape[1]:
            raise ValueError(f"ThreeLayerConvNet expects x of shape (N, {p['W1'].shape[1]}, H, W), "
                             f"got {tuple(x.shape)}")
        a, conv = conv2d_forward(x, p["W1"], p["b1"], stride=1, padding=(self.filter_size - 1) // 2)
        a, relu1 = relu_forward(a)
        a, pool = max_pool2d_forward(a, 2, stride=2)
        a, fc1 = linear_forward(a, p["W2"], p["b2"])
        a, relu2 = relu_forward(a)
        scores, fc2 = linear_forward(a, p["W3"], p["b3"])
        self._cache = (conv, relu1, pool, fc1, relu2, fc2)
        return scores

    def backward(self, dscores: Array) -> Array | None:
        """dL/dx (None without ``needs_input_grad``); stores the gradients of W1..b3.

        Parameters
        ----------
        dscores : array
            (N, num_classes): the gradient of the loss with respect to the scores.

        Returns
        -------
        array or None
            The gradient with respect to the last input.
        """
        conv, relu1, pool, fc1, relu2, fc2 = self._take_cache()
        g: Any = self.grads  # every layer here has a bias: no db is None
        d, g["W3"], g["b3"] = linear_backward(dscores, fc2)
        d, g["W2"], g["b2"] = linear_backward(relu_backward(d, relu2), fc1)
        d = relu_backward(max_pool2d_backward(d, pool), relu1)
        dx, g["W1"], g["b1"] = conv2d_backward(d, conv, self.needs_input_grad)
        return dx
