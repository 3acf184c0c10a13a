"""Depthwise convolution on the GPU (groups == C): direct CUDA kernels, no columns, no GEMMs.

A depthwise layer through the generic path (:mod:`fastconv._gpu.conv`) writes
KH*KW columns per input element and multiplies them in C tiny matrix products
of K = KH*KW; here each kernel of kernels/depthwise.cu reads x, w and dout
where they lie:

- forward: one thread per output element sums its window times the filter,
  then the bias, in one launch over the batch (no workspace);
- backward, per chunk: one thread per (image, filter, tap) sums x times dout
  over the output plane into the image's weight partials (the last slot sums
  dout: the bias gradient), in the accumulator dtype (float32 for float16),
  added to the slot by later chunks as the generic path's dW partials are; dx
  gather-style, one thread per input element over the windows covering it;
- at the end, one thread per (filter, slot) sums the partials over the images
  in ascending order and rounds dw and db once (kernels/weight_sum.cu, which the
  generic path's backward ends with too).

No atomics and no scheduling-dependent order anywhere: two runs give the same
bits. Any multiplier M = F/C >= 1, stride, padding and dilation runs here;
:func:`runs_depthwise` leaves the rest to the generic path. Written against the
arrays' module and :mod:`fastconv._cuda`'s wrappers, so the tests run it on
NumPy arrays with the kernels emulated on the CPU.
"""

from __future__ import annotations

from typing import Any

from .. import _cuda
from .._typing import Array
from ..backend import accumulator_dtype, get_array_module
from ..shapes import WindowGeometry
from ..workspace import Buffer, chunk_of


def runs_depthwise(x: Array, w: Array, geometry: WindowGeometry, groups: int) -> bool:
    """Whether a convolution runs on the depthwise kernels: one group per input channel
    (groups == C, w (C*M, 1, KH, KW)), unless the filters' partials are too many for the
    kernels' 32-bit in-plane arithmetic (F*(KH*KW + 1) >= 2**31: weights of more than
    2**31 elements, which then go through the generic path)."""
    return groups == x.shape[1] and _cuda.depthwise_fits(w.shape[0], geometry)


class DepthwiseForward:
    """The forward algorithm of one call: the depthwise kernel over the whole batch (it
    needs no workspace)."""

    plan = ()

    def __init__(self, x, w, b, geometry):
        self.x, self.w, self.b, self.geometry = x, w, b, geometry
        self.out = None

    def run(self, chunk, buffers):
        self.out = _cuda.depthwise_forward(chunk_of(self.x, chunk), self.w, self.b, self.geometry)

    def result(self, workspace):
        """The output; nothing is held for the backward."""
        if self.out is None:  # an empty batch: no chunk ran
            self.out = get_array_module(self.x).empty(
                (0, self.w.shape[0]) + self.geometry.out, dtype=self.x.dtype)
        return self.out, None


class DepthwiseBackward:
    """The backward algorithm of one call (``cache``: a
    :class:`fastconv.functional.conv.ConvCache` of a depthwise convolution): per chunk the
    weight partials (+= after the first chunk), then dx unless ``needs_input_grad`` is False
    (dx None); at the end their sums over the images (dw, db)."""

    def __init__(self, dout, cache, needs_input_grad):
        xp = get_array_module(dout, cache.x)
        self.x, self.w, self.geometry = cache.x, cache.w, cache.geometry
        self.has_bias = cache.has_bias
        self.dout = xp.ascontiguousarray(dout)
        self.dx = xp.empty(self.x.shape, dtype=self.x.dtype) if needs_input_grad else None
        taps = self.geometry.kernel[0] * self.geometry.kernel[1]
        # one image's partials: per filter, its taps' sums and dout's (the bias gradient)
        self.plan = (Buffer("partials", (self.w.shape[0], taps + 1),
                            accumulator_dtype(self.x.dtype)),)

    def run(self, chunk, buffers):
        # Slot i of the partials sums image i of every chunk: the first chunk, the
        # largest, writes every slot, later ones add to theirs.
        dout = chunk_of(self.dout, chunk)
        _cuda.depthwise_weight_partials_into(chunk_of(self.x, chunk), dout, self.geometry,
                                             buffers["partials"], chunk.start > 0)
        if self.dx is not None:
            _cuda.depthwise_backward_data_into(dout, self.w, self.geometry,
                                               chunk_of(self.dx, chunk))

    def result(self, workspace):
        """dx, and dw and db summed from the partials in one launch."""
        dw, db = _cuda.weight_sum(workspace.buffers["partials"], self.w.shape, self.x.dtype,
                                  self.has_bias)
        return self.dx, dw, db
