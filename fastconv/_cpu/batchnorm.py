"""Batch normalisation on the CPU (NumPy): per channel, natively on (N, C, ...) arrays.

x is read as (N, C, L) rows, L the product of the spatial sizes (1 for (N, D)
features), so NCHW maps are never transposed and one code serves both
layouts. The batch is cut into fixed blocks of about ``_BLOCK_BYTES``
(:class:`_Blocks`), the blocks split across threads
(:func:`fastconv._cpu.threads.over_batch`); all the operations on a block run
while it is still in the cache (L2, else L3), so each pass reads x (and dout)
from memory once. The scratch is a block or two per thread and a few one-image planes:
small, and not growing with the batch, so they are plain arrays rather than
workspace plans.

Passes over memory: the train-mode forward two (statistics, output), eval one;
the backward two with batch statistics (sums, dx), one without. A small
batch (``_SMALL_BYTES``) gains nothing from blocks or threads: it takes the
GPU backend's whole-array code instead (device-neutral, and with the fewest
NumPy calls, which is what small arrays cost).

The blocks depend only on the shape, and each block's partial sums go to its
own row of a (blocks, C) array, combined in block order once every thread is
done: no result depends on the thread count. The statistics are the
corrected two-pass of Chan, Golub and LeVeque, in parallel form: each
block's deviations from its own rounded mean, their sum and their squares,
then the spread of the block means (:func:`_combined`); never E[x^2] -
E[x]^2. The sums are ``einsum`` reductions. float16 arrays are
cast block by block and computed in float32, the dtype of ``mean``; outputs
are cast back on the last write.
"""

from __future__ import annotations

import math

import numpy

from .._gpu import batchnorm as whole_arrays
from ..backend import accumulator_dtype
from ..profiling import step
from .threads import over_batch

_BLOCK_BYTES = 1 << 20  # x's share of a block: smaller ones cost more in calls than they save
_SMALL_BYTES = 1 << 17  # below this, NumPy's per-call cost dominates: whole arrays are faster
# The sums are einsum reductions: quicker than sum over short rows, and accumulated in SIMD lanes.
_SUM = "icl->c"  # a block's per-channel sum
_SUM_OF_PRODUCTS = "icl,icl->c"


def _rows(a):
    """(N, C, L) view of a C-contiguous (N, C, ...) array."""
    return a.reshape(a.shape[0], a.shape[1], math.prod(a.shape[2:]))


def _plane(v, length):
    """A per-channel vector (C,) repeated along one image's rows: (C, L), contiguous.

    Broadcast over a block's (k, C, L), a plane lets every elementwise op
    run one inner loop per image.
    """
    # A (C, 1) column would cost an iterator step per row, which on short rows
    # takes longer than the arithmetic.
    return numpy.repeat(v, length).reshape(v.shape[0], length)


def _is_small(x):
    """Whether ``x`` in the working dtype is below ``_SMALL_BYTES`` (see the module docstring)."""
    return x.size * accumulator_dtype(x.dtype).itemsize < _SMALL_BYTES


def _in_work(a, scratch):
    """``a`` itself if in the scratch's (working) dtype, else its cast into ``scratch``."""
    if a.dtype == scratch.dtype:
        return a
    numpy.copyto(scratch, a)
    return scratch


