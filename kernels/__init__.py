"""fastconv's CUDA C kernels, installed as package data of ``fastconv._kernels``.

The sources live in the repository's top-level kernels/ directory; the
package fastconv/_kernels is a link to it, so editable installs and wheels
both load them from the package (see fastconv/_cuda.py).
"""
