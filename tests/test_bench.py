"""The benchmark machinery: shapes, the agreement gate, interleaved timing records, reports.

No timing assertions: only that the right things are measured, checked and reported.
"""

import json
import sys

import numpy as np
import pytest

from fastconv.bench import breakdown, cases, impls, machine, ops, report, runner, timing

TINY_CONV = cases.ConvShape("t", 2, 3, 7, 6, 4, 3, 2, 1)
TINY_POOL = cases.PoolShape("p", 2, 3, 7, 6, 3, 2, 1)
FAST = dict(repeats=2, warmup=0, pause=0.0, gemm_n=64, loop_budget=5.0)


def test_standard_set_is_the_six_conv_layers_and_three_pools():
    expected = {"S1": (64, 1, 28, 28, 32, 3, 1, 1), "S2": (64, 3, 32, 32, 64, 3, 1, 1),
                "S3": (32, 64, 32, 32, 64, 3, 1, 1), "S4": (32, 128, 16, 16, 128, 3, 1, 1),
                "S5": (32, 32, 32, 32, 64, 5, 2, 2), "S6": (32, 256, 14, 14, 64, 1, 1, 0)}
    got = {s.name: (s.n, s.c, s.h, s.w, s.f, s.k, s.stride, s.pad) for s in cases.STANDARD_CONV}
    assert got == expected
    pools = {(op, s.k, s.stride, s.pad, s.n, s.c, s.h, s.w)
             for op, shapes in cases.STANDARD_POOL.items() for s in shapes}
    assert pools == {("max_pool2d", 2, 2, 0, 64, 64, 32, 32), ("max_pool2d", 3, 2, 1, 64, 64, 32, 32),
                     ("avg_pool2d", 2, 2, 0, 64, 64, 32, 32)}
    quick = cases.build_cases(quick=True)
    assert {c.op for c in quick} == {"conv2d", "max_pool2d", "avg_pool2d"} and len(quick) == 9
    assert len(cases.build_cases()) == 6 * 3 + 3


def test_conv_flops_formula():
    s = cases.ConvShape("x", 2, 3, 8, 8, 5, 3, 1, 1)
    assert s.out_hw == (8, 8)
    assert s.forward_flops() == 2 * 2 * 5 * 3 * 9 * 64
    assert ops.flops(cases.Case("conv2d", s), "fwd+bwd") == 3 * s.forward_flops()


def test_parse_shape():
    conv = cases.parse_shape("mine=8,3,16,16,4,3,1,1")
    assert isinstance(conv, cases.ConvShape) and conv.name == "mine" and conv.f == 4
    pool = cases.parse_shape(" 8,4,16,16,2,2,0 ", 3)
    assert isinstance(pool, cases.PoolShape) and pool.name == "custom3"
    for bad, match in [("1,2,3", "expected 8"), ("a,b,c,d,e,f,g", "integers"),
                       ("1,1,4,4,1,7,1,0", "does not fit"), ("1,1,8,8,2,1,2", "exceeds half"),
                       ("1,0,8,8,2,2,0", ">= 1"), ("bad name=1,1,8,8,2,2,0", "shape name")]:
        with pytest.raises(ValueError, match=match):
            cases.parse_shape(bad)


def test_build_cases_with_custom_shapes_and_errors():
    built = cases.build_cases(["conv2d", "max_pool2d", "im2col"], [TINY_CONV, TINY_POOL])
    assert [(c.op, c.shape.name) for c in built] == [("conv2d", "t"), ("max_pool2d", "p"), ("im2col", "t")]
    with pytest.raises(ValueError, match="unknown op"):
        cases.build_cases(["conv3d"])
    with pytest.raises(ValueError, match="no case to run"):
        cases.build_cases(["conv2d"], [TINY_POOL])


def test_timing_statistics():
    s = timing.summarize([0.003, 0.001, 0.002])
    assert (s["min_ms"], s["median_ms"], s["max_ms"]) == pytest.approx((1, 2, 3))
    assert timing.median_ratio([2, 4, 9], [1, 2, 3]) == 2


