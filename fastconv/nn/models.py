"""Model builders: linear classifier, MLPs, the course ThreeLayerConvNet, a small VGG-style CNN.

Every builder is called the same way::

    model = build_model(name, input_shape, num_classes, **options)
    # name in MODELS: "linear", "two_layer", "mlp", "convnet", "cnn"
    # input_shape: one sample's shape, e.g. (1, 8, 8) digits, (1, 28, 28) MNIST,
    #              (3, 32, 32) CIFAR-10 (an int D is accepted by the dense models)

Options every builder accepts: ``reg`` (L2 strength on the weights, default 0),
``dtype`` (float32 default, or float64), ``device`` ('cpu'/'gpu'/'auto'; default
``fastconv.backend.default_device()``), ``seed`` (reproducible initialisation);
the dense and VGG builders also take ``init`` ('he', 'xavier'; 'he' is the
default except for the linear classifier's 'xavier') and ``weight_scale`` (a
float: the course's Normal(0, weight_scale) weights).

Each model is a :class:`~fastconv.nn.Module` (``forward``/``backward``,
``params``/``grads``, ``state_dict``, ``to``) AND has the course interface:
``model.params`` (a dict-like of arrays) and ``model.loss(X, y=None)`` returning
the class scores when ``y`` is None, else ``(loss, grads)`` for the softmax
cross-entropy plus ``0.5 * reg * sum(W**2)`` over the weights. So both
``fastconv.train.Solver`` paths (course update rules, optimizer objects) and
hand-written loops can train them.

The convolutional models compute no gradient for their input, which is data:
their first convolution has ``needs_input_grad=False`` (``backward`` returns
None). Set ``model[0].needs_input_grad = True`` (for ThreeLayerConvNet,
``model.needs_input_grad = True``) where the input gradient is wanted.
"""

import inspect

import numpy

from .._validate import check_bool
from ..backend import is_array
from ..functional.activation import relu_backward, relu_forward
from ..functional.conv import conv2d_backward, conv2d_forward
from ..functional.linear import linear_backward, linear_forward
from ..functional.loss import l2_regularization, softmax_cross_entropy
from ..functional.pool import max_pool2d_backward, max_pool2d_forward
from .activation import ReLU
from .batchnorm import BatchNorm1d, BatchNorm2d
from .conv import Conv2d
from .dropout import Dropout
from .init import constant, make_rng, normal_weight, weight_std
from .linear import Flatten, Linear
from .module import Module, Sequential
from .pooling import AdaptiveAvgPool2d, MaxPool2d


class CourseInterface:
    """Mixin giving a classifier Module the course's ``loss(X, y=None)``.

    Weights are the params whose last name component starts with "W"; they
    get the L2 penalty ``0.5 * reg * sum(W**2)``. With ``y`` the forward runs
    in training mode, without it in eval mode (as the course's ``mode``); the
    module's own mode is restored afterwards. Floating-point ``X`` is cast to
    the parameters' dtype: the course feeds float64 data to float32 models.
    """

    reg = 0.0

    def _in_param_dtype(self, X):
        dtype = next(iter(self.params.values())).dtype
        if is_array(X) and X.dtype.kind == "f" and X.dtype != dtype:
            return X.astype(dtype)
        return X

    def _forward_in_mode(self, X, training):
        was = self.training
        self.train(training)
        try:
            return self.forward(self._in_param_dtype(X))
        finally:
            self.train(was)

    def weight_names(self):
        """Names of the params that get the L2 penalty (the weights, not biases or gammas)."""
        return [k for k in self.params if k.rsplit(".", 1)[-1].startswith("W")]

    def loss(self, X, y=None):
        """Scores for ``X`` when ``y`` is None, else ``(loss, grads)`` with grads keyed like params."""
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
    """A Sequential whose output is class scores, with the course ``loss`` and a ``reg``."""

    def __init__(self, *layers, reg=0.0):
        super().__init__(*layers)
        self.reg = reg


