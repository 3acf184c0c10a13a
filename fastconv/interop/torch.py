"""fastconv's convolution and pooling inside PyTorch models, as autograd Functions.

    >>> import torch
    >>> from fastconv.interop.torch import conv2d, max_pool2d
    >>> x = torch.randn(2, 3, 8, 8, dtype=torch.float64, requires_grad=True)
    >>> w = torch.randn(4, 3, 3, 3, dtype=torch.float64, requires_grad=True)
    >>> y = max_pool2d(conv2d(x, w, padding=1), 2)   # fastconv computes, autograd records
    >>> y.sum().backward()                            # fastconv's backward fills x.grad, w.grad
    >>> tuple(y.shape), tuple(x.grad.shape)
    ((2, 4, 4, 4), (2, 3, 8, 8))

The functions take ``torch.nn.functional``'s arguments: ``conv2d``,
``max_pool2d`` (no ``return_indices``), ``avg_pool2d`` (no
``divisor_override``) and ``adaptive_avg_pool2d``; :class:`Conv2d` is
``torch.nn.Conv2d`` computed by fastconv. Tensors cross without copies
through DLPack: a CPU tensor is read as a NumPy array and a CUDA tensor as a
CuPy array on its device (fastconv's GPU path), and fastconv's results become
tensors sharing their memory. A non-contiguous tensor (a transposed view,
``channels_last``) is made contiguous first, which copies it. float16,
float32 and float64 tensors are accepted, as fastconv's ops accept them.

Gradients are first order: a second backward through these Functions raises.
The forward saves its input tensors for the backward, so that PyTorch's
check applies: changing one in place in between raises, as for PyTorch's
own ops. Needs the ``torch`` extra (``pip install "fastconv[torch]"``);
``import fastconv`` alone never imports torch.
"""

from __future__ import annotations

import contextlib
from typing import Any

import numpy
import torch
from torch.autograd.function import once_differentiable

from .. import functional as F
from .._typing import Array

__all__ = ["conv2d", "max_pool2d", "avg_pool2d", "adaptive_avg_pool2d", "Conv2d",
           "to_array", "to_tensor"]

_FLOAT_TENSORS = (torch.float16, torch.float32, torch.float64)


def to_array(tensor: torch.Tensor, name: str = "tensor") -> Array:
    """The NumPy (CPU) or CuPy (CUDA) array that shares ``tensor``'s memory.

    Parameters
    ----------
    tensor : torch.Tensor
        float16/32/64 on the CPU or a CUDA device; it is detached (autograd
        does not see the array) and made contiguous first if it is not.
    name : str, default "tensor"
        The tensor's name in error messages.

    Returns
    -------
    numpy.ndarray or cupy.ndarray

    Raises
    ------
    TypeError
        When ``tensor`` is not a tensor, or not float16/32/64.
    ValueError
        When it is on a device other than the CPU and CUDA.

    Examples
    --------
    >>> import torch
    >>> to_array(torch.zeros(2, 3))
    array([[0., 0., 0.],
           [0., 0., 0.]], dtype=float32)
    """
    if not isinstance(tensor, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(tensor).__name__}")
    if tensor.dtype not in _FLOAT_TENSORS:
        raise TypeError(f"{name} is {tensor.dtype}; fastconv computes in float16, float32 "
                        f"or float64")
    tensor = tensor.detach().contiguous()
    if tensor.device.type == "cuda":
        import cupy
        return cupy.from_dlpack(tensor)
    if tensor.device.type != "cpu":
        raise ValueError(f"{name} is on {tensor.device}; fastconv runs on CPU and CUDA tensors")
    return numpy.from_dlpack(tensor)


def to_tensor(array: Array | None) -> torch.Tensor | None:
    """The tensor that shares the memory of a NumPy or CuPy ``array`` (None stays None).

    Parameters
    ----------
    array : numpy.ndarray, cupy.ndarray or None
        The array.

    Returns
    -------
    torch.Tensor or None

    Examples
    --------
    >>> import numpy as np
    >>> to_tensor(np.arange(3.0))
    tensor([0., 1., 2.], dtype=torch.float64)
    """
    return None if array is None else torch.from_dlpack(array)


