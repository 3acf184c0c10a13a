"""2-D convolution, forward and backward, by im2col and one batched GEMM.

Data path: im2col (one strided copy per batch chunk) -> ``xp.matmul`` of the
weights (G, F/G, C/G*KH*KW) with the columns (n, G, C/G*KH*KW, OH*OW), whose
result is already contiguous NCHW. Backward: dW and dcols by two GEMMs, dx by
col2im (on the CPU, when the columns outnumber dout's rows, from dcols computed
on whole stride-phase planes of the padded input, so that col2im is KH*KW long
contiguous adds). A 1x1, stride-1, unpadded convolution skips im2col: the input
is its own column matrix.

On the CPU the bias rides in the GEMMs (Caffe's bias multiplier, folded into
K): each group's columns end with a row of ones and the weights with a bias
column, so the forward GEMM adds b and the dW GEMM yields db. Separate passes
over the output for ``out += b`` and ``db = dout.sum(...)`` cost a tenth of a
small layer's time. On the GPU, where those passes are cheap and the im2col
kernel writes a packed buffer, and on the 1x1 path, which has no columns to
extend, the bias is added and summed directly.

The batch is processed in chunks whose buffers fit the workspace limit
(:mod:`fastconv.workspace`); on the CPU those buffers are reused between calls.
The cache holds only x and w, as PyTorch's does: the backward pass recomputes
the columns into the reused buffer, which costs less than a page-faulting
fresh buffer to keep them and frees a network from holding every layer's
columns between its forward and backward passes.
"""

import numbers

import numpy

from .. import _cuda, _validate
from ..backend import accumulator_dtype, get_array_module
from ..im2col import col2im_into, col2im_planes_into, im2col_into, window_geometry
from ..profiling import step
from ..workspace import batch_chunks, scratch


class ConvCache:
    """What conv2d_backward needs from conv2d_forward."""

    op = "conv2d_forward"
    __slots__ = ("x", "w", "has_bias", "geometry", "groups", "out_shape")

    def __init__(self, x, w, has_bias, geometry, groups, out_shape):
        self.x, self.w, self.has_bias = x, w, has_bias
        self.geometry, self.groups, self.out_shape = geometry, groups, out_shape


