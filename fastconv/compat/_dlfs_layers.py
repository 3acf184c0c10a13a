"""The dense layers, activations, loss and dropout of the book's ``common/layers.py``.

Public through :mod:`fastconv.compat.dlfs`, whose conventions they follow.
"""

from __future__ import annotations

from typing import Any

from .. import functional as F
from .._typing import Array
from .._validate import check_real
from ..backend import get_array_module, is_array, promoted
from ._cs231n_layers import KeepMask
from ._lenient import lenient, lenient_backward


def bias_array(b: Any, w: Array, outputs: int) -> Array:
    """``b`` as an array of ``outputs`` values.

    The book adds b by broadcasting, so a number is one bias for every output
    (in NumPy's dtype for ``w + b``).

    Parameters
    ----------
    b : array or number
        The bias.
    w : array
        The weights it goes with.
    outputs : int
        The number of outputs.

    Returns
    -------
    array

    Examples
    --------
    >>> import numpy as np
    >>> bias_array(0, np.ones((3, 2), np.float32), 2)
    array([0., 0.], dtype=float32)
    """
    if is_array(b):
        return b
    xp = get_array_module(w)
    return xp.full(outputs, b, dtype=xp.result_type(w, b))


class Layer:
    """The cache of the last forward (wrapped for ``lenient_backward``) and its guard.

    Examples
    --------
    >>> Relu().backward(None)
    Traceback (most recent call last):
    RuntimeError: Relu.backward called before forward
    """

    _cache: Any = None

    def _take_cache(self) -> Any:
        if self._cache is None:
            raise RuntimeError(f"{type(self).__name__}.backward called before forward")
        return self._cache


class Relu(Layer):
    """The book's ReLU layer.

    Examples
    --------
    >>> import numpy as np
    >>> layer = Relu()
    >>> layer.forward(np.array([-1.0, 2.0])), layer.mask, layer.backward(np.ones(2))
    (array([0., 2.]), array([ True, False]), array([0., 1.]))
    """

    def __init__(self) -> None:
        self._x: Array | None = None

    @property
    def mask(self) -> Array | None:
        """``x <= 0`` for the x of the last forward (None before one)."""
        return None if self._x is None else self._x <= 0

    def forward(self, x: Array) -> Array:
        """``max(x, 0)``.

        Parameters
        ----------
        x : array
            Any shape.

        Returns
        -------
        array
        """
        self._x = x
        out, self._cache = lenient(*F.relu_forward(x))
        return out

    def backward(self, dout: Array) -> Array:
        """dout where x > 0, else 0 (dout itself is not changed).

        Parameters
        ----------
        dout : array
            The gradient of the output.

        Returns
        -------
        array
            dx.
        """
        return lenient_backward(F.relu_backward, dout, self._take_cache())


class Sigmoid(Layer):
    """The book's sigmoid layer; ``out`` is the last forward's output.

    Examples
    --------
    >>> import numpy as np
    >>> layer = Sigmoid()
    >>> layer.forward(np.zeros(2)), layer.backward(np.ones(2))
    (array([0.5, 0.5]), array([0.25, 0.25]))
    """

    def __init__(self) -> None:
        self.out: Array | None = None

    def forward(self, x: Array) -> Array:
        """``1 / (1 + exp(-x))``, computed without overflow.

        Parameters
        ----------
        x : array
            Any shape.

        Returns
        -------
        array
        """
        out, self._cache = lenient(*F.sigmoid_forward(x))
        self.out = out
        return out

    def backward(self, dout: Array) -> Array:
        """``dout * out * (1 - out)``.

        Parameters
        ----------
        dout : array
            The gradient of the output.

        Returns
        -------
        array
            dx.
        """
        return lenient_backward(F.sigmoid_backward, dout, self._take_cache())


