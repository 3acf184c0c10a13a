"""The CuPy backend: the GPU arithmetic of each op, over the CUDA kernels and cuBLAS.

Each module has the same function names as its twin in :mod:`fastconv._cpu`.
The index work runs in the kernels of ``kernels/*.cu`` (loaded and launched by
:mod:`fastconv._cuda`), the convolution's products in cuBLAS through one
wrapper (:mod:`.gemm`, with its NumPy model for NumPy arrays; :mod:`.matmul`
lays them out):

- ``im2col``, ``conv``, ``pool``: the kernels and the cuBLAS products;
- ``depthwise``: the depthwise convolution (groups == C) on its own kernels, which
  ``conv`` dispatches to;
- ``conv_transpose``: the transposed convolution on the convolution's kernels;
- ``conv3d``: the 3-D convolution on its vol2col and col2vol kernels, the products through
  :mod:`.matmul`;
- ``pool3d``: the 3-D max and average pools on their own kernels, as ``pool``'s with a depth
  axis;
- ``unpool``: max unpooling and the adaptive max-pool gradient on gather kernels (one
  thread per output cell over the windows holding it), and the adaptive max pool's forward
  on one thread per pooled element, the CPU path's bits;
- ``scatter``: sums of values sent to flat positions without atomics (a sort,
  then passes over distinct positions), for the indices the gathers do not take;
- ``batchnorm``, ``activation``: CuPy's own elementwise and reduction kernels;
- ``interpolate``: nearest and bilinear resizing on its own kernels, the CPU path's bits.

Importing this package never imports CuPy: the code is written against the
arrays' own module.
"""

from . import activation, batchnorm, conv, conv3d, conv_transpose, im2col, interpolate, pool
from . import pool3d, scatter, unpool

__all__ = ["activation", "batchnorm", "conv", "conv3d", "conv_transpose", "im2col", "interpolate",
           "pool", "pool3d", "scatter", "unpool"]
