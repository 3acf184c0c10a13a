"""The weight-gradient sum kernel (kernels/weight_sum.cu), emulated on the CPU.

Every convolution's backward on the GPU ends with it: the per-image partials (images, F,
taps + 1) in the accumulator dtype, summed over the images into dw (F, taps) and db (F).
Hypothesis draws the images, filters, taps, the bias, the dtype and grids capped at 1 or
2 blocks per axis (so the grid-stride loops over the filters do the work), and runs
threads in either order. The oracle adds the images' partials one after another in the
accumulator dtype, as the kernel does, and rounds once: bit for bit. Without a bias the
last slots hold NaN, which must reach neither dw nor db.
"""

import collections

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cuda_emu.report import built_and_reported
from fastconv import _cuda, _cuda_launcher
from fastconv.backend import accumulator_dtype
from test_cuda_emulated import DTYPES, SETTINGS, bits, launcher

CASES = collections.Counter()


build_and_report = built_and_reported(
    "Weight-gradient sum", "the images' partials added in order, bit for bit", CASES)


def ordered_sums(partials, dtype):
    """The partials summed over the images in ascending order, in their dtype, rounded once
    to ``dtype``: (dw rows of taps, db)."""
    total = np.zeros_like(partials[0])
    for image in partials:
        total += image
    total = total.astype(dtype)
    return total[:, :-1], total[:, -1]


@given(st.integers(1, 5), st.integers(1, 70), st.integers(1, 40), st.booleans(),
       st.sampled_from(DTYPES), st.sampled_from([None, 1, 2]), st.booleans(),
       st.integers(0, 2**16))
@settings(max_examples=40, **SETTINGS)
def test_the_partials_are_summed_in_image_order_bit_for_bit(images, filters, taps, has_bias,
                                                            dtype, max_blocks, reversed_order,
                                                            seed):
    acc = accumulator_dtype(dtype)
    rng = np.random.default_rng(seed)
    partials = (rng.standard_normal((images, filters, taps + 1)) * 100).astype(acc)
    if not has_bias:
        partials[:, :, -1] = np.nan  # never read
    w_shape = (filters, taps)
    dw, db = _cuda.weight_sum(partials, w_shape, dtype, has_bias,
                              launcher(max_blocks=max_blocks, reversed_order=reversed_order))
    want_dw, want_db = ordered_sums(partials, dtype)
    assert dw.shape == w_shape and dw.dtype == dtype
    np.testing.assert_array_equal(bits(dw), bits(want_dw))
    if has_bias:
        assert db.shape == (filters,) and db.dtype == dtype
        np.testing.assert_array_equal(bits(db), bits(want_db))
    else:
        assert db is None
    CASES[np.dtype(dtype).name] += 1


def test_weights_of_any_rank_take_their_shape_and_float16_sums_round_once():
    """dw takes the weights' shape, (F, C, KH, KW) here; float16 partials far above 65504
    each sum to a finite float16 (the accumulator is float32, rounded once at the end)."""
    partials = np.zeros((2, 3, 2 * 2 * 2 + 1), np.float32)
    partials[0], partials[1] = 70000.0, -69999.5
    dw, db = _cuda.weight_sum(partials, (3, 2, 2, 2), np.float16, True, launcher())
    assert dw.shape == (3, 2, 2, 2) and dw.dtype == np.float16
    np.testing.assert_array_equal(dw, np.full((3, 2, 2, 2), 0.5, np.float16))
    np.testing.assert_array_equal(db, np.full(3, 0.5, np.float16))


def test_partials_unlike_the_weights_and_filters_past_the_slot_limit_are_refused(monkeypatch):
    """Clear errors before anything is allocated or launched: partials of another shape
    than the weights imply, and a filter whose taps + 1 reach the kernel's 32-bit limit
    (here lowered to 10); partials of no image sum to zeros, and the number of filters is
    not limited (one plane each)."""
    emu = launcher()
    with pytest.raises(ValueError, match=r"partials \(2, 3, 9\) are not \(images, 3, 10\)"):
        _cuda.weight_sum(np.zeros((2, 3, 9), np.float32), (3, 1, 3, 3), np.float32, True, emu)
    with pytest.raises(ValueError, match=r"partials \(3, 10\) are not"):
        _cuda.weight_sum(np.zeros((3, 10), np.float32), (3, 1, 3, 3), np.float32, True, emu)
    none = np.zeros((0, 3, 10), np.float32)  # no image: the sums are zeros
    dw, db = _cuda.weight_sum(none, (3, 1, 3, 3), np.float16, True, launcher())
    assert not dw.any() and not db.any() and dw.shape == (3, 1, 3, 3)
    monkeypatch.setattr(_cuda_launcher, "PLANE_LIMIT", 10)
    with pytest.raises(ValueError, match=r"taps \+ 1 must stay below 2\*\*31"):
        _cuda.weight_sum(np.zeros((1, 3, 10), np.float32), (3, 1, 3, 3), np.float32, True, emu)
    many = np.ones((2, 40, 9), np.float32)  # 40 filters of 9 slots: 360 slots, past the 10
    dw, db = _cuda.weight_sum(many, (40, 8), np.float32, True, emu)
    np.testing.assert_array_equal(dw, np.full((40, 8), 2, np.float32))
    np.testing.assert_array_equal(db, np.full(40, 2, np.float32))
