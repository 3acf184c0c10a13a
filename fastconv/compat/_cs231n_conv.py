"""The convolution and max pooling of CS231n's ``layers`` and ``fast_layers``, on fastconv's ops.

Public through :mod:`fastconv.compat.cs231n`, whose conventions they follow.
"""

from __future__ import annotations

from typing import Any

from .. import functional as F
from .._typing import Array
from ..backend import promoted
from ._course_params import get
from ._lenient import lenient, lenient_backward


def conv_forward_naive(x: Array, w: Array, b: Array, conv_param: dict[str, Any]
                       ) -> tuple[Array, Any]:
    """Convolution of x with w and b, the course's ``conv_param``.

    Parameters
    ----------
    x : array
        (N, C, H, W).
    w : array
        (F, C, HH, WW).
    b : array
        (F,).
    conv_param : dict
        ``{'stride': s, 'pad': p}``.

    Returns
    -------
    out : array
        (N, F, H', W').
    cache : object
        For :func:`conv_backward_naive`.

    Raises
    ------
    TypeError, ValueError
        A ``conv_param`` that is not a dict or lacks a key; arguments the op refuses.

    Examples
    --------
    >>> import numpy as np
    >>> out, cache = conv_forward_naive(np.ones((2, 3, 5, 5)), np.ones((4, 3, 3, 3)),
    ...                                 np.zeros(4), {"stride": 1, "pad": 1})
    >>> out.shape, float(out[0, 0, 2, 2])
    ((2, 4, 5, 5), 27.0)
    """
    stride, pad = get(conv_param, "conv_param", ["stride", "pad"])
    x, w, b = promoted(x, w, b, names=("x", "w", "b"))
    return lenient(*F.conv2d_forward(x, w, b, stride=stride, padding=pad))


def conv_backward_naive(dout: Array, cache: Any) -> tuple[Array, Array, Array]:
    """Gradients of :func:`conv_forward_naive`.

    Parameters
    ----------
    dout : array
        (N, F, H', W'): the gradient of the output.
    cache : object
        From :func:`conv_forward_naive`.

    Returns
    -------
    dx, dw, db : array
        In the shapes of x, w and b.

    Raises
    ------
    TypeError, ValueError
        A cache from another op; dout unlike the forward's output.

    Examples
    --------
    >>> import numpy as np
    >>> out, cache = conv_forward_naive(np.ones((2, 3, 5, 5)), np.ones((4, 3, 3, 3)),
    ...                                 np.zeros(4), {"stride": 2, "pad": 1})
    >>> [g.shape for g in conv_backward_naive(np.ones_like(out), cache)]
    [(2, 3, 5, 5), (4, 3, 3, 3), (4,)]
    """
    return lenient_backward(F.conv2d_backward, dout, cache)


def max_pool_forward_naive(x: Array, pool_param: dict[str, Any]) -> tuple[Array, Any]:
    """Max pooling of x with the course's ``pool_param``.

    Parameters
    ----------
    x : array
        (N, C, H, W).
    pool_param : dict
        ``{'pool_height': ph, 'pool_width': pw, 'stride': s}``.

    Returns
    -------
    out : array
        (N, C, H', W').
    cache : object
        For :func:`max_pool_backward_naive`.

    Raises
    ------
    TypeError, ValueError
        A ``pool_param`` that is not a dict or lacks a key; arguments the op refuses.

    Examples
    --------
    >>> import numpy as np
    >>> param = {"pool_height": 2, "pool_width": 2, "stride": 2}
    >>> max_pool_forward_naive(np.arange(16.0).reshape(1, 1, 4, 4), param)[0]
    array([[[[ 5.,  7.],
             [13., 15.]]]])
    """
    ph, pw, stride = get(pool_param, "pool_param", ["pool_height", "pool_width", "stride"])
    return lenient(*F.max_pool2d_forward(x, (ph, pw), stride=stride))


def max_pool_backward_naive(dout: Array, cache: Any) -> Array:
    """Gradient of :func:`max_pool_forward_naive`: a window's gradient goes to its first maximum.

    Parameters
    ----------
    dout : array
        (N, C, H', W'): the gradient of the output.
    cache : object
        From :func:`max_pool_forward_naive`.

    Returns
    -------
    array
        dx (N, C, H, W).

    Raises
    ------
    TypeError, ValueError
        A cache from another op; dout unlike the forward's output.

    Examples
    --------
    >>> import numpy as np
    >>> param = {"pool_height": 2, "pool_width": 2, "stride": 2}
    >>> out, cache = max_pool_forward_naive(np.array([[[[1.0, 3.0], [2.0, 0.0]]]]), param)
    >>> max_pool_backward_naive(np.ones_like(out), cache)
    array([[[[0., 1.],
             [0., 0.]]]])
    """
    return lenient_backward(F.max_pool2d_backward, dout, cache)


# The course's fast_layers.py: other algorithms of the same ops, one here.
conv_forward_fast = conv_forward_im2col = conv_forward_strides = conv_forward_naive
conv_backward_fast = conv_backward_im2col = conv_backward_strides = conv_backward_naive
max_pool_forward_fast = max_pool_forward_reshape = max_pool_forward_im2col = \
    max_pool_forward_naive
max_pool_backward_fast = max_pool_backward_reshape = max_pool_backward_im2col = \
    max_pool_backward_naive
