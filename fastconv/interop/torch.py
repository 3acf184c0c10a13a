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

import contextlib

import numpy
import torch
from torch.autograd.function import once_differentiable

from .. import functional as F

__all__ = ["conv2d", "max_pool2d", "avg_pool2d", "adaptive_avg_pool2d", "Conv2d",
           "to_array", "to_tensor"]

_FLOAT_TENSORS = (torch.float16, torch.float32, torch.float64)


def to_array(tensor, name="tensor"):
    """The NumPy (CPU) or CuPy (CUDA) array that shares ``tensor``'s memory.

    Parameters
    ----------
    tensor : torch.Tensor
        float16/32/64 on the CPU or a CUDA device; it is detached (autograd
        does not see the array) and made contiguous first if it is not.
    name : str
        The tensor's name in error messages.

    Returns
    -------
    numpy.ndarray or cupy.ndarray
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


def to_tensor(array):
    """The tensor that shares the memory of a NumPy or CuPy ``array`` (None stays None)."""
    return None if array is None else torch.from_dlpack(array)


def _device(tensor):
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


def conv2d(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
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
    """
    return _Op.apply(F.conv2d_forward, F.conv2d_backward,
                     dict(stride=stride, padding=padding, dilation=dilation, groups=groups),
                     ("input", "weight", "bias"), input, weight, bias)


def max_pool2d(input, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False):
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
    """
    return _Op.apply(F.max_pool2d_forward, F.max_pool2d_backward,
                     dict(kernel_size=kernel_size, stride=stride, padding=padding,
                          dilation=dilation, ceil_mode=ceil_mode), ("input",), input)


def avg_pool2d(input, kernel_size, stride=None, padding=0, ceil_mode=False,
               count_include_pad=True):
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
    """
    return _Op.apply(F.avg_pool2d_forward, F.avg_pool2d_backward,
                     dict(kernel_size=kernel_size, stride=stride, padding=padding,
                          ceil_mode=ceil_mode, count_include_pad=count_include_pad),
                     ("input",), input)


def adaptive_avg_pool2d(input, output_size):
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
    """
    return _Op.apply(F.adaptive_avg_pool2d_forward, F.adaptive_avg_pool2d_backward,
                     dict(output_size=output_size), ("input",), input)


class Conv2d(torch.nn.Conv2d):
    """``torch.nn.Conv2d`` (same constructor, parameters and state dict) computed by fastconv.

    Only ``padding_mode="zeros"``, the one fastconv's op has, is accepted.
    """

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if self.padding_mode != "zeros":
            raise ValueError(f"fastconv.interop.torch.Conv2d pads with zeros only, got "
                             f"padding_mode={self.padding_mode!r}")

    def forward(self, input):
        return conv2d(input, self.weight, self.bias, self.stride, self.padding, self.dilation,
                      self.groups)
