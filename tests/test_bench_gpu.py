"""The GPU benchmark's machinery, without a GPU: CUDA-event timing, TF32 on both sides, rows.

The event code runs against stand-ins for CuPy's and torch's CUDA events whose clock
only the timed passes advance; the TF32 switches are fastconv's own and a real
torch's (a CPU build has them too); the table rows come from stand-in implementations
named like the GPU ones that run fastconv's CPU path. A `gpu`-marked test runs the
real thing against PyTorch CUDA.
"""

import sys
import types
from dataclasses import asdict

import pytest

import fastconv
from fastconv import cli
from fastconv.bench import cases, impls, machine, ops, report, runner, terminal, timing
from fastconv.bench.tf32 import fastconv_tf32, torch_tf32

TINY_CONV = cases.ConvShape("t", 2, 3, 7, 6, 4, 3, 2, 1)
TINY_POOL = cases.PoolShape("p", 2, 3, 7, 6, 3, 2, 1)
FAST = dict(repeats=2, warmup=0, pause=0.0, gemm_n=64, loop_budget=5.0)


class FakeGpu:
    """A device clock (ms) that only the passes advance, and the calls made on it, in order."""

    def __init__(self):
        self.now, self.calls = 0.0, []

    def synchronize(self):
        self.calls.append("synchronize")

    def event(self, **kwargs):
        self.calls.append(("event", kwargs))
        return FakeEvent(self)


class FakeEvent:
    def __init__(self, gpu):
        self.gpu, self.at = gpu, None

    def record(self):
        self.gpu.calls.append("record")
        self.at = self.gpu.now

    def synchronize(self):
        self.gpu.calls.append("wait for event")

    def elapsed_time(self, end):  # torch's spelling
        return end.at - self.at


def fake_cupy(gpu):
    return types.SimpleNamespace(
        ndarray=type("ndarray", (), {}),
        cuda=types.SimpleNamespace(Event=gpu.event, get_elapsed_time=lambda a, b: b.at - a.at,
                                   Device=lambda: types.SimpleNamespace(synchronize=gpu.synchronize)))


def fake_torch(gpu):
    return types.SimpleNamespace(cuda=types.SimpleNamespace(Event=gpu.event,
                                                            synchronize=gpu.synchronize))


def advancing(gpu, fwd_ms, bwd_ms):
    def step(ms):
        gpu.calls.append("pass")
        gpu.now += ms
    return ops.Bound(lambda: step(fwd_ms), lambda state: step(bwd_ms), None)


@pytest.mark.parametrize("clock, module, fake, event_kwargs", [
    ("cupy", "cupy", fake_cupy, {}),
    ("torch-cuda", "torch", fake_torch, {"enable_timing": True}),
])
def test_gpu_passes_are_timed_with_events_after_a_synchronisation(monkeypatch, clock, module,
                                                                  fake, event_kwargs):
    gpu = FakeGpu()
    monkeypatch.setitem(sys.modules, module, fake(gpu))
    impl = impls.Impl("x", "gpu", clock, None)
    assert timing.time_pair(impl, advancing(gpu, 5.0, 7.0)) == (0.005, 0.007)
    assert gpu.calls == ["synchronize"] + [("event", event_kwargs)] * 3 + [
        "record", "pass", "record", "pass", "record", "wait for event"]
    gpu.calls.clear()
    single = ops.Bound(lambda: None, None, None)
    assert timing.time_pair(impl, single) == (0.0, None)


def test_interleaved_gpu_repeats_skip_the_cpu_pause(monkeypatch):
    gpu = FakeGpu()
    monkeypatch.setitem(sys.modules, "cupy", fake_cupy(gpu))
    monkeypatch.setattr(timing.time, "sleep", lambda s: pytest.fail("a GPU pass paused"))
    rec = {"impl": "fastconv-gpu"}
    runner._time_interleaved([(impls.Impl("fastconv-gpu", "gpu", "cupy", None),
                               advancing(gpu, 2.0, 3.0), rec)],
                             runner.Settings(repeats=3, warmup=1, pause=0.3))
    assert rec["passes"]["fwd+bwd"]["samples_ms"] == pytest.approx([5.0] * 3)


