"""The Conv2d layer: im2col convolution through fastconv.functional.conv2d_forward/backward."""

import numpy

from .._validate import check_bool, check_int, positive_pair
from ..functional.conv import conv2d_backward, conv2d_forward
from ..shapes import conv_padding
from .init import add_weight_and_bias, store_weight_and_bias_grads
from .module import Module


class Conv2d(Module):
    """2-D convolution of NCHW input; weight ``W`` (F, C/groups, KH, KW), bias ``b`` (F,).

    ``init`` is 'he' (default) or 'xavier'; a float ``weight_scale`` instead
    draws Normal(0, weight_scale) weights (the course's convention). Biases
    start at zero. Parameters are ``dtype`` (float32 default, or float64) on
    ``device`` (default: ``fastconv.backend.default_device()``); ``seed`` or
    ``rng`` (a numpy Generator) makes the initialisation reproducible.
    ``padding`` may also be "same" or "valid". With ``needs_input_grad=False``
    (an attribute too) ``backward`` computes only dW and db and returns None: for
    a network's first layer, whose input is data.
    """

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, dilation=1,
                 groups=1, bias=True, init="he", weight_scale=None, dtype=numpy.float32,
                 device=None, seed=None, rng=None, *, needs_input_grad=True):
        super().__init__()
        self.needs_input_grad = check_bool("Conv2d: needs_input_grad", needs_input_grad)
        self.in_channels = check_int("Conv2d: in_channels", in_channels, 1)
        self.out_channels = check_int("Conv2d: out_channels", out_channels, 1)
        self.groups = check_int("Conv2d: groups", groups, 1)
        if in_channels % groups or out_channels % groups:
            raise ValueError(f"Conv2d: in_channels ({in_channels}) and out_channels "
                             f"({out_channels}) must both be divisible by groups ({groups})")
        self.kernel_size = positive_pair(kernel_size, "kernel_size")
        positive_pair(stride, "Conv2d: stride")
        positive_pair(dilation, "Conv2d: dilation")
        conv_padding(padding, self.kernel_size, stride, dilation)  # refused now, not at forward
        self.stride, self.padding, self.dilation = stride, padding, dilation
        kh, kw = self.kernel_size
        fan_in = in_channels // groups * kh * kw
        add_weight_and_bias(self, (out_channels, in_channels // groups, kh, kw), fan_in,
                            out_channels * kh * kw, out_channels, bias, init, weight_scale,
                            dtype, device, seed, rng)
        self._cache = None

    def forward(self, x):
        """Convolve ``x`` (N, in_channels, H, W); returns (N, out_channels, OH, OW)."""
        if getattr(x, "ndim", None) != 4 or x.shape[1] != self.in_channels:
            raise ValueError(f"Conv2d(in_channels={self.in_channels}) expects x of shape "
                             f"(N, {self.in_channels}, H, W), got {tuple(getattr(x, 'shape', ()))}")
        out, self._cache = conv2d_forward(x, self.params["W"], self.params.get("b"),
                                          stride=self.stride, padding=self.padding,
                                          dilation=self.dilation, groups=self.groups)
        return out

    def backward(self, dout):
        """dL/dx (None without ``needs_input_grad``); stores dL/dW and dL/db."""
        dx, dw, db = conv2d_backward(dout, self._take_cache(), self.needs_input_grad)
        store_weight_and_bias_grads(self, dw, db)
        return dx

    def extra_repr(self):
        return (f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
                f"stride={self.stride}, padding={self.padding}, dilation={self.dilation}, "
                f"groups={self.groups}, bias={'b' in self.params}")
