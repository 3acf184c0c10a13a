"""The NumPy backend: the CPU arithmetic of each op, module by module.

``im2col`` (columns and their sums, threaded over the batch), ``conv``
(im2col + GEMM algorithms) and ``pool`` (max and average pooling), with the
same function names as :mod:`fastconv._gpu`; the op fronts in
:mod:`fastconv.functional` pick one of the two by the arrays' device
(:func:`fastconv._backends.backend_for`). ``threads`` splits memory-bound
work over the batch.
"""

from . import conv, im2col, pool

__all__ = ["conv", "im2col", "pool"]
