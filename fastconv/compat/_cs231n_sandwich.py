"""The sandwich layers of CS231n's ``layer_utils``: chains of the course's layers.

Public through :mod:`fastconv.compat.cs231n`. Each cache is the tuple of its
parts' caches, as in the course.
"""

from __future__ import annotations

from typing import Any

from .._typing import Array
from ._cs231n_conv import conv_backward_fast, conv_forward_fast, max_pool_backward_fast, \
    max_pool_forward_fast
from ._cs231n_layers import Grads3, affine_backward, affine_forward, relu_backward, relu_forward
from ._cs231n_norms import spatial_batchnorm_backward, spatial_batchnorm_forward

Param = dict[str, Any]  # a conv_param, pool_param or bn_param


def affine_relu_forward(x: Array, w: Array, b: Array) -> tuple[Array, Any]:
    """Affine then ReLU.

    Parameters
    ----------
    x, w, b : array
        As for :func:`~fastconv.compat.cs231n.affine_forward`.

    Returns
    -------
    out : array
        (N, M).
    cache : tuple
        ``(fc_cache, relu_cache)``.

    Examples
    --------
    >>> import numpy as np
    >>> affine_relu_forward(np.ones((2, 3)), -np.ones((3, 4)), np.zeros(4))[0]
    array([[0., 0., 0., 0.],
           [0., 0., 0., 0.]])
    """
    a, fc_cache = affine_forward(x, w, b)
    out, relu_cache = relu_forward(a)
    return out, (fc_cache, relu_cache)


def affine_relu_backward(dout: Array, cache: Any) -> Grads3:
    """Gradients of :func:`affine_relu_forward`.

    Parameters
    ----------
    dout : array
        (N, M).
    cache : tuple
        From :func:`affine_relu_forward`.

    Returns
    -------
    dx, dw, db : array

    Examples
    --------
    >>> import numpy as np
    >>> out, cache = affine_relu_forward(np.ones((2, 3)), np.ones((3, 4)), np.zeros(4))
    >>> affine_relu_backward(np.ones_like(out), cache)[2]
    array([2., 2., 2., 2.])
    """
    fc_cache, relu_cache = cache
    return affine_backward(relu_backward(dout, relu_cache), fc_cache)


def conv_relu_forward(x: Array, w: Array, b: Array, conv_param: Param) -> tuple[Array, Any]:
    """Convolution then ReLU.

    Parameters
    ----------
    x, w, b, conv_param
        As for :func:`~fastconv.compat.cs231n.conv_forward_fast`.

    Returns
    -------
    out : array
        (N, F, H', W').
    cache : tuple
        ``(conv_cache, relu_cache)``.

    Examples
    --------
    >>> import numpy as np
    >>> out, cache = conv_relu_forward(np.ones((1, 2, 4, 4)), np.ones((3, 2, 3, 3)), np.zeros(3),
    ...                                {"stride": 1, "pad": 0})
    >>> out.shape
    (1, 3, 2, 2)
    """
    a, conv_cache = conv_forward_fast(x, w, b, conv_param)
    out, relu_cache = relu_forward(a)
    return out, (conv_cache, relu_cache)


def conv_relu_backward(dout: Array, cache: Any) -> Grads3:
    """Gradients of :func:`conv_relu_forward`.

    Parameters
    ----------
    dout : array
        (N, F, H', W').
    cache : tuple
        From :func:`conv_relu_forward`.

    Returns
    -------
    dx, dw, db : array

    Examples
    --------
    >>> import numpy as np
    >>> out, cache = conv_relu_forward(np.ones((1, 2, 4, 4)), np.ones((3, 2, 3, 3)), np.zeros(3),
    ...                                {"stride": 1, "pad": 0})
    >>> [g.shape for g in conv_relu_backward(np.ones_like(out), cache)]
    [(1, 2, 4, 4), (3, 2, 3, 3), (3,)]
    """
    conv_cache, relu_cache = cache
    return conv_backward_fast(relu_backward(dout, relu_cache), conv_cache)


