"""im2col and col2im on the CPU: one strided view and one copy; KH*KW vectorised adds.

The column layout is :mod:`fastconv.im2col`'s. im2col never uses fancy
indexing: each image is padded into a workspace buffer, viewed as its windows
(:func:`window_view`) and copied. col2im never uses ``np.add.at``: each kernel
offset is one strided slab of the padded image, added with one ``+=``. The
batch is split across threads (:mod:`fastconv._cpu.threads`), each image being
independent, so the results are bitwise those of one thread.

Each function's buffers are declared by its ``*_plan`` function and come from
the caller's :class:`fastconv.workspace.Workspace`, sized to the chunk.
"""

import numpy
from numpy.lib.stride_tricks import as_strided

from ..profiling import step
from ..workspace import Buffer
from .threads import over_batch


def padded_plan(channels, geometry, dtype, name="padded"):
    """The buffer of one zero-padded image, (C, Hp, Wp); none when the geometry does not pad."""
    if geometry.padded == geometry.size:
        return ()
    return (Buffer(name, (channels,) + geometry.padded, dtype),)


def pad_into(x, geometry, value, padded):
    """``x`` (N, C, H, W) written into ``padded`` (N, C, Hp, Wp) with a ``value`` border.

    Returns ``padded``, or ``x`` itself when the geometry does not pad (``padded`` is
    then None).
    """
    if geometry.padded == geometry.size:
        return x
    (top, _), (left, _) = geometry.pads
    height, width = geometry.size
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


def im2col_plan(channels, geometry, dtype):
    """The buffers of :func:`im2col_into` per image: the padded image."""
    return padded_plan(channels, geometry, dtype)


def im2col_into(x, geometry, out, buffers):
    """Write the columns of ``x`` (N, C, H, W) into ``out`` (N, C, KH, KW, OH, OW)."""
    padded = buffers.get("padded")

    def copy_windows(batch):  # padding and the window copy, per batch slice and thread
        images = pad_into(x[batch], geometry, 0, None if padded is None else padded[batch])
        numpy.copyto(out[batch], window_view(images, geometry))

    with step("im2col"):
        over_batch(copy_windows, x.shape[0], out.nbytes)
    return out


def col2im_plan(channels, geometry, dtype):
    """The buffers of :func:`col2im_into` per image: the padded image the slabs add into."""
    return padded_plan(channels, geometry, dtype, name="col2im padded")


def col2im_into(cols, geometry, out, buffers):
    """Sum columns (N, C, KH, KW, OH, OW) back onto ``out`` (N, C, H, W).

    Each kernel offset is one strided slab of the padded image (``out`` itself
    when there is no padding), added with one vectorised ``+=``; the padding
    border is then cropped away.
    """
    padded = buffers.get("col2im padded")
    (top, _), (left, _) = geometry.pads
    height, width = geometry.size
    kh, kw = geometry.kernel

    def add_slabs(batch):
        target = out[batch] if padded is None else padded[batch]
        target.fill(0)
        for i in range(kh):
            for j in range(kw):
                rows, columns = geometry.offset_slices(i, j)
                target[:, :, rows, columns] += cols[batch, :, i, j]
        if padded is not None:
            out[batch] = target[:, :, top:top + height, left:left + width]

    with step("col2im"):
        over_batch(add_slabs, cols.shape[0], cols.nbytes)
    return out


def _plane_taps(geometry):
    """Per kernel offset (i, j): its stride phase (a, b) and its shift inside the phase plane."""
    (kh, kw), (sh, sw), (dh, dw) = geometry.kernel, geometry.stride, geometry.dilation
    wq = geometry.phase_size[1]
    return [(i * dh % sh, j * dw % sw, (i * dh // sh) * wq + j * dw // sw)
            for i in range(kh) for j in range(kw)]


def _phase_length(channels, geometry):
    """Length of one image's phase row: its C planes plus the largest shift spilling past them."""
    hq, wq = geometry.phase_size
    return channels * hq * wq + max(shift for _, _, shift in _plane_taps(geometry))


def col2im_planes_plan(channels, geometry, dtype):
    """The buffers of :func:`col2im_planes_into` per image.

    Every stride phase's planes (with room for the shifted adds), and for a
    stride above 1 the padded image the phases interleave into.
    """
    (sh, sw), (hq, wq) = geometry.stride, geometry.phase_size
    plan = (Buffer("phases", (sh, sw, _phase_length(channels, geometry)), dtype),)
    if (sh, sw) != (1, 1):
        plan += (Buffer("interleaved", (channels, hq * sh, wq * sw), dtype),)
    return plan


def col2im_planes_into(dcols, geometry, groups, out, buffers):
    """col2im from columns laid out on whole stride-phase planes, onto ``out`` (N, C, H, W).

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
    (kh, kw), (sh, sw) = geometry.kernel, geometry.stride
    (top, _), (left, _) = geometry.pads
    height, width = geometry.size
    hq, wq = geometry.phase_size
    plane = hq * wq
    group_size = channels // groups * plane
    taps = _plane_taps(geometry)
    phases, interleaved = buffers["phases"], buffers.get("interleaved")

    def add_planes(batch):
        rows = dcols[batch].reshape(-1, groups, kh * kw, group_size)
        sums = phases[batch]
        sums.fill(0)
        for group in range(groups):
            for tap, (a, b, shift) in enumerate(taps):
                start = group * group_size + shift
                sums[:, a, b, start:start + group_size] += rows[:, group, tap]
        on_planes = sums[..., :channels * plane].reshape(-1, sh, sw, channels, hq, wq)
        if interleaved is None:  # stride 1: the one phase is the padded image
            padded = on_planes[:, 0, 0]
        else:
            padded = interleaved[batch]
            for a in range(sh):
                for b in range(sw):
                    padded[:, :, a::sh, b::sw] = on_planes[:, a, b]
        out[batch] = padded[:, :, top:top + height, left:left + width]

    with step("col2im"):
        over_batch(add_planes, n, dcols.nbytes)
    return out
