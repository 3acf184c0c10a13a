"""im2col and col2im: sliding windows as a matrix, and back.

Column layout, shared by the CPU path, the CUDA kernels and the reference
loops: for an input of shape (N, C, H, W) and a KH x KW kernel with output
size OH x OW, the columns have shape (N, C, KH, KW, OH, OW), i.e.
(N, C*KH*KW, OH*OW) as a matrix per image:

    cols[n, c*KH*KW + i*KW + j, oh*OW + ow]
        = x_padded[n, c, oh*sh + i*dh, ow*sw + j*dw]

so one matrix product ``w.reshape(F, C*KH*KW) @ cols[n]`` gives image n's
output already in (F, OH*OW) order, i.e. contiguous NCHW.

On the CPU, im2col is one strided view of the padded input and one copy
(never fancy indexing); col2im adds each kernel offset's slab into a padded
buffer with strided slices (never ``np.add.at``), KH*KW vectorised adds.
"""

import numpy
from numpy.lib.stride_tricks import as_strided

from . import _cuda, _parallel, _validate
from .backend import get_array_module
from .profiling import step
from .shapes import WindowGeometry, conv_output_size
from .workspace import scratch


def window_geometry(x_shape, kernel_size, stride, padding, dilation, ceil_mode=False):
    """Validate window arguments against an (N, C, H, W) shape and build the geometry.

    Raises ValueError naming the axis, the padding and the dilated kernel when
    no window fits in the padded input (``ceil_mode`` allows an overhang of up
    to stride - 1, as PyTorch's pools do).
    """
    kernel = _validate.positive_pair(kernel_size, "kernel_size")
    stride = _validate.positive_pair(stride, "stride")
    dilation = _validate.positive_pair(dilation, "dilation")
    pads = _validate.padding_pairs(padding)
    size = tuple(x_shape[2:])
    for axis, name, n, k, s, d, (before, after) in zip(
            ("height", "width"), ("H", "W"), size, kernel, stride, dilation, pads):
        if conv_output_size(n, k, s, (before, after), d, ceil_mode) < 1:
            span = d * (k - 1) + 1
            pad_text = before if before == after else (before, after)
            raise ValueError(
                f"dilated kernel {axis} {span} is larger than the padded input {axis} "
                f"{n + before + after} ({name}={n}, padding={pad_text})")
    return WindowGeometry(size, kernel, stride, pads, dilation, ceil_mode)


def pad_input(x, geometry, value=0):
    """Return ``x`` padded to ``geometry.padded`` with ``value`` (``x`` itself if no padding).

    The padded copy lives in the "padded" scratch buffer (:func:`fastconv.workspace.scratch`):
    use it before the next pad_input call on this thread.
    """
    xp = get_array_module(x)
    (top, _), (left, _) = geometry.pads
    height, width = geometry.size
    hp, wp = geometry.padded
    if (hp, wp) == (height, width):
        return x
    padded = scratch(xp, "padded", x.shape[:2] + (hp, wp), x.dtype)
    padded[:, :, :top] = value
    padded[:, :, top + height:] = value
    padded[:, :, top:top + height, :left] = value
    padded[:, :, top:top + height, left + width:] = value
    padded[:, :, top:top + height, left:left + width] = x
    return padded


def window_view(padded, geometry):
    """A read-only strided view (N, C, KH, KW, OH, OW) of the windows of a padded input."""
    (kh, kw), (sh, sw), (dh, dw), (oh, ow) = (
        geometry.kernel, geometry.stride, geometry.dilation, geometry.out)
    s0, s1, s2, s3 = padded.strides
    return as_strided(padded, shape=padded.shape[:2] + (kh, kw, oh, ow),
                      strides=(s0, s1, s2 * dh, s3 * dw, s2 * sh, s3 * sw), writeable=False)


def im2col_into(x, geometry, out):
    """Write the columns of ``x`` into ``out`` of shape (N, C, KH, KW, OH, OW).

    On the CPU the batch is split across threads (:mod:`fastconv._parallel`).
    CuPy arrays go to the ``im2col`` CUDA kernel (fastconv/_cuda.py).
    """
    if _cuda.uses_kernels(x):
        return _cuda.im2col_into(x, geometry, out)

    def copy_windows(batch):  # padding and the window copy, per batch slice and thread
        numpy.copyto(out[batch], window_view(pad_input(x[batch], geometry), geometry))

    with step("im2col"):
        _parallel.over_batch(copy_windows, x.shape[0], out.nbytes)
    return out


def col2im_into(cols, geometry, out):
    """Sum columns (N, C, KH, KW, OH, OW) back onto ``out`` of shape (N, C, H, W).

    Each kernel offset is one strided slab of the padded image, added with one
    vectorised ``+=``; the padding border is then cropped away; the batch is
    split across threads. CuPy arrays go
    to the gather-style ``col2im`` CUDA kernel instead (no atomics, deterministic).
    """
    if _cuda.uses_kernels(cols):
        return _cuda.col2im_into(cols, geometry, out)
    with step("col2im"):
        _parallel.over_batch(lambda batch: _col2im_slab_adds(cols[batch], geometry, out[batch]),
                             cols.shape[0], cols.nbytes)
    return out


