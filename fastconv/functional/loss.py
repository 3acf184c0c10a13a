"""Losses returning ``(loss, dscores)`` (mean over the batch), L2 regularisation and metrics.

Multiclass losses take scores (N, C) and integer labels y (N,) in [0, C).
Binary losses take scores (N,) or (N, 1) and labels (N,). The regression
loss :func:`mse_loss` takes predictions and targets of one shape and returns
``(loss, dpred)``, the mean over every element. ``loss`` is a 0-d value of
the scores' array module (``float(loss)`` gives a Python number);
``dscores`` has the scores' shape and dtype.
"""

from __future__ import annotations

import numbers
from collections.abc import Mapping
from typing import Any

from .._typing import Array
from ..backend import accumulator_dtype, get_array_module, is_array
from .._validate import check_float, check_ndim, check_real, check_same_dtype
from .activation import sigmoid


def _check_labels(scores, y, n_classes):
    """Integer labels of shape (N,) with values in [0, n_classes)."""
    if not is_array(y) or y.dtype.kind not in "iu":
        raise TypeError(f"y must be an integer array of class labels, got "
                        f"{getattr(y, 'dtype', type(y).__name__)}")
    if y.shape != (scores.shape[0],):
        raise ValueError(f"y has shape {tuple(y.shape)}, expected ({scores.shape[0]},) "
                         f"for scores of shape {tuple(scores.shape)}")
    bad = (y < 0) | (y >= n_classes)
    if bool(bad.any()):
        label = int(y[bad][0])
        raise ValueError(f"label {label} is out of range for {n_classes} classes "
                         f"(labels must be in [0, {n_classes}))")


def _check_multiclass(scores, y):
    get_array_module(scores, y)
    check_float(scores, "scores")
    check_ndim(scores, 2, "scores", "(N, C)")
    _check_labels(scores, y, scores.shape[1])


def softmax_cross_entropy(scores: Array, y: Array) -> tuple[Array, Array]:
    """Softmax + cross-entropy over C classes, log-sum-exp stable.

    Parameters
    ----------
    scores : array
        (N, C) class scores, float.
    y : array
        (N,) integer labels in [0, C).

    Returns
    -------
    loss : array
        0-d, the mean over the batch.
    dscores : array
        ``(softmax(scores) - onehot(y)) / N``, scores' shape and dtype.

    Raises
    ------
    TypeError
        Non-float scores, non-integer labels.
    ValueError
        Shapes that do not fit, a label out of range.

    Examples
    --------
    >>> import numpy as np
    >>> loss, dscores = softmax_cross_entropy(np.zeros((2, 4)), np.array([0, 3]))
    >>> round(float(loss), 4), dscores[0]
    (1.3863, array([-0.375,  0.125,  0.125,  0.125]))
    """
    xp = get_array_module(scores, y)
    _check_multiclass(scores, y)
    n = scores.shape[0]
    rows = xp.arange(n)
    shifted = scores - scores.max(axis=1, keepdims=True)
    log_probs = shifted - xp.log(xp.exp(shifted).sum(axis=1, keepdims=True))
    loss = -log_probs[rows, y].mean()
    dscores = xp.exp(log_probs)
    dscores[rows, y] -= 1
    dscores /= n
    return loss, dscores