class ThreeLayerConvNet(CourseInterface, Module):
    """The course's conv - relu - 2x2 max pool - affine - relu - affine network.

    Same constructor and params as CS231n's ``ThreeLayerConvNet``: W1 (F, C, k, k),
    b1, W2 (F*(H//2)*(W//2), hidden_dim), b2, W3 (hidden_dim, num_classes), b3;
    the convolution keeps the spatial size (stride 1, padding (k-1)//2). Weights
    are Normal(0, weight_scale) as in the course; ``weight_scale=None`` uses He
    initialisation instead. Extra keyword-only options: ``device``, ``seed``/``rng``,
    ``needs_input_grad`` (False: ``backward`` skips dx and returns None).
    """

    def __init__(self, input_dim=(3, 32, 32), num_filters=32, filter_size=7, hidden_dim=100,
                 num_classes=10, weight_scale=1e-3, reg=0.0, dtype=numpy.float32, *,
                 device=None, seed=None, rng=None, needs_input_grad=False):
        super().__init__()
        self.needs_input_grad = check_bool("ThreeLayerConvNet: needs_input_grad",
                                           needs_input_grad)
        if len(input_dim) != 3:
            raise ValueError(f"ThreeLayerConvNet: input_dim must be (C, H, W), got {input_dim!r}")
        c, h, w = input_dim
        if h < 2 or w < 2:
            raise ValueError(f"ThreeLayerConvNet: input_dim {tuple(input_dim)} is too small "
                             "for the 2x2 pooling")
        self.reg = reg
        self.filter_size = filter_size
        rng = make_rng(seed, rng)
        shapes = {"W1": (num_filters, c, filter_size, filter_size),
                  "W2": (num_filters * (h // 2) * (w // 2), hidden_dim),
                  "W3": (hidden_dim, num_classes)}
        for i, (name, shape) in enumerate(shapes.items(), 1):
            fan_in = int(numpy.prod(shape[1:])) if i == 1 else shape[0]
            std = weight_std("he", weight_scale, fan_in, None)
            self.add_param(name, normal_weight(shape, std, dtype, device, rng))
            self.add_param(f"b{i}", constant((shape[0] if i == 1 else shape[1],), 0.0,
                                             dtype, device))
        self._cache = None

    def forward(self, x):
        """Class scores (N, num_classes) for images x (N, C, H, W)."""
        p = self.params
        if getattr(x, "ndim", None) != 4 or x.shape[1] != p["W1"].shape[1]:
            raise ValueError(f"ThreeLayerConvNet expects x of shape (N, {p['W1'].shape[1]}, H, W), "
                             f"got {tuple(getattr(x, 'shape', ()))}")
        a, conv = conv2d_forward(x, p["W1"], p["b1"], stride=1, padding=(self.filter_size - 1) // 2)
        a, relu1 = relu_forward(a)
        a, pool = max_pool2d_forward(a, 2, stride=2)
        a, fc1 = linear_forward(a, p["W2"], p["b2"])
        a, relu2 = relu_forward(a)
        scores, fc2 = linear_forward(a, p["W3"], p["b3"])
        self._cache = (conv, relu1, pool, fc1, relu2, fc2)
        return scores

    def backward(self, dscores):
        """dL/dx (None without ``needs_input_grad``); stores the gradients of W1..b3."""
        conv, relu1, pool, fc1, relu2, fc2 = self._take_cache()
        g = self.grads
        d, g["W3"], g["b3"] = linear_backward(dscores, fc2)
        d, g["W2"], g["b2"] = linear_backward(relu_backward(d, relu2), fc1)
        d = relu_backward(max_pool2d_backward(d, pool), relu1)
        dx, g["W1"], g["b1"] = conv2d_backward(d, conv, self.needs_input_grad)
        return dx


def _features(input_shape):
    if isinstance(input_shape, (int, numpy.integer)):
        return int(input_shape)
    return int(numpy.prod(input_shape))


def _dense_kwargs(init, weight_scale, dtype, device, rng):
    return dict(init=init, weight_scale=weight_scale, dtype=dtype, device=device, rng=rng)


def linear_classifier(input_shape, num_classes, *, reg=0.0, init="xavier", weight_scale=None,
                      dtype=numpy.float32, device=None, seed=None):
    """A linear softmax classifier: one Linear layer on the flattened input."""
    kw = _dense_kwargs(init, weight_scale, dtype, device, make_rng(seed))
    return Classifier(Linear(_features(input_shape), num_classes, **kw), reg=reg)


def mlp(input_shape, num_classes, *, hidden_dims=(100, 100), batchnorm=False, dropout=0.0,
        reg=0.0, init="he", weight_scale=None, dtype=numpy.float32, device=None, seed=None):
    """An N-layer perceptron: [Linear - (BatchNorm1d) - ReLU - (Dropout)] per hidden layer, then Linear.

    ``dropout`` is the drop probability (0 disables it); ``seed`` also seeds the dropout masks.
    """
    rng = make_rng(seed)
    kw = _dense_kwargs(init, weight_scale, dtype, device, rng)
    layers, d = [], _features(input_shape)
    for i, h in enumerate(hidden_dims):
        layers.append(Linear(d, h, **kw))
        if batchnorm:
            layers.append(BatchNorm1d(h, dtype=dtype, device=device))
        layers.append(ReLU())
        if dropout:
            layers.append(Dropout(dropout, seed=None if seed is None else seed + 1 + i))
        d = h
    layers.append(Linear(d, num_classes, **kw))
    return Classifier(*layers, reg=reg)


def two_layer_mlp(input_shape, num_classes, *, hidden_dim=100, **options):
    """The course's two-layer net: Linear - ReLU - Linear (options as for ``mlp``)."""
    return mlp(input_shape, num_classes, hidden_dims=(hidden_dim,), **options)


def three_layer_convnet(input_shape, num_classes, **options):
    """The course ThreeLayerConvNet built from (input_shape, num_classes); options are its constructor's."""
    return ThreeLayerConvNet(input_dim=tuple(input_shape), num_classes=num_classes, **options)


def vgg_cnn(input_shape, num_classes, *, widths=(32, 64, 128), batchnorm=True, dropout=0.0,
            reg=0.0, init="he", weight_scale=None, dtype=numpy.float32, device=None, seed=None):
    """A small VGG-style CNN: per stage two 3x3 conv (- BatchNorm2d) - ReLU, then 2x2 max pool.

    Stages stop pooling once the maps are 1 pixel, so 8x8 digits, 28x28 MNIST and
    32x32 CIFAR-10 all work; a global average pool and (dropout and) one Linear
    layer give the scores.
    """
    if len(input_shape) != 3:
        raise ValueError(f"vgg_cnn: input_shape must be (C, H, W), got {input_shape!r}")
    rng = make_rng(seed)
    kw = _dense_kwargs(init, weight_scale, dtype, device, rng)
    c, h, w = input_shape
    layers = []
    for width in widths:
        for _ in range(2):
            layers.append(Conv2d(c, width, 3, padding=1, bias=not batchnorm,
                                 needs_input_grad=bool(layers), **kw))
            if batchnorm:
                layers.append(BatchNorm2d(width, dtype=dtype, device=device))
            layers.append(ReLU())
            c = width
        if min(h, w) >= 2:
            layers.append(MaxPool2d(2))
            h, w = h // 2, w // 2
    layers += [AdaptiveAvgPool2d(1), Flatten()]
    if dropout:
        layers.append(Dropout(dropout, seed=seed))
    layers.append(Linear(c, num_classes, **kw))
    return Classifier(*layers, reg=reg)


MODELS = {
    "linear": linear_classifier,
    "two_layer": two_layer_mlp,
    "mlp": mlp,
    "convnet": three_layer_convnet,
    "cnn": vgg_cnn,
}


def model_options(name):
    """The option names ``build_model(name, ...)`` accepts (e.g. to check command-line flags)."""
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; choose one of {sorted(MODELS)}")
    targets = [MODELS[name]]
    if name == "convnet":
        targets = [ThreeLayerConvNet.__init__]
    elif name == "two_layer":
        targets.append(mlp)
    names = set()
    for target in targets:
        names |= {p.name for p in inspect.signature(target).parameters.values()
                  if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}
    names -= {"self", "input_shape", "input_dim", "num_classes"}
    return names - {"hidden_dims"} if name == "two_layer" else names


def build_model(name, input_shape, num_classes, **options):
    """Build the model ``name`` (a key of ``MODELS``) for ``input_shape`` samples and ``num_classes``.

    An option the model does not take is a ValueError listing the ones it does.
    """
    unknown = sorted(set(options) - model_options(name))
    if unknown:
        raise ValueError(f"model {name!r} does not take {unknown}; its options are "
                         f"{sorted(model_options(name))}")
    return MODELS[name](input_shape, num_classes, **options)


__all__ = ["CourseInterface", "Classifier", "ThreeLayerConvNet", "linear_classifier", "mlp",
           "two_layer_mlp", "three_layer_convnet", "vgg_cnn", "MODELS", "build_model", "model_options"]
