"""The "Deep Learning from Scratch" (book 1, ``common/``) API on fastconv.

Replace ``from common.layers import *``, ``from common.util import im2col,
col2im`` and ``from common.optimizer import *`` with ``from fastconv.compat.dlfs
import *``. Same classes, constructors, ``forward``/``backward`` methods and the
attributes readers inspect as the book's current code:

- ``Relu`` (``mask``: x <= 0), ``Sigmoid`` (``out``), ``Affine(W, b)`` (``x`` as
  (N, -1), ``original_x_shape``, ``dW``, ``db``), ``SoftmaxWithLoss``
  (``forward(x, t)`` with t labels or one-hot rows, read as their argmax as the
  book's loss does; ``loss``, ``t``; ``backward(dout=1)``), ``Dropout(dropout_ratio=0.5)``
  (``forward(x, train_flg=True)``, ``mask``), ``BatchNormalization(gamma, beta,
  momentum=0.9, running_mean=None, running_var=None)`` (``forward(x,
  train_flg=True)``, ``dgamma``, ``dbeta``, ``running_mean``, ``running_var``,
  ``input_shape``), ``Convolution(W, b, stride=1, pad=0)`` (``x``, ``col``,
  ``col_W``, ``dW``, ``db``) and ``Pooling(pool_h, pool_w, stride=2, pad=0)``
  (``x``, ``arg_max``; stride 2 by default, as the book's code since 2020);
- a layer reads ``self.W``/``self.b`` on every forward, so a network that shares
  them with its ``params`` dict and updates them in place (as the book's
  optimisers do) keeps working; ``b`` may be a number (ch07's ``apply_filter.py``
  passes 0): one bias for every output;
- ``im2col(input_data, filter_h, filter_w, stride=1, pad=0)`` -> (N*out_h*out_w,
  C*filter_h*filter_w), rows ordered (n, oh, ow) and columns (c, kh, kw), and its
  adjoint ``col2im(col, input_shape, filter_h, filter_w, stride=1, pad=0)``;
- ``SGD, Momentum, Nesterov, AdaGrad, RMSprop, Adam`` (see the module
  ``fastconv.compat._dlfs_optimizer`` for how close each is to the book's numbers).

Arrays of different dtypes (the book's float32 MNIST with float64 weights, a
float64 ``dout`` into a float32 layer) are promoted as NumPy would, where
fastconv's own ops refuse them. Where the results differ from the book's:

- dtypes: every result keeps the promoted dtype of its inputs; the book's
  ``im2col``/``col2im`` return float64 whatever they get, and so do its
  ``Convolution`` and ``Pooling`` backward passes;
- ``Pooling`` with ``pad`` pads with -inf and counts the padding in the output
  size (PyTorch's rule); the book pads with zeros and leaves it out of the
  output size, which fails for pad > 0;
- ``Relu.backward`` leaves ``dout`` as it is (the book's zeroes it in place);
- ``Sigmoid`` never overflows (the book's warns for x < -709);
- ``SoftmaxWithLoss``: the loss is the exact log-softmax, where the book's is
  ``-log(p + 1e-7)``, lower by ``log(1 + 1e-7 / p)`` per sample (about 1e-7 for a
  confident right answer; the book's never exceeds -log(1e-7) = 16.1);
  ``backward`` multiplies by dout (the book ignores it; both pass 1); the
  softmax output ``y`` is not kept (the op returns the gradient);
- ``Dropout`` draws from NumPy's global generator (``np.random``) as the book
  does, so a seeded run gets the book's masks, except that it keeps a unit
  whose draw equals dropout_ratio (a chance of at most 2**-53 per unit); it is
  fastconv's inverted dropout scaled back by 1 - dropout_ratio, so outputs
  can differ from the book's in the last bit;
- ``BatchNormalization``: the book's eps (1e-6) and running averages; 4-D
  inputs are normalised per feature (C*H*W of them), as the book's are; one
  sample per batch in train mode raises (the book returns beta).

Everything runs on CuPy arrays unchanged.
"""

from .. import functional as F
from ..backend import get_array_module, is_array, promoted
from ..im2col import col2im as _col2im
from ..im2col import im2col as _im2col
from ._batchnorm import course_batchnorm
from ._dlfs_optimizer import SGD, AdaGrad, Adam, Momentum, Nesterov, RMSprop
from ._lenient import lenient, lenient_backward

__all__ = ["Relu", "Sigmoid", "Affine", "SoftmaxWithLoss", "Dropout", "BatchNormalization",
           "Convolution", "Pooling", "im2col", "col2im",
           "SGD", "Momentum", "Nesterov", "AdaGrad", "RMSprop", "Adam"]