def multiclass_hinge(scores: Array, y: Array, margin: float = 1.0) -> tuple[Array, Array]:
    """The CS231n multiclass SVM loss ``mean_i sum_{j != y_i} max(0, s_j - s_{y_i} + margin)``.

    Parameters
    ----------
    scores : array
        (N, C) class scores, float.
    y : array
        (N,) integer labels in [0, C).
    margin : float, default 1.0
        The margin, a real number.

    Returns
    -------
    loss : array
        0-d, the mean over the batch.
    dscores : array
        Scores' shape and dtype.

    Raises
    ------
    TypeError
        Non-float scores, non-integer labels, a margin that is no real number.
    ValueError
        Shapes that do not fit, a label out of range.

    Examples
    --------
    >>> import numpy as np
    >>> loss, dscores = multiclass_hinge(np.array([[3.0, 2.5, 0.0]]), np.array([0]))
    >>> float(loss), dscores
    (0.5, array([[-1.,  1.,  0.]]))
    """
    xp = get_array_module(scores, y)
    _check_multiclass(scores, y)
    # cast to the scores' dtype below, which would read a string as its number
    margin = check_real("multiclass_hinge: margin", margin)
    n = scores.shape[0]
    rows = xp.arange(n)
    margins = xp.maximum(scores - scores[rows, y][:, None] + scores.dtype.type(margin), 0)
    margins[rows, y] = 0
    loss = margins.sum(dtype=accumulator_dtype(scores.dtype)) / n
    dscores = (margins > 0).astype(scores.dtype)
    dscores[rows, y] = -dscores.sum(axis=1)
    dscores /= n
    return loss, dscores


def _check_binary(scores: Array, y: Array) -> None:
    get_array_module(scores, y)
    check_float(scores, "scores")
    n = scores.shape[0] if scores.ndim else 0
    if scores.ndim not in (1, 2) or (scores.ndim == 2 and scores.shape[1] != 1):
        raise ValueError(f"binary loss: scores must have shape (N,) or (N, 1), got "
                         f"{tuple(scores.shape)}")
    if not is_array(y):
        raise TypeError(f"binary loss: y must be an array of labels, got {type(y).__name__}")
    if y.shape != (n,):
        raise ValueError(f"binary loss: y must have shape ({n},) for scores of shape "
                         f"{tuple(scores.shape)}, got {tuple(y.shape)}")


def binary_logistic(scores: Array, y: Array) -> tuple[Array, Array]:
    """Sigmoid + binary cross-entropy for labels y in {0, 1}, stable for large ``|scores|``.

    ``loss = mean(max(s, 0) - s*y + log(1 + exp(-|s|)))``; ``dscores = (sigmoid(s) - y) / N``.

    Parameters
    ----------
    scores : array
        (N,) or (N, 1), float.
    y : array
        (N,) labels, 0 or 1.

    Returns
    -------
    loss : array
        0-d, the mean over the batch.
    dscores : array
        Scores' shape and dtype.

    Raises
    ------
    TypeError
        Non-float scores, labels not an array.
    ValueError
        Shapes that do not fit, a label not 0 or 1.

    Examples
    --------
    >>> import numpy as np
    >>> loss, dscores = binary_logistic(np.array([0.0, 0.0]), np.array([0, 1]))
    >>> round(float(loss), 4), dscores
    (0.6931, array([ 0.25, -0.25]))
    """
    xp = get_array_module(scores, y)
    _check_binary(scores, y)
    bad = (y != 0) & (y != 1)
    if bool(bad.any()):
        raise ValueError(f"binary_logistic: labels must be 0 or 1, got {y[bad][0].item()}")
    s = scores.reshape(-1)
    t = y.astype(scores.dtype)
    loss = (xp.maximum(s, 0) - s * t + xp.log1p(xp.exp(-xp.abs(s)))).mean()
    dscores = ((sigmoid(s) - t) / s.shape[0]).reshape(scores.shape)
    return loss, dscores


