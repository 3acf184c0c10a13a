"""The convolution layers: Conv2d, Conv1d and ConvTranspose2d, over fastconv.functional's ops.

They share one base: the channel and group checks, the weight and bias (He or Xavier normal
from PyTorch's fans, or a fixed normal scale), the input check and the storing of gradients.
"""

import numpy

from .._validate import check_bool, check_int, positive_pair
from ..functional._unit_height import single
from ..functional.conv import conv2d_backward, conv2d_forward
from ..functional.conv1d import conv1d_backward, conv1d_forward
from ..functional.conv_transpose import (conv_transpose2d_backward, conv_transpose2d_forward,
                                         check_transposed_window)
from ..functional.padding import PADDING_MODES, check_padding_mode
from ..shapes import conv_padding
from .init import add_weight_and_bias, store_weight_and_bias_grads
from .module import Module


class _ConvLayer(Module):
    """What every convolution layer shares; subclasses set their ops (``forward_fn``,
    ``backward_fn``), ``layout`` and ``modes`` (and a transposed one its ``weight_shape``).

    The weight's fans are PyTorch's: fan_in is ``w.shape[1]`` times the kernel's size, fan_out
    ``w.shape[0]`` times it (so a transposed convolution's fan_in counts its output channels,
    as in PyTorch).
    """

    layout = "(N, C, H, W)"
    modes = PADDING_MODES
    forward_fn = backward_fn = None  # the functional ops

    def __init__(self, in_channels, out_channels, kernel_size, groups, bias, padding_mode,
                 init, weight_scale, dtype, device, seed, rng):
        super().__init__()
        name = type(self).__name__
        self.in_channels = check_int(f"{name}: in_channels", in_channels, 1)
        self.out_channels = check_int(f"{name}: out_channels", out_channels, 1)
        self.groups = check_int(f"{name}: groups", groups, 1)
        if in_channels % groups or out_channels % groups:
            raise ValueError(f"{name}: in_channels ({in_channels}) and out_channels "
                             f"({out_channels}) must both be divisible by groups ({groups})")
        self.kernel_size = kernel_size
        self.padding_mode = check_padding_mode(padding_mode, self.modes)
        shape = self.weight_shape()
        taps = int(numpy.prod(kernel_size))
        add_weight_and_bias(self, shape, shape[1] * taps, shape[0] * taps, out_channels, bias,
                            init, weight_scale, dtype, device, seed, rng)
        self._cache = None

    def weight_shape(self):
        """A convolution's (out_channels, in_channels/groups, *kernel_size)."""
        return (self.out_channels, self.in_channels // self.groups) + self.kernel_size

    def _check_input(self, x):
        ndim = self.layout.count(",") + 1
        if getattr(x, "ndim", None) != ndim or x.shape[1] != self.in_channels:
            layout = self.layout.replace("C", str(self.in_channels), 1)
            raise ValueError(f"{type(self).__name__}(in_channels={self.in_channels}) expects x "
                             f"of shape {layout}, got {tuple(getattr(x, 'shape', ()))}")

    def options(self):
        """The keyword arguments of the forward op besides x, w and b."""
        return dict(stride=self.stride, padding=self.padding, dilation=self.dilation,
                    groups=self.groups, padding_mode=self.padding_mode)

    def forward(self, x):
        """Convolve ``x`` (N, in_channels, ...); returns (N, out_channels, ...)."""
        self._check_input(x)
        out, self._cache = type(self).forward_fn(x, self.params["W"], self.params.get("b"),
                                                 **self.options())
        return out

    def backward(self, dout):
        """dL/dx (None without ``needs_input_grad``); stores dL/dW and dL/db."""
        dx, dw, db = type(self).backward_fn(dout, self._take_cache(), self.needs_input_grad)
        store_weight_and_bias_grads(self, dw, db)
        return dx

    def extra_repr(self):
        mode = "" if self.padding_mode == "zeros" else f", padding_mode={self.padding_mode!r}"
        return (f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
                f"stride={self.stride}, padding={self.padding}, dilation={self.dilation}, "
                f"groups={self.groups}, bias={'b' in self.params}{mode}")


class Conv2d(_ConvLayer):
    """2-D convolution of NCHW input; weight ``W`` (F, C/groups, KH, KW), bias ``b`` (F,).

    ``init`` is 'he' (default) or 'xavier'; a float ``weight_scale`` instead
    draws Normal(0, weight_scale) weights (the course's convention). Biases
    start at zero. Parameters are ``dtype`` (float32 default, or float64) on
    ``device`` (default: ``fastconv.backend.default_device()``); ``seed`` or
    ``rng`` (a numpy Generator) makes the initialisation reproducible.
    ``padding`` may also be "same" or "valid"; ``padding_mode`` is 'zeros',
    'reflect', 'replicate' or 'circular', as PyTorch's. With
    ``needs_input_grad=False`` (an attribute too) ``backward`` computes only dW
    and db and returns None: for a network's first layer, whose input is data.
    """

    forward_fn = staticmethod(conv2d_forward)
    backward_fn = staticmethod(conv2d_backward)

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, dilation=1,
                 groups=1, bias=True, padding_mode="zeros", init="he", weight_scale=None,
                 dtype=numpy.float32, device=None, seed=None, rng=None, *,
                 needs_input_grad=True):
        self.needs_input_grad = check_bool("Conv2d: needs_input_grad", needs_input_grad)
        kernel = positive_pair(kernel_size, "kernel_size")
        positive_pair(stride, "Conv2d: stride")
        positive_pair(dilation, "Conv2d: dilation")
        conv_padding(padding, kernel, stride, dilation)  # refused now, not at forward
        self.stride, self.padding, self.dilation = stride, padding, dilation
        super().__init__(in_channels, out_channels, kernel, groups, bias, padding_mode, init,
                         weight_scale, dtype, device, seed, rng)


