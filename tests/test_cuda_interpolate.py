"""The resizing kernels (kernels/interpolate.cu), emulated on the CPU, through the interpolate op.

Every case runs ``fastconv.functional.interpolate_forward`` and ``interpolate_backward`` on
NumPy arrays routed to the GPU backend (fastconv/_gpu/interpolate.py), the kernels on the
CPU emulator (tests/cuda_emu) with output buffers poisoned with NaN, launched through
fastconv/_cuda_interpolate.py's wrappers with the grids they compute. Hypothesis draws the
input (sizes 1 to 9), the mode ('nearest', 'bilinear' with align_corners None, False or
True), a size (1 to 16 per axis: upsampling, downsampling, sizes of 1, an axis that keeps
its size) or a scale factor (an int or a float from 0.3 to 4, per axis or for both), the
dtype and the launch shape (blocks of 32 to 1024 threads, grids capped at 1 or 2 blocks per
axis so the grid-stride loops do the work, threads first-to-last or last-to-first).

Oracle: the CPU path (fastconv/_cpu/interpolate.py: ``take`` gathers over the same tap
tables), bit for bit, float16 included (both combine in float32 and round once): the
kernels do its operations in its order. Special values (signed zeros, infinities, NaN)
check that the order and the zero row of the backward are the CPU path's too.
"""

import collections

import numpy as np
import pytest
from hypothesis import assume, given, note, settings
from hypothesis import strategies as st

import fastconv.functional as F
from conftest import gpu_dispatch
from cuda_emu.report import built_and_reported
from fastconv import _cuda, _cuda_interpolate, _cuda_launcher
from test_cuda_emulated import DTYPES, SETTINGS, bits, launch_shapes, launcher, normal

CASES = collections.Counter()
FORWARD, BACKWARD = "interpolate_forward_kernel", "interpolate_backward_kernel"


build_and_report = built_and_reported("Interpolate", "the CPU path, bit for bit", CASES)


def scale_factors():
    one = st.one_of(st.integers(1, 3), st.floats(0.3, 4.0, allow_nan=False))
    return st.one_of(one, st.tuples(one, one))


@st.composite
def interpolate_cases(draw):
    """(x shape, interpolate keyword arguments)."""
    shape = (draw(st.integers(1, 2)), draw(st.integers(1, 3)), draw(st.integers(1, 9)),
             draw(st.integers(1, 9)))
    kw = dict(mode=draw(st.sampled_from(["nearest", "bilinear"])))
    if kw["mode"] == "bilinear":
        kw["align_corners"] = draw(st.sampled_from([None, False, True]))
    if draw(st.booleans()):
        kw["size"] = draw(st.one_of(st.integers(1, 16),
                                    st.tuples(st.integers(1, 16), st.integers(1, 16))))
    else:
        kw["scale_factor"] = draw(scale_factors())
        scales = np.broadcast_to(kw["scale_factor"], 2)
        assume(all(int(n * s) >= 1 for n, s in zip(shape[2:], scales)))
    return shape, kw


def assert_same_bits(got, want, name):
    """Equal dtypes, shapes and bits; NaN where the CPU path has NaN (a GPU may give another
    NaN payload). The poison is NaN, so an element never written fails unless the CPU path
    has NaN there too."""
    assert got.dtype == want.dtype and got.shape == want.shape, name
    assert got.flags.c_contiguous, name
    nan = np.isnan(want)
    np.testing.assert_array_equal(np.isnan(got), nan, err_msg=f"{name}: NaN positions")
    np.testing.assert_array_equal(bits(got)[~nan], bits(want)[~nan], err_msg=name)


def check_interpolate(x, kw, dout, emu):
    """Forward and backward on ``emu`` through the GPU backend against the CPU path."""
    want, cache = F.interpolate_forward(x, **kw)
    want_dx = F.interpolate_backward(dout, cache)
    with gpu_dispatch(emu) as calls:
        out, gpu_cache = F.interpolate_forward(x, **kw)
        dx = F.interpolate_backward(dout, gpu_cache)
    assert calls == [FORWARD, BACKWARD], calls
    assert_same_bits(out, want, "out")
    assert_same_bits(dx, want_dx, "dx")
    copied = "".join("HW"[axis] for axis, taps in enumerate(cache.taps) if taps is None)
    CASES[f"{kw.get('mode', 'nearest')} {x.dtype}{' copying ' + copied if copied else ''}"] += 1