def binary_hinge(scores: Array, y: Array) -> tuple[Array, Array]:
    """Binary SVM loss ``mean(max(0, 1 - t*s))`` with t = +1 for the positive class.

    Parameters
    ----------
    scores : array
        (N,) or (N, 1), float.
    y : array
        (N,) labels: 1 is the positive class, and 0 or -1 (whichever the array
        uses; mixing both is an error) the negative one.

    Returns
    -------
    loss : array
        0-d, the mean over the batch.
    dscores : array
        Scores' shape and dtype.

    Raises
    ------
    TypeError
        Non-float scores, labels not an array.
    ValueError
        Shapes that do not fit, labels outside {0, 1} and {-1, 1}.

    Examples
    --------
    >>> import numpy as np
    >>> loss, dscores = binary_hinge(np.array([2.0, 0.5]), np.array([1, -1]))
    >>> float(loss), dscores
    (0.75, array([0. , 0.5]))
    """
    xp = get_array_module(scores, y)
    _check_binary(scores, y)
    neg0, negm1 = bool((y == 0).any()), bool((y == -1).any())
    invalid = (y != 0) & (y != 1) & (y != -1)
    if bool(invalid.any()) or (neg0 and negm1):
        raise ValueError("binary_hinge: labels must be all in {0, 1} or all in {-1, 1}; "
                         f"got values {sorted({float(v) for v in xp.unique(y).tolist()})}")
    s = scores.reshape(-1)
    t = xp.where(y == 1, 1, -1).astype(scores.dtype)
    active = (1 - t * s) > 0
    loss = xp.where(active, 1 - t * s, 0).mean()
    dscores = (xp.where(active, -t, 0) / s.shape[0]).astype(scores.dtype).reshape(scores.shape)
    return loss, dscores


def mse_loss(pred: Array, target: Array) -> tuple[Array, Array]:
    """Mean squared error ``mean((pred - target)**2)`` over every element; ``(loss, dpred)``.

    As ``torch.nn.functional.mse_loss`` with its default mean reduction
    (no broadcasting: the shapes must match; an empty pair gives NaN, as
    PyTorch). The squares and their sum run in float32 for float16.

    Parameters
    ----------
    pred, target : ndarray
        Float arrays of one shape, dtype and device; ``target`` gets no gradient.

    Returns
    -------
    loss : ndarray
        0-d, pred's dtype.
    dpred : ndarray
        ``2 * (pred - target) / pred.size``, pred's shape and dtype.

    Raises
    ------
    TypeError
        A non-float array, or arrays of two dtypes.
    ValueError
        Arrays of two shapes or two devices.

    Examples
    --------
    >>> import numpy as np
    >>> loss, dpred = mse_loss(np.array([1.0, 3.0]), np.array([0.0, 0.0]))
    >>> float(loss), dpred
    (5.0, array([1., 3.]))
    """
    xp = get_array_module(pred, target)
    check_float(pred, "pred")
    check_float(target, "target")
    check_same_dtype(pred, "pred", target, "target")
    if tuple(pred.shape) != tuple(target.shape):
        raise ValueError(f"pred has shape {tuple(pred.shape)} but target has shape "
                         f"{tuple(target.shape)}; they must match")
    diff = pred - target
    count = diff.size
    # Squared in the sum's dtype: a float16 square of a diff above 256 is inf (copy=False
    # keeps float32 and float64 from copying).
    wide = diff.astype(accumulator_dtype(diff.dtype), copy=False)
    total = (wide * wide).sum()
    loss = (total / count if count else xp.asarray(xp.nan)).astype(pred.dtype)
    return loss, diff * pred.dtype.type(2 / max(count, 1))


def l2_regularization(params: Mapping[str, Array], reg: float) -> tuple[Any, dict[str, Array]]:
    """L2 penalty ``0.5 * reg * sum(w**2)`` over the arrays in ``params``.

    The 0.5 makes the gradient exactly ``reg * w`` (the CS231n convention).

    Parameters
    ----------
    params : mapping of str to array
        Only the arrays to be penalised (usually the weights, not the biases).
    reg : float
        The strength, at least 0.

    Returns
    -------
    loss : float or array
        The penalty (0-d array, or 0.0 for no params).
    grads : dict of str to array
        ``reg * w``, with the keys of ``params``.

    Raises
    ------
    TypeError
        ``params`` not a mapping, a non-float array, a non-real reg.
    ValueError
        A negative reg.

    Examples
    --------
    >>> import numpy as np
    >>> loss, grads = l2_regularization({"W1": np.array([1.0, 2.0])}, 0.1)
    >>> round(float(loss), 6), grads["W1"]
    (0.25, array([0.1, 0.2]))
    """
    strength = check_real("l2_regularization: reg", reg, 0.0)
    if not isinstance(params, Mapping):
        raise TypeError(f"l2_regularization: params must be a name -> array mapping, "
                        f"got {type(params).__name__}")
    loss: Any = 0.0
    grads = {}
    for name, w in params.items():
        check_float(w, f"params[{name!r}]")
        wide = w.astype(accumulator_dtype(w.dtype), copy=False)  # float16 squares overflow
        loss = loss + 0.5 * strength * (wide * wide).sum()
        grads[name] = strength * w
    return loss, grads