class _Blocks:
    """The batch of ``rows`` (N, C, L) cut into fixed blocks of images, in the working dtype.

    A block holds ``per_block`` images (the last one the rest), about
    ``_BLOCK_BYTES`` in the working dtype; the cut depends on the shape only.
    """

    def __init__(self, rows, work):
        self.rows, self.work = rows, numpy.dtype(work)
        n, c, length = rows.shape
        self.per_block = max(1, _BLOCK_BYTES // max(1, c * length * self.work.itemsize))
        self.count = -(-n // self.per_block)

    def images(self, index):
        """The slice of the batch that block ``index`` covers."""
        start = index * self.per_block
        return slice(start, min(start + self.per_block, self.rows.shape[0]))

    def values(self):
        """(blocks, 1): how many values of each channel each block holds."""
        n, _, length = self.rows.shape
        sizes = [min(self.per_block, n - start) * length for start in range(0, n, self.per_block)]
        return numpy.array(sizes, dtype=numpy.int64).reshape(-1, 1)

    def partials(self):
        """An uninitialised (blocks, C) array: one row of per-channel sums per block."""
        return numpy.empty((self.count, self.rows.shape[1]), dtype=self.work)

    def run(self, block, nbytes, scratches=1):
        """Run ``block(index, images, scratch)`` on every block, threads splitting the blocks.

        ``nbytes`` is the memory the whole pass touches (for the split);
        ``scratch`` is an uninitialised (scratches, k, C, L) array for the k
        images of the block, one per thread.
        """
        _, c, length = self.rows.shape

        def run(indices):
            largest = min(self.per_block, self.rows.shape[0])
            scratch = numpy.empty((scratches, largest, c, length), dtype=self.work)
            for index in range(indices.start, indices.stop):
                images = self.images(index)
                block(index, images, scratch[:, :images.stop - images.start])

        over_batch(run, self.count, nbytes)


def batch_statistics(x: numpy.ndarray) -> tuple[numpy.ndarray, numpy.ndarray]:
    """The per-channel mean and biased variance of a C-contiguous ``x`` (N, C, ...).

    Over every axis but 1, in the accumulator dtype (float32 for float16).
    """
    with step("batchnorm"):
        if _is_small(x):
            return whole_arrays.batch_statistics(x)
        return _blocked_statistics(x)


def _blocked_statistics(x):
    """:func:`batch_statistics` over blocks (see the module docstring)."""
    rows = _rows(x)
    blocks = _Blocks(rows, accumulator_dtype(x.dtype))
    centers, shifts, squares = blocks.partials(), blocks.partials(), blocks.partials()
    length = rows.shape[2]

    def block(index, images, scratch):
        values = _in_work(rows[images], scratch[0])
        numpy.einsum(_SUM, values, out=centers[index])
        centers[index] /= values.shape[0] * length  # the block's mean, up to rounding
        deviations = numpy.subtract(values, _plane(centers[index], length), out=scratch[0])
        numpy.einsum(_SUM, deviations, out=shifts[index])
        numpy.einsum(_SUM_OF_PRODUCTS, deviations, deviations, out=squares[index])

    blocks.run(block, x.nbytes)
    return _combined(centers, shifts, squares, blocks.values(), blocks.work)


def _combined(centers, shifts, squares, values, work):
    """Mean and variance of the batch from each block's partial sums about its center.

    Per block (rows of the (blocks, C) arrays): the ``center`` its deviations
    were taken from (its rounded mean), their sum ``shifts`` and the sum of
    their squares; ``values`` (blocks, 1) counts the block's values per
    channel. The corrected two-pass (Chan, Golub, LeVeque): a block's squared
    deviations from its exact mean are ``squares - shifts**2 / values``, to
    which the spread of the block means adds ``values * (block mean - mean)**2``.
    These few numbers are combined in float64, in block order; the results
    are cast to ``work``.
    """
    values, shifts = values.astype(numpy.float64), shifts.astype(numpy.float64)
    count = values.sum()
    block_means = centers + shifts / values
    mean = (values * block_means).sum(axis=0) / count
    spread = block_means - mean
    within = squares - shifts * shifts / values
    var = (within + values * spread * spread).sum(axis=0) / count
    return mean.astype(work), var.astype(work)


def normalize(x: numpy.ndarray, mean: numpy.ndarray, inv_std: numpy.ndarray,
              gamma: numpy.ndarray, beta: numpy.ndarray) -> numpy.ndarray:
    """``(x - mean) * (gamma * inv_std) + beta`` per channel, contiguous, in x's dtype.

    ``mean`` and ``inv_std`` = 1 / sqrt(var + eps) are (C,) in the working
    dtype, gamma and beta (C,) in x's. The mean is subtracted before scaling:
    ``x * scale + shift`` would cancel digits where the mean is large against
    the standard deviation.
    """
    with step("batchnorm"):
        if _is_small(x):
            return whole_arrays.normalize(x, mean, inv_std, gamma, beta)
        return _blocked_normalize(x, mean, inv_std, gamma, beta)


def _blocked_normalize(x, mean, inv_std, gamma, beta):
    """:func:`normalize` over blocks."""
    rows, work = _rows(x), mean.dtype
    out = numpy.empty(x.shape, dtype=x.dtype)
    out_rows, length = _rows(out), rows.shape[2]
    center, shift = _plane(mean, length), _plane(beta.astype(work), length)
    scale = _plane(gamma.astype(work) * inv_std, length)

    def block(index, images, scratch):
        # float16 is computed in a float32 scratch and rounded once, on the last write
        target = out_rows[images] if out.dtype == work else scratch[0]
        numpy.subtract(rows[images], center, out=target)
        numpy.multiply(target, scale, out=target)
        numpy.add(target, shift, out=out_rows[images])

    _Blocks(rows, work).run(block, 2 * x.nbytes)
    return out


def normalize_backward(dout: numpy.ndarray, x: numpy.ndarray, mean: numpy.ndarray,
                       inv_std: numpy.ndarray, gamma: numpy.ndarray, use_batch: bool
                       ) -> tuple[numpy.ndarray, numpy.ndarray, numpy.ndarray]:
    """``(dx, dgamma, dbeta)`` of :func:`normalize` in dout's dtype, dx contiguous.

    ``dout`` and ``x`` are C-contiguous. With ``use_batch`` the mean and
    variance were the batch's, so the gradient flows through them: ``dx =
    gamma * inv_std * (dout - mean(dout) - xhat * mean(dout * xhat))`` (means
    per channel), which needs the sums of a first pass. Otherwise they were
    constants, ``dx = dout * gamma * inv_std``, written in the same pass as
    the sums.
    """
    with step("batchnorm backward"):
        if _is_small(x):
            return whole_arrays.normalize_backward(dout, x, mean, inv_std, gamma, use_batch)
        return _blocked_backward(dout, x, mean, inv_std, gamma, use_batch)


def _blocked_backward(dout, x, mean, inv_std, gamma, use_batch):
    """:func:`normalize_backward` over blocks."""
    rows, grad_rows, work = _rows(x), _rows(dout), mean.dtype
    blocks = _Blocks(rows, work)
    dx = numpy.empty(dout.shape, dtype=dout.dtype)
    dx_rows, length = _rows(dx), rows.shape[2]
    sums, products = blocks.partials(), blocks.partials()  # of dout, of dout * (x - mean)
    center, scale = _plane(mean, length), _plane(gamma.astype(work) * inv_std, length)
    scratches = 1 if dout.dtype == work else 2  # float16: dout's cast needs its own block

    def add_up(index, images, scratch):
        grad = _in_work(grad_rows[images], scratch[-1])
        numpy.einsum(_SUM, grad, out=sums[index])
        deviations = numpy.subtract(rows[images], center, out=scratch[0])
        numpy.einsum(_SUM_OF_PRODUCTS, deviations, grad, out=products[index])
        return grad

    def add_up_and_scale(index, images, scratch):
        numpy.multiply(add_up(index, images, scratch), scale, out=dx_rows[images])

    if use_batch:
        blocks.run(add_up, 2 * x.nbytes, scratches)
    else:  # constant statistics: dx needs no totals, so it is written in the same pass
        blocks.run(add_up_and_scale, 3 * x.nbytes, scratches)
    total, total_product = sums.sum(axis=0), products.sum(axis=0)  # in block order
    if use_batch:
        _batch_gradient(blocks, grad_rows, dx_rows, center, scale, inv_std, total, total_product)
    dgamma = total_product * inv_std  # the sum of dout * xhat
    return dx, dgamma.astype(dout.dtype), total.astype(dout.dtype)


def _batch_gradient(blocks, grad_rows, dx_rows, center, scale, inv_std, total, total_product):
    """Write ``dx = scale * (dout - total / M - (x - mean) * (total_product * inv_std**2 / M))``.

    ``total_product * inv_std / M`` (the mean of dout * xhat) is formed before
    the second ``inv_std``, so a large inv_std does not overflow the square.
    """
    rows = blocks.rows
    length = rows.shape[2]
    count = rows.shape[0] * length
    slope = _plane(total_product * inv_std / count * inv_std, length)
    offset = _plane(total / count, length)

    def block(index, images, scratch):
        term = numpy.subtract(rows[images], center, out=scratch[0])
        numpy.multiply(term, slope, out=term)
        numpy.subtract(grad_rows[images], term, out=term)
        numpy.subtract(term, offset, out=term)
        numpy.multiply(term, scale, out=dx_rows[images])

    blocks.run(block, 3 * rows.nbytes)
