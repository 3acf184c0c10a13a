"""``fastconv selftest``: the CPU part for real, the GPU part on the emulated kernels and on a GPU.

The GPU part runs here through a stand-in device: NumPy arrays routed to the
GPU backend (``fastconv._gpu``) with the CUDA kernels on the CPU emulator
(tests/cuda_emu) and the products in the NumPy model of cuBLAS, as
tests/test_cuda_emulated.py's ``kernels_for_numpy`` does. Planted bugs (an op
returning a slightly perturbed result, one that raises) must fail the run and
exit 1.
"""

import math

import numpy as np
import pytest

import fastconv
import fastconv.functional as F
from cuda_emu.emu import emu_launcher, prebuild, require_kernel_tools
from fastconv import _backends, _cuda, _gpu, cli, selftest
from fastconv._cuda_launcher import PreparedLaunch
from fastconv.selftest import compare, suite


class EmulatedDevice:
    """The GPU backend on NumPy arrays, kernels emulated; records launches and TF32 per run."""

    description = "CUDA kernels emulated on the CPU (tests/cuda_emu), products in the cuBLAS model"

    def __init__(self):
        self.launcher = emu_launcher()
        self.kernels = set()
        self.tf32_seen = []

    def asarray(self, array):
        return np.array(array, copy=True)

    def run(self, fn):
        self.tf32_seen.append(fastconv.get_tf32())
        launch = PreparedLaunch.__call__

        def recording(prepared, *arrays):  # every launch, checked or prepared
            self.kernels.add(prepared.kernel)
            return launch(prepared, *arrays)

        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(_backends, "backend_for", lambda *arrays: _gpu)
            patch.setattr(_cuda, "default_launcher", lambda: self.launcher)
            patch.setattr(PreparedLaunch, "__call__", recording)
            return fn()


@pytest.fixture(scope="module")
def kernels():
    require_kernel_tools("g++")
    prebuild()


def run_cli(capsys, *argv):
    status = cli.main(["selftest", *argv])
    out, err = capsys.readouterr()
    return status, out, err


def no_gpu(monkeypatch, reason="no GPU in this test"):
    monkeypatch.setattr(selftest, "gpu_status", lambda: (False, reason))


def perturbed(fn, pick, scale=1e-3):
    """``fn`` with one element of the result ``pick`` chooses moved by ``scale`` of its array's
    largest magnitude: ten times the float32 tolerance."""
    def wrapper(*args, **kwargs):
        result = fn(*args, **kwargs)
        target = pick(result)
        target.flat[0] += scale * float(np.abs(target).max())
        return result
    return wrapper


def test_cpu_part_passes_and_says_why_no_gpu_was_checked(capsys, monkeypatch):
    no_gpu(monkeypatch, "CuPy is not importable (a reason)")
    status, out, _ = run_cli(capsys)
    assert status == 0
    assert out.startswith(f"fastconv {fastconv.__version__} selftest")
    assert "GPU not checked: CuPy is not importable (a reason)" in out
    rows = [line for line in out.splitlines() if line.endswith("  ok")]
    assert len(rows) == 2 * len(suite.LOOP_CASES)
    for op in ("conv2d", "max_pool2d", "avg_pool2d", "im2col", "col2im"):
        assert any(row.startswith(op) and "float32" in row for row in rows)
        assert any(row.startswith(op) and "float64" in row for row in rows)
    assert any(row.startswith("conv2d k3 p2 d2 groups 2") for row in rows)
    assert max(len(line) for line in out.splitlines() if "  " in line) <= 100
    assert f"all {2 * len(suite.LOOP_CASES)} checks passed" in out


def test_a_slightly_wrong_cpu_gradient_fails_and_exits_1(capsys, monkeypatch):
    no_gpu(monkeypatch)
    monkeypatch.setattr(F, "conv2d_backward", perturbed(F.conv2d_backward, lambda g: g[1]))
    status, out, _ = run_cli(capsys)
    assert status == 1
    failed = [line for line in out.splitlines() if "FAIL in dw" in line]
    # every conv case, in float32 and float64; nothing else
    assert len(failed) == 2 * len(suite.CONV_CASES) and all(r.startswith("conv2d") for r in failed)
    assert f"{len(failed)} of {2 * len(suite.LOOP_CASES)} checks FAILED" in out


def test_an_op_that_raises_is_a_failed_check_that_says_why(capsys, monkeypatch):
    no_gpu(monkeypatch)

    def broken(*args, **kwargs):
        raise RuntimeError("planted")

    monkeypatch.setattr(fastconv, "im2col", broken)
    status, out, _ = run_cli(capsys)
    assert status == 1
    assert "im2col k3 s1 p1 (cpu, float32) raised RuntimeError: planted" in out
    assert sum("ERROR" in line for line in out.splitlines()) == 4  # 2 cases x 2 dtypes