def conv_bn_relu_forward(x: Array, w: Array, b: Array, gamma: Array, beta: Array,
                         conv_param: Param, bn_param: Param) -> tuple[Array, Any]:
    """Convolution, spatial batchnorm, ReLU.

    Parameters
    ----------
    x, w, b, conv_param
        As for :func:`~fastconv.compat.cs231n.conv_forward_fast`.
    gamma, beta, bn_param
        As for :func:`~fastconv.compat.cs231n.spatial_batchnorm_forward`.

    Returns
    -------
    out : array
        (N, F, H', W').
    cache : tuple
        ``(conv_cache, bn_cache, relu_cache)``.

    Examples
    --------
    >>> import numpy as np
    >>> out, cache = conv_bn_relu_forward(np.ones((2, 2, 4, 4)), np.ones((3, 2, 3, 3)),
    ...                                   np.zeros(3), np.ones(3), np.zeros(3),
    ...                                   {"stride": 1, "pad": 1}, {"mode": "train"})
    >>> out.shape
    (2, 3, 4, 4)
    """
    a, conv_cache = conv_forward_fast(x, w, b, conv_param)
    an, bn_cache = spatial_batchnorm_forward(a, gamma, beta, bn_param)
    out, relu_cache = relu_forward(an)
    return out, (conv_cache, bn_cache, relu_cache)


def conv_bn_relu_backward(dout: Array, cache: Any
                          ) -> tuple[Array, Array, Array, Array, Array]:
    """Gradients of :func:`conv_bn_relu_forward`.

    Parameters
    ----------
    dout : array
        (N, F, H', W').
    cache : tuple
        From :func:`conv_bn_relu_forward`.

    Returns
    -------
    dx, dw, db, dgamma, dbeta : array

    Examples
    --------
    >>> import numpy as np
    >>> out, cache = conv_bn_relu_forward(np.ones((2, 2, 4, 4)), np.ones((3, 2, 3, 3)),
    ...                                   np.zeros(3), np.ones(3), np.zeros(3),
    ...                                   {"stride": 1, "pad": 1}, {"mode": "train"})
    >>> len(conv_bn_relu_backward(np.ones_like(out), cache))
    5
    """
    conv_cache, bn_cache, relu_cache = cache
    da, dgamma, dbeta = spatial_batchnorm_backward(relu_backward(dout, relu_cache), bn_cache)
    dx, dw, db = conv_backward_fast(da, conv_cache)
    return dx, dw, db, dgamma, dbeta


def conv_relu_pool_forward(x: Array, w: Array, b: Array, conv_param: Param,
                           pool_param: Param) -> tuple[Array, Any]:
    """Convolution, ReLU, max pooling.

    Parameters
    ----------
    x, w, b, conv_param
        As for :func:`~fastconv.compat.cs231n.conv_forward_fast`.
    pool_param : dict
        As for :func:`~fastconv.compat.cs231n.max_pool_forward_fast`.

    Returns
    -------
    out : array
        (N, F, H'', W'').
    cache : tuple
        ``(conv_cache, relu_cache, pool_cache)``.

    Examples
    --------
    >>> import numpy as np
    >>> out, cache = conv_relu_pool_forward(
    ...     np.ones((1, 2, 4, 4)), np.ones((3, 2, 3, 3)), np.zeros(3), {"stride": 1, "pad": 1},
    ...     {"pool_height": 2, "pool_width": 2, "stride": 2})
    >>> out.shape
    (1, 3, 2, 2)
    """
    a, conv_cache = conv_forward_fast(x, w, b, conv_param)
    s, relu_cache = relu_forward(a)
    out, pool_cache = max_pool_forward_fast(s, pool_param)
    return out, (conv_cache, relu_cache, pool_cache)


def conv_relu_pool_backward(dout: Array, cache: Any) -> Grads3:
    """Gradients of :func:`conv_relu_pool_forward`.

    Parameters
    ----------
    dout : array
        (N, F, H'', W'').
    cache : tuple
        From :func:`conv_relu_pool_forward`.

    Returns
    -------
    dx, dw, db : array

    Examples
    --------
    >>> import numpy as np
    >>> out, cache = conv_relu_pool_forward(
    ...     np.ones((1, 2, 4, 4)), np.ones((3, 2, 3, 3)), np.zeros(3), {"stride": 1, "pad": 1},
    ...     {"pool_height": 2, "pool_width": 2, "stride": 2})
    >>> conv_relu_pool_backward(np.ones_like(out), cache)[0].shape
    (1, 2, 4, 4)
    """
    conv_cache, relu_cache, pool_cache = cache
    ds = max_pool_backward_fast(dout, pool_cache)
    return conv_backward_fast(relu_backward(ds, relu_cache), conv_cache)
