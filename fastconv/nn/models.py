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

The course interface and the classes it is on live in :mod:`fastconv.nn.classifiers`.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence
from typing import Any

import numpy

from .._typing import DTypeLike
from .activation import ReLU
from .batchnorm import BatchNorm1d, BatchNorm2d
from .classifiers import Classifier, CourseInterface, ThreeLayerConvNet
from .conv import Conv2d
from .dropout import Dropout
from .init import make_rng
from .linear import Flatten, Linear
from .module import Module
from .pooling import AdaptiveAvgPool2d, MaxPool2d

InputShape = int | Sequence[int]  # one sample's shape; an int D for the dense models


def _features(input_shape: InputShape) -> int:
    if isinstance(input_shape, (int, numpy.integer)):
        return int(input_shape)
    return int(numpy.prod(input_shape))


def _dense_kwargs(init: str, weight_scale: float | None, dtype: DTypeLike, device: str | None,
                  rng: numpy.random.Generator) -> dict[str, Any]:
    return dict(init=init, weight_scale=weight_scale, dtype=dtype, device=device, rng=rng)


def linear_classifier(input_shape: InputShape, num_classes: int, *, reg: float = 0.0,
                      init: str = "xavier", weight_scale: float | None = None,
                      dtype: DTypeLike = numpy.float32, device: str | None = None,
                      seed: Any = None) -> Classifier:
    """A linear softmax classifier: one Linear layer on the flattened input.

    Parameters
    ----------
    input_shape : int or sequence of int
        One sample's shape, or its number of features.
    num_classes : int
        The scores per sample.
    reg, init, weight_scale, dtype, device, seed
        The options of the module docstring; ``init`` defaults to 'xavier'.

    Returns
    -------
    Classifier

    Examples
    --------
    >>> model = linear_classifier((1, 8, 8), 10, seed=0)
    >>> list(model.params), model.params["0.W"].shape
    (['0.W', '0.b'], (64, 10))
    """
    kw = _dense_kwargs(init, weight_scale, dtype, device, make_rng(seed))
    return Classifier(Linear(_features(input_shape), num_classes, **kw), reg=reg)


def mlp(input_shape: InputShape, num_classes: int, *, hidden_dims: Sequence[int] = (100, 100),
        batchnorm: bool = False, dropout: float = 0.0, reg: float = 0.0, init: str = "he",
        weight_scale: float | None = None, dtype: DTypeLike = numpy.float32,
        device: str | None = None, seed: int | None = None) -> Classifier:
    """An N-layer perceptron: [Linear - (BatchNorm1d) - ReLU - (Dropout)] per hidden layer, then Linear.

    Parameters
    ----------
    input_shape : int or sequence of int
        One sample's shape, or its number of features.
    num_classes : int
        The scores per sample.
    hidden_dims : sequence of int, default (100, 100)
        The hidden layers' widths.
    batchnorm : bool, default False
        A BatchNorm1d after each hidden Linear.
    dropout : float, default 0.0
        The drop probability after each hidden ReLU; 0 disables it.
    reg, init, weight_scale, dtype, device
        The options of the module docstring.
    seed : int, optional
        Seeds the initialisation and the dropout masks.

    Returns
    -------
    Classifier

    Examples
    --------
    >>> import numpy as np
    >>> model = mlp(20, 3, hidden_dims=(16, 8), batchnorm=True, seed=0)
    >>> [type(layer).__name__ for layer in model]
    ['Linear', 'BatchNorm1d', 'ReLU', 'Linear', 'BatchNorm1d', 'ReLU', 'Linear']
    >>> model.forward(np.ones((4, 20), np.float32)).shape
    (4, 3)
    """
    rng = make_rng(seed)
    kw = _dense_kwargs(init, weight_scale, dtype, device, rng)
    layers: list[Module] = []
    d = _features(input_shape)
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


def two_layer_mlp(input_shape: InputShape, num_classes: int, *, hidden_dim: int = 100,
                  **options: Any) -> Classifier:
    """The course's two-layer net: Linear - ReLU - Linear.

    Parameters
    ----------
    input_shape : int or sequence of int
        One sample's shape, or its number of features.
    num_classes : int
        The scores per sample.
    hidden_dim : int, default 100
        The hidden layer's width.
    **options
        As for :func:`mlp`.

    Returns
    -------
    Classifier

    Examples
    --------
    >>> [type(layer).__name__ for layer in two_layer_mlp(4, 2, hidden_dim=3, seed=0)]
    ['Linear', 'ReLU', 'Linear']
    """
    return mlp(input_shape, num_classes, hidden_dims=(hidden_dim,), **options)