def test_relative_error():
    a = {"out": np.array([1.0, 2.0]), "dx": np.array([4.0])}
    assert ops.relative_error(a, a) == 0
    assert ops.relative_error({"out": np.array([1.0, 2.2]), "dx": a["dx"]}, a) == pytest.approx(0.1)
    assert ops.relative_error({"out": np.array([1.0, np.nan])}, a) == np.inf
    assert ops.relative_error({"out": np.zeros(3)}, a) == np.inf
    assert ops.relative_error({}, a) == np.inf  # a result the implementation did not return


@pytest.mark.parametrize("op", ["conv2d", "im2col", "col2im"])
def test_every_implementation_agrees_with_the_loop_oracle(op):
    case = cases.Case(op, TINY_CONV)
    settings = runner.Settings(torch=False, **FAST)
    records = runner.run_case(case, "float64", [impls.fastconv_cpu()], settings, log=lambda m: None)
    mine, loop = records
    assert mine["status"] == "ok" and mine["error"] < 1e-12 and mine["oracle"].startswith("loop-float64")
    p = mine["passes"]["fwd"]
    assert p["min_ms"] <= p["median_ms"] <= p["max_ms"] and len(p["samples_ms"]) == 2
    assert ("fwd+bwd" in mine["passes"]) == (op == "conv2d")
    assert mine["peak_bytes"]["fwd"] > 0  # per pass; fwd+bwd is the larger of the two
    if op == "conv2d":
        assert mine["peak_bytes"]["fwd+bwd"] == max(mine["peak_bytes"]["fwd"],
                                                    mine["peak_bytes"]["bwd"])
    # one image fits the budget: the loops ran on it, scaled by the batch of 2
    assert loop["status"] == "ok" and loop["extrapolated_from"] == "t 1x3x7x6 F4 k3 s2 p1"
    assert loop["scale"] == 2


def test_against_torch_with_ratios(torch):
    settings = runner.Settings(**FAST)
    for case in (cases.Case("conv2d", TINY_CONV), cases.Case("max_pool2d", TINY_POOL),
                 cases.Case("avg_pool2d", TINY_POOL)):
        records = runner.run_case(case, "float32", [impls.fastconv_cpu(), impls.torch_cpu()], settings,
                                  log=lambda m: None)
        by = {r["impl"]: r for r in records}
        assert by["fastconv"]["oracle"] == "torch-float64"
        assert by["fastconv"]["status"] == by["torch"]["status"] == "ok"
        assert set(by["fastconv"]["vs_torch"]) == {"fwd", "bwd", "fwd+bwd"}
        assert by["loop"]["status"] == "ok"


def _broken_impl():
    """fastconv with its convolution output off by one in one element."""
    good = impls.fastconv_cpu()

    def bind(case, arrays):
        bound = good.bind(case, arrays)
        forward = bound._forward

        def broken():
            out, cache = forward()
            out = out.copy()
            out.flat[0] += 1.0
            return out, cache
        bound._forward = broken
        return bound

    return impls.Impl("broken", "cpu", "cpu", bind)


@pytest.mark.parametrize("use_torch", [False, True])
def test_a_broken_implementation_is_never_timed(use_torch):
    if use_torch:
        pytest.importorskip("torch")
    settings = runner.Settings(torch=use_torch, loops=False, **FAST)
    records = runner.run_case(cases.Case("conv2d", TINY_CONV), "float32",
                              [impls.fastconv_cpu(), _broken_impl()], settings, log=lambda m: None)
    good, broken = records
    assert good["status"] == "ok"
    assert broken["status"] == "mismatch" and "passes" not in broken
    assert "not timed" in broken["reason"]
    table = report.markdown_table({"machine": machine.describe(False), "settings": vars(settings),
                                   "results": records})
    note, = [line for line in table.splitlines() if line.startswith("- broken mismatch")]
    assert note.endswith("; not timed): conv2d t float32")