def _same_padding(kernel, dilation, stride):
    """PyTorch's padding='same': total d*(k-1) per axis, the odd one on the bottom/right."""
    if stride != (1, 1):
        raise ValueError(f"padding='same' needs stride 1, got stride={stride}")
    totals = [d * (k - 1) for k, d in zip(kernel, dilation)]
    return tuple((t // 2, t - t // 2) for t in totals)


def _resolve_padding(padding, w, stride, dilation):
    if isinstance(padding, str):
        if padding == "valid":
            return 0
        if padding == "same":
            return _same_padding(w.shape[2:], _validate.positive_pair(dilation, "dilation"),
                                 _validate.positive_pair(stride, "stride"))
        raise ValueError(f"padding must be an int, a pair, 'valid' or 'same', got {padding!r}")
    return padding


def _check_conv_args(x, w, b, groups):
    _validate.check_ndim(x, 4, "x", "(N, C, H, W)")
    _validate.check_ndim(w, 4, "w", "(F, C/groups, KH, KW)")
    _validate.check_float(x, "x")
    _validate.check_float(w, "w")
    _validate.check_same_dtype(x, "x", w, "w")
    if isinstance(groups, bool) or not isinstance(groups, numbers.Integral):
        raise TypeError(f"groups must be an int, got {groups!r}")
    if groups < 1:
        raise ValueError(f"groups must be >= 1, got {groups}")
    channels, filters = x.shape[1], w.shape[0]
    if filters == 0:
        raise ValueError(f"w has no filters (w shape {tuple(w.shape)}); it needs at least one")
    if channels % groups:
        raise ValueError(
            f"x has {channels} channels, which is not divisible by groups={groups} "
            f"(x shape {tuple(x.shape)})")
    if filters % groups:
        raise ValueError(
            f"out channels (w.shape[0]={filters}) must be divisible by groups={groups} "
            f"(w shape {tuple(w.shape)})")
    if w.shape[1] * groups != channels:
        raise ValueError(
            f"w expects {w.shape[1]} input channels per group, x has {channels} channels "
            f"with groups={groups} (x shape {tuple(x.shape)}, w shape {tuple(w.shape)})")
    if b is not None:
        _validate.check_float(b, "b")
        _validate.check_same_dtype(x, "x", b, "b")
        if tuple(b.shape) != (filters,):
            raise ValueError(f"b must have shape ({filters},) to match w {tuple(w.shape)}, "
                             f"got {tuple(b.shape)}")


def _folds_bias(x, geometry, has_bias):
    """True where the bias rides in the GEMMs as a row of ones in the columns (see the module doc)."""
    return has_bias and not _cuda.uses_kernels(x) and not geometry.is_identity


def _column_bytes(x, geometry, groups=1, bias_row=False):
    """Workspace bytes of one image's columns: C*KH*KW rows (plus a ones row per group) by OH*OW."""
    (kh, kw), (oh, ow) = geometry.kernel, geometry.out
    rows = x.shape[1] * kh * kw + groups * bias_row
    return rows * oh * ow * x.dtype.itemsize


def _padded_bytes(x, geometry):
    """Workspace bytes of one padded image (zero when there is no padding)."""
    hp, wp = geometry.padded
    return 0 if geometry.padded == geometry.size else x.shape[1] * hp * wp * x.dtype.itemsize


def _col2im_bytes(x, geometry, planes):
    """Workspace bytes of one image's col2im sums: a padded image for the slab adds; for
    the planes, every stride phase, plus the padded image they interleave into (stride > 1)."""
    if not planes:
        return _padded_bytes(x, geometry)
    (hq, wq), (sh, sw) = geometry.phase_size, geometry.stride
    phases = x.shape[1] * hq * wq * sh * sw * x.dtype.itemsize
    return phases * (1 + ((sh, sw) != (1, 1)))


def _chunk_plan(x, geometry, groups, per_image, bias_row=False):
    """The batch chunks for ``per_image`` workspace bytes, and the column buffer shape of the largest.

    The shape is (n, G, C/G*KH*KW, OH*OW), with one more row per group for ``bias_row``.
    """
    chunks = batch_chunks(x.shape[0], per_image)
    largest = chunks[0].stop - chunks[0].start if chunks else 0  # no chunk for an empty batch
    (kh, kw), (oh, ow) = geometry.kernel, geometry.out
    shape = (largest, groups, x.shape[1] // groups * kh * kw + bias_row, oh * ow)
    return chunks, shape


def _columns(x, geometry, groups, buffer):
    """im2col of ``x`` into the front of ``buffer`` (n_max, G, rows, OH*OW); return that front.

    The first C/G*KH*KW rows of each group are its columns; a last row beyond
    them (the bias row) is set to ones. The im2col writes through a view of
    the N*G group slices as images of C/G channels.
    """
    n, channels = x.shape[:2]
    cols = buffer[:n]
    taps = channels // groups * geometry.kernel[0] * geometry.kernel[1]
    images = x.reshape((n * groups, channels // groups) + x.shape[2:])
    im2col_into(images, geometry, cols[:, :, :taps].reshape(images.shape[:2] + geometry.kernel + geometry.out))
    cols[:, :, taps:] = 1
    return cols


def conv2d_forward(x, w, b=None, stride=1, padding=0, dilation=1, groups=1):
    """Convolve ``x`` (N, C, H, W) with ``w`` (F, C/groups, KH, KW); return ``(out, cache)``.

    stride, dilation: int or (h, w) pair. padding: int, (h, w), 'valid' or
    'same' (stride 1; PyTorch's rule, the odd pad on the bottom/right). groups
    splits channels as in ``torch.nn.functional.conv2d`` (groups == C is a
    depthwise convolution). ``b`` (F,) is optional. Output size follows
    PyTorch's formula; the output is C-contiguous, in x's dtype.
    """
    xp = get_array_module(x, w, b)
    _check_conv_args(x, w, b, groups)
    padding = _resolve_padding(padding, w, stride, dilation)
    geometry = window_geometry(x.shape, w.shape[2:], stride, padding, dilation)
    n, f = x.shape[0], w.shape[0]
    (oh, ow) = geometry.out
    w_mat = xp.ascontiguousarray(w).reshape(groups, f // groups, w[0].size)
    out = xp.empty((n, f, oh, ow), dtype=x.dtype)
    out_groups = out.reshape(n, groups, f // groups, oh * ow)
    bias_row = _folds_bias(x, geometry, b is not None)
    if geometry.is_identity:
        with step("layout copies"):
            x_cols = xp.ascontiguousarray(x).reshape(n, groups, x.shape[1] // groups, oh * ow)
        with step("GEMM out = W @ cols"):
            xp.matmul(w_mat, x_cols, out=out_groups)
    else:
        if bias_row:
            w_mat = xp.concatenate((w_mat, b.reshape(groups, f // groups, 1)), axis=2)
        per_image = _column_bytes(x, geometry, groups, bias_row) + _padded_bytes(x, geometry)
        chunks, shape = _chunk_plan(x, geometry, groups, per_image, bias_row)
        buffer = scratch(xp, "cols", shape, x.dtype)
        for chunk in chunks:
            cols = _columns(x[chunk], geometry, groups, buffer)
            with step("GEMM out = W @ cols"):
                xp.matmul(w_mat, cols, out=out_groups[chunk])
    if b is not None and not bias_row:
        with step("bias"):
            out += b.reshape(1, f, 1, 1)
    return out, ConvCache(x, w, b is not None, geometry, groups, out.shape)


def conv2d_backward(dout, cache):
    """Gradients of :func:`conv2d_forward`: return ``(dx, dw, db)`` (db None without bias).

    dw and the column gradient are GEMMs; dx is col2im of the column gradient
    (on the CPU, when the columns outnumber dout's rows, of columns laid out on
    whole stride-phase planes: :func:`fastconv.im2col.col2im_planes_into`).
    Every gradient has the dtype and shape of its forward input.
    """
    _validate.check_cache(cache, ConvCache, "conv2d_forward")
    x, w, geometry, groups = cache.x, cache.w, cache.geometry, cache.groups
    _validate.check_dout(dout, cache.out_shape, x.dtype)
    xp = get_array_module(dout, x)
    n, f = x.shape[0], w.shape[0]
    (oh, ow) = geometry.out
    planes = _sums_planes(x, w, geometry)
    with step("layout copies"):
        dout_groups = xp.ascontiguousarray(dout).reshape(n, groups, f // groups, oh * ow)
        w_t = (_taps_first(w, groups) if planes else
               xp.ascontiguousarray(w.reshape(groups, f // groups, w[0].size).transpose(0, 2, 1)))
    bias_row = _folds_bias(x, geometry, cache.has_bias)
    db = None
    if cache.has_bias and not bias_row:
        with step("bias"):
            db = dout.sum(axis=(0, 2, 3), dtype=accumulator_dtype(x.dtype)).astype(x.dtype)
    dx = xp.empty(x.shape, dtype=x.dtype)
    dw = xp.zeros((groups, f // groups, w_t.shape[1] + bias_row), dtype=accumulator_dtype(x.dtype))

    if geometry.is_identity:
        with step("layout copies"):
            x_cols = xp.ascontiguousarray(x).reshape(n, groups, x.shape[1] // groups, oh * ow)
        _add_weight_grad(dw, dout_groups, x_cols, xp)
        with step("GEMM dcols = W^T @ dout"):
            xp.matmul(w_t, dout_groups, out=dx.reshape(x_cols.shape))
        return dx, dw.reshape(w.shape).astype(x.dtype, copy=False), db

    positions = numpy.prod(geometry.phase_size) if planes else oh * ow
    per_image = (_column_bytes(x, geometry, groups, bias_row)
                 + (w_t.shape[1] * groups + f * planes) * positions * x.dtype.itemsize
                 + _padded_bytes(x, geometry) + _col2im_bytes(x, geometry, planes) + dw.nbytes)
    chunks, shape = _chunk_plan(x, geometry, groups, per_image, bias_row)
    col_buffer = scratch(xp, "cols", shape, x.dtype)
    dcol_buffer = scratch(xp, "dcols", shape[:2] + (w_t.shape[1], positions), x.dtype)
    for chunk in chunks:
        cols = _columns(x[chunk], geometry, groups, col_buffer)
        m = cols.shape[0]
        _add_weight_grad(dw, dout_groups[chunk], cols, xp)
        if planes:
            dout_planes = _on_planes(dout[chunk], geometry, groups, shape[0])
            with step("GEMM dcols = W^T @ dout"):
                dcols = xp.matmul(w_t, dout_planes, out=dcol_buffer[:m])
            col2im_planes_into(dcols, geometry, groups, dx[chunk])
        else:
            with step("GEMM dcols = W^T @ dout"):
                dcols = xp.matmul(w_t, dout_groups[chunk], out=dcol_buffer[:m])
            col2im_into(dcols.reshape((m, x.shape[1]) + geometry.kernel + geometry.out),
                        geometry, dx[chunk])
    if bias_row:  # the dW GEMM's last column is db (dout summed against the ones row)
        db = xp.ascontiguousarray(dw[:, :, -1]).reshape(f).astype(x.dtype, copy=False)
        dw = dw[:, :, :-1]
    return dx, xp.ascontiguousarray(dw).reshape(w.shape).astype(x.dtype, copy=False), db


def _sums_planes(x, w, geometry):
    """True where the backward sums plane-shaped columns (col2im_planes_into) rather than slabs.

    CPU only (not the CUDA kernels). It copies dout onto stride-phase planes
    and runs the dcols GEMM over Hq*Wq positions instead of OH*OW, which pays
    when the columns it sums (C*KH*KW rows) outnumber dout's rows (F). The
    planes' zero columns stay zero only for finite weights (NaN * 0 is NaN),
    so a non-finite weight takes the slab adds and NaN stays where it belongs.
    """
    (kh, kw) = geometry.kernel
    return (not _cuda.uses_kernels(x) and not geometry.is_identity
            and x.shape[1] * kh * kw > w.shape[0]
            and bool(numpy.isfinite(w).all()))


def _taps_first(w, groups):
    """w^T per group with its rows in (KH, KW, C/G) order: (G, KH*KW*C/G, F/G), contiguous.

    The plane layout of col2im_planes_into wants a kernel offset's channels adjacent.
    """
    f, c_group, kh, kw = w.shape
    per_group = w.reshape(groups, f // groups, c_group, kh, kw).transpose(0, 3, 4, 2, 1)
    return numpy.ascontiguousarray(per_group).reshape(groups, kh * kw * c_group, f // groups)


def _on_planes(dout, geometry, groups, largest):
    """dout (n, F, OH, OW) placed on zeroed phase-size planes: (n, G, F/G, Hq*Wq), a scratch view.

    Output (oh, ow) sits at plane position oh*Wq + ow, so the dcols GEMM yields
    plane-shaped columns for :func:`fastconv.im2col.col2im_planes_into`.
    """
    n, f, oh, ow = dout.shape
    hq, wq = geometry.phase_size
    with step("layout copies"):
        planes = scratch(numpy, "dout planes", (largest, f, hq, wq), dout.dtype)[:n]
        planes[:, :, :oh, ow:] = 0
        planes[:, :, oh:] = 0
        planes[:, :, :oh, :ow] = dout
    return planes.reshape(n, groups, f // groups, hq * wq)


def _add_weight_grad(dw, dout, cols, xp):
    """dw (G, F/G, K) += sum over images of dout[n] (G, F/G, L) @ cols[n]^T (G, L, K).

    dw is in the accumulator dtype (float32 for float16 columns), so the sum over
    images does not stall.

    NumPy's stacked matmul runs a transposed operand several times slower than
    BLAS does, so on the CPU without groups each image is one 2-D GEMM,
    cols[n] @ dout[n]^T = dW^T, whose transposed operand BLAS reads in place
    (OpenBLAS runs this orientation up to 1.4x faster than dout[n] @ cols[n]^T
    when F is small). Otherwise (groups, or CuPy, where one batched cuBLAS call
    beats many small ones) dout is transposed into a contiguous copy,
    output-sized, far smaller than the columns.
    """
    if xp is numpy and dw.shape[0] == 1:
        product = scratch(xp, "dw", dw.shape[:0:-1], cols.dtype)
        total = scratch(xp, "dw total", dw.shape[:0:-1], dw.dtype)
        total.fill(0)
        with step("GEMM dW = dout @ cols^T"):
            for image in range(cols.shape[0]):
                xp.matmul(cols[image, 0], dout[image, 0].T, out=product)
                total += product
            dw[0] += total.T
        return
    with step("layout copies"):
        dout_t = xp.ascontiguousarray(dout.transpose(0, 1, 3, 2))
    with step("GEMM dW = dout @ cols^T"):
        dw += xp.matmul(cols, dout_t).sum(axis=0, dtype=dw.dtype).transpose(0, 2, 1)
