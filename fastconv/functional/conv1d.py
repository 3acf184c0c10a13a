"""1-D convolution, forward and backward: the 2-D convolution over an image of height 1.

x (N, C, L) and w (F, C/groups, K) are viewed as (N, C, 1, L) and (F, C/groups, 1, K) and run
through :func:`fastconv.functional.conv.conv2d_forward` (every path, device and padding mode of
it), with the stride, padding and dilation along the width only.
"""

from __future__ import annotations

from typing import ClassVar

from .. import _validate
from .._typing import Array
from ..shapes import conv_padding, window_geometry
from ._unit_height import UnitHeightCache, backward_1d, drop, lift, single
from ._conv_args import LAYOUTS_1D, check_conv_args
from .conv import conv2d_backward, conv2d_forward
from .padding import check_fill, check_padding_mode


@_validate.op_cache
class Conv1dCache(UnitHeightCache):
    """What :func:`conv1d_backward` needs: the 2-D convolution's cache of the lifted arrays.

    Examples
    --------
    >>> import numpy as np
    >>> conv1d_forward(np.ones((2, 3, 8)), np.ones((4, 3, 3)))[1].out_shape
    (2, 4, 6)
    """

    op: ClassVar[str] = "conv1d_forward"


def conv1d_forward(x: Array, w: Array, b: Array | None = None, stride: int | tuple[int] = 1,
                   padding: int | tuple[int] | str = 0, dilation: int | tuple[int] = 1,
                   groups: int = 1, padding_mode: str = "zeros") -> tuple[Array, Conv1dCache]:
    """1-D convolution (cross-correlation, as PyTorch's) of ``x`` with ``w``; ``(out, cache)``.

    As ``torch.nn.functional.conv1d`` (and ``torch.nn.Conv1d``'s ``padding_mode``).

    Parameters
    ----------
    x : ndarray
        Input (N, C, L), float16/32/64, NumPy or CuPy.
    w : ndarray
        Weights (F, C/groups, K), x's dtype and device.
    b : ndarray, optional
        Bias (F,).
    stride, dilation : int or (int,)
        Default 1.
    padding : int, (int,), 'valid' or 'same'
        Both ends; 'same' needs stride 1 and puts the odd pad on the right, as PyTorch.
        Default 0.
    groups : int
        Default 1.
    padding_mode : {'zeros', 'reflect', 'replicate', 'circular'}
        As :func:`fastconv.functional.conv.conv2d_forward`'s. Default 'zeros'.

    Returns
    -------
    out : ndarray
        (N, F, OL), C-contiguous, in x's dtype.
    cache : Conv1dCache
        For :func:`conv1d_backward`; it holds ``x`` and ``w`` themselves.

    Raises
    ------
    TypeError, ValueError
        Naming the argument and the (1-D) shapes.

    Examples
    --------
    >>> import numpy as np
    >>> out, cache = conv1d_forward(np.ones((2, 3, 8)), np.ones((4, 3, 3)), padding="same")
    >>> out.shape, float(out[0, 0, 0]), float(out[0, 0, 4])
    ((2, 4, 8), 6.0, 9.0)
    """
    check_conv_args(x, w, b, groups, LAYOUTS_1D)
    step = single(stride, "stride", 1)
    spacing = single(dilation, "dilation", 1)
    if not isinstance(padding, str):
        padding = single(padding, "padding", 0)
    elif padding == "same" and step != 1:
        raise ValueError(f"padding='same' needs stride 1, got stride={step}")
    # resolved over the 1-D axis, so that a bad string's error lists the 1-D forms; stride 1,
    # as 'same' was checked above against the stride as given
    pads = conv_padding(padding, w.shape[2:], 1, spacing)
    if check_padding_mode(padding_mode) != "zeros":  # the limits, named with x's 1-D shape
        check_fill(x.shape, pads, padding_mode)
    window_geometry(x.shape, w.shape[2:], step, pads, spacing)  # a kernel too long names L
    out, cache = conv2d_forward(lift(x), lift(w), b, (1, step),
                                ((0, 0),) + pads, (1, spacing), groups, padding_mode)
    out = drop(out)
    return out, Conv1dCache(cache, out.shape, out.dtype)


def conv1d_backward(dout: Array, cache: Conv1dCache, needs_input_grad: bool = True
                    ) -> tuple[Array | None, Array, Array | None]:
    """Gradients of :func:`conv1d_forward`; returns ``(dx, dw, db)``.

    Parameters
    ----------
    dout : ndarray
        The gradient of the output, shaped and typed like it.
    cache : Conv1dCache
        From :func:`conv1d_forward`.
    needs_input_grad : bool
        False skips dx (it is then None). Default True.

    Returns
    -------
    dx, dw, db : ndarray
        Each in the dtype and shape of its forward input; db is None without a bias.

    Raises
    ------
    TypeError, ValueError
        A cache from another op; dout unlike the forward's output.

    Examples
    --------
    >>> import numpy as np
    >>> out, cache = conv1d_forward(np.ones((2, 3, 8)), np.ones((4, 3, 3)), np.zeros(4))
    >>> [g.shape for g in conv1d_backward(np.ones_like(out), cache)]
    [(2, 3, 8), (4, 3, 3), (4,)]
    """
    return backward_1d(dout, cache, Conv1dCache, conv2d_backward, needs_input_grad)