def test_unavailable_and_over_budget_are_reported():
    settings = runner.Settings(torch=False, **dict(FAST, loop_budget=1e-9))
    missing = impls.Impl("nothing", "gpu", "cupy", None, "no GPU here")
    records = runner.run_case(cases.Case("conv2d", TINY_CONV), "float32",
                              [impls.fastconv_cpu(), missing], settings, log=lambda m: None)
    by = {r["impl"]: r for r in records}
    assert by["nothing"]["status"] == "unavailable" and by["nothing"]["reason"] == "no GPU here"
    assert by["loop"]["status"] == "skipped" and "loop budget" in by["loop"]["reason"]


def test_device_gpu_without_a_gpu_is_refused():
    if impls.fastconv_gpu().available:
        pytest.skip("a GPU is usable here")
    with pytest.raises(runner.DeviceUnavailable, match="no usable GPU"):
        runner.select_impls(runner.Settings(device="gpu"))
    assert [i.name for i in runner.select_impls(runner.Settings(device="auto", torch=False))] == ["fastconv"]


def test_full_run_report_json_and_plot(tmp_path):
    settings = runner.Settings(dtypes=("float32", "float64"), torch=False, **FAST)
    result = runner.run(cases.build_cases(["conv2d", "avg_pool2d"], [TINY_CONV, TINY_POOL]),
                        settings, log=lambda m: None)
    assert result["gemm_peak_gflops"]["cpu"]["float32"] > 0
    assert {"cpu", "cores", "blas", "numpy", "gpu"} <= set(result["machine"])
    table = report.markdown_table(result)
    rows = [line for line in table.splitlines() if line.startswith("| conv2d") or line.startswith("| avg")]
    assert len(rows) == 2 * (3 + 3)  # two dtypes x (conv fwd/bwd/fwd+bwd + pool fwd/bwd/fwd+bwd)
    assert all("~" in row for row in rows)  # the loop speedup is in every row, marked extrapolated
    assert "GFLOP/s" in rows[0] and "%" in rows[0] and "GB/s" in rows[-1]
    report.write_json(result, tmp_path / "b.json")
    assert json.loads((tmp_path / "b.json").read_text())["results"][0]["op"] == "conv2d"
    pytest.importorskip("matplotlib")
    assert report.plot(result, tmp_path / "b.png") is None
    assert (tmp_path / "b.png").read_bytes()[:4] == b"\x89PNG"


