"""Smaller problems of the same layer: the cheap oracle without torch and the loop column.

Oracles: fastconv.reference run directly on the sliced inputs, and the work formula
N*F*C*k*k*OH*OW written out by hand.
"""

import numpy as np
import pytest

from fastconv import reference
from fastconv.bench import cases, ops, reduced, runner
from fastconv.bench.oracle import Oracle

S3 = cases.Case("conv2d", cases.STANDARD_CONV[2])   # 32x64x32x32 F64 k3 s1 p1
P2 = cases.Case("max_pool2d", cases.STANDARD_POOL["max_pool2d"][1])


def test_work_is_counted_as_the_loops_do_it():
    assert reduced.loop_units(S3) == 32 * 64 * 64 * 9 * 32 * 32
    assert reduced.loop_units(P2) == 64 * 64 * 9 * 16 * 16
    col = cases.Case("col2im", cases.STANDARD_CONV[2])
    assert reduced.loop_units(col) == 32 * 64 * 9 * 32 * 32  # no filters in a fold


def test_check_case_keeps_the_geometry_and_cuts_images_channels_filters():
    small = reduced.check_case(S3)
    s, full = small.shape, S3.shape
    assert (s.n, s.c, s.f) == (1, 4, 4)
    assert (s.name, s.h, s.w, s.k, s.stride, s.pad) == (full.name, full.h, full.w, full.k,
                                                        full.stride, full.pad)
    one = cases.Case("conv2d", cases.STANDARD_CONV[0])  # 1 channel stays 1
    assert (reduced.check_case(one).shape.c, reduced.check_case(one).shape.f) == (1, 4)


@pytest.mark.parametrize("budget, expected", [(1.0, (4, 4)), (8.0, (8, 16)), (200.0, (64, 64))])
def test_loop_case_halves_channels_and_filters_until_it_fits(budget, expected):
    small = reduced.loop_case(S3, budget)
    assert (small.shape.n, small.shape.c, small.shape.f) == (1,) + expected
    assert reduced.loop_estimate(small) <= budget
    assert reduced.scale(S3, small) == 32 * 64 * 64 / (expected[0] * expected[1])


def test_loop_case_gives_up_when_one_channel_does_not_fit():
    assert reduced.loop_case(S3, 1e-6) is None
    pool = reduced.loop_case(P2, 0.1)
    assert pool.shape.n == 1 and reduced.loop_estimate(pool) <= 0.1 < reduced.loop_estimate(
        reduced.reduce(P2, 1, 2 * pool.shape.c))


def test_slice_inputs_cuts_the_first_images_channels_and_filters():
    case = cases.Case("conv2d", cases.ConvShape("t", 3, 5, 6, 6, 7, 3, 1, 1))
    full = ops.make_inputs(case, "float64")
    small = reduced.reduce(case, 1, 2, 3)
    cut = reduced.slice_inputs(full, small)
    np.testing.assert_array_equal(cut["x"], full["x"][:1, :2])
    np.testing.assert_array_equal(cut["w"], full["w"][:3, :2])
    np.testing.assert_array_equal(cut["b"], full["b"][:3])
    np.testing.assert_array_equal(cut["dout"], full["dout"][:1, :3])
    assert all(a.flags.c_contiguous for a in cut.values())
    cols = cases.Case("col2im", case.shape)
    cut = reduced.slice_inputs(ops.make_inputs(cols, "float64"), reduced.reduce(cols, 2, 2))
    assert cut["cols"].shape == (2, 2 * 9, 36)


def test_oracle_without_torch_is_the_loops_on_the_reduced_problem():
    inputs = ops.make_inputs(S3, "float32")
    oracle = Oracle(S3, inputs, use_torch=False)
    assert not oracle.full and oracle.label == "loop-float64 on S3 1x4x32x32 F4 k3 s1 p1"
    x = inputs["x"][:1, :4].astype(np.float64)
    w = inputs["w"][:4, :4].astype(np.float64)
    out, cache = reference.conv2d_forward(x, w, inputs["b"][:4].astype(np.float64), 1, 1)
    np.testing.assert_array_equal(oracle.expected["out"], out)
    dx, dw, db = reference.conv2d_backward(inputs["dout"][:1, :4].astype(np.float64), cache)
    np.testing.assert_array_equal(oracle.expected["dw"], dw)
    assert oracle.expected_for(oracle.check_case, oracle.check_inputs) is oracle.expected


def test_a_wrong_first_channel_is_caught_by_the_reduced_check():
    good = ops.fastconv_api_bind

    def bind(case, arrays):
        import fastconv
        bound = good(fastconv, case, arrays)
        forward = bound._forward

        def broken():
            out, cache = forward()
            out = out.copy()
            out[0, 0, 0, 0] += 1e-2 * np.abs(out).max()
            return out, cache
        bound._forward = broken
        return bound

    from fastconv.bench.impls import Impl
    settings = runner.Settings(torch=False, loops=False, repeats=1, warmup=0, pause=0.0)
    small = cases.Case("conv2d", cases.ConvShape("s", 4, 8, 8, 8, 8, 3, 1, 1))
    rec, = runner.run_case(small, "float32", [Impl("broken", "cpu", "cpu", bind)], settings,
                           log=lambda m: None)
    assert rec["status"] == "mismatch" and rec["oracle"] == "loop-float64 on s 1x4x8x8 F4 k3 s1 p1"


def test_the_loop_column_is_the_reduced_time_scaled_by_the_work(monkeypatch):
    def fixed(impl, bound, pause=0.0):
        bound.forward()
        bound.backward()
        return 0.01, 0.02

    monkeypatch.setattr(runner, "time_pair", fixed)
    settings = runner.Settings(torch=False, loops=True, loop_budget=1.0)
    oracle = Oracle(S3, ops.make_inputs(S3, "float32"), use_torch=False)
    rec = runner._run_loop(S3, "float32", ops.make_inputs(S3, "float32"), oracle, settings)
    assert rec["status"] == "ok" and rec["extrapolated_from"] == "S3 1x4x32x32 F4 k3 s1 p1"
    factor = 32 * 64 * 64 / 16
    assert rec["scale"] == factor
    assert rec["passes"]["fwd"]["median_ms"] == pytest.approx(10 * factor)
    assert rec["passes"]["fwd+bwd"]["median_ms"] == pytest.approx(30 * factor)