def test_fastconv_tf32_is_set_inside_and_restored_even_on_errors():
    before = fastconv.get_tf32()
    for enabled in (True, False):
        with fastconv_tf32(enabled):
            assert fastconv.get_tf32() is enabled
        assert fastconv.get_tf32() is before
    with pytest.raises(RuntimeError), fastconv_tf32(not before):
        raise RuntimeError
    assert fastconv.get_tf32() is before


def test_torch_tf32_sets_both_switches_and_restores_them(torch):
    flags = (torch.backends.cuda.matmul, torch.backends.cudnn)
    before = [f.allow_tf32 for f in flags]
    for enabled in (True, False):
        with torch_tf32(torch, enabled):
            assert [f.allow_tf32 for f in flags] == [enabled, enabled]
        assert [f.allow_tf32 for f in flags] == before
    with pytest.raises(KeyError), torch_tf32(torch, True):
        raise KeyError
    assert [f.allow_tf32 for f in flags] == before


def test_tf32_variants_run_float32_convolutions_only():
    chosen = runner.with_tf32([impls.fastconv_cpu(), impls.fastconv_gpu(), impls.torch_cuda()])
    assert [i.name for i in chosen] == ["fastconv", "fastconv-gpu", "torch-cuda",
                                       "fastconv-gpu-tf32", "torch-cuda-tf32"]
    tf32 = chosen[3]
    assert tf32.tf32 and tf32.tolerance("float32") == 1e-2 and chosen[1].tolerance("float32") == 1e-4
    assert tf32.runs(cases.Case("conv2d", TINY_CONV), "float32")
    assert not tf32.runs(cases.Case("conv2d", TINY_CONV), "float64")
    assert not tf32.runs(cases.Case("max_pool2d", TINY_POOL), "float32")
    with chosen[3].mode():
        assert fastconv.get_tf32() is True
    with chosen[1].mode():
        assert fastconv.get_tf32() is False  # TF32 off is set, not assumed


def standin(name, tf32, seen):
    """An implementation named like a GPU one, running fastconv's CPU path, TF32 as the GPU
    one would set it; records the TF32 setting each forward saw."""
    cpu = impls.fastconv_cpu()

    def bind(case, arrays):
        bound = cpu.bind(case, arrays)
        forward = bound._forward

        def recording():
            seen.append((name, fastconv.get_tf32()))
            return forward()
        bound._forward = recording
        return bound

    return impls.Impl(name, "gpu", "cpu", bind, mode=lambda: fastconv_tf32(tf32), tf32=tf32)


