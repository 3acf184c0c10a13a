"""2-D convolution on the GPU (CuPy): the im2col CUDA kernel and one batched cuBLAS GEMM per chunk.

Forward: the ``im2col`` kernel writes a chunk's columns into a packed workspace
buffer (n, G, C/G*KH*KW, OH*OW) and ``xp.matmul`` of the weights (G, F/G,
C/G*KH*KW) with it gives the output already in contiguous NCHW order; the bias
is then added in one pass (cheap on the GPU, so the columns stay packed for
the kernel). Backward: the columns again, dW and the column gradient by
batched GEMMs, dx by the gather-style ``col2im`` kernel (each input element
sums what it contributed to: no atomics, the same bits every run). A 1x1,
stride-1, unpadded convolution skips the kernels: the input is its own column
matrix.

The code is written against the arrays' module ``xp`` and the kernels'
:class:`fastconv._cuda.Launcher`, so the tests run it on NumPy arrays with the
kernels emulated on the CPU. Each algorithm is an object with a ``plan`` (its
workspace buffers), ``run(chunk, buffers)`` and ``result()``, driven by
:func:`fastconv.workspace.run_in_chunks`.
"""

from .. import _cuda
from ..backend import accumulator_dtype, get_array_module
from ..workspace import Buffer


def forward(x, w, b, geometry, groups):
    """The forward algorithm of one call: pointwise for a 1x1 identity geometry, else im2col."""
    if geometry.is_identity:
        return _Forward(x, w, b, geometry, groups, columns=_pointwise_columns)
    return _Forward(x, w, b, geometry, groups, columns=_kernel_columns)


def backward(dout, cache, needs_input_grad=True):
    """The backward algorithm of one call (``cache``: a :class:`fastconv.functional.conv.ConvCache`).

    Without ``needs_input_grad`` it computes dw and db only (dx is None).
    """
    if cache.geometry.is_identity:
        return _PointwiseBackward(dout, cache, needs_input_grad)
    return _Im2colBackward(dout, cache, needs_input_grad)