def accuracy(scores: Array, y: Array) -> float:
    """Fraction of samples predicted right, as a Python float.

    Parameters
    ----------
    scores : array
        (N, C): each predicts its argmax class (a NaN score counts as the
        largest, as in ``argmax``). Binary (N,) or (N, 1): the positive class
        (label 1) where > 0, the negative one (label 0 or -1, as for the
        binary losses) elsewhere.
    y : array
        (N,) labels: integers in [0, C), or the binary labels.

    Returns
    -------
    float

    Raises
    ------
    TypeError
        Non-float scores, labels of the wrong type.
    ValueError
        Shapes that do not fit, a label out of range.

    Examples
    --------
    >>> import numpy as np
    >>> accuracy(np.array([[0.1, 0.9], [0.8, 0.2], [0.3, 0.7]]), np.array([1, 0, 0]))
    0.6666666666666666
    """
    get_array_module(scores, y)
    check_float(scores, "scores")
    if scores.ndim not in (1, 2):
        raise ValueError(f"accuracy: scores must have shape (N, C), (N,) or (N, 1), "
                         f"got {tuple(scores.shape)}")
    if scores.ndim == 2 and scores.shape[1] > 1:
        _check_labels(scores, y, scores.shape[1])
        return float((scores.argmax(axis=1) == y).mean())
    _check_binary(scores, y)
    bad = (y != 0) & (y != 1) & (y != -1)
    if bool(bad.any()):
        raise ValueError(f"accuracy: binary labels must be 1 (positive) or 0/-1 (negative), "
                         f"got {y[bad][0].item()}")
    return float(((scores.reshape(-1) > 0) == (y == 1)).mean())


def topk_error(scores: Array, y: Array, k: int = 5) -> float:
    """Fraction of samples whose label is not among the k highest scores, as a Python float.

    A label scoring the same as the k-th best counts as in the top k. NaN
    ranks above every number, as in ``torch.topk`` (and :func:`accuracy`).

    Parameters
    ----------
    scores : array
        (N, C) class scores, float.
    y : array
        (N,) integer labels in [0, C).
    k : int, default 5
        In [1, C].

    Returns
    -------
    float

    Raises
    ------
    TypeError
        Non-float scores, non-integer labels or k.
    ValueError
        Shapes that do not fit, a label or k out of range.

    Examples
    --------
    >>> import numpy as np
    >>> topk_error(np.array([[0.5, 0.3, 0.2], [0.1, 0.2, 0.7]]), np.array([1, 0]), k=2)
    0.5
    """
    xp = get_array_module(scores, y)
    _check_multiclass(scores, y)
    if isinstance(k, bool) or not isinstance(k, numbers.Integral):
        raise TypeError(f"topk_error: k must be an int, got {k!r}")
    if not 1 <= k <= scores.shape[1]:
        raise ValueError(f"topk_error: k must be in [1, {scores.shape[1]}], got {k}")
    true = scores[xp.arange(scores.shape[0]), y][:, None]
    above = (scores > true) | (xp.isnan(scores) & ~xp.isnan(true))
    return float((above.sum(axis=1) >= k).mean())