def _device(tensor: torch.Tensor) -> Any:
    """The context that makes ``tensor``'s CUDA device CuPy's current one (none on the CPU)."""
    if tensor.device.type == "cuda":
        import cupy
        return cupy.cuda.Device(tensor.device.index)
    return contextlib.nullcontext()


class _Op(torch.autograd.Function):
    """One fastconv op pair, ``forward_op(*arrays, **options) -> (out, cache)`` and
    ``backward_op(dout, cache) -> grads``, as an autograd Function of ``tensors``."""

    @staticmethod
    def forward(ctx, forward_op, backward_op, options, names, *tensors):
        ctx.backward_op = backward_op
        ctx.save_for_backward(*tensors)
        arrays = [None if t is None else to_array(t, n) for t, n in zip(tensors, names)]
        with _device(tensors[0]):
            out, ctx.cache = forward_op(*arrays, **options)
        return to_tensor(out)

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_output):
        first = ctx.saved_tensors[0]  # reading them raises if one changed in place
        with _device(first):
            grads = ctx.backward_op(to_array(grad_output, "grad_output"), ctx.cache)
        grads = grads if isinstance(grads, tuple) else (grads,)
        return (None, None, None, None, *map(to_tensor, grads))


def conv2d(input: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None,
           stride: Any = 1, padding: Any = 0, dilation: Any = 1, groups: int = 1
           ) -> torch.Tensor:
    """``torch.nn.functional.conv2d`` computed by :func:`fastconv.conv2d_forward`.

    Parameters
    ----------
    input : torch.Tensor
        (N, C, H, W).
    weight : torch.Tensor
        (F, C/groups, KH, KW), input's dtype and device.
    bias : torch.Tensor, optional
        (F,).
    stride, padding, dilation, groups
        As in PyTorch (padding also ``"same"``/``"valid"``).

    Returns
    -------
    torch.Tensor
        (N, F, OH, OW), differentiable with respect to input, weight and bias.

    Raises
    ------
    TypeError, ValueError
        Arguments fastconv's convolution refuses, naming them.

    Examples
    --------
    >>> import torch
    >>> x = torch.ones(1, 2, 4, 4, requires_grad=True)
    >>> y = conv2d(x, torch.ones(3, 2, 3, 3), padding=1)
    >>> y.sum().backward()
    >>> tuple(y.shape), float(x.grad[0, 0, 0, 0])
    ((1, 3, 4, 4), 12.0)
    """
    return _convolve(input, weight, bias, stride=stride, padding=padding, dilation=dilation,
                     groups=groups)


def _convolve(input: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None,
              **arguments: Any) -> torch.Tensor:
    """:func:`fastconv.conv2d_forward` with ``arguments``, recorded by autograd."""
    return _Op.apply(F.conv2d_forward, F.conv2d_backward, arguments,
                     ("input", "weight", "bias"), input, weight, bias)


def max_pool2d(input: torch.Tensor, kernel_size: Any, stride: Any = None, padding: Any = 0,
               dilation: Any = 1, ceil_mode: bool = False) -> torch.Tensor:
    """``torch.nn.functional.max_pool2d`` computed by :func:`fastconv.max_pool2d_forward`.

    Parameters
    ----------
    input : torch.Tensor
        (N, C, H, W).
    kernel_size, stride, padding, dilation, ceil_mode
        As in PyTorch (stride defaults to kernel_size).

    Returns
    -------
    torch.Tensor
        (N, C, OH, OW); ties send the gradient to the first maximum.

    Raises
    ------
    TypeError, ValueError
        Arguments fastconv's max pooling refuses, naming them.

    Examples
    --------
    >>> import torch
    >>> max_pool2d(torch.arange(16.0).reshape(1, 1, 4, 4), 2)
    tensor([[[[ 5.,  7.],
              [13., 15.]]]])
    """
    return _Op.apply(F.max_pool2d_forward, F.max_pool2d_backward,
                     dict(kernel_size=kernel_size, stride=stride, padding=padding,
                          dilation=dilation, ceil_mode=ceil_mode), ("input",), input)