def test_error_measure_catches_what_it_must():
    a = np.array([1.0, -2.0])
    assert compare.array_error(a, a) == 0
    assert compare.array_error(np.array([1.0, -1.9]), a) == pytest.approx(0.05)
    assert compare.array_error(np.array([1.0, np.nan]), a) == math.inf
    assert compare.array_error(np.array([np.nan]), np.array([np.nan])) == 0  # NaN propagated
    assert compare.array_error(np.zeros(3), a) == math.inf
    assert compare.array_error(np.array([1, 3]), np.array([1, 2])) == math.inf  # indices
    assert compare.worst_error({"out": a, "db": a}, {"out": a}) == (math.inf, "db unexpected")


def test_emulated_gpu_part_checks_every_op_dtype_and_gradient(kernels):
    device = EmulatedDevice()
    before = fastconv.get_tf32()
    checks = selftest.gpu_checks(device)
    assert fastconv.get_tf32() is before
    failed = [(c.op, c.dtype, c.device, c.error, c.detail) for c in checks if not c.passed]
    assert not failed
    runs = [(c.op, c.dtype, c.device) for c in checks]
    assert len(runs) == 3 * len(suite.GPU_CASES) + len(suite.TF32_CASES) == len(set(runs))
    assert {c.dtype for c in checks} == {"float16", "float32", "float64"}
    assert {c.op for c in checks} == {case.label for case in suite.GPU_CASES}
    # TF32 on exactly in the TF32 rows
    assert device.tf32_seen == [c.device == "gpu tf32" for c in checks]
    # the kernels ran: the checks went through the GPU backend, not the CPU path
    assert {"im2col_kernel", "col2im_kernel", "max_pool_forward_kernel", "max_pool_backward_kernel",
            "avg_pool_forward_kernel", "avg_pool_backward_kernel"} <= device.kernels
    by_op = {c.op: c for c in checks if c.dtype == "float32"}
    assert by_op["conv2d k3 s1 p1"].arrays == ("out", "dx", "dw", "db")
    assert by_op["max_pool2d k2 s2 with indices"].arrays == ("out", "indices", "dx")
    assert by_op["spatial_batchnorm train"].arrays == ("out", "dx", "dgamma", "dbeta")
    text = compare.table(checks)
    assert max(map(len, text.splitlines())) <= 100


@pytest.mark.parametrize("dtype", ["float16", "float32", "float64"])
def test_a_slightly_wrong_gpu_pool_fails_in_its_rows_only(kernels, monkeypatch, dtype):
    monkeypatch.setattr(_gpu.pool, "avg_pool_backward",
                        perturbed(_gpu.pool.avg_pool_backward, lambda dx: dx, scale=0.05))
    cases = [c for c in suite.GPU_CASES if c.op in ("avg_pool2d", "max_pool2d", "conv2d")]
    checks = selftest.gpu_checks(EmulatedDevice(), (dtype,), cases, ())
    failed = {c.op for c in checks if not c.passed}
    assert failed == {c.label for c in cases if c.op == "avg_pool2d"}
    assert all(c.detail == "dx" for c in checks if not c.passed)


def test_cli_with_a_gpu_runs_both_parts_and_exits_1_on_a_gpu_mismatch(kernels, capsys,
                                                                      monkeypatch):
    monkeypatch.setattr(selftest, "gpu_status", lambda: (True, "an emulated GPU"))
    monkeypatch.setattr(selftest, "CupyDevice", EmulatedDevice)
    status, out, _ = run_cli(capsys)
    assert status == 0, out
    assert f"GPU: {EmulatedDevice.description}" in out and "gpu tf32" in out
    total = 2 * len(suite.LOOP_CASES) + 3 * len(suite.GPU_CASES) + len(suite.TF32_CASES)
    assert f"all {total} checks passed" in out
    status, out, _ = run_cli(capsys, "--cpu-only")
    assert status == 0 and "GPU not checked: switched off" in out

    monkeypatch.setattr(_gpu.im2col, "im2col_into",
                        perturbed(_gpu.im2col.im2col_into, lambda cols: cols, scale=0.01))
    status, out, _ = run_cli(capsys)
    assert status == 1
    failed = [line for line in out.splitlines() if "FAIL in" in line]
    assert failed and all("  gpu" in line for line in failed)


@pytest.mark.gpu
def test_selftest_on_the_real_gpu(capsys):
    status, out, _ = run_cli(capsys)
    assert status == 0, out
    assert "GPU: " in out and "compute capability" in out and "gpu tf32" in out
    report = selftest.run(log=lambda text: None)
    assert report.gpu_checked and report.passed
    assert report.seconds["gpu"] < 60
