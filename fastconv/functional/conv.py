"""2-D convolution, forward and backward, by im2col and one batched GEMM.

Each function validates its arguments, builds the window geometry, asks the
backend of the arrays' device for its algorithm and runs it over batch chunks
whose buffers fit the workspace limit (:mod:`fastconv.workspace`). The
arithmetic lives in :mod:`fastconv._cpu.conv` (NumPy: im2col + GEMM, the bias
folded into the GEMMs, col2im from stride-phase planes) and
:mod:`fastconv._gpu.conv` (CuPy: the im2col and col2im CUDA kernels, batched
cuBLAS GEMMs).

A ``padding_mode`` other than 'zeros' fills a padded copy of the input
(:mod:`fastconv.functional.padding`) that is convolved without padding; the
backward folds its gradient back onto dx.

The cache holds only x and w, as PyTorch's does: the backward pass recomputes
the columns, which costs less than keeping them in fresh memory and frees a
network from holding every layer's columns between its passes.
"""

from typing import ClassVar

from .. import _backends, _validate
from ..backend import get_array_module
from ..shapes import WindowGeometry, conv_padding, window_geometry
from ..workspace import run_in_chunks
from .padding import check_padding_mode, fold, pad_input
from ._conv_args import check_conv_args


@_validate.op_cache
class ConvCache:
    """What :func:`conv2d_backward` needs from :func:`conv2d_forward`.

    It holds ``x`` and ``w`` themselves, not copies (as the CS231n code does):
    changing either in place between the forward and the backward changes dx
    and dw silently, where PyTorch raises. With a ``padding_mode`` other than
    'zeros', ``x`` is the filled copy of the input and ``fill`` its record
    ``(mode, pads)``, which the backward folds dx back through.
    """

    op: ClassVar[str] = "conv2d_forward"
    x: object
    w: object
    has_bias: bool
    geometry: WindowGeometry
    groups: int
    out_shape: tuple
    columns: object = None  # the forward's columns (a workspace.Held) until a backward uses them
    fill: tuple = None  # (padding_mode, pads) of a filled input; None for zero padding


def conv2d_forward(x, w, b=None, stride=1, padding=0, dilation=1, groups=1, padding_mode="zeros"):
    """2-D convolution of ``x`` with ``w`` (cross-correlation, as PyTorch's); returns ``(out, cache)``.

    As ``torch.nn.functional.conv2d``, on NumPy or CuPy arrays.

    Parameters
    ----------
    x : ndarray
        Input (N, C, H, W), float16/32/64.
    w : ndarray
        Weights (F, C/groups, KH, KW), x's dtype and device.
    b : ndarray, optional
        Bias (F,).
    stride, dilation : int or (int, int)
        Default 1.
    padding : int, (int, int), ((int, int), (int, int)), 'valid' or 'same'
        'same' needs stride 1 and puts the odd pad on the bottom/right, as
        PyTorch. Default 0.
    groups : int
        Splits the channels into groups convolved separately; groups == C is a
        depthwise convolution. Default 1.
    padding_mode : {'zeros', 'reflect', 'replicate', 'circular'}
        What the padding holds, as ``torch.nn.Conv2d``'s option: zeros, or
        the input reflected, its edge repeated or wrapped around
        (:mod:`fastconv.functional.padding`; 'reflect' needs each pad smaller
        than the input, 'circular' at most its size). Default 'zeros'.

    Returns
    -------
    out : ndarray
        (N, F, OH, OW), C-contiguous, in x's dtype; OH and OW by PyTorch's formula.
    cache : ConvCache
        For :func:`conv2d_backward`. It holds ``x`` and ``w`` themselves: do not
        change them in place before the backward.

    Raises
    ------
    TypeError, ValueError
        Naming the argument and the shapes.

    Examples
    --------
    >>> import numpy as np
    >>> x, w = np.ones((2, 3, 5, 5)), np.ones((4, 3, 3, 3))
    >>> out, cache = conv2d_forward(x, w, padding=1)
    >>> out.shape, float(out[0, 0, 2, 2])
    ((2, 4, 5, 5), 27.0)
    """
    xp = get_array_module(x, w, b)
    check_conv_args(x, w, b, groups)
    padding_mode = check_padding_mode(padding_mode)
    padding = conv_padding(padding, w.shape[2:], stride, dilation)
    geometry = window_geometry(x.shape, w.shape[2:], stride, padding, dilation)
    x, padding, fill = pad_input(x, padding, padding_mode)
    if fill is not None:  # the filled copy is convolved without padding
        geometry = window_geometry(x.shape, w.shape[2:], stride, padding, dilation)
    algorithm = _backends.backend_for(x, w, b).conv.forward(x, w, b, geometry, groups)
    out, columns = run_in_chunks(algorithm, xp, x.shape[0])
    return out, ConvCache(x, w, b is not None, geometry, groups, out.shape, columns, fill)


def conv2d_backward(dout, cache, needs_input_grad=True):
    """Gradients of :func:`conv2d_forward`; returns ``(dx, dw, db)``.

    Parameters
    ----------
    dout : ndarray
        The gradient of the output, shaped and typed like it.
    cache : ConvCache
        From :func:`conv2d_forward`.
    needs_input_grad : bool
        False skips dx (it is then None), as for a network's first layer, whose
        input is data: the column-gradient GEMM and col2im are saved.

    Returns
    -------
    dx, dw, db : ndarray
        Each in the dtype and shape of its forward input; db is None without a
        bias, dx without ``needs_input_grad``.
    """
    _validate.check_cache(cache, ConvCache, "conv2d_forward")
    _validate.check_dout(dout, cache.out_shape, cache.x.dtype)
    needs_input_grad = _validate.check_bool("needs_input_grad", needs_input_grad)
    xp = get_array_module(dout, cache.x)
    algorithm = _backends.backend_for(dout, cache.x).conv.backward(dout, cache, needs_input_grad)
    dx, dw, db = run_in_chunks(algorithm, xp, cache.x.shape[0])
    if cache.fill is not None and dx is not None:  # dx of the filled copy, folded onto the input
        dx = fold(dx, cache.fill[1], cache.fill[0])
    return dx, dw, db
