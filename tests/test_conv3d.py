"""conv3d and Conv3d: against PyTorch (hypothesis, forward and every gradient), both CPU
backward paths, chunking under a small workspace limit, numerical gradients, the GPU backend on
NumPy arrays (its vol2col and col2vol kernels emulated; tests/test_cuda_vol2col.py tests them
in depth) against the CPU path, and CuPy runs."""

import tracemalloc

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import fastconv
import fastconv.functional as F
import fastconv.functional.conv as conv_front
import fastconv.nn as nn
import torch_oracle
from conftest import require_torch
from cuda_emu.emu import require_kernel_tools
from fastconv import _backends, _cpu, _cuda, _gpu, gradcheck
from op_paths import (assert_gpu_matches_cpu, case_arrays, check_on_cupy, compare, normal,
                      on_cpu, torch_run)
from torch_oracle import hypothesis_settings
from test_cuda_emulated import launcher
from volume_cases import DTYPES, conv3d_cases, torch_conv3d

GPU_SETTINGS = dict(deadline=None, derandomize=True, database=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture,
                                           HealthCheck.too_slow])


def use_gpu_kernels(monkeypatch):
    """Route NumPy arrays through the GPU backend (:mod:`fastconv._gpu`), its CUDA kernels on
    the CPU emulator (tests/cuda_emu), the products in the NumPy model of cuBLAS."""
    require_kernel_tools("g++")
    monkeypatch.setattr(_backends, "backend_for", lambda *arrays: _gpu)
    monkeypatch.setattr(_cuda, "default_launcher", launcher)


@pytest.fixture
def gpu_kernels(monkeypatch):
    """:func:`use_gpu_kernels` for the test."""
    use_gpu_kernels(monkeypatch)


@hypothesis_settings(70)
@given(case=conv3d_cases())
def test_conv3d_matches_torch(case):
    torch = require_torch()
    for dtype in DTYPES:
        rng, x, w, b = case_arrays(case, dtype)
        want = torch_run(torch, torch_conv3d(torch, case), (x, w, b),
                         lambda s: rng.standard_normal(s).astype(dtype))
        out, cache = F.conv3d_forward(x, w, b, **case["kw"])
        assert out.flags.c_contiguous
        compare("conv3d", dtype, (out, *F.conv3d_backward(want[1], cache)), (want[0], *want[2]))
    torch_oracle.count_case("conv3d")


@pytest.mark.parametrize("x_shape, w_shape, kw, path", [
    ((2, 3, 5, 6, 4), (2, 3, 3, 2, 3), dict(stride=(2, 1, 2), padding=1), "_PlanesBackward"),
    ((2, 1, 5, 6, 4), (8, 1, 1, 1, 2), dict(stride=2), "_Im2colBackward"),
    ((2, 4, 3, 4, 5), (6, 2, 1, 1, 1), dict(groups=2), "_PointwiseBackward"),
    ((1, 2, 1, 1, 1), (3, 2, 1, 1, 1), dict(), "_PointwiseBackward"),  # a 1x1x1 input
    ((1, 2, 1, 1, 1), (3, 2, 3, 3, 3), dict(padding=1), "_PlanesBackward"),
])
def test_every_cpu_backward_path_matches_torch(torch, x_shape, w_shape, kw, path):
    """The stride-phase planes (columns outnumbering dout's rows), the slab adds and the
    pointwise (1x1x1) algorithm, each against torch."""
    case = dict(x_shape=x_shape, w_shape=w_shape, b_size=w_shape[0], seed=7, kw=kw,
                torch_pads=None)
    for dtype in DTYPES:
        rng, x, w, b = case_arrays(case, dtype)
        want = torch_run(torch, torch_conv3d(torch, case), (x, w, b),
                         lambda s: rng.standard_normal(s).astype(dtype))
        out, cache = F.conv3d_forward(x, w, b, **kw)
        assert type(_cpu.conv.backward(want[1], cache)).__name__ == path
        compare("conv3d", dtype, (out, *F.conv3d_backward(want[1], cache)), (want[0], *want[2]))


