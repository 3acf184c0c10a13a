"""The convolution layers: Conv2d, Conv1d and ConvTranspose2d, over fastconv.functional's ops.

They share one base: the channel and group checks, the weight and bias (He or Xavier normal
from PyTorch's fans, or a fixed normal scale), the input check and the storing of gradients.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar

import numpy

from .._typing import Array, DTypeLike, IntPair, Padding2d
from .._validate import check_bool, check_float, check_int, positive_pair
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

    layout: ClassVar[str] = "(N, C, H, W)"
    modes: ClassVar[tuple[str, ...]] = PADDING_MODES
    forward_fn: ClassVar[Callable[..., Any]]  # the functional ops
    backward_fn: ClassVar[Callable[..., Any]]
    stride: Any
    padding: Any
    dilation: Any
    needs_input_grad: bool

    def __init__(self, in_channels: int, out_channels: int, kernel_size: tuple[int, ...],
                 groups: int, bias: bool, padding_mode: str, init: str,
                 weight_scale: float | None, dtype: DTypeLike, device: str | None,
                 seed: Any, rng: numpy.random.Generator | None) -> None:
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
        self._cache: Any = None

    def weight_shape(self) -> tuple[int, ...]:
        """A convolution's (out_channels, in_channels/groups, *kernel_size)."""
        return (self.out_channels, self.in_channels // self.groups) + self.kernel_size

    def _check_input(self, x: Any) -> None:
        check_float(x, "x")  # first: what is no array is a TypeError, not a shape of ()
        ndim = self.layout.count(",") + 1
        if x.ndim != ndim or x.shape[1] != self.in_channels:
            layout = self.layout.replace("C", str(self.in_channels), 1)
            raise ValueError(f"{type(self).__name__}(in_channels={self.in_channels}) expects x "
                             f"of shape {layout}, got {tuple(x.shape)}")

    def options(self) -> dict[str, Any]:
        """The keyword arguments of the forward op besides x, w and b."""
        return dict(stride=self.stride, padding=self.padding, dilation=self.dilation,
                    groups=self.groups, padding_mode=self.padding_mode)

    def forward(self, x: Array) -> Array:
        """Convolve ``x``; keeps the cache for ``backward``.

        Parameters
        ----------
        x : array
            (N, in_channels, ...), in the layer's layout.

        Returns
        -------
        array
            (N, out_channels, ...).

        Raises
        ------
        TypeError
            When x is not a float NumPy or CuPy array.
        ValueError
            When x has another number of dimensions or channels.
        """
        self._check_input(x)
        out, self._cache = type(self).forward_fn(x, self.params["W"], self.params.get("b"),
                                                 **self.options())
        return out

    def backward(self, dout: Array) -> Array | None:
        """dL/dx (None without ``needs_input_grad``); stores dL/dW and dL/db.

        Parameters
        ----------
        dout : array
            The gradient of the loss with respect to the last output.

        Returns
        -------
        array or None
            The gradient with respect to the last input.
        """
        dx, dw, db = type(self).backward_fn(dout, self._take_cache(), self.needs_input_grad)
        store_weight_and_bias_grads(self, dw, db)
        return dx

    def extra_repr(self) -> str:
        mode = "" if self.padding_mode == "zeros" else f", padding_mode={self.padding_mode!r}"
        return (f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
                f"stride={self.stride}, padding={self.padding}, dilation={self.dilation}, "
                f"groups={self.groups}, bias={'b' in self.params}{mode}")


class Conv2d(_ConvLayer):
    """2-D convolution of NCHW input; weight ``W`` (F, C/groups, KH, KW), bias ``b`` (F,).

    See :func:`fastconv.functional.conv2d_forward`. Biases start at zero.

    Parameters
    ----------
    in_channels, out_channels : int
        C and F, each divisible by ``groups``.
    kernel_size : int or pair of int
        (KH, KW).
    stride : int or pair of int, default 1
        The window's step.
    padding : int, pair, pair of pairs, "same" or "valid", default 0
        The padding of each side.
    dilation : int or pair of int, default 1
        The spacing of the kernel's taps.
    groups : int, default 1
        Channel groups, each convolved with its own filters.
    bias : bool, default True
        Whether the layer has ``b``.
    padding_mode : {'zeros', 'reflect', 'replicate', 'circular'}, default 'zeros'
        What the padding holds, as PyTorch's.
    init : {'he', 'xavier'}, default 'he'
        The weights' normal initialisation, from PyTorch's fans.
    weight_scale : float, optional
        Draw Normal(0, weight_scale) weights instead (the course's convention).
    dtype : {numpy.float32, numpy.float64}, default numpy.float32
        The parameters' dtype.
    device : {'cpu', 'gpu', 'auto'}, optional
        Where they live; default :func:`fastconv.backend.default_device`.
    seed : int, optional
        Seeds the initialisation; give it or ``rng``.
    rng : numpy.random.Generator, optional
        Draws the initialisation.
    needs_input_grad : bool, default True
        False: ``backward`` computes only dW and db and returns None (for a
        network's first layer, whose input is data). An attribute too.

    Raises
    ------
    ValueError
        When the channels do not divide into the groups, or an argument is out of range.
    TypeError
        When an argument has the wrong type.

    Examples
    --------
    >>> import numpy as np
    >>> layer = Conv2d(3, 8, 3, padding=1, seed=0)
    >>> out = layer.forward(np.ones((2, 3, 5, 5), np.float32))
    >>> out.shape, layer.backward(np.ones_like(out)).shape, layer.grads["W"].shape
    ((2, 8, 5, 5), (2, 3, 5, 5), (8, 3, 3, 3))
    """

    forward_fn = staticmethod(conv2d_forward)
    backward_fn = staticmethod(conv2d_backward)

    def __init__(self, in_channels: int, out_channels: int, kernel_size: IntPair,
                 stride: IntPair = 1, padding: Padding2d | str = 0, dilation: IntPair = 1,
                 groups: int = 1, bias: bool = True, padding_mode: str = "zeros",
                 init: str = "he", weight_scale: float | None = None,
                 dtype: DTypeLike = numpy.float32, device: str | None = None, seed: Any = None,
                 rng: numpy.random.Generator | None = None, *,
                 needs_input_grad: bool = True) -> None:
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

    See :func:`fastconv.functional.conv1d_forward`.

    Parameters
    ----------
    in_channels, out_channels, groups, bias, padding_mode, init, weight_scale
        As for :class:`Conv2d`.
    dtype, device, seed, rng, needs_input_grad
        As for :class:`Conv2d`.
    kernel_size : int
        K (or a 1-tuple of it).
    stride, dilation : int, default 1
        As for :class:`Conv2d`, one int (or a 1-tuple).
    padding : int, "same" or "valid", default 0
        The padding of each end.

    Raises
    ------
    ValueError
        When the channels do not divide into the groups, or an argument is out of range.
    TypeError
        When an argument has the wrong type.

    Examples
    --------
    >>> import numpy as np
    >>> Conv1d(2, 4, 3, padding="same", seed=0).forward(np.ones((1, 2, 6), np.float32)).shape
    (1, 4, 6)
    """

    layout = "(N, C, L)"
    forward_fn = staticmethod(conv1d_forward)
    backward_fn = staticmethod(conv1d_backward)

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int | tuple[int],
                 stride: int | tuple[int] = 1, padding: int | tuple[int] | str = 0,
                 dilation: int | tuple[int] = 1, groups: int = 1, bias: bool = True,
                 padding_mode: str = "zeros", init: str = "he",
                 weight_scale: float | None = None, dtype: DTypeLike = numpy.float32,
                 device: str | None = None, seed: Any = None,
                 rng: numpy.random.Generator | None = None, *,
                 needs_input_grad: bool = True) -> None:
        self.needs_input_grad = check_bool("Conv1d: needs_input_grad", needs_input_grad)
        kernel = (single(kernel_size, "kernel_size", 1),)
        self.stride = single(stride, "Conv1d: stride", 1)
        self.dilation = single(dilation, "Conv1d: dilation", 1)
        if not isinstance(padding, str):
            padding = single(padding, "Conv1d: padding", 0)
        conv_padding(padding, kernel, self.stride, self.dilation)  # refused now, not at forward
        self.padding = padding
        super().__init__(in_channels, out_channels, kernel, groups, bias, padding_mode, init,
                         weight_scale, dtype, device, seed, rng)


class ConvTranspose2d(_ConvLayer):
    """2-D transposed convolution of NCHW input; weight ``W`` (C, F/groups, KH, KW), bias (F,).

    As ``torch.nn.ConvTranspose2d`` (its argument order; only ``padding_mode='zeros'``); see
    :func:`fastconv.functional.conv_transpose2d_forward`. He's fan_in is PyTorch's,
    out_channels/groups times the kernel size.

    Parameters
    ----------
    in_channels, out_channels : int
        C and F, each divisible by ``groups``.
    kernel_size : int or pair of int
        (KH, KW).
    stride : int or pair of int, default 1
        The step of the convolution this one transposes.
    padding : int or pair of int, default 0
        That convolution's padding, cropped from the output.
    output_padding : int or pair of int, default 0
        Rows and columns added to the output's bottom and right, each below
        the stride or the dilation.
    groups, bias, init, weight_scale, dtype, device, seed, rng
        As for :class:`Conv2d`.
    dilation : int or pair of int, default 1
        The spacing of the kernel's taps.
    padding_mode : {'zeros'}, default 'zeros'
        The only mode, as PyTorch's.

    Raises
    ------
    ValueError
        When the channels do not divide into the groups, or an argument is out of range.
    TypeError
        When an argument has the wrong type.

    Examples
    --------
    >>> import numpy as np
    >>> ConvTranspose2d(4, 2, 2, stride=2, seed=0).forward(np.ones((1, 4, 3, 3), np.float32)).shape
    (1, 2, 6, 6)
    """

    modes = ("zeros",)
    forward_fn = staticmethod(conv_transpose2d_forward)

    def __init__(self, in_channels: int, out_channels: int, kernel_size: IntPair,
                 stride: IntPair = 1, padding: IntPair = 0, output_padding: IntPair = 0,
                 groups: int = 1, bias: bool = True, dilation: IntPair = 1,
                 padding_mode: str = "zeros", init: str = "he",
                 weight_scale: float | None = None, dtype: DTypeLike = numpy.float32,
                 device: str | None = None, seed: Any = None,
                 rng: numpy.random.Generator | None = None) -> None:
        kernel = positive_pair(kernel_size, "kernel_size")
        check_transposed_window(kernel, stride, padding, output_padding, dilation)  # now
        self.stride, self.padding, self.dilation = stride, padding, dilation
        self.output_padding = output_padding
        super().__init__(in_channels, out_channels, kernel, groups, bias, padding_mode, init,
                         weight_scale, dtype, device, seed, rng)

    def weight_shape(self) -> tuple[int, ...]:
        """A transposed convolution's (in_channels, out_channels/groups, KH, KW)."""
        return (self.in_channels, self.out_channels // self.groups) + self.kernel_size

    def options(self) -> dict[str, Any]:
        """The keyword arguments of the forward op besides x, w and b."""
        return dict(super().options(), output_padding=self.output_padding)

    def backward(self, dout: Array) -> Array:
        """dL/dx; stores dL/dW and dL/db.

        Parameters
        ----------
        dout : array
            The gradient of the loss with respect to the last output.

        Returns
        -------
        array
            The gradient with respect to the last input.
        """
        dx, dw, db = conv_transpose2d_backward(dout, self._take_cache())
        store_weight_and_bias_grads(self, dw, db)
        return dx

    def extra_repr(self) -> str:
        return super().extra_repr() + f", output_padding={self.output_padding}"