class Conv1d(_ConvLayer):
    """1-D convolution of (N, C, L) input; weight ``W`` (F, C/groups, K), bias ``b`` (F,).

    The options of :class:`Conv2d`, with int (or 1-tuple) kernel_size, stride, padding (or
    'same', 'valid') and dilation.
    """

    layout = "(N, C, L)"
    forward_fn = staticmethod(conv1d_forward)
    backward_fn = staticmethod(conv1d_backward)

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, dilation=1,
                 groups=1, bias=True, padding_mode="zeros", init="he", weight_scale=None,
                 dtype=numpy.float32, device=None, seed=None, rng=None, *,
                 needs_input_grad=True):
        self.needs_input_grad = check_bool("Conv1d: needs_input_grad", needs_input_grad)
        kernel = (single(kernel_size, "kernel_size", 1),)
        self.stride = single(stride, "Conv1d: stride", 1)
        self.dilation = single(dilation, "Conv1d: dilation", 1)
        if not isinstance(padding, str):
            padding = single(padding, "Conv1d: padding", 0)
        conv_padding(padding, (1,) + kernel, (1, self.stride), (1, self.dilation))
        self.padding = padding
        super().__init__(in_channels, out_channels, kernel, groups, bias, padding_mode, init,
                         weight_scale, dtype, device, seed, rng)


class ConvTranspose2d(_ConvLayer):
    """2-D transposed convolution of NCHW input; weight ``W`` (C, F/groups, KH, KW), bias (F,).

    As ``torch.nn.ConvTranspose2d`` (its argument order; only ``padding_mode='zeros'``), with
    :class:`Conv2d`'s initialisation options; He's fan_in is PyTorch's, out_channels/groups
    times the kernel size.
    """

    modes = ("zeros",)
    forward_fn = staticmethod(conv_transpose2d_forward)

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0,
                 output_padding=0, groups=1, bias=True, dilation=1, padding_mode="zeros",
                 init="he", weight_scale=None, dtype=numpy.float32, device=None, seed=None,
                 rng=None):
        kernel = positive_pair(kernel_size, "kernel_size")
        check_transposed_window(kernel, stride, padding, output_padding, dilation)  # now
        self.stride, self.padding, self.dilation = stride, padding, dilation
        self.output_padding = output_padding
        super().__init__(in_channels, out_channels, kernel, groups, bias, padding_mode, init,
                         weight_scale, dtype, device, seed, rng)

    def weight_shape(self):
        """A transposed convolution's (in_channels, out_channels/groups, KH, KW)."""
        return (self.in_channels, self.out_channels // self.groups) + self.kernel_size

    def options(self):
        return dict(super().options(), output_padding=self.output_padding)

    def backward(self, dout):
        """dL/dx; stores dL/dW and dL/db."""
        dx, dw, db = conv_transpose2d_backward(dout, self._take_cache())
        store_weight_and_bias_grads(self, dw, db)
        return dx

    def extra_repr(self):
        return super().extra_repr() + f", output_padding={self.output_padding}"
