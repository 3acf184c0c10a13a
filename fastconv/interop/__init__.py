"""Bridges between fastconv and other array frameworks.

- :mod:`fastconv.interop.torch`: fastconv's convolution and pooling ops as
  ``torch.autograd.Function``s, so they can sit inside a PyTorch model; the
  tensors' memory is shared through DLPack (needs the ``torch`` extra).

Nothing is imported eagerly here: ``import fastconv`` never imports torch.
"""