def test_a_non_finite_weight_takes_the_slab_adds_and_gives_torchs_dx(torch):
    """The planes' zero columns would spread inf * 0 = NaN onto the cells between the windows
    (stride 3, kernel 2); a non-finite weight sums by slabs, and dx is torch's: inf where a
    window reads the inf weight, finite elsewhere."""
    x, w = normal(0, (1, 2, 5, 5, 5), np.float64), normal(1, (1, 2, 2, 2, 2), np.float64)
    w[0, 1, 1, 0, 1] = np.inf
    out, cache = F.conv3d_forward(x, w, stride=3)
    dout = normal(2, out.shape, np.float64)
    assert type(_cpu.conv.backward(dout, cache)).__name__ == "_Im2colBackward"
    dx = F.conv3d_backward(dout, cache)[0]
    want = torch_run(torch, lambda a, b: torch.nn.functional.conv3d(a, b, stride=3), (x, w),
                     lambda s: dout)[2][0]
    assert not np.isnan(want).any() and np.isinf(want).sum() == out.size  # one per window
    np.testing.assert_array_equal(np.isinf(dx), np.isinf(want))
    np.testing.assert_allclose(dx, want, rtol=1e-12)


def test_conv3d_without_the_input_gradient():
    x, w, b = normal(0, (2, 3, 4, 5, 6), np.float64), normal(1, (4, 3, 2, 3, 2), np.float64), \
        np.ones(4)
    out, cache = F.conv3d_forward(x, w, b, padding=1)
    _, dw, db = F.conv3d_backward(np.ones_like(out), cache)
    dx, dw_only, db_only = F.conv3d_backward(np.ones_like(out), cache, needs_input_grad=False)
    assert dx is None
    np.testing.assert_array_equal(dw_only, dw)
    np.testing.assert_array_equal(db_only, db)


# ------------------------------------------------------------------------ the workspace limit
def _recording_chunks(monkeypatch):
    """The batch chunks each conv algorithm runs, as (algorithm, [chunk lengths])."""
    runs = []
    original = conv_front.run_in_chunks

    def recording(algorithm, xp, batch):
        lengths, run = [], algorithm.run

        def run_chunk(chunk, buffers):
            lengths.append(chunk.stop - chunk.start)
            return run(chunk, buffers)
        algorithm.run = run_chunk
        runs.append((type(algorithm).__name__, lengths))
        return original(algorithm, xp, batch)
    monkeypatch.setattr(conv_front, "run_in_chunks", recording)
    return runs


@pytest.mark.filterwarnings("ignore:the column buffer of a single image")
@pytest.mark.parametrize("images_per_limit", [0.5, 1, 2, 3])
@pytest.mark.parametrize("backend", ["cpu", "gpu kernels emulated"])
def test_chunked_under_a_small_workspace_limit_matches_torch(torch, monkeypatch, backend,
                                                             images_per_limit):
    """7 images whose columns fit the limit a few at a time (or not one): the chunks cover the
    batch and the results are still torch's."""
    if backend != "cpu":
        use_gpu_kernels(monkeypatch)
    case = dict(x_shape=(7, 4, 5, 6, 5), w_shape=(6, 2, 3, 3, 2), b_size=6, seed=3,
                kw=dict(stride=(1, 2, 1), padding=1, dilation=(1, 1, 2), groups=2),
                torch_pads=None)
    runs = _recording_chunks(monkeypatch)
    for dtype in DTYPES:
        rng, x, w, b = case_arrays(case, dtype)
        want = torch_run(torch, torch_conv3d(torch, case), (x, w, b),
                         lambda s: rng.standard_normal(s).astype(dtype))
        runs.clear()
        per_image = 4 * 3 * 3 * 2 * int(np.prod(want[0].shape[2:])) * x.itemsize
        with fastconv.workspace_limit(int(images_per_limit * per_image) + 8):
            out, cache = F.conv3d_forward(x, w, b, **case["kw"])
            grads = F.conv3d_backward(want[1], cache)
        compare("conv3d chunked", dtype, (out, *grads), (want[0], *want[2]))
        assert len(runs) == 2  # the forward and the backward
        for _, lengths in runs:
            assert sum(lengths) == 7 and len(lengths) > 1
            assert max(lengths) <= max(1, int(images_per_limit))


