"""The NumPy backend: the CPU arithmetic of each op, module by module.

Each module has the same function names as its twin in :mod:`fastconv._gpu`;
the op fronts in :mod:`fastconv.functional` pick one of the two by the arrays'
device (:func:`fastconv._backends.backend_for`):

- ``im2col``: columns and their sums, threaded over the batch;
- ``conv``: the im2col + GEMM convolution algorithms;
- ``conv_transpose``: the transposed convolution, on the convolution's passes;
- ``pool``: max and average pooling;
- ``conv3d``, ``pool3d``: the 3-D ops' roles, served by ``conv`` and ``pool`` themselves, whose
  code runs any number of spatial axes (the GPU's ``pool3d`` is a module of its own, over
  its own kernels);
- ``scatter``: sums of values sent to flat positions (max unpooling, the
  adaptive max-pool gradient), in one ``bincount``;
- ``unpool``: max unpooling and the adaptive max-pool gradient, as ``scatter``'s sums, and
  the adaptive max pool's forward as ``take`` gathers;
- ``batchnorm``: per-channel statistics and normalisation on NCHW in
  cache-sized blocks;
- ``activation``: relu and leaky relu, split over threads;
- ``interpolate``: nearest and bilinear resizing as ``take`` gathers per axis.

``threads`` splits memory-bound work over the batch.
"""

from . import activation, batchnorm, conv, conv_transpose, im2col, interpolate, pool, scatter
from . import unpool
from . import conv as conv3d, pool as pool3d  # one N-d code path serves 3-D too

__all__ = ["activation", "batchnorm", "conv", "conv3d", "conv_transpose", "im2col", "interpolate",
           "pool", "pool3d", "scatter", "unpool"]