def test_gpu_table_rows_pair_each_side_with_the_same_tf32_setting():
    seen = []
    standins = [standin(name, tf32, seen) for name, tf32 in (
        ("fastconv-gpu", False), ("torch-cuda", False),
        ("fastconv-gpu-tf32", True), ("torch-cuda-tf32", True))]
    settings = runner.Settings(torch=False, loops=False, **FAST)
    results = []
    for case in (cases.Case("conv2d", TINY_CONV), cases.Case("max_pool2d", TINY_POOL)):
        for dtype in ("float32", "float64"):
            results += runner.run_case(case, dtype, standins, settings, log=lambda m: None)
    assert all(on is name.endswith("tf32") for name, on in seen)
    ran = {(r["op"], r["dtype"], r["impl"]) for r in results}
    assert ("conv2d", "float32", "fastconv-gpu-tf32") in ran
    assert ("conv2d", "float64", "fastconv-gpu-tf32") not in ran
    assert ("max_pool2d", "float32", "torch-cuda-tf32") not in ran
    full = {"machine": machine.describe(False), "settings": asdict(settings), "results": results,
            "gemm_peak_gflops": {"gpu": {"float32": 1000.0, "float64": 500.0}},
            "gpu_compile_ms": {"im2col.cu float32": 812.0, "pool.cu float32": 640.0}}
    rows = report.rows(full)
    conv32 = [r for r in rows if r["op"] == "conv2d" and r["dtype"] == "float32"]
    assert [r["impl"] for r in conv32] == ["fastconv-gpu"] * 3 + ["fastconv-gpu-tf32"] * 3
    assert all(r["vs_torch_x"] and r["torch_median_ms"] for r in conv32)
    assert all((r["peak_pct"] is None) == r["impl"].endswith("tf32") for r in conv32)
    text = terminal.terminal_table(full)
    lines = text.splitlines()
    assert max(map(len, lines)) <= terminal.WIDTH
    assert sum(line.startswith("conv2d t f32") and "  gpu tf32  " in line for line in lines) == 3
    assert "GPU kernel compile (NVRTC" in text and "im2col.cu float32 812 ms" in text
    assert "TF32 off on both sides" in text
    md = report.markdown_table(full)
    assert "| conv2d | t 2x3x7x6 F4 k3 s2 p1 | float32 | fwd | fastconv-gpu-tf32 |" in md


def test_kernel_compile_is_timed_per_file_and_dtype():
    compiled = []

    class Launcher:
        def module(self, file, dtype):
            compiled.append((file, dtype))

    seconds = machine.kernel_compile_seconds(["float32", "float64"], Launcher())
    assert list(seconds) == ["im2col.cu float32", "pool.cu float32", "im2col.cu float64",
                             "pool.cu float64"]
    assert compiled == [tuple(k.split()) for k in seconds] and min(seconds.values()) >= 0
    compiled.clear()
    seconds = machine.kernel_compile_seconds(["float16"], Launcher(), files=["unpool.cu"])
    assert list(seconds) == ["unpool.cu float16"] == [" ".join(c) for c in compiled]
    with pytest.raises(ValueError, match="no kernel file pool2d.cu"):
        machine.kernel_compile_seconds(["float32"], Launcher(), files=["pool2d.cu"])


def test_device_gpu_without_a_gpu_exits_2_with_the_reason(capsys, monkeypatch):
    monkeypatch.setattr(impls, "gpu_status", lambda: (False, "no CUDA device in this test"))
    status = cli.main(["bench", "--device", "gpu", "--quick"])
    err = capsys.readouterr().err
    assert status == 2
    assert err.strip() == ("fastconv bench: error: --device gpu: no usable GPU "
                           "(no CUDA device in this test)")


@pytest.mark.gpu
def test_gpu_benchmark_against_pytorch_cuda_tf32_off_and_on():
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("this torch build sees no CUDA device")
    switches = (torch.backends.cuda.matmul, torch.backends.cudnn)
    before = [flag.allow_tf32 for flag in switches]
    settings = runner.Settings(device="gpu", **FAST)
    result = runner.run([cases.Case("conv2d", TINY_CONV), cases.Case("max_pool2d", TINY_POOL)],
                        settings, log=lambda m: None)
    by = {(r["op"], r["impl"]): r for r in result["results"]}
    for name in ("fastconv-gpu", "torch-cuda", "fastconv-gpu-tf32", "torch-cuda-tf32"):
        assert by["conv2d", name]["status"] == "ok", by["conv2d", name].get("reason")
    assert set(by["conv2d", "fastconv-gpu-tf32"]["vs_torch"]) == {"fwd", "bwd", "fwd+bwd"}
    assert ("max_pool2d", "fastconv-gpu-tf32") not in by
    assert set(result["gpu_compile_ms"]) == {"im2col.cu float32", "pool.cu float32"}
    assert [flag.allow_tf32 for flag in switches] == before
    assert max(map(len, terminal.terminal_table(result).splitlines())) <= terminal.WIDTH
