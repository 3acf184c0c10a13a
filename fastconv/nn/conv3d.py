"""The 3-D convolution layer, Conv3d ((N, C, D, H, W), as PyTorch), over
:func:`fastconv.functional.conv3d.conv3d_forward`."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TypeAlias

import numpy

from .._typing import DTypeLike
from .._validate import check_bool
from ..functional.conv3d import conv3d_backward, conv3d_forward
from ..shapes import conv_padding, spatial_ints
from .conv import _ConvLayer

IntOrTriple: TypeAlias = int | Sequence[int]  # one value for D, H and W, or one each


class Conv3d(_ConvLayer):
    """3-D convolution of (N, C, D, H, W) input; weight ``W`` (F, C/groups, KD, KH, KW), bias
    ``b`` (F,).

    As ``torch.nn.Conv3d``, with :class:`fastconv.nn.Conv2d`'s initialisation options: ``init``
    'he' (default) or 'xavier' from PyTorch's fans, or a float ``weight_scale`` for
    Normal(0, weight_scale) weights; biases start at zero.

    Parameters
    ----------
    in_channels, out_channels : int
        C and F, both divisible by ``groups``.
    kernel_size : int or (int, int, int)
        (KD, KH, KW).
    stride, dilation : int or (int, int, int)
        Default 1.
    padding : int, (int, int, int), 'same' or 'valid'
        Zeros; 'same' needs stride 1. Default 0.
    groups : int
        Default 1.
    bias : bool
        Default True.
    padding_mode : {'zeros'}
        Only zeros (as :func:`~fastconv.functional.conv3d.conv3d_forward`).
    init : {'he', 'xavier'}
    weight_scale : float, optional
    dtype : dtype
        float32 (default) or float64.
    device : str, optional
        Default ``fastconv.backend.default_device()``.
    seed : int, optional
    rng : numpy.random.Generator, optional
        Make the initialisation reproducible.
    needs_input_grad : bool
        False makes ``backward`` compute only dW and db and return None (a first layer).

    Raises
    ------
    TypeError, ValueError
        Naming a malformed argument, at construction.

    Examples
    --------
    >>> import numpy as np
    >>> layer = Conv3d(2, 4, 3, padding=1, seed=0)
    >>> out = layer.forward(np.ones((1, 2, 4, 5, 5), np.float32))
    >>> out.shape, layer.backward(np.ones_like(out)).shape, layer.grads["W"].shape
    ((1, 4, 4, 5, 5), (1, 2, 4, 5, 5), (4, 2, 3, 3, 3))
    """

    layout = "(N, C, D, H, W)"
    modes = ("zeros",)
    forward_fn = staticmethod(conv3d_forward)
    backward_fn = staticmethod(conv3d_backward)

    def __init__(self, in_channels: int, out_channels: int, kernel_size: IntOrTriple,
                 stride: IntOrTriple = 1, padding: object = 0, dilation: IntOrTriple = 1,
                 groups: int = 1, bias: bool = True, padding_mode: str = "zeros",
                 init: str = "he", weight_scale: float | None = None,
                 dtype: DTypeLike = numpy.float32, device: str | None = None,
                 seed: int | None = None, rng: numpy.random.Generator | None = None, *,
                 needs_input_grad: bool = True) -> None:
        self.needs_input_grad = check_bool("Conv3d: needs_input_grad", needs_input_grad)
        kernel = spatial_ints(kernel_size, "kernel_size", 3, 1)
        spatial_ints(stride, "Conv3d: stride", 3, 1)
        spatial_ints(dilation, "Conv3d: dilation", 3, 1)
        conv_padding(padding, kernel, stride, dilation)  # refused now, not at forward
        self.stride, self.padding, self.dilation = stride, padding, dilation
        super().__init__(in_channels, out_channels, kernel, groups, bias, padding_mode, init,
                         weight_scale, dtype, device, seed, rng)

    def options(self) -> dict:
        """The keyword arguments of :func:`~fastconv.functional.conv3d.conv3d_forward` besides
        x, w and b."""
        return dict(stride=self.stride, padding=self.padding, dilation=self.dilation,
                    groups=self.groups)
