"""2-D transposed convolution on the GPU (CuPy): ``xp.matmul`` and the im2col/col2im CUDA kernels.

``geometry`` is that of the convolution whose input is the transposed convolution's output
(less the rows and columns past the last window) and whose output is x's size
(:func:`fastconv.functional.conv_transpose.transposed_geometry`).

Forward, per chunk: the columns W^T @ x (n, G, F/G*KH*KW, H*W), the weights shared by the
images through broadcasting, then the gather-style ``col2im`` kernel (each output element sums
what it receives: no atomics, the same bits every run) into the part of ``out`` the windows
reach; where output_padding leaves rows or columns past them, through a contiguous buffer. The
front allocates ``out`` and adds the bias.

Backward, per chunk: the ``im2col`` kernel on dout, dx = W @ cols per group, and the per-image
dW products x @ cols^T (in float32 for float16, so no partial is rounded to float16) summed into
dw.

Plain array code against the arrays' module ``xp`` and :mod:`fastconv._cuda`'s wrappers, so the
tests run it on NumPy arrays with the kernels emulated on the CPU. Each algorithm is an object
with a ``plan``, ``run`` and ``result``, driven by :func:`fastconv.workspace.run_in_chunks`.
"""

from __future__ import annotations

from typing import Any

from .. import _cuda
from .._typing import Array
from ..backend import accumulator_dtype, get_array_module
from ..shapes import WindowGeometry
from ..workspace import Buffer


def forward(x: Array, w: Array, geometry: WindowGeometry, groups: int, out: Array) -> _Forward:
    """The forward algorithm of one call: it writes ``out[:, :, :H', :W']``, (H', W') the
    geometry's size."""
    return _Forward(x, w, geometry, groups, out)


def backward(dout: Array, cache: Any) -> _Backward:
    """The backward algorithm of one call (``cache``: a
    :class:`fastconv.functional.conv_transpose.ConvTransposeCache`); its result is (dx, dw)."""
    return _Backward(dout, cache)


def _grouped(a, groups):
    """(n, C, H, W) as (n, G, C/G, H*W): a view of a C-contiguous ``a``, else a contiguous copy."""
    n, c, h, w = a.shape
    return get_array_module(a).ascontiguousarray(a).reshape(n, groups, c // groups, h * w)


def _weight_matrix(w, groups):
    """w (C, F/G, KH, KW) as (G, C/G, F/G*KH*KW)."""
    return get_array_module(w).ascontiguousarray(w).reshape(groups, w.shape[0] // groups,
                                                            w[0].size)


def _as_images(cols, channels, geometry):
    """Columns (n, G, F/G*KH*KW, H*W) as the kernels' (n, F, KH, KW, H, W)."""
    return cols.reshape((cols.shape[0], channels) + geometry.kernel + geometry.out)


class _Forward:
    """cols = W^T @ x per chunk and group, then col2im into the reached part of the output."""

    def __init__(self, x, w, geometry, groups, out):
        xp = get_array_module(x)
        self.geometry, self.out = geometry, out
        self.x = _grouped(x, groups)
        self.w_t = xp.ascontiguousarray(_weight_matrix(w, groups).transpose(0, 2, 1))
        self.plan = (Buffer("cols", self.w_t.shape[:2] + (x.shape[2] * x.shape[3],), x.dtype),)
        if tuple(out.shape[2:]) != geometry.size:  # the kernel writes contiguous planes
            self.plan += (Buffer("reached", out.shape[1:2] + geometry.size, x.dtype),)

    def run(self, chunk, buffers):
        xp = get_array_module(self.x)
        cols = xp.matmul(self.w_t, self.x[chunk], out=buffers["cols"])
        reached = buffers.get("reached")
        target = self.out[chunk] if reached is None else reached
        _cuda.col2im_into(_as_images(cols, self.out.shape[1], self.geometry), self.geometry,
                          target)
        if reached is not None:
            height, width = self.geometry.size
            self.out[chunk, :, :height, :width] = reached

    def result(self, workspace):
        return None


class _Backward:
    """Per chunk: the columns of dout, dx = W @ cols, dW += x @ cols^T; dw cast at the end."""

    def __init__(self, dout, cache):
        xp = get_array_module(dout, cache.x)
        x, w, geometry, groups = cache.x, cache.w, cache.geometry, cache.groups
        self.geometry, self.groups, self.w = geometry, groups, w
        height, width = geometry.size
        self.dout = dout[:, :, :height, :width]  # the rows past the windows reach nothing
        self.x = _grouped(x, groups)
        self.w_mat = _weight_matrix(w, groups)
        self.dx = xp.empty(x.shape, dtype=x.dtype)
        acc = accumulator_dtype(x.dtype)
        self.dw = xp.zeros(self.w_mat.shape, dtype=acc)
        self.plan = (Buffer("cols", (groups, self.w_mat.shape[2], x.shape[2] * x.shape[3]),
                            x.dtype),
                     Buffer("dW products", self.w_mat.shape, acc))

    def run(self, chunk, buffers):
        xp = get_array_module(self.x)
        cols = buffers["cols"]
        _cuda.im2col_into(xp.ascontiguousarray(self.dout[chunk]), self.geometry,
                          _as_images(cols, self.dout.shape[1], self.geometry))
        xp.matmul(self.w_mat, cols, out=_grouped(self.dx[chunk], self.groups))
        acc = self.dw.dtype
        products = xp.matmul(self.x[chunk].astype(acc, copy=False),
                             cols.astype(acc, copy=False).transpose(0, 1, 3, 2),
                             out=buffers["dW products"])
        self.dw += products.sum(axis=0)

    def result(self, workspace):
        return self.dx, self.dw.reshape(self.w.shape).astype(self.w.dtype, copy=False)