def _traced_peak(call):
    tracemalloc.start()
    try:
        start = tracemalloc.get_traced_memory()[0]
        result = call()
        return result, tracemalloc.get_traced_memory()[1] - start
    finally:
        tracemalloc.stop()


def test_peak_memory_stays_within_the_limit():
    """32 volumes whose full column matrix is over 6 times a 4 MiB limit: the forward peaks at the
    limit + the output + 2x the input (padded chunk copies), the backward at the limit + 2x
    the input (dx and its padded accumulator) + 2x dout, as the 2-D convolution's."""
    x, w = normal(0, (32, 2, 8, 16, 16), np.float64), normal(1, (2, 2, 3, 3, 3), np.float64)
    limit = 4 * 2**20
    assert 32 * 2 * 27 * 8 * 16 * 16 * 8 >= 6 * limit
    with fastconv.workspace_limit(limit):
        (out, cache), forward_peak = _traced_peak(lambda: F.conv3d_forward(x, w, padding=1))
        dout = normal(2, out.shape, np.float64)
        _, backward_peak = _traced_peak(lambda: F.conv3d_backward(dout, cache))
    assert forward_peak <= limit + out.nbytes + 2 * x.nbytes
    assert backward_peak <= limit + 2 * x.nbytes + 2 * dout.nbytes


# ----------------------------------------------------------------------------- the layer
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("kw", [dict(stride=2, padding=1), dict(padding="same", dilation=(1, 2, 1)),
                                dict(groups=2, bias=False, padding=(0, 1, 2), stride=(1, 2, 3))])
def test_conv3d_layer_matches_torch(torch, dtype, kw):
    layer = nn.Conv3d(4, 6, 3, dtype=dtype, seed=1, **kw)
    ref = torch.nn.Conv3d(4, 6, 3, dtype=getattr(torch, np.dtype(dtype).name), **kw)
    with torch.no_grad():
        ref.weight.copy_(torch.from_numpy(layer.params["W"]))
        if "b" in layer.params:
            layer.params["b"][...] = normal(5, 6, dtype)
            ref.bias.copy_(torch.from_numpy(layer.params["b"]))
    x = normal(2, (2, 4, 5, 7, 6), dtype)
    out = layer.forward(x)
    want = torch_run(torch, ref, (x,), lambda s: normal(3, s, dtype))
    compare("Conv3d", dtype, (out, layer.backward(want[1]), layer.grads["W"],
                              layer.grads.get("b")),
            (want[0], want[2][0], ref.weight.grad.numpy(),
             None if ref.bias is None else ref.bias.grad.numpy()))


@pytest.mark.parametrize("make", [
    lambda: nn.Conv3d(2, 4, (2, 3, 2), stride=(1, 2, 1), padding=1, dilation=(1, 1, 2),
                      groups=2, dtype=np.float64, seed=0),
    lambda: nn.Conv3d(3, 2, 1, dtype=np.float64, seed=0),
    lambda: nn.Conv3d(3, 5, 2, stride=3, padding="valid", bias=False, dtype=np.float64, seed=0),
])
def test_conv3d_layer_gradients_match_numerical(make):
    layer = make()
    x = normal(1, (2, layer.in_channels, 4, 5, 5), np.float64)
    assert gradcheck.check_layer(layer, x) < 1e-7


