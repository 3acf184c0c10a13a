"""The GPU path's bias products (fastconv/_gpu/bias.py), through the NumPy model of cuBLAS.

Oracles: NumPy's broadcast add (the forward's bias is one rounding per element, bit for
bit in every dtype) and float64 sums of dout over the positions (the bias gradient, to the
sum tolerance); the partials' other slots must keep what they held.
"""

import numpy as np
import pytest

from fastconv._gpu import bias
from fastconv.backend import accumulator_dtype

DTYPES = [np.float16, np.float32, np.float64]
POSITIONS = [(1,), (7,), (3, 5), (2, 3, 4)]  # a 1-D, 2-D and 3-D convolution's outputs


def normal(seed, shape, dtype):
    return np.random.default_rng(seed).standard_normal(shape).astype(dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("positions", POSITIONS, ids=str)
@pytest.mark.parametrize("images, filters", [(1, 1), (3, 5), (2, 17)])
def test_add_bias_is_the_broadcast_add_bit_for_bit(dtype, positions, images, filters):
    out = normal(0, (images, filters) + positions, dtype) * 50
    b = normal(1, (filters * 2,), dtype)[::2]  # a strided bias is read through a copy
    want = out + b.reshape((1, -1) + (1,) * len(positions))
    bias.add_bias(out, b)
    np.testing.assert_array_equal(out.view(np.uint8), want.astype(dtype).view(np.uint8))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("positions", POSITIONS, ids=str)
@pytest.mark.parametrize("accumulate", [False, True])
def test_bias_gradient_fills_the_last_slot_of_each_filter_only(dtype, positions, accumulate):
    images, filters, slots = 3, 6, 4
    acc = accumulator_dtype(dtype)
    dout = normal(2, (images, filters) + positions, dtype)
    held = normal(3, (images, filters, slots), acc)
    partials = held.copy()
    bias.bias_grad_partials_into(dout.reshape(images, filters, -1), partials, accumulate)
    sums = dout.astype(np.float64).reshape(images, filters, -1).sum(axis=2)
    want = sums + (held[:, :, -1] if accumulate else 0)
    scale = np.abs(dout.astype(np.float64)).reshape(images, filters, -1).sum(axis=2) + 1
    tolerance = {np.float16: 1e-6, np.float32: 1e-6, np.float64: 1e-14}[dtype]
    assert partials.dtype == acc
    np.testing.assert_array_less(np.abs(partials[:, :, -1] - want), tolerance * 4 * scale)
    np.testing.assert_array_equal(partials[:, :, :-1], held[:, :, :-1])


def test_the_vector_of_ones_is_made_once_per_dtype_and_grown_on_demand(monkeypatch):
    """One vector per (module, device, dtype), reused while long enough, replaced by a longer
    one when a longer plane asks: no allocation per call."""
    monkeypatch.setattr(bias, "_ones", {})
    x32, x64 = np.zeros(1, np.float32), np.zeros(1, np.float64)
    first = bias.ones_like_device(x32, 10)
    assert first.dtype == np.float32 and first.size == 10 and (first == 1).all()
    assert bias.ones_like_device(x32, 4) is first
    assert bias.ones_like_device(x64, 4).dtype == np.float64
    longer = bias.ones_like_device(x32, 11)
    assert longer.size == 11 and bias.ones_like_device(x32, 10) is longer
    assert len(bias._ones) == 2