class Affine(Layer):
    """The book's fully connected layer: ``x.reshape(N, -1) @ W + b``.

    Parameters
    ----------
    W : array
        (D, M), read on every forward.
    b : array or number
        (M,), or one bias for every output.

    Examples
    --------
    >>> import numpy as np
    >>> layer = Affine(np.ones((6, 4)), 0)
    >>> out = layer.forward(np.ones((2, 3, 2)))
    >>> out.shape, layer.backward(np.ones_like(out)).shape, layer.dW.shape
    ((2, 4), (2, 3, 2), (6, 4))
    """

    def __init__(self, W: Array, b: Any) -> None:
        self.W = W
        self.b = b
        self.x: Array | None = None
        self.original_x_shape: tuple[int, ...] | None = None
        self.dW: Array | None = None
        self.db: Array | None = None

    def forward(self, x: Array) -> Array:
        """Flatten each sample of x and apply the affine map.

        Parameters
        ----------
        x : array
            (N, d_1, ..., d_k), D = d_1*...*d_k.

        Returns
        -------
        array
            (N, M).
        """
        self.original_x_shape = x.shape
        self.x = x.reshape(x.shape[0], -1)
        x2, w, b = promoted(self.x, self.W, bias_array(self.b, self.W, self.W.shape[-1]),
                            names=("x", "W", "b"))
        out, self._cache = lenient(*F.linear_forward(x2, w, b))
        return out

    def backward(self, dout: Array) -> Array:
        """Returns dx in x's shape and sets ``self.dW`` and ``self.db``.

        Parameters
        ----------
        dout : array
            (N, M).

        Returns
        -------
        array
            dx.
        """
        dx, self.dW, self.db = lenient_backward(F.linear_backward, dout, self._take_cache())
        return dx.reshape(self.original_x_shape)


class SoftmaxWithLoss(Layer):
    """The book's softmax + cross-entropy layer: ``forward(x, t)`` returns the mean loss.

    Examples
    --------
    >>> import numpy as np
    >>> layer = SoftmaxWithLoss()
    >>> round(float(layer.forward(np.zeros((2, 4)), np.array([0, 3]))), 4)
    1.3863
    >>> layer.backward()[0]
    array([-0.375,  0.125,  0.125,  0.125])
    """

    def __init__(self) -> None:
        self.loss: Any = None
        self.t: Any = None

    def forward(self, x: Array, t: Any) -> Any:
        """Loss of scores x for labels t.

        Parameters
        ----------
        x : array
            (N, C) scores.
        t : array_like
            (N,) labels, or (N, C) one-hot rows (read as their argmax).

        Returns
        -------
        array
            The mean loss, 0-d.
        """
        self.t = t
        t = get_array_module(x).asarray(t)
        labels = t.argmax(axis=1) if t.size == x.size else t
        self.loss, self._cache = F.softmax_cross_entropy(x, labels)
        return self.loss

    def backward(self, dout: Any = 1) -> Array:
        """dL/dx = (softmax(x) - onehot(t)) / N, times dout.

        Parameters
        ----------
        dout : float or array, default 1
            The gradient of the loss.

        Returns
        -------
        array
            (N, C).
        """
        return self._take_cache() * dout


class Dropout(Layer):
    """The book's dropout (not inverted): train ``x * mask``, test ``x * (1 - dropout_ratio)``.

    Parameters
    ----------
    dropout_ratio : float, default 0.5
        The drop probability, in [0, 1] (checked on every forward: it is an attribute).

    Examples
    --------
    >>> import numpy as np
    >>> layer = Dropout(0.5)
    >>> sorted(set(layer.forward(np.ones(100)).tolist()))
    [0.0, 1.0]
    >>> layer.forward(np.ones(2), train_flg=False)
    array([0.5, 0.5])
    """

    def __init__(self, dropout_ratio: float = 0.5) -> None:
        self.dropout_ratio = dropout_ratio

    @property
    def mask(self) -> Array | None:
        """The boolean keep mask of the last forward (all True in test mode; None before one)."""
        return None if self._cache is None else self._cache.cache.mask != 0

    def forward(self, x: Array, train_flg: bool = True) -> Array:
        """Drop each unit with probability dropout_ratio in training; scale in test.

        Parameters
        ----------
        x : array
            Any shape.
        train_flg : bool, default True
            Training (drop) or test (scale) mode; any truthy value trains, as the book's
            ``if train_flg:`` (and this module's BatchNormalization) take it.

        Returns
        -------
        array
        """
        train = bool(train_flg)
        ratio = check_real("Dropout: dropout_ratio", self.dropout_ratio, 0.0, 1.0)
        # The book's mask, drawn on every training forward whatever the ratio (at 0 and 1
        # too, where the op would not draw), so NumPy's generator moves on as in the book.
        rng = KeepMask(get_array_module(x).random.rand(*x.shape) > ratio) if train else None
        out, self._cache = lenient(*F.dropout_forward(x, p=ratio, train=train, rng=rng))
        # fastconv's dropout is inverted (kept units scaled by 1 / (1 - ratio));
        # the book's scales at test time instead: multiplying by 1 - ratio is that.
        return out * (1.0 - ratio)

    def backward(self, dout: Array) -> Array:
        """dout times the mask of the last forward (times 1 - ratio in test mode).

        Parameters
        ----------
        dout : array
            The gradient of the output.

        Returns
        -------
        array
            dx.
        """
        dx = lenient_backward(F.dropout_backward, dout, self._take_cache())
        return dx * (1.0 - self.dropout_ratio)
