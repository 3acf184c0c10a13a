"""2-D transposed convolution, forward and backward, built on the convolution's own passes.

The transposed convolution of x (N, C, H, W) by w (C, F/groups, KH, KW) is the adjoint of the
convolution by w (read as a convolution's (C, F/groups, KH, KW) weights) of an input
(N, F, H_out, W_out), with the same stride, padding, dilation and groups. So its forward is that
convolution's backward-data pass: a GEMM W^T @ x, then col2im (the CPU's slab or stride-phase
plane adds, the GPU's deterministic gather kernel). Its backward is a convolution forward: the
columns of dout (im2col), one GEMM with them for dx and another with x for dw; db sums dout.
Both run over batch chunks under the workspace limit, as the convolution does.

The output size is PyTorch's, H_out = (H - 1)*stride - 2*padding + dilation*(KH - 1) +
output_padding + 1. The last windows reach padded row (H - 1)*stride + dilation*(KH - 1), so
the ``output_padding - padding`` rows below it (when positive) receive nothing but the bias: the
geometry covers the output without them (bottom padding ``padding - output_padding``, when
positive), and they stay zero. When no output row is left for the windows (a kernel shorter
than the padding of a 1-row input), the output is the bias alone.
"""

from __future__ import annotations

from typing import Any, ClassVar

from .. import _backends, _validate
from .._typing import Array, IntPair
from ..backend import accumulator_dtype, get_array_module
from ..shapes import WindowGeometry
from ..workspace import run_in_chunks
from .padding import check_padding_mode
from ._conv_args import check_conv_transpose_args


@_validate.op_cache
class ConvTransposeCache:
    """What :func:`conv_transpose2d_backward` needs from :func:`conv_transpose2d_forward`.

    Attributes
    ----------
    x, w : array
        The input and the weights themselves, not copies (change neither in
        place before the backward).
    has_bias : bool
        Whether the forward had a bias.
    geometry : WindowGeometry or None
        The windows of the convolution it transposes; None when no window
        reaches the output.
    groups : int
        The channel groups.
    out_shape : tuple of int
        The output's shape.

    Examples
    --------
    >>> import numpy as np
    >>> conv_transpose2d_forward(np.ones((1, 2, 3, 3)), np.ones((2, 1, 2, 2)))[1].out_shape
    (1, 1, 4, 4)
    """

    op: ClassVar[str] = "conv_transpose2d_forward"
    x: Array
    w: Array
    has_bias: bool
    geometry: WindowGeometry | None
    groups: int
    out_shape: tuple[int, ...]


def _non_negative_pair(value: Any, name: str) -> tuple[int, int]:
    result = _validate.pair(value, name)
    if min(result) < 0:
        raise ValueError(f"{name} must be >= 0, got {value!r}")
    return result


def check_transposed_window(kernel_size: IntPair, stride: IntPair, padding: IntPair,
                            output_padding: IntPair, dilation: IntPair
                            ) -> tuple[tuple[int, int], ...]:
    """The window arguments of a transposed convolution as (h, w) pairs, checked.

    Parameters
    ----------
    kernel_size, stride, dilation : int or (int, int)
        Each at least 1.
    padding, output_padding : int or (int, int)
        At least 0; each output_padding smaller than the stride or the dilation of its axis.

    Returns
    -------
    kernel, stride, padding, output_padding, dilation : (int, int)

    Raises
    ------
    TypeError, ValueError
        Naming the argument.

    Examples
    --------
    >>> check_transposed_window(3, 2, 1, (1, 0), 1)
    ((3, 3), (2, 2), (1, 1), (1, 0), (1, 1))
    """
    kernel = _validate.positive_pair(kernel_size, "kernel_size")
    steps = _validate.positive_pair(stride, "stride")
    spacing = _validate.positive_pair(dilation, "dilation")
    pads = _non_negative_pair(padding, "padding")
    extra = _non_negative_pair(output_padding, "output_padding")
    if any(e >= s and e >= d for e, s, d in zip(extra, steps, spacing)):
        raise ValueError(f"output_padding must be smaller than either stride or dilation (per "
                         f"axis), got output_padding={output_padding!r}, stride={steps}, "
                         f"dilation={spacing}")
    return kernel, steps, pads, extra, spacing


def transposed_geometry(x_shape: tuple[int, ...], kernel_size: IntPair, stride: IntPair = 1,
                        padding: IntPair = 0, output_padding: IntPair = 0, dilation: IntPair = 1
                        ) -> tuple[tuple[int, ...], WindowGeometry | None]:
    """The output size of a transposed convolution and the geometry of its convolution.

    Parameters
    ----------
    x_shape : tuple of int
        (N, C, H, W).
    kernel_size, stride, padding, output_padding, dilation
        As :func:`check_transposed_window` takes them.

    Returns
    -------
    out_size : (int, int)
        (H_out, W_out).
    geometry : WindowGeometry or None
        The windows of the convolution whose input is the output less the rows and columns
        past the last window, and whose output is (H, W); None when nothing is left.

    Raises
    ------
    TypeError, ValueError
        Naming the argument; or the sizes, when the output would be empty.

    Examples
    --------
    >>> out_size, geometry = transposed_geometry((1, 4, 5, 5), 3, stride=2, padding=1)
    >>> out_size, geometry.size
    ((9, 9), (9, 9))
    """
    kernel, steps, pads, extra, spacing = check_transposed_window(
        kernel_size, stride, padding, output_padding, dilation)
    size = tuple(x_shape[2:])
    if min(size) < 1:
        raise ValueError(f"the input's height and width must be >= 1, got x shape "
                         f"{tuple(x_shape)}")
    out = tuple((n - 1) * s - 2 * p + d * (k - 1) + e + 1
                for n, k, s, p, d, e in zip(size, kernel, steps, pads, spacing, extra))
    if min(out) < 1:
        raise ValueError(
            f"the output would be {out[0]}x{out[1]}: (H - 1)*stride - 2*padding + "
            f"dilation*(kernel - 1) + output_padding + 1 is below 1 (x shape {tuple(x_shape)}, "
            f"kernel {kernel}, stride {steps}, padding {pads}, output_padding {extra}, "
            f"dilation {spacing})")
    reached = tuple(o - max(0, e - p) for o, e, p in zip(out, extra, pads))
    if min(reached) < 1:
        return out, None
    return out, WindowGeometry(reached, kernel, steps,
                               tuple((p, max(0, p - e)) for p, e in zip(pads, extra)), spacing)


