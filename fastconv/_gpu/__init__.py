"""The CuPy backend: the GPU arithmetic of each op, over the CUDA kernels and cuBLAS.

Each module has the same function names as its twin in :mod:`fastconv._cpu`.
The index work runs in the kernels of ``kernels/*.cu`` (loaded and launched by
:mod:`fastconv._cuda`), the convolution's products in cuBLAS through one
wrapper (:mod:`.gemm`, with its NumPy model for NumPy arrays; :mod:`.matmul`
lays them out):

- ``im2col``, ``conv``, ``pool``: the kernels and the cuBLAS products;
- ``conv3d``: the 3-D convolution's role, served by ``conv`` itself, on the vol2col and
  col2vol kernels where 2-D takes im2col and col2im (as on the CPU, one code path);
- ``depthwise``: the 2-D depthwise convolution (groups == C) on its own kernels, which
  ``conv`` dispatches to;
- ``conv_transpose``: the transposed convolution on the convolution's kernels;
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

from . import activation, batchnorm, conv, conv_transpose, im2col, interpolate, pool, pool3d
from . import scatter, unpool
from . import conv as conv3d  # one code path serves 2-D and 3-D, the kernels by the axes

__all__ = ["activation", "batchnorm", "conv", "conv3d", "conv_transpose", "im2col", "interpolate",
           "pool", "pool3d", "scatter", "unpool"]
