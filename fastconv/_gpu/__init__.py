"""The CuPy backend: the GPU arithmetic of each op, over the CUDA kernels and cuBLAS.

``im2col``, ``conv`` and ``pool`` have the same function names as
:mod:`fastconv._cpu`; the index work runs in the kernels of ``kernels/*.cu``
(loaded and launched by :mod:`fastconv._cuda`), the convolution's products in
cuBLAS through one wrapper (:mod:`.gemm`, with its NumPy model for NumPy
arrays; :mod:`.matmul` lays them out). Importing this package never imports
CuPy: the code is written against the arrays' own module.
"""

from . import conv, im2col, pool

__all__ = ["conv", "im2col", "pool"]
