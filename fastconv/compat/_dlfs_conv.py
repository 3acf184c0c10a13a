"""The book's ``im2col``/``col2im`` and its batch normalisation, convolution and pooling layers.

Public through :mod:`fastconv.compat.dlfs`, whose conventions they follow.
"""

from __future__ import annotations

from typing import Any

from .. import functional as F
from .._typing import Array
from .._validate import check_real
from ..backend import promoted
from ..im2col import col2im as _col2im
from ..im2col import im2col as _im2col
from ._batchnorm import course_batchnorm
from ._dlfs_layers import Layer, bias_array
from ._lenient import lenient, lenient_backward

BOOK_BATCHNORM_EPS = 1e-6  # written 10e-7 in the book's code


def im2col(input_data: Array, filter_h: int, filter_w: int, stride: int = 1,
           pad: int = 0) -> Array:
    """The book's 2-D im2col: (N, C, H, W) -> (N*out_h*out_w, C*filter_h*filter_w).

    Parameters
    ----------
    input_data : array
        (N, C, H, W).
    filter_h, filter_w : int
        The filter.
    stride : int, default 1
        The filter's step.
    pad : int, default 0
        Zero padding of each side.

    Returns
    -------
    array
        Rows ordered (n, oh, ow), columns (c, kh, kw).

    Raises
    ------
    TypeError, ValueError
        Arguments fastconv's im2col refuses, naming them.

    Examples
    --------
    >>> import numpy as np
    >>> im2col(np.arange(8.0).reshape(2, 1, 2, 2), 2, 2)
    array([[0., 1., 2., 3.],
           [4., 5., 6., 7.]])
    """
    cols = _im2col(input_data, (filter_h, filter_w), stride=stride, padding=pad)
    n, k, positions = cols.shape
    return cols.transpose(0, 2, 1).reshape(n * positions, k)


