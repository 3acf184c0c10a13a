"""Drop-in front-ends with the APIs of the courses people come from.

- :mod:`fastconv.compat.cs231n`: CS231n assignment 2's ``layers``, ``fast_layers``
  and ``layer_utils`` functions (``conv_forward_naive``, ``conv_forward_fast``,
  ``layernorm_forward``, ``spatial_groupnorm_forward``, the sandwich layers, ...),
  same names, dict parameters, return values;
- :mod:`fastconv.compat.im2col_cython`: the course's ``im2col_cython`` extension
  functions, for when the extension does not build;
- :mod:`fastconv.compat.dlfs`: "Deep Learning from Scratch" (book 1): every layer
  of ``common/layers.py``, the 2-D ``im2col``/``col2im`` and the optimisers with
  ``update(params, grads)``.

Thin adapters over fastconv's ops, layers and optimisers; the dtype leniency of
the code they replace (NumPy promotion of mixed dtypes) lives here only. They
run on CuPy arrays unchanged (the GPU path) and on NumPy arrays. Import the
submodule you need; nothing is imported eagerly here.
"""