BOOK_BATCHNORM_EPS = 1e-6  # written 10e-7 in the book's code


def im2col(input_data, filter_h, filter_w, stride=1, pad=0):
    """The book's 2-D im2col: (N, C, H, W) -> (N*out_h*out_w, C*filter_h*filter_w)."""
    cols = _im2col(input_data, (filter_h, filter_w), stride=stride, padding=pad)
    n, k, positions = cols.shape
    return cols.transpose(0, 2, 1).reshape(n * positions, k)


def col2im(col, input_shape, filter_h, filter_w, stride=1, pad=0):
    """The adjoint of :func:`im2col`: sums each window's row back into an (N, C, H, W) array."""
    n, c = input_shape[0], input_shape[1]
    k = c * filter_h * filter_w
    if col.ndim != 2 or col.shape[1] != k or col.shape[0] % max(n, 1):
        raise ValueError(f"col2im: col has shape {tuple(col.shape)}, expected (N*out_h*out_w, "
                         f"{k}) for input_shape {tuple(input_shape)} and a "
                         f"{filter_h}x{filter_w} filter")
    cols = col.reshape(n, col.shape[0] // n, k).transpose(0, 2, 1)
    return _col2im(cols, tuple(input_shape), (filter_h, filter_w), stride=stride, padding=pad)


def _bias(b, w, outputs):
    """``b`` as an array of ``outputs`` values: the book adds b by broadcasting, so a number
    is one bias for every output (in NumPy's dtype for ``w + b``)."""
    if is_array(b):
        return b
    xp = get_array_module(w)
    return xp.full(outputs, b, dtype=xp.result_type(w, b))


class _Layer:
    """The cache of the last forward (wrapped for ``lenient_backward``) and its guard."""

    _cache = None

    def _take_cache(self):
        if self._cache is None:
            raise RuntimeError(f"{type(self).__name__}.backward called before forward")
        return self._cache


class Relu(_Layer):
    """The book's ReLU layer."""

    def __init__(self):
        self._x = None

    @property
    def mask(self):
        """``x <= 0`` for the x of the last forward (None before one)."""
        return None if self._x is None else self._x <= 0

    def forward(self, x):
        """``max(x, 0)``."""
        self._x = x
        out, self._cache = lenient(*F.relu_forward(x))
        return out

    def backward(self, dout):
        """dout where x > 0, else 0 (dout itself is not changed)."""
        return lenient_backward(F.relu_backward, dout, self._take_cache())


class Sigmoid(_Layer):
    """The book's sigmoid layer; ``out`` is the last forward's output."""

    def __init__(self):
        self.out = None

    def forward(self, x):
        """``1 / (1 + exp(-x))``, computed without overflow."""
        self.out, self._cache = lenient(*F.sigmoid_forward(x))
        return self.out

    def backward(self, dout):
        """``dout * out * (1 - out)``."""
        return lenient_backward(F.sigmoid_backward, dout, self._take_cache())


class Affine(_Layer):
    """The book's fully connected layer: ``x.reshape(N, -1) @ W + b``, W (D, M), b (M,)."""

    def __init__(self, W, b):
        self.W = W
        self.b = b
        self.x = None
        self.original_x_shape = None
        self.dW = None
        self.db = None

    def forward(self, x):
        """Flatten each sample of x and apply the affine map; returns (N, M)."""
        self.original_x_shape = x.shape
        self.x = x.reshape(x.shape[0], -1)
        out, self._cache = lenient(*F.linear_forward(
            *promoted(self.x, self.W, _bias(self.b, self.W, self.W.shape[-1]))))
        return out

    def backward(self, dout):
        """Returns dx in x's shape and sets ``self.dW`` and ``self.db``."""
        dx, self.dW, self.db = lenient_backward(F.linear_backward, dout, self._take_cache())
        return dx.reshape(self.original_x_shape)


class SoftmaxWithLoss(_Layer):
    """The book's softmax + cross-entropy layer: ``forward(x, t)`` returns the mean loss."""

    def __init__(self):
        self.loss = None
        self.t = None

    def forward(self, x, t):
        """Loss of scores x (N, C) for labels t (N,) or one-hot rows t (N, C)."""
        self.t = t
        t = get_array_module(x).asarray(t)
        labels = t.argmax(axis=1) if t.size == x.size else t
        self.loss, self._cache = F.softmax_cross_entropy(x, labels)
        return self.loss

    def backward(self, dout=1):
        """dL/dx = (softmax(x) - onehot(t)) / N, times dout."""
        return self._take_cache() * dout


class Dropout(_Layer):
    """The book's dropout (not inverted): train ``x * mask``, test ``x * (1 - dropout_ratio)``."""

    def __init__(self, dropout_ratio=0.5):
        self.dropout_ratio = dropout_ratio

    @property
    def mask(self):
        """The boolean keep mask of the last forward (all True in test mode; None before one)."""
        return None if self._cache is None else self._cache.cache.mask != 0

    def forward(self, x, train_flg=True):
        """Drop each unit with probability dropout_ratio in training; scale in test."""
        out, self._cache = lenient(*F.dropout_forward(x, p=self.dropout_ratio,
                                                      train=train_flg))
        # fastconv's dropout is inverted (kept units scaled by 1 / (1 - ratio));
        # the book's scales at test time instead: multiplying by 1 - ratio is that.
        return out * (1.0 - self.dropout_ratio)

    def backward(self, dout):
        """dout times the mask of the last forward (times 1 - ratio in test mode)."""
        dx = lenient_backward(F.dropout_backward, dout, self._take_cache())
        return dx * (1.0 - self.dropout_ratio)


class BatchNormalization(_Layer):
    """The book's batch normalisation of (N, D) or (N, C, H, W) inputs, per feature."""

    def __init__(self, gamma, beta, momentum=0.9, running_mean=None, running_var=None):
        self.gamma = gamma
        self.beta = beta
        self.momentum = momentum
        self.running_mean = running_mean
        self.running_var = running_var
        self.input_shape = None
        self.dgamma = None
        self.dbeta = None

    def forward(self, x, train_flg=True):
        """Normalise each of the (N, -1) features with the batch (train) or running statistics."""
        self.input_shape = x.shape
        out, self._cache, self.running_mean, self.running_var = course_batchnorm(
            F.batchnorm_forward, x.reshape(x.shape[0], -1), self.gamma, self.beta, train_flg,
            self.running_mean, self.running_var, self.momentum, BOOK_BATCHNORM_EPS, 0)
        return out.reshape(self.input_shape)

    def backward(self, dout):
        """Returns dx in x's shape and sets ``self.dgamma`` and ``self.dbeta``."""
        dx, self.dgamma, self.dbeta = lenient_backward(
            F.batchnorm_backward, dout.reshape(dout.shape[0], -1), self._take_cache())
        return dx.reshape(self.input_shape)


class Convolution(_Layer):
    """The book's convolution layer: weights ``W`` (FN, C, FH, FW), bias ``b`` (FN,)."""

    def __init__(self, W, b, stride=1, pad=0):
        self.W = W
        self.b = b
        self.stride = stride
        self.pad = pad
        self.x = None
        self.dW = None
        self.db = None

    @property
    def col(self):
        """``im2col`` of the last forward's x (made when read: the op does not keep it)."""
        fh, fw = self.W.shape[2:]
        return None if self.x is None else im2col(self.x, fh, fw, self.stride, self.pad)

    @property
    def col_W(self):
        """The weights as the (C*FH*FW, FN) matrix that multiplies ``col``."""
        return self.W.reshape(self.W.shape[0], -1).T

    def forward(self, x):
        """Convolve x (N, C, H, W); returns (N, FN, out_h, out_w)."""
        self.x = x
        out, self._cache = lenient(*F.conv2d_forward(
            *promoted(x, self.W, _bias(self.b, self.W, self.W.shape[0])),
            stride=self.stride, padding=self.pad))
        return out

    def backward(self, dout):
        """Returns dx and sets ``self.dW`` and ``self.db``."""
        dx, self.dW, self.db = lenient_backward(F.conv2d_backward, dout, self._take_cache())
        return dx


class Pooling(_Layer):
    """The book's max-pooling layer (``pad`` pads with -inf and counts in the output size)."""

    def __init__(self, pool_h, pool_w, stride=2, pad=0):
        self.pool_h = pool_h
        self.pool_w = pool_w
        self.stride = stride
        self.pad = pad
        self.x = None

    @property
    def arg_max(self):
        """Each window's maximum as its offset kh * pool_w + kw, windows ordered (n, oh, ow, c)."""
        if self._cache is None:
            return None
        return self._cache.cache.argmax.transpose(0, 2, 3, 1).reshape(-1)

    def forward(self, x):
        """Max over each pool_h x pool_w window of x (N, C, H, W)."""
        self.x = x
        out, self._cache = lenient(*F.max_pool2d_forward(
            x, (self.pool_h, self.pool_w), stride=self.stride, padding=self.pad))
        return out

    def backward(self, dout):
        """Returns dx: each window's gradient goes to its (first) maximum, as the book's argmax."""
        return lenient_backward(F.max_pool2d_backward, dout, self._take_cache())
