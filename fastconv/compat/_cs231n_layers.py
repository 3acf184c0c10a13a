"""The dense layers, activations, dropout and losses of CS231n's ``layers``.

Public through :mod:`fastconv.compat.cs231n`, whose conventions they follow.
"""

from __future__ import annotations

from typing import Any

from .. import functional as F
from .._typing import Array
from .._validate import check_real
from ..backend import get_array_module, promoted
from ._course_params import get as _get
from ._course_params import labels as _labels
from ._course_params import training as _mode
from ._lenient import lenient, lenient_backward

Grads3 = tuple[Array, Array, Array]  # (dx, dw, db) and the like


def affine_forward(x: Array, w: Array, b: Array) -> tuple[Array, Any]:
    """``x.reshape(N, D) @ w + b``.

    Parameters
    ----------
    x : array
        (N, d_1, ..., d_k), D = d_1*...*d_k.
    w : array
        (D, M).
    b : array
        (M,).

    Returns
    -------
    out : array
        (N, M).
    cache : object
        For :func:`affine_backward`.

    Raises
    ------
    ValueError
        Shapes that do not fit.

    Examples
    --------
    >>> import numpy as np
    >>> affine_forward(np.ones((2, 3, 2)), np.ones((6, 4)), np.zeros(4))[0].shape
    (2, 4)
    """
    return lenient(*F.linear_forward(*promoted(x, w, b, names=("x", "w", "b"))))


def affine_backward(dout: Array, cache: Any) -> Grads3:
    """Gradients of :func:`affine_forward`.

    Parameters
    ----------
    dout : array
        (N, M).
    cache : object
        From :func:`affine_forward`.

    Returns
    -------
    dx, dw, db : array
        dx in x's shape.

    Raises
    ------
    TypeError, ValueError
        A cache from another op; dout unlike the forward's output.

    Examples
    --------
    >>> import numpy as np
    >>> out, cache = affine_forward(np.ones((2, 3, 2)), np.ones((6, 4)), np.zeros(4))
    >>> [g.shape for g in affine_backward(np.ones_like(out), cache)]
    [(2, 3, 2), (6, 4), (4,)]
    """
    return lenient_backward(F.linear_backward, dout, cache)


def relu_forward(x: Array) -> tuple[Array, Any]:
    """``max(x, 0)``.

    Parameters
    ----------
    x : array
        Any shape.

    Returns
    -------
    out : array
        x's shape.
    cache : object
        For :func:`relu_backward`.

    Examples
    --------
    >>> import numpy as np
    >>> relu_forward(np.array([-1.0, 2.0]))[0]
    array([0., 2.])
    """
    return lenient(*F.relu_forward(x))


def relu_backward(dout: Array, cache: Any) -> Array:
    """Gradient of :func:`relu_forward`.

    Parameters
    ----------
    dout : array
        The gradient of the output.
    cache : object
        From :func:`relu_forward`.

    Returns
    -------
    array
        dx.

    Raises
    ------
    TypeError, ValueError
        A cache from another op; dout unlike the forward's output.

    Examples
    --------
    >>> import numpy as np
    >>> out, cache = relu_forward(np.array([-1.0, 2.0]))
    >>> relu_backward(np.ones(2), cache)
    array([0., 1.])
    """
    return lenient_backward(F.relu_backward, dout, cache)


class KeepMask:
    """A stand-in generator for ``F.dropout_forward`` whose draw is a given boolean keep mask.

    The op keeps the units whose draw u satisfies ``u >= p``; for the drop
    probability 0 < p < 1 that is exactly the True entries (p = 0 keeps
    every unit and p = 1 none, without a draw). Both front-ends draw their
    course's mask themselves, from the course's generator and with its rule.
    """

    def __init__(self, kept: Array) -> None:
        self.kept = kept

    def random(self, shape: Any) -> Array:
        return self.kept


def dropout_forward(x: Array, dropout_param: dict[str, Any]) -> tuple[Array, Any]:
    """Inverted dropout; ``dropout_param['p']`` is the KEEP probability.

    The mask is the course's: ``xp.random.seed(seed)`` when a seed is given,
    then ``xp.random.rand(*x.shape) < p`` (xp: numpy or cupy, by x's device).

    Parameters
    ----------
    x : array
        Any shape.
    dropout_param : dict
        ``{'mode': 'train'|'test', 'p': keep, 'seed': optional}``.

    Returns
    -------
    out : array
        x's shape.
    cache : object
        For :func:`dropout_backward`.

    Raises
    ------
    TypeError, ValueError
        A ``dropout_param`` that is not a dict, without a valid mode or p.

    Examples
    --------
    >>> import numpy as np
    >>> out, cache = dropout_forward(np.ones(100), {"mode": "train", "p": 0.5, "seed": 0})
    >>> sorted(set(out.tolist()))
    [0.0, 2.0]
    """
    train = _mode(dropout_param, "dropout_param")
    keep = check_real("dropout_param['p'] (the keep probability)",
                      _get(dropout_param, "dropout_param", ["p"])[0], 0.0, 1.0, low_open=True)
    xp = get_array_module(x)
    if "seed" in dropout_param:  # the course seeds the global generator, in both modes
        xp.random.seed(dropout_param["seed"])
    rng = KeepMask(xp.random.rand(*x.shape) < keep) if train else None
    return lenient(*F.dropout_forward(x, p=1.0 - keep, train=train, rng=rng))


def dropout_backward(dout: Array, cache: Any) -> Array:
    """Gradient of :func:`dropout_forward`.

    Parameters
    ----------
    dout : array
        The gradient of the output.
    cache : object
        From :func:`dropout_forward`.

    Returns
    -------
    array
        dx.

    Raises
    ------
    TypeError, ValueError
        A cache from another op; dout unlike the forward's output.

    Examples
    --------
    >>> import numpy as np
    >>> out, cache = dropout_forward(np.ones(3), {"mode": "test", "p": 0.5})
    >>> dropout_backward(np.ones(3), cache)
    array([1., 1., 1.])
    """
    return lenient_backward(F.dropout_backward, dout, cache)


def softmax_loss(x: Array, y: Any) -> tuple[Array, Array]:
    """Softmax cross-entropy of scores x and labels y.

    Parameters
    ----------
    x : array
        (N, C) scores.
    y : array_like
        (N,) integer labels in [0, C), a list too.

    Returns
    -------
    loss : array
        0-d.
    dx : array
        (N, C).

    Raises
    ------
    TypeError, ValueError
        Labels or scores the loss refuses.

    Examples
    --------
    >>> import numpy as np
    >>> loss, dx = softmax_loss(np.zeros((2, 4)), [0, 3])
    >>> round(float(loss), 4)
    1.3863
    """
    return F.softmax_cross_entropy(x, _labels(x, y))


def svm_loss(x: Array, y: Any) -> tuple[Array, Array]:
    """Multiclass SVM (hinge, margin 1) loss of scores x and labels y.

    Parameters
    ----------
    x : array
        (N, C) scores.
    y : array_like
        (N,) integer labels in [0, C), a list too.

    Returns
    -------
    loss : array
        0-d.
    dx : array
        (N, C).

    Raises
    ------
    TypeError, ValueError
        Labels or scores the loss refuses.

    Examples
    --------
    >>> import numpy as np
    >>> float(svm_loss(np.array([[3.0, 2.5, 0.0]]), [0])[0])
    0.5
    """
    return F.multiclass_hinge(x, _labels(x, y))