def _col2im_slab_adds(cols, geometry, out):
    """col2im on the CPU: KH*KW strided slab adds into a zeroed padded buffer, then a crop."""
    (top, _), (left, _) = geometry.pads
    height, width = geometry.size
    unpadded = geometry.padded == geometry.size
    padded = out if unpadded else scratch(
        numpy, "col2im", cols.shape[:2] + geometry.padded, cols.dtype)
    padded.fill(0)
    kh, kw = geometry.kernel
    for i in range(kh):
        for j in range(kw):
            rows, columns = geometry.offset_slices(i, j)
            padded[:, :, rows, columns] += cols[:, :, i, j]
    if not unpadded:
        out[...] = padded[:, :, top:top + height, left:left + width]


def col2im_planes_into(dcols, geometry, groups, out):
    """col2im on the CPU from columns laid out on whole stride-phase planes.

    ``dcols`` (N, G, KH*KW*C/G, Hq*Wq) with (Hq, Wq) = ``geometry.phase_size``: per
    group, the rows of kernel offset (i, j) are its C/G channels' planes, in
    which column oh*Wq + ow holds window (oh, ow) and every other column is
    zero. Offset (i, j) lands in phase (i*dh % sh, j*dw % sw) shifted by
    (i*dh // sh)*Wq + j*dw // sw, so each offset is a single add of a group's
    planes: rows of C/G*Hq*Wq elements, where the slab adds of
    :func:`col2im_into` have rows of OW and NumPy spends most of their time per
    row. The phases are then interleaved back into the padded image (nothing
    to interleave for stride 1) and cropped. The zero columns spill only zeros
    into the next plane, so they must be exactly zero (finite weights).
    """
    n, channels = out.shape[:2]
    (kh, kw), (sh, sw), (dh, dw) = geometry.kernel, geometry.stride, geometry.dilation
    (top, _), (left, _) = geometry.pads
    height, width = geometry.size
    hq, wq = geometry.phase_size
    plane = hq * wq
    group_size = channels // groups * plane
    taps = [(i * dh % sh, j * dw % sw, (i * dh // sh) * wq + j * dw // sw)
            for i in range(kh) for j in range(kw)]
    length = channels * plane + max(offset for _, _, offset in taps)

    def add_planes(batch):
        rows = dcols[batch].reshape(-1, groups, kh * kw, group_size)
        m = rows.shape[0]
        phases = scratch(numpy, "col2im", (sh, sw, m, length), dcols.dtype)
        phases.fill(0)
        for group in range(groups):
            for tap, (a, b, offset) in enumerate(taps):
                start = group * group_size + offset
                phases[a, b, :, start:start + group_size] += rows[:, group, tap]
        on_planes = phases[:, :, :, :channels * plane].reshape(sh, sw, m, channels, hq, wq)
        if (sh, sw) == (1, 1):
            padded = on_planes[0, 0]
        else:
            padded = scratch(numpy, "col2im padded", (m, channels, hq * sh, wq * sw), dcols.dtype)
            for a in range(sh):
                for b in range(sw):
                    padded[:, :, a::sh, b::sw] = on_planes[a, b]
        out[batch] = padded[:, :, top:top + height, left:left + width]

    with step("col2im"):
        _parallel.over_batch(add_planes, n, dcols.nbytes)
    return out


def _check_image(x, name):
    _validate.check_ndim(x, 4, name, "(N, C, H, W)")
    _validate.check_float(x, name)


def im2col(x, kernel_size, stride=1, padding=0, dilation=1):
    """Unfold an (N, C, H, W) array into columns of shape (N, C*KH*KW, OH*OW).

    Row ``c*KH*KW + i*KW + j`` of image n holds kernel offset (i, j) of
    channel c at every output position ``oh*OW + ow`` (see the module doc).
    Zero padding; dtype preserved; the result is C-contiguous. Equivalent to
    ``torch.nn.functional.unfold`` reshaped to three axes.
    """
    _check_image(x, "x")
    geometry = window_geometry(x.shape, kernel_size, stride, padding, dilation)
    xp = get_array_module(x)
    n, c = x.shape[:2]
    (kh, kw), (oh, ow) = geometry.kernel, geometry.out
    cols = xp.empty((n, c, kh, kw, oh, ow), dtype=x.dtype)
    im2col_into(x, geometry, cols)
    return cols.reshape(n, c * kh * kw, oh * ow)


def col2im(cols, x_shape, kernel_size, stride=1, padding=0, dilation=1):
    """Fold columns (N, C*KH*KW, OH*OW) back to an (N, C, H, W) image, summing overlaps.

    The adjoint of :func:`im2col` (not its inverse): each input element
    receives the sum of every column entry that was copied from it. This is
    the data gradient of a convolution.
    """
    _validate.check_float(cols, "cols")
    if len(x_shape) != 4:
        raise ValueError(f"x_shape must be (N, C, H, W), got {tuple(x_shape)}")
    geometry = window_geometry(tuple(x_shape), kernel_size, stride, padding, dilation)
    n, c = x_shape[:2]
    (kh, kw), (oh, ow) = geometry.kernel, geometry.out
    expected = (n, c * kh * kw, oh * ow)
    if tuple(cols.shape) != expected:
        raise ValueError(
            f"cols has shape {tuple(cols.shape)} but x_shape {tuple(x_shape)} with this kernel "
            f"needs {expected}")
    xp = get_array_module(cols)
    out = xp.empty(tuple(x_shape), dtype=cols.dtype)
    col2im_into(cols.reshape(n, c, kh, kw, oh, ow), geometry, out)
    return out
