"""2-D convolution, forward and backward, by im2col and one batched GEMM; what every
convolution front shares (the cache's fields, the dispatch to a backend).

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

The cache holds x and w, as PyTorch's does, and the forward's columns where the
batch ran in one chunk and every buffer held this way stays within the workspace
limit (:meth:`fastconv.workspace.Workspace.keep`); otherwise the backward
recomputes them, so a network never holds more than the limit in columns
between its passes.

The 3-D convolution (:mod:`fastconv.functional.conv3d`) runs through :func:`convolve` and
:func:`convolve_backward` too, with its own cache class and backend role.
"""

from __future__ import annotations

from typing import Any, ClassVar

from .. import _backends, _validate
from .._typing import Array, IntPair
from ..backend import get_array_module
from ..shapes import WindowGeometry, conv_padding, window_geometry
from ..workspace import run_in_chunks
from .padding import check_padding_mode, fold, pad_input
from ._conv_args import check_conv_args


@_validate.op_cache
class WindowConvCache:
    """What a convolution's backward needs from its forward, in any number of spatial axes.

    It holds ``x`` and ``w`` themselves, not copies (as the CS231n code does):
    changing either in place between the forward and the backward changes dx
    and dw silently, where PyTorch raises. Each convolution subclasses it to name
    itself in ``op``, so a backward refuses another op's cache.

    Examples
    --------
    >>> import numpy as np
    >>> _, cache = conv2d_forward(np.ones((1, 2, 4, 4)), np.ones((3, 2, 3, 3)))
    >>> isinstance(cache, WindowConvCache), cache.geometry.out, cache.has_bias
    (True, (2, 2), False)
    """

    x: Array
    w: Array
    has_bias: bool
    geometry: WindowGeometry
    groups: int
    out_shape: tuple[int, ...]
    columns: Any = None  # the forward's columns (a workspace.Held) until a backward uses them


@_validate.op_cache
class ConvCache(WindowConvCache):
    """What :func:`conv2d_backward` needs from :func:`conv2d_forward`.

    With a ``padding_mode`` other than 'zeros', ``x`` is the filled copy of the
    input and ``fill`` its record ``(mode, pads)``, which the backward folds dx
    back through.

    Examples
    --------
    >>> import numpy as np
    >>> _, cache = conv2d_forward(np.ones((1, 1, 4, 4)), np.ones((1, 1, 3, 3)), padding=1,
    ...                           padding_mode="circular")
    >>> cache.op, cache.fill[0], cache.x.shape
    ('conv2d_forward', 'circular', (1, 1, 6, 6))
    """

    op: ClassVar[str] = "conv2d_forward"
    fill: tuple | None = None  # (padding_mode, pads) of a filled input; None for zero padding


def convolve(role: str, x: Array, w: Array, b: Array | None, geometry: WindowGeometry,
             groups: int) -> tuple[Array, Any]:
    """Run the forward algorithm of a backend role over batch chunks within the workspace limit.

    Parameters
    ----------
    role : {'conv', 'conv3d'}
        The backend module (:mod:`fastconv._cpu`, :mod:`fastconv._gpu`) of the arrays' device
        that runs it: the 2-D convolution's CUDA kernels on the GPU are 2-D.
    x, w, b : ndarray
        Checked operands (b may be None).
    geometry : WindowGeometry
    groups : int

    Returns
    -------
    out : ndarray
    columns : workspace.Held or None
        The columns the forward could hold for its backward.

    Examples
    --------
    >>> import numpy as np
    >>> from fastconv.shapes import window_geometry
    >>> x, w = np.ones((1, 1, 2, 2, 2)), np.ones((1, 1, 2, 2, 2))
    >>> out, _ = convolve("conv3d", x, w, None, window_geometry(x.shape, 2, 1, 0, 1), 1)
    >>> out
    array([[[[[8.]]]]])
    """
    algorithm = getattr(_backends.backend_for(x, w, b), role).forward(x, w, b, geometry, groups)
    return run_in_chunks(algorithm, get_array_module(x, w, b), x.shape[0])


def convolve_backward(role: str, dout: Array, cache: WindowConvCache,
                      needs_input_grad: bool) -> tuple[Array | None, Array, Array | None]:
    """Run the backward algorithm of a backend role for ``cache`` over batch chunks.

    Parameters
    ----------
    role : {'conv', 'conv3d'}
        As for :func:`convolve`.
    dout : ndarray
        The output's gradient, checked against ``cache`` by the caller.
    cache : WindowConvCache
    needs_input_grad : bool
        False skips dx.

    Returns
    -------
    dx, dw, db : ndarray
        dx None without ``needs_input_grad``, db None without a bias.

    Raises
    ------
    TypeError
        A non-bool ``needs_input_grad``.

    Examples
    --------
    >>> import numpy as np
    >>> out, cache = conv2d_forward(np.ones((1, 1, 3, 3)), np.ones((1, 1, 3, 3)))
    >>> dx, dw, db = convolve_backward("conv", np.ones_like(out), cache, False)
    >>> dx, float(dw.sum()), db
    (None, 9.0, None)
    """
    needs_input_grad = _validate.check_bool("needs_input_grad", needs_input_grad)
    backend = getattr(_backends.backend_for(dout, cache.x), role)
    algorithm = backend.backward(dout, cache, needs_input_grad)
    return run_in_chunks(algorithm, get_array_module(dout, cache.x), cache.x.shape[0])


def conv2d_forward(x: Array, w: Array, b: Array | None = None, stride: IntPair = 1,
                   padding: object = 0, dilation: IntPair = 1, groups: int = 1,
                   padding_mode: str = "zeros") -> tuple[Array, ConvCache]:
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
    check_conv_args(x, w, b, groups)
    padding_mode = check_padding_mode(padding_mode)
    padding = conv_padding(padding, w.shape[2:], stride, dilation)
    geometry = window_geometry(x.shape, w.shape[2:], stride, padding, dilation)
    x, padding, fill = pad_input(x, padding, padding_mode)
    if fill is not None:  # the filled copy is convolved without padding
        geometry = window_geometry(x.shape, w.shape[2:], stride, padding, dilation)
    out, columns = convolve("conv", x, w, b, geometry, groups)
    return out, ConvCache(x, w, b is not None, geometry, groups, out.shape, columns, fill)


def conv2d_backward(dout: Array, cache: ConvCache, needs_input_grad: bool = True
                    ) -> tuple[Array | None, Array, Array | None]:
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

    Raises
    ------
    TypeError, ValueError
        A cache from another op, dout unlike the output, a non-bool ``needs_input_grad``.

    Examples
    --------
    >>> import numpy as np
    >>> out, cache = conv2d_forward(np.ones((1, 1, 3, 3)), np.ones((2, 1, 2, 2)), np.zeros(2))
    >>> dx, dw, db = conv2d_backward(np.ones_like(out), cache)
    >>> dx[0, 0, 1], db
    (array([4., 8., 4.]), array([4., 4.]))
    """
    _validate.check_cache(cache, ConvCache, "conv2d_forward")
    _validate.check_dout(dout, cache.out_shape, cache.x.dtype)
    dx, dw, db = convolve_backward("conv", dout, cache, needs_input_grad)
    if cache.fill is not None and dx is not None:  # dx of the filled copy, folded onto the input
        dx = fold(dx, cache.fill[1], cache.fill[0])
    return dx, dw, db