@settings(max_examples=150, **SETTINGS)
@given(interpolate_cases(), st.sampled_from(DTYPES), st.integers(0, 2**32 - 1), launch_shapes)
def test_interpolate_matches_the_cpu_path_bit_for_bit(case, dtype, seed, emu):
    shape, kw = case
    note(f"block={emu.block} max_blocks={emu.max_blocks}")
    x = normal(seed, shape, dtype)
    out_shape = F.interpolate_forward(x, **kw)[0].shape
    check_interpolate(x, kw, normal(seed + 1, out_shape, dtype), emu)


SPECIAL = dict(size=(7, 2), mode="bilinear"), dict(size=(2, 7)), \
    dict(scale_factor=(0.5, 2.5), mode="bilinear", align_corners=True), dict(size=(1, 3))


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("kw", SPECIAL, ids=str)
def test_signed_zeros_infinities_and_nan_give_the_cpu_paths_bits(kw, dtype):
    """-0.0 everywhere (a sum must start at its first term, and the zero row adds +0 as
    the CPU path's), then infinities and NaN among normal values (0 * inf is NaN where a
    tap has weight 0), on a grid of two blocks of 32 threads run last to first."""
    emu = launcher(block=32, max_blocks=2, reversed_order=True)
    x = np.full((2, 3, 4, 5), -0.0, dtype)
    out_shape = F.interpolate_forward(x, **kw)[0].shape
    check_interpolate(x, kw, np.full(out_shape, -0.0, dtype), emu)
    x, dout = normal(7, x.shape, dtype), normal(8, out_shape, dtype)
    for a in (x, dout):
        flat = a.reshape(-1)
        flat[::7], flat[3::11], flat[5::13] = np.inf, -np.inf, np.nan
    with np.errstate(invalid="ignore"):  # inf - inf and 0 * inf, on both paths
        check_interpolate(x, kw, dout, emu)


def test_strided_operands_go_through_contiguous_copies():
    """A transposed x and dout give the results of their contiguous copies."""
    emu = launcher(block=64)
    x = normal(9, (2, 3, 6, 5), np.float32).transpose(0, 1, 3, 2)
    kw = dict(size=(4, 11), mode="bilinear")
    out_shape = F.interpolate_forward(x, **kw)[0].shape
    dout = normal(10, out_shape[:2] + out_shape[:1:-1], np.float32).transpose(0, 1, 3, 2)
    check_interpolate(x, kw, dout, emu)


def test_planes_too_large_for_the_kernels_are_refused_before_allocating(monkeypatch):
    """At the kernels' 32-bit limit (lowered here to 64 elements) the wrappers refuse, naming
    the sizes, before any buffer is allocated or any kernel launched."""
    emu = launcher()
    x = normal(11, (1, 1, 4, 4), np.float64)
    monkeypatch.setattr(_cuda_launcher, "PLANE_LIMIT", 64)
    allocated, empty = [], emu.empty

    def recording_empty(*args):
        allocated.append(args)
        return empty(*args)

    monkeypatch.setattr(emu, "empty", recording_empty)
    with gpu_dispatch(emu) as calls:
        out, cache = F.interpolate_forward(x, size=(8, 7))  # 56-element planes: fit
        assert out.shape == (1, 1, 8, 7) and calls == [FORWARD]
        with pytest.raises(ValueError, match=r"resizing planes of \(4, 4\) to \(8, 8\) is too "
                                             r"large for the CUDA kernels"):
            F.interpolate_forward(x, size=(8, 8))
        assert calls == [FORWARD] and len(allocated) == 1
    assert _cuda.interpolate_fits((4, 4), (8, 7), np.zeros((2, 31)))
    assert not _cuda.interpolate_fits((4, 4), (8, 7), np.zeros((2, 32)))
