"""Layers and networks with params/grads dicts, forward/backward, written once for NumPy and CuPy.

Every layer calls the ops of ``fastconv.functional``; ``Module`` (module.py)
holds the shared machinery: named params/grads/buffers, train/eval, ``to(device)``
and state dicts. Model builders live in ``fastconv.nn.models``.
"""

from .activation import LeakyReLU, ReLU, Sigmoid, Tanh
from .batchnorm import BatchNorm1d, BatchNorm2d
from .conv import Conv1d, Conv2d, ConvTranspose2d
from .conv3d import Conv3d
from .dropout import Dropout
from .linear import Flatten, Linear
from .models import (MODELS, Classifier, ThreeLayerConvNet, build_model, linear_classifier, mlp,
                     model_options, three_layer_convnet, two_layer_mlp, vgg_cnn)
from .module import Module, NamedArrays, Sequential
from .normalization import GroupNorm, LayerNorm
from .pooling import AdaptiveAvgPool2d, AdaptiveMaxPool2d, AvgPool2d, MaxPool2d, MaxUnpool2d
from .pooling1d import AvgPool1d, MaxPool1d
from .pooling3d import AvgPool3d, MaxPool3d
from .upsampling import Upsample

__all__ = ["Module", "NamedArrays", "Sequential", "Conv2d", "Conv1d", "ConvTranspose2d", "Linear",
           "Conv3d",
           "Flatten", "MaxPool1d", "AvgPool1d", "MaxPool2d",
           "AvgPool2d", "AdaptiveAvgPool2d", "ReLU", "LeakyReLU", "Tanh", "Sigmoid", "Dropout",
           "AdaptiveMaxPool2d", "MaxUnpool2d", "Upsample", "MaxPool3d", "AvgPool3d",
           "BatchNorm1d", "BatchNorm2d", "LayerNorm", "GroupNorm", "Classifier", "ThreeLayerConvNet", "MODELS",
           "build_model", "model_options", "linear_classifier", "mlp", "two_layer_mlp", "three_layer_convnet",
           "vgg_cnn"]
