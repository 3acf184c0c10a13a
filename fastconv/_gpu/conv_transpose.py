"""2-D transposed convolution on the GPU (CuPy): cuBLAS products and the im2col/col2im CUDA kernels.

``geometry`` is that of the convolution whose input is the transposed convolution's output
(less the rows and columns past the last window) and whose output is x's size
(:func:`fastconv.functional.conv_transpose.transposed_geometry`).

Every product goes through :func:`fastconv._gpu.matmul.matmul` (strided-batched cuBLAS, as
the convolution's): the weights (1, G, C/G, F/G*KH*KW) are shared by the images through a zero
batch stride and transposed by cuBLAS's flag, never copied, and float16 is multiplied as
float16 with float32 accumulation.

Forward, per chunk: the columns W^T @ x (n, G, F/G*KH*KW, H*W), then the gather-style ``col2im``
kernel (each output element sums what it receives: no atomics, the same bits every run) into
the part of ``out`` the windows reach; where output_padding leaves rows or columns past them,
through a contiguous buffer. The front allocates ``out`` and adds the bias.

Backward, per chunk: the ``im2col`` kernel on dout, dx = W @ cols, and each image's dW product
x @ cols^T into partials (n, C, F/G*KH*KW + 1) in the accumulator dtype (float32 for float16,
so no partial is rounded to float16), accumulated over the chunks in place by the GEMM; at the
end one kernel sums them over the images in ascending order and rounds dw once
(kernels/weight_sum.cu; the last slot, the convolution's bias slot, stays unused: the front
sums db).

Written against the arrays' module ``xp`` and :mod:`fastconv._cuda`'s wrappers, so the tests
run it on NumPy arrays with the kernels emulated on the CPU and the products in the NumPy
model of cuBLAS. Each algorithm is an object
with a ``plan``, ``run`` and ``result``, driven by :func:`fastconv.workspace.run_in_chunks`.
"""

from __future__ import annotations

import math
from typing import Any

from .. import _cuda
from .._typing import Array
from .._window_arrays import grouped, ungrouped
from ..backend import accumulator_dtype, get_array_module
from ..shapes import WindowGeometry
from ..workspace import Buffer, chunk_of
from .matmul import matmul


def forward(x: Array, w: Array, geometry: WindowGeometry, groups: int, out: Array) -> _Forward:
    """The forward algorithm of one call: it writes ``out[:, :, :H', :W']``, (H', W') the
    geometry's size."""
    return _Forward(x, w, geometry, groups, out)


def backward(dout: Array, cache: Any) -> _Backward:
    """The backward algorithm of one call (``cache``: a
    :class:`fastconv.functional.conv_transpose.ConvTransposeCache`); its result is (dx, dw)."""
    return _Backward(dout, cache)


def _weight_matrix(w, groups):
    """w (C, F/G, KH, KW) as (1, G, C/G, F/G*KH*KW): one matrix per group, shared by the images."""
    return get_array_module(w).ascontiguousarray(w).reshape(1, groups, w.shape[0] // groups,
                                                            math.prod(w.shape[1:]))


def _as_images(cols, channels, geometry):
    """Columns (n, G, F/G*KH*KW, H*W) as the kernels' (n, F, KH, KW, H, W)."""
    return cols.reshape((cols.shape[0], channels) + geometry.kernel + geometry.out)


class _Forward:
    """cols = W^T @ x per chunk and group, then col2im into the reached part of the output."""

    def __init__(self, x, w, geometry, groups, out):
        self.geometry, self.out = geometry, out
        self.x = grouped(x, groups)
        self.w_mat = _weight_matrix(w, groups)
        self.plan = (Buffer("cols", (groups, self.w_mat.shape[3], x.shape[2] * x.shape[3]),
                            x.dtype),)
        if tuple(out.shape[2:]) != geometry.size:  # the kernel writes contiguous planes
            self.plan += (Buffer("reached", out.shape[1:2] + geometry.size, x.dtype),)

    def run(self, chunk, buffers):
        cols = matmul(self.w_mat, chunk_of(self.x, chunk), buffers["cols"], transpose_a=True)
        reached = buffers.get("reached")
        target = chunk_of(self.out, chunk) if reached is None else reached
        _cuda.col2im_into(_as_images(cols, self.out.shape[1], self.geometry), self.geometry,
                          target)
        if reached is not None:
            height, width = self.geometry.size
            self.out[chunk, :, :height, :width] = reached

    def result(self, workspace):
        return None


class _Backward:
    """Per chunk: the columns of dout, dx = W @ cols, dW partials += x @ cols^T; at the end dw
    from the partials."""

    def __init__(self, dout, cache):
        xp = get_array_module(dout, cache.x)
        x, w, geometry, groups = cache.x, cache.w, cache.geometry, cache.groups
        self.geometry, self.groups, self.w = geometry, groups, w
        height, width = geometry.size
        self.dout = dout[:, :, :height, :width]  # the rows past the windows reach nothing
        self.x = grouped(x, groups)
        self.w_mat = _weight_matrix(w, groups)
        self.dx = xp.empty(x.shape, dtype=x.dtype)
        _, groups, c_group, taps = self.w_mat.shape
        self.plan = (Buffer("cols", (groups, taps, x.shape[2] * x.shape[3]), x.dtype),
                     Buffer("partials", (groups, c_group, taps + 1), accumulator_dtype(x.dtype)))

    def run(self, chunk, buffers):
        xp = get_array_module(self.x)
        cols, partials = buffers["cols"], buffers["partials"]
        _cuda.im2col_into(xp.ascontiguousarray(chunk_of(self.dout, chunk)), self.geometry,
                          _as_images(cols, self.dout.shape[1], self.geometry))
        matmul(self.w_mat, cols, grouped(chunk_of(self.dx, chunk), self.groups))
        # Partials i sum image i of every chunk: the first chunk, the largest, writes every
        # image's, later ones add to theirs.
        matmul(chunk_of(self.x, chunk), cols, partials, transpose_b=True,
               accumulate=chunk.start > 0, out_columns=self.w_mat.shape[3])

    def result(self, workspace):
        dw, _ = _cuda.weight_sum(ungrouped(workspace.buffers["partials"]), self.w.shape,
                                 self.x.dtype, has_bias=False)
        return self.dx, dw
