"""3-D convolution, forward and backward, on (N, C, D, H, W) arrays, by im2col and batched GEMMs.

As ``torch.nn.functional.conv3d``. The geometry is the one :class:`fastconv.shapes.WindowGeometry`
of every conv and pool, with three spatial axes, and the columns are laid out (N, C, KD, KH,
KW, OD, OH, OW). On the CPU the 2-D convolution's algorithms run it unchanged
(:mod:`fastconv._cpu.conv`: im2col + GEMM with the bias folded in, col2im from stride-phase
planes, chunked under the workspace limit); on the GPU the 2-D convolution's algorithms too
(:mod:`fastconv._gpu.conv`), with the columns and their sums on the vol2col and col2vol CUDA
kernels, the products in cuBLAS.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar, TypeAlias

from .. import _validate
from .._typing import Array
from ..shapes import conv_padding, window_geometry
from ._conv_args import LAYOUTS_3D, check_conv_args
from .conv import WindowConvCache, convolve, convolve_backward

IntOrTriple: TypeAlias = int | Sequence[int]  # one value for D, H and W, or one each


@_validate.op_cache
class Conv3dCache(WindowConvCache):
    """What :func:`conv3d_backward` needs from :func:`conv3d_forward`: x and w themselves (do
    not change them in place before the backward), the geometry, groups and output shape.

    Examples
    --------
    >>> import numpy as np
    >>> _, cache = conv3d_forward(np.ones((1, 2, 4, 4, 4)), np.ones((3, 2, 3, 3, 3)))
    >>> cache.op, cache.geometry.out
    ('conv3d_forward', (2, 2, 2))
    """

    op: ClassVar[str] = "conv3d_forward"


def conv3d_forward(x: Array, w: Array, b: Array | None = None, stride: IntOrTriple = 1,
                   padding: object = 0, dilation: IntOrTriple = 1,
                   groups: int = 1) -> tuple[Array, Conv3dCache]:
    """3-D convolution (cross-correlation, as PyTorch's) of ``x`` with ``w``; ``(out, cache)``.

    As ``torch.nn.functional.conv3d``, on NumPy or CuPy arrays.

    Parameters
    ----------
    x : ndarray
        Input (N, C, D, H, W), float16/32/64; D, H and W at least 1.
    w : ndarray
        Weights (F, C/groups, KD, KH, KW), x's dtype and device.
    b : ndarray, optional
        Bias (F,).
    stride, dilation : int or (int, int, int)
        Default 1.
    padding : int, (int, int, int), ((int, int), (int, int), (int, int)), 'valid' or 'same'
        Zeros on both sides of each axis, or (before, after) per axis. 'same' needs stride 1
        and puts the odd pad after, as PyTorch. Default 0.
    groups : int
        Splits the channels into groups convolved separately. Default 1.

    Returns
    -------
    out : ndarray
        (N, F, OD, OH, OW), C-contiguous, in x's dtype; the sizes by PyTorch's formula.
    cache : Conv3dCache
        For :func:`conv3d_backward`.

    Raises
    ------
    TypeError, ValueError
        Naming the argument and the shapes: x or w not 5-D or not float, mismatched dtypes,
        in-channels that do not match groups, a bias of the wrong shape, a malformed window
        argument, 'same' with a stride, a kernel larger than the padded input.

    Examples
    --------
    >>> import numpy as np
    >>> x, w = np.ones((2, 3, 4, 5, 5)), np.ones((4, 3, 3, 3, 3))
    >>> out, cache = conv3d_forward(x, w, padding=1)
    >>> out.shape, float(out[0, 0, 1, 2, 2]), float(out[0, 0, 0, 0, 0])
    ((2, 4, 4, 5, 5), 81.0, 24.0)
    """
    check_conv_args(x, w, b, groups, LAYOUTS_3D)
    padding = conv_padding(padding, w.shape[2:], stride, dilation)
    geometry = window_geometry(x.shape, w.shape[2:], stride, padding, dilation)
    out, columns = convolve("conv3d", x, w, b, geometry, groups)
    return out, Conv3dCache(x, w, b is not None, geometry, groups, out.shape, columns)


def conv3d_backward(dout: Array, cache: Conv3dCache, needs_input_grad: bool = True
                    ) -> tuple[Array | None, Array, Array | None]:
    """Gradients of :func:`conv3d_forward`; returns ``(dx, dw, db)``.

    Parameters
    ----------
    dout : ndarray
        The gradient of the output, shaped and typed like it.
    cache : Conv3dCache
        From :func:`conv3d_forward`.
    needs_input_grad : bool
        False skips dx (it is then None), as for a network's first layer. Default True.

    Returns
    -------
    dx, dw, db : ndarray
        Each in the dtype and shape of its forward input; db is None without a bias, dx
        without ``needs_input_grad``.

    Raises
    ------
    TypeError, ValueError
        A cache from another op, dout unlike the output, a non-bool ``needs_input_grad``.

    Examples
    --------
    >>> import numpy as np
    >>> out, cache = conv3d_forward(np.ones((1, 1, 3, 3, 3)), np.ones((1, 1, 2, 2, 2)), np.zeros(1))
    >>> dx, dw, db = conv3d_backward(np.ones_like(out), cache)
    >>> float(dx[0, 0, 1, 1, 1]), float(dw.sum()), db
    (8.0, 64.0, array([8.]))
    """
    _validate.check_cache(cache, Conv3dCache, "conv3d_forward")
    _validate.check_dout(dout, cache.out_shape, cache.x.dtype)
    return convolve_backward("conv3d", dout, cache, needs_input_grad)

