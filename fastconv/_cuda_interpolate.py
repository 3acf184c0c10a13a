"""The wrappers of the resizing kernels (kernels/interpolate.cu), re-exported by :mod:`fastconv._cuda`.

Each axis is given as its kernel tables ``(index, weight)``: ``index`` an
int32 (taps, positions) array of source positions, ``weight`` the same shape
in the accumulator dtype, or None for an unweighted axis (its taps' values are
taken as they are: one tap copies). The forward's tables have a position per
output, the backward's (the adjoint tables) one per input, whose index one
past the last output stands for a zero row. Written against a :class:`Launcher`
and its array module only, like every wrapper of :mod:`fastconv._cuda`
(``launcher=None`` for :func:`fastconv._cuda.default_launcher`).
"""

from . import _cuda_launcher
from ._cuda_launcher import resolved
from .backend import accumulator_dtype



def interpolate_fits(size, out_size, *tables):
    """Whether the resizing kernels take planes of ``size`` resized to ``out_size`` with
    these index tables, within their 32-bit in-plane arithmetic.

    Parameters
    ----------
    size, out_size : tuple of int
        (H, W) and (OH, OW).
    *tables : ndarray
        The index tables of the launch.

    Returns
    -------
    bool
        True when both planes and every table have fewer than ``PLANE_LIMIT`` (2**31)
        elements.

    Examples
    --------
    >>> import numpy
    >>> interpolate_fits((4, 4), (8, 8), numpy.zeros((2, 8), numpy.int32))
    True
    >>> interpolate_fits((2**16, 2**15), (1, 1), numpy.zeros((1, 1), numpy.int32))
    False
    """
    extents = (size[0] * size[1], out_size[0] * out_size[1], *(t.size for t in tables))
    return max(extents) < _cuda_launcher.PLANE_LIMIT


def _refuse_large(size, out_size, rows, columns):
    if not interpolate_fits(size, out_size, rows[0], columns[0]):
        raise ValueError(f"resizing planes of {tuple(size)} to {tuple(out_size)} is too large "
                         f"for the CUDA kernels: the planes and the tap tables must stay below "
                         f"2**31 elements")


def _tables(xp, dtype, rows, columns):
    """The kernels' four table arrays; an unweighted axis's weights a placeholder (not read)."""
    placeholder = xp.zeros(1, accumulator_dtype(dtype))
    return [placeholder if a is None else xp.ascontiguousarray(a)
            for axis in (rows, columns) for a in axis]


def _run(launcher, kernel, source, rows, columns, size, out_size, result_size):
    """Launch ``kernel`` on ``source``'s planes into new planes of ``result_size``: the input
    planes of the resize are ``size`` (H, W), its output planes ``out_size`` (OH, OW)."""
    _refuse_large(size, out_size, rows, columns)
    xp = launcher.xp
    source = xp.ascontiguousarray(source)
    planes = source.shape[0] * source.shape[1]
    result = launcher.empty(source.shape[:2] + tuple(result_size), source.dtype)
    launcher.launch(kernel, (planes, result_size[0] * result_size[1]), source,
                    *_tables(xp, source.dtype, rows, columns), result, planes, *size, *out_size,
                    rows[0].shape[0], columns[0].shape[0], int(rows[1] is not None),
                    int(columns[1] is not None))
    return result


def interpolate_forward(x, rows, columns, launcher=None):
    """Resize ``x`` (N, C, H, W) on the GPU: out (N, C, OH, OW), OH and OW the tables' widths.

    One thread per output element sums the column taps' weighted values of the row taps'
    weighted sums (H first, then W, in the accumulator dtype, rounded once).

    Parameters
    ----------
    x : cupy.ndarray
        (N, C, H, W), float16/32/64.
    rows, columns : tuple
        ``(index, weight)`` of the H and the W axis, each (taps, OH) or (taps, OW); weight None
        for an unweighted axis.
    launcher : Launcher, optional
        :func:`fastconv._cuda.default_launcher` when None.

    Returns
    -------
    cupy.ndarray
        (N, C, OH, OW), x's dtype.

    Raises
    ------
    ValueError
        A plane or a table too large for the kernels.
    """
    launcher = resolved(launcher)
    out_size = (rows[0].shape[1], columns[0].shape[1])
    return _run(launcher, "interpolate_forward_kernel", x, rows, columns, x.shape[2:],
                out_size, out_size)


def interpolate_backward(dout, rows, columns, x_size, launcher=None):
    """The input gradient (N, C, H, W) of a resize on the GPU, gather-style.

    One thread per input element sums, in ascending output order, the weighted dout of the
    outputs that read it (the W axis first, then H, as the CPU path), with the adjoint tables.

    Parameters
    ----------
    dout : cupy.ndarray
        (N, C, OH, OW), float16/32/64.
    rows, columns : tuple
        The adjoint ``(index, weight)`` of the H and the W axis, each (readers, H) or
        (readers, W); index OH (OW) where fewer outputs read an input.
    x_size : tuple of int
        (H, W).
    launcher : Launcher, optional
        :func:`fastconv._cuda.default_launcher` when None.

    Returns
    -------
    cupy.ndarray
        dx (N, C, H, W), dout's dtype.

    Raises
    ------
    ValueError
        A plane or a table too large for the kernels.
    """
    launcher = resolved(launcher)
    return _run(launcher, "interpolate_backward_kernel", dout, rows, columns, tuple(x_size),
                dout.shape[2:], tuple(x_size))
