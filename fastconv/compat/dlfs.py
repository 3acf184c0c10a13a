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

Everything runs on CuPy arrays unchanged. The layers are written in
``_dlfs_layers`` and ``_dlfs_conv`` (with ``im2col``/``col2im``), the
optimisers in ``_dlfs_optimizer``.

Examples
--------
>>> import numpy as np
>>> from fastconv.compat.dlfs import Convolution, Pooling, Relu
>>> layers = [Convolution(np.ones((4, 3, 3, 3)), 0, pad=1), Relu(), Pooling(2, 2)]
>>> x = np.ones((2, 3, 8, 8))
>>> for layer in layers:
...     x = layer.forward(x)
>>> dout = np.ones_like(x)
>>> for layer in reversed(layers):
...     dout = layer.backward(dout)
>>> x.shape, dout.shape
((2, 4, 4, 4), (2, 3, 8, 8))
"""

from ._dlfs_conv import BatchNormalization, Convolution, Pooling, col2im, im2col
from ._dlfs_layers import Affine, Dropout, Relu, Sigmoid, SoftmaxWithLoss
from ._dlfs_optimizer import SGD, AdaGrad, Adam, Momentum, Nesterov, RMSprop

__all__ = ["Relu", "Sigmoid", "Affine", "SoftmaxWithLoss", "Dropout", "BatchNormalization",
           "Convolution", "Pooling", "im2col", "col2im",
           "SGD", "Momentum", "Nesterov", "AdaGrad", "RMSprop", "Adam"]
