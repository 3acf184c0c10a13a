"""Losses returning ``(loss, dscores)`` (mean over the batch), L2 regularisation and metrics.

Multiclass losses take scores (N, C) and integer labels y (N,) in [0, C).
Binary losses take scores (N,) or (N, 1) and labels (N,). The regression
loss :func:`mse_loss` takes predictions and targets of one shape and returns
``(loss, dpred)``, the mean over every element. ``loss`` is a 0-d value of
the scores' array module (``float(loss)`` gives a Python number);
``dscores`` has the scores' shape and dtype.
"""

import numbers
from collections.abc import Mapping

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


def softmax_cross_entropy(scores, y):
    """Softmax + cross-entropy over C classes, log-sum-exp stable; returns ``(loss, dscores)``."""
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


def multiclass_hinge(scores, y, margin=1.0):
    """The CS231n multiclass SVM loss ``mean_i sum_{j != y_i} max(0, s_j - s_{y_i} + margin)``."""
    xp = get_array_module(scores, y)
    _check_multiclass(scores, y)
    n = scores.shape[0]
    rows = xp.arange(n)
    margins = xp.maximum(scores - scores[rows, y][:, None] + scores.dtype.type(margin), 0)
    margins[rows, y] = 0
    loss = margins.sum(dtype=accumulator_dtype(scores.dtype)) / n
    dscores = (margins > 0).astype(scores.dtype)
    dscores[rows, y] = -dscores.sum(axis=1)
    dscores /= n
    return loss, dscores


def _check_binary(scores, y):
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


def binary_logistic(scores, y):
    """Sigmoid + binary cross-entropy for labels y in {0, 1}, stable for large |scores|.

    ``loss = mean(max(s, 0) - s*y + log(1 + exp(-|s|)))``; ``dscores = (sigmoid(s) - y) / N``.
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


def binary_hinge(scores, y):
    """Binary SVM loss ``mean(max(0, 1 - t*s))`` with t = +1 for the positive class.

    Labels may be given as {0, 1} or as {-1, +1}: 1 is the positive class, and 0
    or -1 (whichever the array uses; mixing both is an error) the negative one.
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


def mse_loss(pred, target):
    """Mean squared error ``mean((pred - target)**2)`` over every element; ``(loss, dpred)``.

    As ``torch.nn.functional.mse_loss`` with its default mean reduction
    (no broadcasting: the shapes must match; an empty pair gives NaN, as
    PyTorch). The sum runs in float32 for float16.

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
    total = (diff * diff).sum(dtype=accumulator_dtype(diff.dtype))
    loss = (total / count if count else xp.asarray(xp.nan)).astype(pred.dtype)
    return loss, diff * pred.dtype.type(2 / max(count, 1))


def l2_regularization(params, reg):
    """L2 penalty ``0.5 * reg * sum(w**2)`` over the arrays in ``params``; returns (loss, grads).

    The 0.5 makes the gradient exactly ``reg * w`` (the CS231n convention). Pass
    only the arrays to be penalised (usually the weights, not the biases).
    ``grads`` has the same keys as ``params``.
    """
    reg = check_real("l2_regularization: reg", reg, 0.0)
    if not isinstance(params, Mapping):
        raise TypeError(f"l2_regularization: params must be a name -> array mapping, "
                        f"got {type(params).__name__}")
    loss = 0.0
    grads = {}
    for name, w in params.items():
        check_float(w, f"params[{name!r}]")
        loss = loss + 0.5 * reg * (w * w).sum(dtype=accumulator_dtype(w.dtype))
        grads[name] = reg * w
    return loss, grads


def accuracy(scores, y):
    """Fraction of samples predicted right, as a Python float.

    Scores (N, C) predict their argmax class (a NaN score counts as the
    largest, as in ``argmax``); y holds integer labels in [0, C). Binary scores
    (N,) or (N, 1) predict the positive class (label 1) where > 0, the negative
    one (label 0 or -1, as for the binary losses) elsewhere.
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


def topk_error(scores, y, k=5):
    """Fraction of samples whose label is not among the k highest scores, as a Python float.

    A label scoring the same as the k-th best counts as in the top k. NaN
    ranks above every number, as in ``torch.topk`` (and :func:`accuracy`).
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
