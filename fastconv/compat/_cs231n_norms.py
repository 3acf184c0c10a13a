"""The normalisation layers of CS231n's ``layers``: batch, spatial batch, layer and group norm.

Public through :mod:`fastconv.compat.cs231n`, whose conventions they follow
(the course's ``bn_param``, ``ln_param`` and ``gn_param``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .. import functional as F
from .._typing import Array
from .._validate import check_real
from ..backend import promoted
from ._batchnorm import course_batchnorm
from ._course_params import eps as _eps
from ._course_params import training as _mode
from ._cs231n_layers import Grads3
from ._lenient import lenient, lenient_backward


def _batchnorm(forward: Callable[..., Any], x: Array, gamma: Array, beta: Array,
               bn_param: dict[str, Any], axes: Any) -> tuple[Array, Any]:
    """fastconv's batchnorm with the course's bn_param semantics (see the module docstring)."""
    train = _mode(bn_param, "bn_param")
    # The functional op's limits (momentum in [0, 1] weighs the running statistic here and
    # the batch's there: the same range; eps above 0). The op never sees this momentum: the
    # course's running average is kept outside it.
    momentum = check_real("bn_param['momentum']", bn_param.get("momentum", 0.9), 0.0, 1.0)
    eps = check_real("bn_param['eps']", bn_param.get("eps", 1e-5), 0.0, low_open=True)
    out, cache, bn_param["running_mean"], bn_param["running_var"] = course_batchnorm(
        forward, x, gamma, beta, train, bn_param.get("running_mean"),
        bn_param.get("running_var"), momentum, eps, axes)
    return out, cache


def batchnorm_forward(x: Array, gamma: Array, beta: Array, bn_param: dict[str, Any]
                      ) -> tuple[Array, Any]:
    """Batchnorm of x (N, D) with the course's ``bn_param``, which it updates.

    Parameters
    ----------
    x : array
        (N, D).
    gamma, beta : array
        (D,).
    bn_param : dict
        ``{'mode': 'train'|'test', 'eps', 'momentum', 'running_mean', 'running_var'}``;
        the running statistics are set (updated in train mode) on every call.

    Returns
    -------
    out : array
        (N, D).
    cache : object
        For :func:`batchnorm_backward`.

    Raises
    ------
    TypeError, ValueError
        A ``bn_param`` that is not a dict or has no valid mode, a ``bn_param['momentum']``
        that is not a real number in [0, 1] or an ``eps`` that is not one above 0;
        arguments the op refuses.

    Examples
    --------
    >>> import numpy as np
    >>> bn_param = {"mode": "train"}
    >>> out, cache = batchnorm_forward(np.array([[1.0], [3.0]]), np.ones(1), np.zeros(1), bn_param)
    >>> out.round(3).ravel(), bn_param["running_mean"]
    (array([-1.,  1.]), array([0.2]))
    """
    return _batchnorm(F.batchnorm_forward, x, gamma, beta, bn_param, 0)


def batchnorm_backward(dout: Array, cache: Any) -> Grads3:
    """Gradients of :func:`batchnorm_forward` (``batchnorm_backward_alt`` is the same).

    Parameters
    ----------
    dout : array
        (N, D).
    cache : object
        From :func:`batchnorm_forward`.

    Returns
    -------
    dx, dgamma, dbeta : array

    Raises
    ------
    TypeError, ValueError
        A cache from another op; dout unlike the forward's output.

    Examples
    --------
    >>> import numpy as np
    >>> x = np.array([[1.0], [3.0]])
    >>> out, cache = batchnorm_forward(x, np.ones(1), np.zeros(1), {"mode": "train"})
    >>> batchnorm_backward(np.ones_like(x), cache)[2]
    array([2.])
    """
    return lenient_backward(F.batchnorm_backward, dout, cache)


batchnorm_backward_alt = batchnorm_backward


def spatial_batchnorm_forward(x: Array, gamma: Array, beta: Array, bn_param: dict[str, Any]
                              ) -> tuple[Array, Any]:
    """Batchnorm per channel of x (N, C, H, W) with the course's ``bn_param``.

    Parameters
    ----------
    x : array
        (N, C, H, W).
    gamma, beta : array
        (C,).
    bn_param : dict
        As for :func:`batchnorm_forward`.

    Returns
    -------
    out : array
        (N, C, H, W).
    cache : object
        For :func:`spatial_batchnorm_backward`.

    Raises
    ------
    TypeError, ValueError
        As for :func:`batchnorm_forward`.

    Examples
    --------
    >>> import numpy as np
    >>> out, cache = spatial_batchnorm_forward(np.ones((2, 3, 4, 4)), np.ones(3), np.zeros(3),
    ...                                        {"mode": "test"})
    >>> out.shape
    (2, 3, 4, 4)
    """
    return _batchnorm(F.spatial_batchnorm_forward, x, gamma, beta, bn_param, (0, 2, 3))


def spatial_batchnorm_backward(dout: Array, cache: Any) -> Grads3:
    """Gradients of :func:`spatial_batchnorm_forward`.

    Parameters
    ----------
    dout : array
        (N, C, H, W).
    cache : object
        From :func:`spatial_batchnorm_forward`.

    Returns
    -------
    dx, dgamma, dbeta : array

    Raises
    ------
    TypeError, ValueError
        A cache from another op; dout unlike the forward's output.

    Examples
    --------
    >>> import numpy as np
    >>> x = np.arange(8.0).reshape(2, 2, 2, 1)
    >>> out, cache = spatial_batchnorm_forward(x, np.ones(2), np.zeros(2), {"mode": "train"})
    >>> spatial_batchnorm_backward(np.ones_like(x), cache)[2]
    array([4., 4.])
    """
    return lenient_backward(F.spatial_batchnorm_backward, dout, cache)


def layernorm_forward(x: Array, gamma: Array, beta: Array, ln_param: dict[str, Any]
                      ) -> tuple[Array, Any]:
    """Layer norm of each row of x.

    Parameters
    ----------
    x : array
        (N, D).
    gamma, beta : array
        (D,).
    ln_param : dict
        ``{'eps': 1e-5}`` (the default).

    Returns
    -------
    out : array
        (N, D).
    cache : object
        For :func:`layernorm_backward`.

    Raises
    ------
    TypeError, ValueError
        An ``ln_param`` that is not a dict; arguments the op refuses.

    Examples
    --------
    >>> import numpy as np
    >>> layernorm_forward(np.array([[1.0, 3.0]]), np.ones(2), np.zeros(2), {})[0].round(3)
    array([[-1.,  1.]])
    """
    eps = _eps(ln_param, "ln_param")
    x, gamma, beta = promoted(x, gamma, beta, names=("x", "gamma", "beta"))
    # the course's gamma and beta have the shape of the normalised trailing dims
    return lenient(*F.layer_norm_forward(x, tuple(gamma.shape), gamma, beta, eps=eps))


def layernorm_backward(dout: Array, cache: Any) -> Grads3:
    """Gradients of :func:`layernorm_forward`.

    Parameters
    ----------
    dout : array
        (N, D).
    cache : object
        From :func:`layernorm_forward`.

    Returns
    -------
    dx, dgamma, dbeta : array

    Raises
    ------
    TypeError, ValueError
        A cache from another op; dout unlike the forward's output.

    Examples
    --------
    >>> import numpy as np
    >>> out, cache = layernorm_forward(np.array([[1.0, 3.0]]), np.ones(2), np.zeros(2), {})
    >>> layernorm_backward(np.ones((1, 2)), cache)[2]
    array([1., 1.])
    """
    return lenient_backward(F.layer_norm_backward, dout, cache)


def spatial_groupnorm_forward(x: Array, gamma: Array, beta: Array, G: int,
                              gn_param: dict[str, Any]) -> tuple[Array, Any]:
    """Group norm of x (N, C, H, W) in G channel groups.

    Parameters
    ----------
    x : array
        (N, C, H, W).
    gamma, beta : array
        The course's shape (1, C, 1, 1), or (C,).
    G : int
        The groups, dividing C.
    gn_param : dict
        ``{'eps': 1e-5}`` (the default).

    Returns
    -------
    out : array
        (N, C, H, W).
    cache : tuple
        For :func:`spatial_groupnorm_backward`.

    Raises
    ------
    TypeError, ValueError
        A ``gn_param`` that is not a dict; arguments the op refuses.

    Examples
    --------
    >>> import numpy as np
    >>> gamma, beta = np.ones((1, 4, 1, 1)), np.zeros((1, 4, 1, 1))
    >>> spatial_groupnorm_forward(np.ones((2, 4, 3, 3)), gamma, beta, 2, {})[0].shape
    (2, 4, 3, 3)
    """
    eps = _eps(gn_param, "gn_param")
    x, gamma, beta = promoted(x, gamma, beta, names=("x", "gamma", "beta"))
    shape = tuple(gamma.shape)
    # The course's parameters broadcast against x; fastconv's op takes one value per channel.
    gamma_c, beta_c = (p.reshape(-1) if p.ndim == 4 and p.size == p.shape[1] else p
                       for p in (gamma, beta))
    out, cache = lenient(*F.group_norm_forward(x, G, gamma_c, beta_c, eps=eps))
    return out, (cache, shape)


def spatial_groupnorm_backward(dout: Array, cache: Any) -> Grads3:
    """Gradients of :func:`spatial_groupnorm_forward`, dgamma and dbeta in gamma's shape.

    Parameters
    ----------
    dout : array
        (N, C, H, W).
    cache : tuple
        From :func:`spatial_groupnorm_forward`.

    Returns
    -------
    dx, dgamma, dbeta : array

    Raises
    ------
    TypeError, ValueError
        A cache from another op; dout unlike the forward's output.

    Examples
    --------
    >>> import numpy as np
    >>> gamma, beta = np.ones((1, 4, 1, 1)), np.zeros((1, 4, 1, 1))
    >>> out, cache = spatial_groupnorm_forward(np.ones((2, 4, 3, 3)), gamma, beta, 2, {})
    >>> spatial_groupnorm_backward(np.ones_like(out), cache)[1].shape
    (1, 4, 1, 1)
    """
    inner, shape = cache
    dx, dgamma, dbeta = lenient_backward(F.group_norm_backward, dout, inner)
    return dx, dgamma.reshape(shape), dbeta.reshape(shape)
