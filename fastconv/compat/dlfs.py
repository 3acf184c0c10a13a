"""The "Deep Learning from Scratch" (book 1, ``common/``) API on fastconv.

Replace ``from common.layers import Convolution, Pooling``, ``from common.util
import im2col, col2im`` and ``from common.optimizer import *`` with imports from
here. Same constructors, attributes and methods as the book:

- ``Convolution(W, b, stride=1, pad=0)``: ``forward(x)``, ``backward(dout)`` returning
  dx and setting ``dW``/``db``; it reads ``self.W``/``self.b`` on every forward, so a
  network that shares them with its ``params`` dict and updates them in place
  (as the book's optimisers do) keeps working; x and W of different dtypes (the
  book's float32 MNIST with float64 weights) are promoted as NumPy would;
- ``Pooling(pool_h, pool_w, stride=2, pad=0)`` (max pooling; the stride defaults
  to 2, the project's contract, where the book's ``common/layers.py`` defaults to
  1: the book's networks always pass ``stride`` explicitly). Unlike the book, ``pad`` counts in the output size and pads with
  -inf (PyTorch's rule); the book ignores it in the output size and pads with zeros;
- ``im2col(input_data, filter_h, filter_w, stride=1, pad=0)`` -> (N*out_h*out_w,
  C*filter_h*filter_w), rows ordered (n, oh, ow) and columns (c, kh, kw), and its
  adjoint ``col2im(col, input_shape, filter_h, filter_w, stride=1, pad=0)`` (sums
  overlapping windows); both keep the input's dtype (the book's return float64);
- ``SGD, Momentum, Nesterov, AdaGrad, RMSprop, Adam`` with the book's arguments
  and defaults and ``update(params, grads)``, which updates the arrays of the
  ``params`` dict in place; state is created on the first update, on the
  parameters' device. They run fastconv.optim's algorithms with the book's
  eps (1e-7). Identical to the book's numbers for SGD, AdaGrad and RMSprop, and
  for Momentum while the learning rate is constant. Nesterov follows the formula
  of the paper the book cites (arXiv:1212.0901, as PyTorch: ``w += mu**2 * v_old -
  (1 + mu) * lr * g``), where the book's code uses the already-updated velocity;
  Adam adds eps after the bias correction (the book adds it to the uncorrected
  ``sqrt(v)``), a difference of order eps.

Everything runs on CuPy arrays unchanged.
"""

from .. import functional as F
from .. import optim
from ..backend import promoted
from ..im2col import col2im as _col2im
from ..im2col import im2col as _im2col

__all__ = ["Convolution", "Pooling", "im2col", "col2im",
           "SGD", "Momentum", "Nesterov", "AdaGrad", "RMSprop", "Adam"]

BOOK_EPS = 1e-7


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


class Convolution:
    """The book's convolution layer: weights ``W`` (FN, C, FH, FW), bias ``b`` (FN,)."""

    def __init__(self, W, b, stride=1, pad=0):
        self.W = W
        self.b = b
        self.stride = stride
        self.pad = pad
        self.dW = None
        self.db = None
        self._cache = None

    def forward(self, x):
        """Convolve x (N, C, H, W); returns (N, FN, out_h, out_w)."""
        out, self._cache = F.conv2d_forward(*promoted(x, self.W, self.b), stride=self.stride,
                                            padding=self.pad)
        return out

    def backward(self, dout):
        """Returns dx and sets ``self.dW`` and ``self.db``."""
        if self._cache is None:
            raise RuntimeError("Convolution.backward called before forward")
        dx, self.dW, self.db = F.conv2d_backward(dout, self._cache)
        return dx


class Pooling:
    """The book's max-pooling layer (``pad`` pads with -inf and counts in the output size)."""

    def __init__(self, pool_h, pool_w, stride=2, pad=0):
        self.pool_h = pool_h
        self.pool_w = pool_w
        self.stride = stride
        self.pad = pad
        self._cache = None

    def forward(self, x):
        """Max over each pool_h x pool_w window of x (N, C, H, W)."""
        out, self._cache = F.max_pool2d_forward(x, (self.pool_h, self.pool_w),
                                                stride=self.stride, padding=self.pad)
        return out

    def backward(self, dout):
        """Returns dx: each window's gradient goes to its (first) maximum, as the book's argmax."""
        if self._cache is None:
            raise RuntimeError("Pooling.backward called before forward")
        return F.max_pool2d_backward(dout, self._cache)


class _BookOptimizer:
    """``update(params, grads)`` over dicts, in place, backed by a fastconv.optim optimiser.

    The optimiser is built on the first update; ``lr`` may be changed between updates.
    """

    def __init__(self, lr):
        self.lr = lr
        self._optimizer = None

    def _build(self, params):
        raise NotImplementedError

    def update(self, params, grads):
        """Update every array in ``params`` in place from ``grads`` (same keys)."""
        if self._optimizer is None:
            self._optimizer = self._build(params)
        self._optimizer.params = params
        self._optimizer.lr = self.lr
        self._optimizer.step(grads)


class SGD(_BookOptimizer):
    """``params[k] -= lr * grads[k]``."""

    def __init__(self, lr=0.01):
        super().__init__(lr)

    def _build(self, params):
        return optim.SGD(params, lr=self.lr)


class Momentum(_BookOptimizer):
    """Momentum SGD: ``v = momentum * v - lr * g; w += v``."""

    def __init__(self, lr=0.01, momentum=0.9):
        super().__init__(lr)
        self.momentum = momentum

    def _build(self, params):
        return optim.SGD(params, lr=self.lr, momentum=self.momentum)


class Nesterov(_BookOptimizer):
    """Nesterov's accelerated gradient (arXiv:1212.0901's form, see the module docstring)."""

    def __init__(self, lr=0.01, momentum=0.9):
        super().__init__(lr)
        self.momentum = momentum

    def _build(self, params):
        return optim.SGD(params, lr=self.lr, momentum=self.momentum, nesterov=True)


class AdaGrad(_BookOptimizer):
    """AdaGrad: ``h += g**2; w -= lr * g / (sqrt(h) + 1e-7)``."""

    def __init__(self, lr=0.01):
        super().__init__(lr)

    def _build(self, params):
        return optim.AdaGrad(params, lr=self.lr, eps=BOOK_EPS)


class RMSprop(_BookOptimizer):
    """RMSprop: ``h = decay_rate * h + (1 - decay_rate) * g**2; w -= lr * g / (sqrt(h) + 1e-7)``."""

    def __init__(self, lr=0.01, decay_rate=0.99):
        super().__init__(lr)
        self.decay_rate = decay_rate

    def _build(self, params):
        return optim.RMSProp(params, lr=self.lr, alpha=self.decay_rate, eps=BOOK_EPS)


class Adam(_BookOptimizer):
    """Adam with bias correction (eps 1e-7 after the correction, see the module docstring)."""

    def __init__(self, lr=0.001, beta1=0.9, beta2=0.999):
        super().__init__(lr)
        self.beta1 = beta1
        self.beta2 = beta2

    def _build(self, params):
        return optim.Adam(params, lr=self.lr, betas=(self.beta1, self.beta2), eps=BOOK_EPS)