def three_layer_convnet(input_shape: Sequence[int], num_classes: int,
                        **options: Any) -> ThreeLayerConvNet:
    """The course ThreeLayerConvNet built from (input_shape, num_classes).

    Parameters
    ----------
    input_shape : sequence of int
        One image's (C, H, W).
    num_classes : int
        The scores per image.
    **options
        The other arguments of :class:`ThreeLayerConvNet`.

    Returns
    -------
    ThreeLayerConvNet

    Examples
    --------
    >>> model = three_layer_convnet((1, 8, 8), 10, num_filters=4, seed=0)
    >>> model.params["W1"].shape, model.params["W3"].shape
    ((4, 1, 7, 7), (100, 10))
    """
    return ThreeLayerConvNet(input_dim=tuple(input_shape), num_classes=num_classes, **options)


def vgg_cnn(input_shape: Sequence[int], num_classes: int, *,
            widths: Sequence[int] = (32, 64, 128), batchnorm: bool = True, dropout: float = 0.0,
            reg: float = 0.0, init: str = "he", weight_scale: float | None = None,
            dtype: DTypeLike = numpy.float32, device: str | None = None,
            seed: int | None = None) -> Classifier:
    """A small VGG-style CNN: per stage two 3x3 conv (- BatchNorm2d) - ReLU, then 2x2 max pool.

    Stages stop pooling once the maps are 1 pixel, so 8x8 digits, 28x28 MNIST and
    32x32 CIFAR-10 all work; a global average pool and (dropout and) one Linear
    layer give the scores.

    Parameters
    ----------
    input_shape : sequence of int
        One image's (C, H, W).
    num_classes : int
        The scores per image.
    widths : sequence of int, default (32, 64, 128)
        The channels of each stage.
    batchnorm : bool, default True
        A BatchNorm2d after each convolution (which then has no bias).
    dropout : float, default 0.0
        The drop probability before the last Linear; 0 disables it.
    reg, init, weight_scale, dtype, device, seed
        The options of the module docstring.

    Returns
    -------
    Classifier

    Raises
    ------
    ValueError
        When ``input_shape`` is not (C, H, W).

    Examples
    --------
    >>> import numpy as np
    >>> model = vgg_cnn((1, 8, 8), 10, widths=(4, 8), seed=0)
    >>> model.forward(np.ones((2, 1, 8, 8), np.float32)).shape
    (2, 10)
    """
    if len(input_shape) != 3:
        raise ValueError(f"vgg_cnn: input_shape must be (C, H, W), got {input_shape!r}")
    rng = make_rng(seed)
    kw = _dense_kwargs(init, weight_scale, dtype, device, rng)
    c, h, w = input_shape
    layers: list[Module] = []
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


MODELS: dict[str, Callable[..., Module]] = {
    "linear": linear_classifier,
    "two_layer": two_layer_mlp,
    "mlp": mlp,
    "convnet": three_layer_convnet,
    "cnn": vgg_cnn,
}


def model_options(name: str) -> set[str]:
    """The option names ``build_model(name, ...)`` accepts (e.g. to check command-line flags).

    Parameters
    ----------
    name : str
        A key of :data:`MODELS`.

    Returns
    -------
    set of str

    Raises
    ------
    ValueError
        When ``name`` is not a model.

    Examples
    --------
    >>> sorted(model_options("linear"))
    ['device', 'dtype', 'init', 'reg', 'seed', 'weight_scale']
    """
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; choose one of {sorted(MODELS)}")
    targets: list[Callable[..., Any]] = [MODELS[name]]
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


def build_model(name: str, input_shape: InputShape, num_classes: int,
                **options: Any) -> Module:
    """Build the model ``name`` for ``input_shape`` samples and ``num_classes``.

    Parameters
    ----------
    name : str
        A key of :data:`MODELS`.
    input_shape : int or sequence of int
        One sample's shape (an int D for the dense models).
    num_classes : int
        The scores per sample.
    **options
        The model's options (see the module docstring and :func:`model_options`).

    Returns
    -------
    Module
        The model, with the course interface.

    Raises
    ------
    ValueError
        When ``name`` is not a model, or it does not take an option (the
        message lists the ones it does).

    Examples
    --------
    >>> model = build_model("two_layer", (1, 8, 8), 10, hidden_dim=32, seed=0)
    >>> model.params["0.W"].shape
    (64, 32)
    """
    unknown = sorted(set(options) - model_options(name))
    if unknown:
        raise ValueError(f"model {name!r} does not take {unknown}; its options are "
                         f"{sorted(model_options(name))}")
    return MODELS[name](input_shape, num_classes, **options)


__all__ = ["CourseInterface", "Classifier", "ThreeLayerConvNet", "linear_classifier", "mlp",
           "two_layer_mlp", "three_layer_convnet", "vgg_cnn", "MODELS", "build_model", "model_options"]
