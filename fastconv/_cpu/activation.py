"""ReLU and leaky ReLU on the CPU (NumPy): one pass each way, split across threads.

The arrays are walked flat, the elements split across threads
(:func:`fastconv._cpu.threads.over_batch`); the passes with temporaries walk
each thread's share in blocks of ``_BLOCK`` elements, so the temporaries stay
in the L2 cache and each pass reads its inputs from memory once.
Elementwise work, so the thread count changes no bit.

The backward selects without branching. ReLU's gradient is dout's bits ANDed with a mask
that is all ones where x is not <= 0 (a NaN x passes dout, as in PyTorch),
zeros elsewhere: exact for every dout, where ``dout * (x > 0)`` would turn an
infinite dout into NaN. Leaky ReLU multiplies by a factor, 1 or the slope,
whose bits are picked by integer arithmetic on the comparison.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy

from ..profiling import step
from .threads import over_batch

_BLOCK = 1 << 16  # elements: the block and its masks stay in L2
# Branch-free selection by a float's bits (by itemsize): numpy.where (and copyto with
# where=) branches per element, which is slow on the random signs of real activations.
_BITS = {2: numpy.uint16, 4: numpy.uint32, 8: numpy.uint64}


def _flat(a: numpy.ndarray) -> numpy.ndarray:
    """``a`` as a 1-D C-contiguous array (a view unless ``a`` is not contiguous)."""
    return numpy.ascontiguousarray(a).reshape(-1)


def _over_blocks(block: Callable[..., None], size: int, nbytes: int, scratch: Any) -> None:
    """Run ``block(part, *buffers)`` over ``range(size)`` in slices of at most ``_BLOCK`` elements.

    The elements are split across threads (``nbytes``: the memory the whole
    pass touches); each thread walks its share block by block, with one
    uninitialised buffer per dtype of ``scratch``, cut to the part's length.
    """
    def run(share: slice) -> None:
        buffers = [numpy.empty(min(_BLOCK, share.stop - share.start), dtype=dtype)
                   for dtype in scratch]
        for start in range(share.start, share.stop, _BLOCK):
            part = slice(start, min(start + _BLOCK, share.stop))
            block(part, *(b[:part.stop - start] for b in buffers))

    over_batch(run, size, nbytes)


def relu_forward(x: numpy.ndarray) -> numpy.ndarray:
    """``max(x, 0)`` of a float array, contiguous, in its shape and dtype; NaN propagates.

    Parameters
    ----------
    x : numpy.ndarray
        A float array.

    Returns
    -------
    numpy.ndarray

    Examples
    --------
    >>> relu_forward(numpy.array([-1.0, numpy.nan, 2.0]))
    array([ 0., nan,  2.])
    """
    values = _flat(x)
    out = numpy.empty_like(values)
    zero = x.dtype.type(0)

    def share(part: slice) -> None:  # one op: no temporaries to keep in L2, so no blocks
        numpy.maximum(values[part], zero, out=out[part])

    with step("relu"):
        over_batch(share, values.size, 2 * x.nbytes)
    return out.reshape(x.shape)


def relu_backward(dout: numpy.ndarray, out: numpy.ndarray) -> numpy.ndarray:
    """dx, contiguous: 0 where the forward's ``out`` <= 0, else dout.

    ``out <= 0`` exactly where x <= 0 (out is then 0), and a NaN x gave a NaN
    out, which passes dout.

    Parameters
    ----------
    dout : numpy.ndarray
        The gradient of the output.
    out : numpy.ndarray
        The forward's output, dout's shape.

    Returns
    -------
    numpy.ndarray

    Examples
    --------
    >>> relu_backward(numpy.array([numpy.inf, 1.0]), numpy.array([0.0, 2.0]))
    array([0., 1.])
    """
    grad, values = _flat(dout), _flat(out)
    dx = numpy.empty_like(grad)
    bits = _BITS[dout.itemsize]
    grad_bits, dx_bits = grad.view(bits), dx.view(bits)

    def block(part: slice, zeroed: numpy.ndarray, keep: numpy.ndarray) -> None:
        numpy.less_equal(values[part], 0, out=zeroed)
        # 0 - 1 = -1, all ones once cast to the unsigned bits, where kept; 1 - 1 = 0 where zeroed
        numpy.subtract(zeroed.view(numpy.int8), numpy.int8(1), out=keep, casting="unsafe")
        numpy.bitwise_and(grad_bits[part], keep, out=dx_bits[part])

    with step("relu backward"):
        _over_blocks(block, grad.size, 3 * dout.nbytes, (numpy.bool_, bits))
    return dx.reshape(dout.shape)


def _slope_factors(values: numpy.ndarray, negative_slope: float, positive: numpy.ndarray,
                   factors: numpy.ndarray) -> None:
    """Write 1 where ``values`` > 0, else ``negative_slope``, into ``factors`` (values' dtype).

    The factor's bits are ``slope + positive * (one - slope)`` in unsigned
    integers, which wrap, so the two floats come out exactly.
    """
    bits = factors.dtype
    one, slope = (values.dtype.type(v).view(bits) for v in (1, negative_slope))
    step_up = bits.type((int(one) - int(slope)) % (1 << (8 * bits.itemsize)))
    numpy.greater(values, 0, out=positive)
    numpy.multiply(positive.view(numpy.uint8), step_up, out=factors)
    numpy.add(factors, slope, out=factors)


def leaky_relu_forward(x: numpy.ndarray, negative_slope: float) -> numpy.ndarray:
    """``x`` where x > 0, else ``negative_slope * x`` (NaN too), contiguous.

    Parameters
    ----------
    x : numpy.ndarray
        A float array.
    negative_slope : float
        The slope where x <= 0.

    Returns
    -------
    numpy.ndarray

    Examples
    --------
    >>> leaky_relu_forward(numpy.array([-2.0, 3.0]), 0.5)
    array([-1.,  3.])
    """
    return _times_slope_factors(x, x, negative_slope, "leaky relu")


def leaky_relu_backward(dout: numpy.ndarray, x: numpy.ndarray,
                        negative_slope: float) -> numpy.ndarray:
    """dx, contiguous: dout where the forward's input x > 0, else ``negative_slope * dout``.

    Parameters
    ----------
    dout : numpy.ndarray
        The gradient of the output.
    x : numpy.ndarray
        The forward's input, dout's shape.
    negative_slope : float
        The slope where x <= 0.

    Returns
    -------
    numpy.ndarray

    Examples
    --------
    >>> leaky_relu_backward(numpy.ones(2), numpy.array([-2.0, 3.0]), 0.5)
    array([0.5, 1. ])
    """
    return _times_slope_factors(dout, x, negative_slope, "leaky relu backward")


def _times_slope_factors(a: numpy.ndarray, x: numpy.ndarray, negative_slope: float,
                         name: str) -> numpy.ndarray:
    """``a`` times 1 where x > 0, else times ``negative_slope``: both directions of leaky ReLU.

    A product by 1.0 is exact, and one by the slope is the same product the
    plain formula takes, so the result is bitwise that of ``where``.
    """
    source, values = _flat(a), _flat(x)
    result = numpy.empty_like(source)
    bits = _BITS[a.itemsize]

    def block(part: slice, positive: numpy.ndarray, factors: numpy.ndarray) -> None:
        _slope_factors(values[part], negative_slope, positive, factors)
        numpy.multiply(source[part], factors.view(a.dtype), out=result[part])

    with step(name):
        _over_blocks(block, source.size, 3 * a.nbytes, (numpy.bool_, bits))
    return result.reshape(a.shape)
