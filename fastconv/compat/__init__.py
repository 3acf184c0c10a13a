"""Drop-in front-ends with the APIs of the courses people come from.

- :mod:`fastconv.compat.cs231n`: CS231n assignment 2's layer functions
  (``conv_forward_naive``, ``conv_forward_fast``, ``max_pool_forward_fast``,
  ``batchnorm_forward``, the sandwich layers, ...), same names, dict parameters,
  return values;
- :mod:`fastconv.compat.dlfs`: "Deep Learning from Scratch" (book 1):
  ``Convolution``, ``Pooling``, the 2-D ``im2col``/``col2im`` and the optimisers
  with ``update(params, grads)``.

Both run on CuPy arrays unchanged (the GPU path) and on NumPy arrays.
Import the submodule you need; nothing is imported eagerly here.
"""