def conv_transpose2d_forward(x: Array, w: Array, b: Array | None = None, stride: IntPair = 1,
                             padding: IntPair = 0, output_padding: IntPair = 0, groups: int = 1,
                             dilation: IntPair = 1, padding_mode: str = "zeros"
                             ) -> tuple[Array, ConvTransposeCache]:
    """2-D transposed convolution of ``x`` by ``w``; returns ``(out, cache)``.

    As ``torch.nn.functional.conv_transpose2d``, on NumPy or CuPy arrays.

    Parameters
    ----------
    x : ndarray
        Input (N, C, H, W), float16/32/64.
    w : ndarray
        Weights (C, F/groups, KH, KW), x's dtype and device.
    b : ndarray, optional
        Bias (F,).
    stride, dilation : int or (int, int)
        Default 1.
    padding : int or (int, int)
        Rows and columns cropped from each side of the full output. Default 0.
    output_padding : int or (int, int)
        Rows and columns added at the bottom and the right, each smaller than the stride or
        the dilation of its axis (PyTorch's rule). Default 0.
    groups : int
        Divides C and F. Default 1.
    padding_mode : {'zeros'}
        The only mode, as PyTorch's ConvTranspose2d.

    Returns
    -------
    out : ndarray
        (N, F, H_out, W_out), C-contiguous, in x's dtype; H_out = (H - 1)*stride - 2*padding
        + dilation*(KH - 1) + output_padding + 1.
    cache : ConvTransposeCache
        For :func:`conv_transpose2d_backward`.

    Raises
    ------
    TypeError, ValueError
        Naming the argument and the shapes.

    Examples
    --------
    >>> import numpy as np
    >>> x, w = np.ones((2, 4, 5, 5)), np.ones((4, 3, 3, 3))
    >>> out, cache = conv_transpose2d_forward(x, w, stride=2, padding=1, output_padding=1)
    >>> out.shape, float(out[0, 0, 1, 1])
    ((2, 3, 10, 10), 16.0)
    """
    xp = get_array_module(x, w, b)
    check_conv_transpose_args(x, w, b, groups)
    if check_padding_mode(padding_mode) != "zeros":
        raise ValueError(f"conv_transpose2d pads with zeros only, as PyTorch's "
                         f"ConvTranspose2d: padding_mode must be 'zeros', got {padding_mode!r}")
    out_size, geometry = transposed_geometry(x.shape, w.shape[2:], stride, padding,
                                             output_padding, dilation)
    reached = None if geometry is None else geometry.size
    # the rows and columns no window reaches hold only the bias: they start at zero
    out = (xp.empty if reached == out_size else xp.zeros)(
        (x.shape[0], w.shape[1] * groups) + out_size, dtype=x.dtype)
    if geometry is not None:
        backend = _backends.backend_for(x, w, b).conv_transpose
        run_in_chunks(backend.forward(x, w, geometry, groups, out), xp, x.shape[0])
    if b is not None:
        out += b.reshape(1, -1, 1, 1)
    return out, ConvTransposeCache(x, w, b is not None, geometry, groups, out.shape)


def conv_transpose2d_backward(dout: Array, cache: ConvTransposeCache
                              ) -> tuple[Array, Array, Array | None]:
    """Gradients of :func:`conv_transpose2d_forward`; returns ``(dx, dw, db)``.

    Parameters
    ----------
    dout : ndarray
        The gradient of the output, shaped and typed like it.
    cache : ConvTransposeCache
        From :func:`conv_transpose2d_forward`.

    Returns
    -------
    dx, dw, db : ndarray
        Each in the dtype and shape of its forward input; db, the sum of dout (float16's in
        float32), is None without a bias.

    Raises
    ------
    TypeError, ValueError
        A cache from another op, or dout unlike the output.

    Examples
    --------
    >>> import numpy as np
    >>> out, cache = conv_transpose2d_forward(np.ones((1, 2, 3, 3)), np.ones((2, 1, 2, 2)))
    >>> [g.shape for g in conv_transpose2d_backward(np.ones_like(out), cache)[:2]]
    [(1, 2, 3, 3), (2, 1, 2, 2)]
    """
    _validate.check_cache(cache, ConvTransposeCache, "conv_transpose2d_forward")
    _validate.check_dout(dout, cache.out_shape, cache.x.dtype)
    xp = get_array_module(dout, cache.x)
    if cache.geometry is None:
        dx, dw = xp.zeros_like(cache.x), xp.zeros_like(cache.w)
    else:
        algorithm = _backends.backend_for(dout, cache.x).conv_transpose.backward(dout, cache)
        dx, dw = run_in_chunks(algorithm, xp, cache.x.shape[0])
    db = None
    if cache.has_bias:
        db = dout.sum(axis=(0, 2, 3), dtype=accumulator_dtype(dout.dtype)).astype(dout.dtype)
    return dx, dw, db