def test_plot_without_matplotlib_says_so(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    message = report.plot({"results": []}, tmp_path / "x.png")
    assert "matplotlib is not installed" in message and not (tmp_path / "x.png").exists()


def test_machine_description_and_gemm_peak():
    info = machine.describe(include_torch=False)
    assert info["cores"] >= 1 and info["numpy"] == np.__version__
    assert info["blas"] and "library" in info["blas"][0]
    assert machine.gemm_peak("float64", n=32, repeats=1, pause=0) > 0


def test_breakdown_records_the_steps_of_the_real_conv():
    result = breakdown.breakdown(cases.Case("conv2d", TINY_CONV), "float64", repeats=2, pause=0,
                                 peak=10.0)
    steps = result["steps_ms"]
    gemms = [name for name in steps if name.startswith("GEMM")]
    assert len(gemms) == 3 and set(result["gemm_gflops"]) == set(gemms)
    assert "im2col" in steps and "col2im" in steps
    assert result["python_overhead_ms"] >= 0  # steps never overlap and sit inside the call
    text = breakdown.format_breakdown(result)
    assert "Python overhead" in text and "% of GEMM peak" in text


def test_breakdown_of_a_1x1_conv_and_of_pools():
    one = breakdown.breakdown(cases.Case("conv2d", cases.ConvShape("one", 2, 8, 5, 5, 4, 1, 1, 0)),
                              "float32", repeats=1, pause=0)
    assert "im2col" not in one["steps_ms"] and len(one["gemm_gflops"]) == 3
    for op in ("max_pool2d", "avg_pool2d"):
        pool = breakdown.breakdown(cases.Case(op, TINY_POOL), "float32", repeats=1, pause=0)
        assert pool["gemm_gflops"] == {} and pool["total_ms"] > 0
    with pytest.raises(ValueError, match="not im2col"):
        breakdown.breakdown(cases.Case("im2col", TINY_CONV))


@pytest.mark.parametrize("limit", [25000, 38000])
def test_breakdown_under_a_small_workspace(limit):
    from fastconv import workspace_limit
    with workspace_limit(limit):  # several batch chunks
        result = breakdown.breakdown(cases.Case("conv2d", cases.ConvShape("c", 6, 2, 6, 6, 3, 3, 1, 1)),
                                     "float64", repeats=1, pause=0)
    assert result["steps_ms"]["col2im"] > 0


@pytest.mark.gpu
def test_gpu_implementation_is_checked_and_timed():
    settings = runner.Settings(device="gpu", **FAST)
    chosen = runner.select_impls(settings)
    for case in (cases.Case("conv2d", TINY_CONV), cases.Case("max_pool2d", TINY_POOL)):
        for dtype in ("float32", "float64"):
            records = runner.run_case(case, dtype, chosen, settings, log=lambda m: None)
            gpu = next(r for r in records if r["impl"] == "fastconv-gpu")
            assert gpu["status"] == "ok", gpu.get("reason")
            assert gpu["first_call_ms"] > 0 and gpu["passes"]["fwd"]["median_ms"] > 0


def test_pytest_benchmark_suite_runs(tmp_path):
    """benchmarks/ collects and runs (once each, --benchmark-disable) on a small case."""
    import os
    import subprocess
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--benchmark-disable",
         os.path.join(root, "benchmarks", "test_ops.py"), "-k", "conv2d-tiny-float64 or max_pool2d-tinypool-float32"],
        capture_output=True, text=True, timeout=300, cwd=root,
        env=dict(os.environ, FASTCONV_BENCH_PAUSE="0", FASTCONV_BENCH_ROUNDS="1"))
    assert proc.returncode == 0, proc.stdout[-3000:]
    assert " passed" in proc.stdout and "failed" not in proc.stdout


class ScriptedLoad:
    """Stands in for OtherLoad: each block reports the next scripted number of busy cores."""

    def __init__(self, script):
        self.script = iter(script)

    def __call__(self):
        return self

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.cores = next(self.script)
        return False


@pytest.mark.parametrize("script, timed, clean, noisy", [
    ([0.0, 1.0, 0.0, 0.9, 0.0], 5, 3, False),  # keeps going until 3 clean repeats are in
    ([1.0] * 5, 5, 0, True),                    # never clean: every repeat used, marked noisy
    ([0.0, 0.0, 0.0, 1.0, 1.0], 3, 3, False),   # clean at once: stops after 3
])
def test_repeats_on_a_busy_machine_are_dropped(monkeypatch, script, timed, clean, noisy):
    monkeypatch.setattr(runner, "OtherLoad", ScriptedLoad(script))
    settings = runner.Settings(torch=False, loops=False, **dict(FAST, repeats=3, max_repeats=5))
    rec, = runner.run_case(cases.Case("max_pool2d", TINY_POOL), "float32", [impls.fastconv_cpu()],
                           settings, log=lambda m: None)
    assert rec["repeats"]["timed"] == timed and rec["repeats"]["clean"] == clean
    assert rec["repeats"]["noisy"] is noisy
    assert len(rec["passes"]["fwd"]["samples_ms"]) == (clean if not noisy else timed)


def test_gpu_benchmark_script_says_why_without_a_gpu():
    import os
    import subprocess
    if impls.fastconv_gpu().available:
        pytest.skip("a GPU is usable here: the script would run the full GPU benchmark")
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    proc = subprocess.run([sys.executable, os.path.join(root, "benchmarks", "gpu_bench.py")],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "no usable GPU" in proc.stderr