def test_conv3d_layer_initialisation_and_repr():
    w = nn.Conv3d(16, 32, 3, seed=0).params["W"]
    assert w.shape == (32, 16, 3, 3, 3)
    assert w.std() == pytest.approx((2 / (16 * 27)) ** 0.5, rel=0.03)
    assert "kernel_size=(3, 3, 3)" in repr(nn.Conv3d(2, 2, 3))
    layer = nn.Conv3d(2, 3, 3, needs_input_grad=False, dtype=np.float64)
    assert layer.backward(np.ones_like(layer.forward(np.ones((1, 2, 3, 4, 5))))) is None


# ------------------------------------------------------------------------ the GPU backend
@settings(max_examples=30, **GPU_SETTINGS)
@given(case=conv3d_cases(), dtype=st.sampled_from(DTYPES), limit=st.sampled_from([None, 3000]))
@pytest.mark.filterwarnings("ignore:the column buffer of a single image")
def test_gpu_backend_matches_the_cpu(gpu_kernels, case, dtype, limit):
    """The GPU backend's 3-D convolution (the kernels emulated, the products in the NumPy model
    of cuBLAS) against the CPU path, chunked or not."""
    _, x, w, b = case_arrays(case, dtype)
    out, cache = on_cpu(F.conv3d_forward, x, w, b, **case["kw"])
    dout = normal(case["seed"], out.shape, dtype)
    want = (out, *on_cpu(F.conv3d_backward, dout, cache))
    with fastconv.workspace_limit(limit or 2**28):
        out, cache = F.conv3d_forward(x, w, b, **case["kw"])
        got = (out, *F.conv3d_backward(dout, cache))
    assert out.flags.c_contiguous
    assert_gpu_matches_cpu(got, want)


def test_gpu_backend_is_deterministic(gpu_kernels):
    x, w, b = normal(0, (3, 4, 6, 5, 7), np.float32), normal(1, (4, 4, 3, 3, 3), np.float32), \
        normal(2, 4, np.float32)
    runs = []
    for _ in range(2):
        out, cache = F.conv3d_forward(x, w, b, stride=(2, 1, 1), padding=1)
        runs.append((out, *F.conv3d_backward(np.ones_like(out), cache)))
    for first, second in zip(*runs):
        np.testing.assert_array_equal(first, second)


@pytest.mark.gpu
@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
@pytest.mark.parametrize("kw", [dict(padding="same", dilation=(1, 2, 1), groups=2),
                                dict(stride=(2, 1, 2), padding=((0, 1), (1, 1), (2, 0))),
                                dict(groups=4)])
def test_conv3d_on_the_gpu(dtype, kw):
    kernel = (1, 1, 1) if kw.get("groups") == 4 else (3, 2, 3)
    x, w, b = normal(0, (2, 4, 5, 6, 7), dtype), normal(1, (8, 4 // kw.get("groups", 1))
                                                         + kernel, dtype), normal(2, 8, dtype)
    check_on_cupy(F.conv3d_forward, F.conv3d_backward, (x, w, b), kw, dtype)


@pytest.mark.gpu
def test_conv3d_layer_on_the_gpu_is_deterministic_and_matches_the_cpu():
    import cupy

    layer = nn.Conv3d(3, 4, 3, stride=2, padding=1, dtype=np.float64, seed=0)
    x = normal(0, (2, 3, 7, 8, 9), np.float64)
    want_out = layer.forward(x)
    want_dx = layer.backward(np.ones_like(want_out))
    layer.to("gpu")
    runs = []
    for _ in range(2):
        out = layer.forward(cupy.asarray(x))
        runs.append((cupy.asnumpy(out), cupy.asnumpy(layer.backward(cupy.ones_like(out)))))
    np.testing.assert_array_equal(runs[0][1], runs[1][1])
    np.testing.assert_allclose(runs[0][0], want_out, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(runs[0][1], want_dx, rtol=1e-12, atol=1e-12)