def avg_pool2d(input: torch.Tensor, kernel_size: Any, stride: Any = None, padding: Any = 0,
               ceil_mode: bool = False, count_include_pad: bool = True) -> torch.Tensor:
    """``torch.nn.functional.avg_pool2d`` computed by :func:`fastconv.avg_pool2d_forward`.

    Parameters
    ----------
    input : torch.Tensor
        (N, C, H, W).
    kernel_size, stride, padding, ceil_mode, count_include_pad
        As in PyTorch.

    Returns
    -------
    torch.Tensor
        (N, C, OH, OW).

    Raises
    ------
    TypeError, ValueError
        Arguments fastconv's average pooling refuses, naming them.

    Examples
    --------
    >>> import torch
    >>> avg_pool2d(torch.arange(16.0).reshape(1, 1, 4, 4), 2)
    tensor([[[[ 2.5000,  4.5000],
              [10.5000, 12.5000]]]])
    """
    return _Op.apply(F.avg_pool2d_forward, F.avg_pool2d_backward,
                     dict(kernel_size=kernel_size, stride=stride, padding=padding,
                          ceil_mode=ceil_mode, count_include_pad=count_include_pad),
                     ("input",), input)


def adaptive_avg_pool2d(input: torch.Tensor, output_size: Any) -> torch.Tensor:
    """``torch.nn.functional.adaptive_avg_pool2d`` computed by fastconv.

    Parameters
    ----------
    input : torch.Tensor
        (N, C, H, W).
    output_size : int or (int, int)
        1 is global average pooling.

    Returns
    -------
    torch.Tensor
        (N, C, OH, OW).

    Raises
    ------
    TypeError, ValueError
        Arguments fastconv's adaptive pooling refuses, naming them.

    Examples
    --------
    >>> import torch
    >>> adaptive_avg_pool2d(torch.arange(8.0).reshape(1, 2, 2, 2), 1).flatten()
    tensor([1.5000, 5.5000])
    """
    return _Op.apply(F.adaptive_avg_pool2d_forward, F.adaptive_avg_pool2d_backward,
                     dict(output_size=output_size), ("input",), input)


class Conv2d(torch.nn.Conv2d):
    """``torch.nn.Conv2d`` (same constructor, parameters and state dict) computed by fastconv.

    Parameters
    ----------
    *args, **kwargs
        ``torch.nn.Conv2d``'s, ``padding_mode`` included ('zeros', 'reflect',
        'replicate' or 'circular', as :func:`fastconv.conv2d_forward` pads).

    Examples
    --------
    >>> import torch
    >>> layer = Conv2d(3, 8, 3, padding=1)
    >>> tuple(layer(torch.ones(2, 3, 5, 5)).shape)
    (2, 8, 5, 5)
    >>> layer = Conv2d(1, 1, 3, padding=1, padding_mode="circular", bias=False)
    >>> with torch.no_grad():
    ...     _ = layer.weight.fill_(1.0)
    >>> layer(torch.arange(4.0).reshape(1, 1, 1, 4)).flatten()
    tensor([12.,  9., 18., 15.], grad_fn=<ViewBackward0>)
    """

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        """The convolution of ``input`` by the layer's weight and bias.

        Parameters
        ----------
        input : torch.Tensor
            (N, in_channels, H, W).

        Returns
        -------
        torch.Tensor
            (N, out_channels, OH, OW).
        """
        # conv2d (torch.nn.functional's arguments) has no padding_mode; the layer does
        return _convolve(input, self.weight, self.bias, stride=self.stride, padding=self.padding,
                         dilation=self.dilation, groups=self.groups,
                         padding_mode=self.padding_mode)
