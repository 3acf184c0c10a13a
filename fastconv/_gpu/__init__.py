"""The CuPy backend: the GPU arithmetic of each op, over the CUDA kernels and cuBLAS.

``im2col``, ``conv`` and ``pool`` have the same function names as
:mod:`fastconv._cpu`; the index work runs in the kernels of ``kernels/*.cu``
(loaded and launched by :mod:`fastconv._cuda`), the products in
``xp.matmul``. Importing this package never imports CuPy: the code is written
against the arrays' own module.
"""

from . import conv, im2col, pool

__all__ = ["conv", "im2col", "pool"]
