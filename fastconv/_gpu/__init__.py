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
- ``conv3d``, ``pool3d``: the 3-D convolution and pools, as array code on CuPy arrays (strided
  views, copies and slab adds: :mod:`fastconv._window_arrays`), not custom kernels, the
  products through :mod:`.matmul`;
- ``scatter``: sums of values sent to flat positions without atomics (a sort,
  then passes over distinct positions);
- ``batchnorm``, ``activation``: CuPy's own elementwise and reduction kernels.

Importing this package never imports CuPy: the code is written against the
arrays' own module.
"""

from . import activation, batchnorm, conv, conv3d, conv_transpose, im2col, pool, pool3d, scatter

__all__ = ["activation", "batchnorm", "conv", "conv3d", "conv_transpose", "im2col", "pool",
           "pool3d", "scatter"]
