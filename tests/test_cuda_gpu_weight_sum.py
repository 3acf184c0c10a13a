"""Rung 3 for the weight-gradient sum and the bias products, on a GPU: CuPy through
kernels/weight_sum.cu and cuBLAS.

Every test is marked ``gpu`` (skipped, with the reason, where CuPy or a usable device is
missing). The sum kernel adds plain loads in the accumulator type, so it must give the bits
of the images' partials added in order on the host; the bias products go through cuBLAS,
whose forward (b times ones, added onto the output) is one rounding per element, as NumPy's
broadcast add, and whose gradient is a sum, held to the sum tolerance of float64 sums.
"""

import numpy as np
import pytest

from fastconv import _cuda
from fastconv._gpu import bias
from fastconv.backend import accumulator_dtype
from test_cuda_gpu import DTYPES, _launcher, bits, rand

pytestmark = pytest.mark.gpu


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("has_bias", [True, False])
@pytest.mark.parametrize("max_blocks", [None, 1])
def test_the_weight_sum_adds_the_images_in_order_bit_for_bit(cp, dtype, has_bias, max_blocks):
    acc = accumulator_dtype(dtype)
    partials = (rand((7, 70, 4 * 3 * 3 + 1), np.float64, 70) * 1000).astype(acc)
    if not has_bias:
        partials[:, :, -1] = np.nan  # never read
    launcher = _launcher(cp, max_blocks=max_blocks or _cuda.MAX_BLOCKS)
    dw, db = _cuda.weight_sum(cp.asarray(partials), (70, 4, 3, 3), dtype, has_bias, launcher)
    total = np.zeros_like(partials[0])
    for image in partials:
        total += image
    total = total.astype(dtype)
    np.testing.assert_array_equal(bits(cp.asnumpy(dw), np),
                                  bits(total[:, :-1].reshape(70, 4, 3, 3), np))
    if has_bias:
        np.testing.assert_array_equal(bits(cp.asnumpy(db), np), bits(total[:, -1], np))
    else:
        assert db is None


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
def test_the_bias_products_on_cublas(cp, dtype):
    out, b = rand((3, 17, 5, 7), dtype, 71) * 10, rand((17,), dtype, 72)
    got = cp.asarray(out)
    bias.add_bias(got, cp.asarray(b))
    want = (out + b.reshape(1, -1, 1, 1)).astype(dtype)
    np.testing.assert_array_equal(bits(cp.asnumpy(got), np), bits(want, np))
    dout = rand((3, 17, 35), dtype, 73)
    held = rand((3, 17, 6), accumulator_dtype(dtype), 74)
    partials = cp.asarray(held)
    bias.bias_grad_partials_into(cp.asarray(dout), partials, accumulate=True)
    partials = cp.asnumpy(partials)
    wide = dout.astype(np.float64)
    want = wide.sum(axis=2) + held[:, :, -1]
    scale = np.abs(wide).sum(axis=2) + np.abs(held[:, :, -1])
    tolerance = 1e-14 if dtype == np.float64 else 1e-6
    assert (np.abs(partials[:, :, -1] - want) <= tolerance * 4 * scale).all()
    np.testing.assert_array_equal(partials[:, :, :-1], held[:, :, :-1])
