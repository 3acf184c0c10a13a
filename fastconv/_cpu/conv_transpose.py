"""2-D transposed convolution on the CPU (NumPy), as the convolution's passes in reverse.

``geometry`` is that of the convolution whose input is the transposed convolution's output
(less the rows and columns past the last window) and whose output is x's size
(:func:`fastconv.functional.conv_transpose.transposed_geometry`).

Forward: the convolution's backward-data pass, run by the classes of :mod:`fastconv._cpu.conv`
with the roles renamed: x is their dout, the output their dx, w (C, F/G, KH, KW) their weights.
Per chunk the column GEMM W^T @ x, then col2im by slab adds or, when the columns (F*KH*KW rows)
outnumber x's channels, from stride-phase planes, into the part of ``out`` the windows reach
(the front allocates ``out`` and adds the bias).

Backward: the convolution's forward pass on dout: its columns (im2col), dx = W @ cols per group,
and the dW GEMM of x with the same columns. Each algorithm is an object with a ``plan``, ``run``
and ``result``, driven by :func:`fastconv.workspace.run_in_chunks`.
"""

from __future__ import annotations

from typing import Any

import numpy

from ..backend import accumulator_dtype
from ..profiling import step
from ..shapes import WindowGeometry
from .conv import (_add_weight_grad, _columns, _columns_plan, _grouped, _Im2colBackward,
                   _PlanesBackward, _weight_grad_plan, _weight_matrix)


def forward(x: numpy.ndarray, w: numpy.ndarray, geometry: WindowGeometry, groups: int,
            out: numpy.ndarray) -> _DataGradForward:
    """The forward algorithm of one call: it writes ``out[:, :, :H', :W']``, (H', W') the
    geometry's size.

    The stride-phase planes pay when the column rows (F*KH*KW) outnumber x's rows (C); their
    zero columns stay zero only for finite weights, so a non-finite weight takes the slab adds
    (as the convolution's backward chooses).
    """
    (kh, kw), channels = geometry.kernel, w.shape[0]
    if w.shape[1] * groups * kh * kw > channels and bool(numpy.isfinite(w).all()):
        return _PlanesForward(x, w, geometry, groups, out)
    return _SlabForward(x, w, geometry, groups, out)


def backward(dout: numpy.ndarray, cache: Any) -> _Backward:
    """The backward algorithm of one call (``cache``: a
    :class:`fastconv.functional.conv_transpose.ConvTransposeCache`); its result is (dx, dw)."""
    return _Backward(dout, cache)


class _DataGradForward:
    """The transposed forward as the convolution's backward-data pass (a mixin before it).

    Sets what that pass reads, in its names: ``dout`` (x per group), ``w`` and its ``w_t``,
    ``dx`` (the reached part of the output; ``x`` too, whose channels and dtype dx takes).
    """

    def __init__(self, x, w, geometry, groups, out):
        height, width = geometry.size
        self.geometry, self.groups, self.w = geometry, groups, w
        self.x = self.dx = out[:, :, :height, :width]
        self.dout = _grouped(x, groups)
        self.w_t = self._transposed_weights(w, groups)
        self.plan = self._data_grad_plan()

    def run(self, chunk, buffers):
        self._add_data_grad(chunk, buffers)

    def result(self, workspace):
        return None


class _SlabForward(_DataGradForward, _Im2colBackward):
    """Slab col2im of W^T @ x."""


class _PlanesForward(_DataGradForward, _PlanesBackward):
    """col2im from stride-phase planes of W^T @ x."""


class _Backward:
    """Per chunk: the columns of dout, dx = W @ cols, dW += x @ cols^T; dw cast at the end."""

    def __init__(self, dout, cache):
        x, w, geometry, groups = cache.x, cache.w, cache.geometry, cache.groups
        self.geometry, self.groups, self.w = geometry, groups, w
        height, width = geometry.size
        self.dout = dout[:, :, :height, :width]  # the rows past the windows reach nothing
        self.x = _grouped(x, groups)
        self.w_mat = _weight_matrix(w, groups)  # (G, C/G, F/G*KH*KW)
        self.dx = numpy.empty(x.shape, dtype=x.dtype)
        self.dw = numpy.zeros(self.w_mat.shape, dtype=accumulator_dtype(x.dtype))
        self.plan = (_columns_plan(self.dout, geometry, groups, bias_row=False)
                     + _weight_grad_plan(self.dw, x.shape[2] * x.shape[3], x.dtype))

    def run(self, chunk, buffers):
        cols = _columns(self.dout[chunk], self.geometry, self.groups, buffers)
        with step("GEMM dx = W @ cols"):
            numpy.matmul(self.w_mat, cols, out=_grouped(self.dx[chunk], self.groups))
        _add_weight_grad(self.dw, self.x[chunk], cols, buffers)

    def result(self, workspace):
        return self.dx, self.dw.reshape(self.w.shape).astype(self.w.dtype, copy=False)