def col2im(col: Array, input_shape: tuple[int, ...], filter_h: int, filter_w: int,
           stride: int = 1, pad: int = 0) -> Array:
    """The adjoint of :func:`im2col`: sums each window's row back into an (N, C, H, W) array.

    Parameters
    ----------
    col : array
        (N*out_h*out_w, C*filter_h*filter_w).
    input_shape : tuple of int
        (N, C, H, W).
    filter_h, filter_w, stride, pad
        As for :func:`im2col`.

    Returns
    -------
    array
        ``input_shape``.

    Raises
    ------
    ValueError
        When col's shape does not fit.

    Examples
    --------
    >>> import numpy as np
    >>> col2im(np.ones((4, 4)), (1, 1, 3, 3), 2, 2)[0, 0]
    array([[1., 2., 1.],
           [2., 4., 2.],
           [1., 2., 1.]])
    """
    n, c = input_shape[0], input_shape[1]
    k = c * filter_h * filter_w
    if col.ndim != 2 or col.shape[1] != k or col.shape[0] % max(n, 1):
        raise ValueError(f"col2im: col has shape {tuple(col.shape)}, expected (N*out_h*out_w, "
                         f"{k}) for input_shape {tuple(input_shape)} and a "
                         f"{filter_h}x{filter_w} filter")
    cols = col.reshape(n, col.shape[0] // n, k).transpose(0, 2, 1)
    return _col2im(cols, tuple(input_shape), (filter_h, filter_w), stride=stride, padding=pad)


class BatchNormalization(Layer):
    """The book's batch normalisation of (N, D) or (N, C, H, W) inputs, per feature.

    Parameters
    ----------
    gamma, beta : array
        One value per feature (D, or C*H*W).
    momentum : float, default 0.9
        The running averages' ``running = momentum * running + (1 - momentum) * batch``.
    running_mean, running_var : array, optional
        The running statistics; zeros when None.

    Examples
    --------
    >>> import numpy as np
    >>> layer = BatchNormalization(np.ones(1), np.zeros(1))
    >>> layer.forward(np.array([[1.0], [3.0]])).round(3).ravel(), layer.running_mean
    (array([-1.,  1.]), array([0.2]))
    """

    def __init__(self, gamma: Array, beta: Array, momentum: float = 0.9,
                 running_mean: Array | None = None, running_var: Array | None = None) -> None:
        self.gamma = gamma
        self.beta = beta
        self.momentum = momentum
        self.running_mean = running_mean
        self.running_var = running_var
        self.input_shape: tuple[int, ...] | None = None
        self.dgamma: Array | None = None
        self.dbeta: Array | None = None

    def forward(self, x: Array, train_flg: bool = True) -> Array:
        """Normalise each of the (N, -1) features with the batch (train) or running statistics.

        Parameters
        ----------
        x : array
            (N, D) or (N, C, H, W).
        train_flg : bool, default True
            Training (batch statistics) or test (running statistics) mode.

        Returns
        -------
        array
            x's shape.

        Raises
        ------
        TypeError, ValueError
            A ``momentum`` that is not a real number in [0, 1]; arguments the op refuses.
        """
        # Checked on every forward, as Dropout's ratio: the book's code sets attributes freely.
        momentum = check_real("BatchNormalization: momentum", self.momentum, 0.0, 1.0)
        self.input_shape = x.shape
        out, self._cache, self.running_mean, self.running_var = course_batchnorm(
            F.batchnorm_forward, x.reshape(x.shape[0], -1), self.gamma, self.beta, train_flg,
            self.running_mean, self.running_var, momentum, BOOK_BATCHNORM_EPS, 0)
        return out.reshape(self.input_shape)

    def backward(self, dout: Array) -> Array:
        """Returns dx in x's shape and sets ``self.dgamma`` and ``self.dbeta``.

        Parameters
        ----------
        dout : array
            x's shape.

        Returns
        -------
        array
            dx.
        """
        dx, self.dgamma, self.dbeta = lenient_backward(
            F.batchnorm_backward, dout.reshape(dout.shape[0], -1), self._take_cache())
        return dx.reshape(self.input_shape)


class Convolution(Layer):
    """The book's convolution layer.

    Parameters
    ----------
    W : array
        (FN, C, FH, FW), read on every forward.
    b : array or number
        (FN,), or one bias for every filter.
    stride : int, default 1
        The filter's step.
    pad : int, default 0
        Zero padding of each side.

    Examples
    --------
    >>> import numpy as np
    >>> layer = Convolution(np.ones((4, 3, 3, 3)), np.zeros(4), pad=1)
    >>> out = layer.forward(np.ones((2, 3, 5, 5)))
    >>> out.shape, layer.backward(np.ones_like(out)).shape, layer.col.shape
    ((2, 4, 5, 5), (2, 3, 5, 5), (50, 27))
    """

    def __init__(self, W: Array, b: Any, stride: int = 1, pad: int = 0) -> None:
        self.W = W
        self.b = b
        self.stride = stride
        self.pad = pad
        self.x: Array | None = None
        self.dW: Array | None = None
        self.db: Array | None = None

    @property
    def col(self) -> Array | None:
        """``im2col`` of the last forward's x (made when read: the op does not keep it)."""
        fh, fw = self.W.shape[2:]
        return None if self.x is None else im2col(self.x, fh, fw, self.stride, self.pad)

    @property
    def col_W(self) -> Array:
        """The weights as the (C*FH*FW, FN) matrix that multiplies ``col``."""
        return self.W.reshape(self.W.shape[0], -1).T

    def forward(self, x: Array) -> Array:
        """Convolve x.

        Parameters
        ----------
        x : array
            (N, C, H, W).

        Returns
        -------
        array
            (N, FN, out_h, out_w).
        """
        self.x = x
        xp, w, b = promoted(x, self.W, bias_array(self.b, self.W, self.W.shape[0]),
                             names=("x", "W", "b"))
        out, self._cache = lenient(*F.conv2d_forward(xp, w, b, stride=self.stride,
                                                     padding=self.pad))
        return out

    def backward(self, dout: Array) -> Array:
        """Returns dx and sets ``self.dW`` and ``self.db``.

        Parameters
        ----------
        dout : array
            (N, FN, out_h, out_w).

        Returns
        -------
        array
            dx.
        """
        dx, self.dW, self.db = lenient_backward(F.conv2d_backward, dout, self._take_cache())
        return dx


class Pooling(Layer):
    """The book's max-pooling layer (``pad`` pads with -inf and counts in the output size).

    Parameters
    ----------
    pool_h, pool_w : int
        The window.
    stride : int, default 2
        The window's step.
    pad : int, default 0
        -inf padding of each side.

    Examples
    --------
    >>> import numpy as np
    >>> layer = Pooling(2, 2)
    >>> layer.forward(np.arange(16.0).reshape(1, 1, 4, 4)), layer.arg_max.tolist()
    (array([[[[ 5.,  7.],
             [13., 15.]]]]), [3, 3, 3, 3])
    """

    def __init__(self, pool_h: int, pool_w: int, stride: int = 2, pad: int = 0) -> None:
        self.pool_h = pool_h
        self.pool_w = pool_w
        self.stride = stride
        self.pad = pad
        self.x: Array | None = None

    @property
    def arg_max(self) -> Array | None:
        """Each window's maximum as its offset kh * pool_w + kw, windows ordered (n, oh, ow, c)."""
        if self._cache is None:
            return None
        return self._cache.cache.argmax.transpose(0, 2, 3, 1).reshape(-1)

    def forward(self, x: Array) -> Array:
        """Max over each pool_h x pool_w window of x.

        Parameters
        ----------
        x : array
            (N, C, H, W).

        Returns
        -------
        array
            (N, C, out_h, out_w).
        """
        self.x = x
        out, self._cache = lenient(*F.max_pool2d_forward(
            x, (self.pool_h, self.pool_w), stride=self.stride, padding=self.pad))
        return out

    def backward(self, dout: Array) -> Array:
        """Returns dx: each window's gradient goes to its (first) maximum, as the book's argmax.

        Parameters
        ----------
        dout : array
            (N, C, out_h, out_w).

        Returns
        -------
        array
            dx.
        """
        return lenient_backward(F.max_pool2d_backward, dout, self._take_cache())