def _grouped(a, groups):
    """(n, C, H, W) as (n, G, C/G, H*W): a view of a C-contiguous ``a``, else a contiguous copy."""
    n, c, h, w = a.shape
    return get_array_module(a).ascontiguousarray(a).reshape(n, groups, c // groups, h * w)


def _weight_matrix(w, groups):
    """w (F, C/G, KH, KW) as (G, F/G, C/G*KH*KW)."""
    return get_array_module(w).ascontiguousarray(w).reshape(groups, w.shape[0] // groups,
                                                            w[0].size)


def _columns_plan(x, geometry, groups):
    """The packed column buffer of one image, (G, C/G*KH*KW, OH*OW)."""
    (kh, kw), (oh, ow) = geometry.kernel, geometry.out
    return (Buffer("cols", (groups, x.shape[1] // groups * kh * kw, oh * ow), x.dtype),)


def _kernel_columns(x, geometry, groups, buffers):
    """The im2col kernel's columns of the chunk ``x`` in ``buffers["cols"]``."""
    cols = buffers["cols"]
    _cuda.im2col_into(x, geometry, cols.reshape(x.shape[:2] + geometry.kernel + geometry.out))
    return cols


def _pointwise_columns(x, geometry, groups, buffers):
    """x itself as its columns (a 1x1, stride-1, unpadded kernel)."""
    return _grouped(x, groups)


class _Forward:
    """out = W @ cols per chunk and group, then the bias in one pass."""

    def __init__(self, x, w, b, geometry, groups, columns):
        xp = get_array_module(x)
        self.x, self.b, self.geometry, self.groups, self.columns = x, b, geometry, groups, columns
        self.w_mat = _weight_matrix(w, groups)
        self.plan = () if columns is _pointwise_columns else _columns_plan(x, geometry, groups)
        self.out = xp.empty((x.shape[0], w.shape[0]) + geometry.out, dtype=x.dtype)

    def run(self, chunk, buffers):
        cols = self.columns(self.x[chunk], self.geometry, self.groups, buffers)
        get_array_module(cols).matmul(self.w_mat, cols,
                                      out=_grouped(self.out[chunk], self.groups))

    def result(self, workspace):
        """The output; the columns are not held (device memory is scarcer: the backward
        recomputes them)."""
        if self.b is not None:
            self.out += self.b.reshape(1, -1, 1, 1)
        return self.out, None


class _Backward:
    """What both backward algorithms share: W^T, dout per group, dW over the chunks, db.

    dW is one batched GEMM per chunk (one cuBLAS call beats many small ones),
    against dout transposed into a copy, output-sized, far smaller than the
    columns; it accumulates in the accumulator dtype (float32 for float16).
    """

    def __init__(self, dout, cache, needs_input_grad):
        xp = get_array_module(dout, cache.x)
        x, w, groups = cache.x, cache.w, cache.groups
        self.needs_input_grad = needs_input_grad
        self.x, self.w, self.geometry, self.groups = x, w, cache.geometry, groups
        self.dout = _grouped(dout, groups)
        self.w_t = xp.ascontiguousarray(_weight_matrix(w, groups).transpose(0, 2, 1))
        self.dw = xp.zeros((groups, w.shape[0] // groups, w[0].size),
                           dtype=accumulator_dtype(x.dtype))
        self.db = None
        if cache.has_bias:
            self.db = dout.sum(axis=(0, 2, 3), dtype=self.dw.dtype).astype(x.dtype)
        self.dx = xp.empty(x.shape, dtype=x.dtype) if needs_input_grad else None
        (oh, ow), f_group = cache.geometry.out, w.shape[0] // groups
        self.plan = (Buffer("dout^T", (groups, oh * ow, f_group), x.dtype),
                     Buffer("dW products", (groups, w[0].size, f_group), x.dtype))

    def _add_weight_grad(self, chunk, cols, buffers):
        xp = get_array_module(cols)
        dout_t = buffers["dout^T"]
        xp.copyto(dout_t, self.dout[chunk].transpose(0, 1, 3, 2))
        products = xp.matmul(cols, dout_t, out=buffers["dW products"])
        self.dw += products.sum(axis=0, dtype=self.dw.dtype).transpose(0, 2, 1)

    def result(self, workspace):
        xp = get_array_module(self.dw)
        dw = xp.ascontiguousarray(self.dw).reshape(self.w.shape).astype(self.w.dtype, copy=False)
        return self.dx, dw, self.db


class _PointwiseBackward(_Backward):
    """dW from x as the columns, dx = W^T @ dout."""

    def run(self, chunk, buffers):
        x_cols = _grouped(self.x[chunk], self.groups)
        self._add_weight_grad(chunk, x_cols, buffers)
        if self.needs_input_grad:
            get_array_module(x_cols).matmul(self.w_t, self.dout[chunk],
                                            out=_grouped(self.dx[chunk], self.groups))


class _Im2colBackward(_Backward):
    """Per chunk: the columns again, dW += dout @ cols^T, dcols = W^T @ dout, dx by col2im."""

    def __init__(self, dout, cache, needs_input_grad):
        super().__init__(dout, cache, needs_input_grad)
        (oh, ow) = self.geometry.out
        self.plan += _columns_plan(self.x, self.geometry, self.groups)
        if needs_input_grad:
            self.plan += (Buffer("dcols", self.w_t.shape[:2] + (oh * ow,), self.x.dtype),)

    def run(self, chunk, buffers):
        xp = get_array_module(self.dout)
        cols = _kernel_columns(self.x[chunk], self.geometry, self.groups, buffers)
        self._add_weight_grad(chunk, cols, buffers)
        if not self.needs_input_grad:
            return
        dcols = xp.matmul(self.w_t, self.dout[chunk], out=buffers["dcols"])
        m = dcols.shape[0]
        _cuda.col2im_into(dcols.reshape((m, self.x.shape[1]) + self.geometry.kernel
                                        + self.geometry.out), self.geometry, self.dx[chunk])
