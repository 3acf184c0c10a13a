"""Batch norm's CPU path (fastconv._cpu.batchnorm): blocks of images, threads, NCHW natively.

Oracles: PyTorch in float64 on shapes cut into several blocks (an uneven last
one included), float64 numerical gradients, float64 NumPy statistics, and
bitwise equality between thread counts. The GPU backend's array code runs on
NumPy arrays (the dispatch patched) against the CPU path.
"""

import numpy as np
import pytest

import fastconv.functional as F
import torch_oracle
from fastconv import _backends, _cpu, _gpu, gradcheck, profiling
from fastconv._cpu import batchnorm as cpu_batchnorm
from fastconv._cpu import threads

SPATIAL, FEATURES = "spatial", "features"
OPS = {SPATIAL: (F.spatial_batchnorm_forward, F.spatial_batchnorm_backward),
       FEATURES: (F.batchnorm_forward, F.batchnorm_backward)}
# several blocks of 1 MiB in every dtype, the last one short
MULTI_BLOCK = {SPATIAL: (73, 8, 30, 30), FEATURES: (9001, 70)}


def randn(shape, dtype=np.float64, seed=0):
    return np.random.default_rng(seed).standard_normal(shape).astype(dtype)


def inputs(layout, shape, dtype, seed=0, offset=1.0):
    """x, gamma, beta, running mean and variance, dout for one case."""
    c = shape[1]
    x = randn(shape, np.float64, seed) * 2 + offset
    running = (randn((c,), dtype, seed + 3), np.abs(randn((c,), dtype, seed + 4)) + 0.5)
    return (x.astype(dtype), randn((c,), dtype, seed + 1), randn((c,), dtype, seed + 2),
            *running, randn(shape, dtype, seed + 5))


def run(layout, x, gamma, beta, rm, rv, dout, **kwargs):
    """Forward and backward; returns out, dx, dgamma, dbeta and the running statistics after."""
    forward, backward = OPS[layout]
    rm, rv = (None, None) if rm is None else (rm.copy(), rv.copy())
    out, cache = forward(x, gamma, beta, rm, rv, **kwargs)
    return (out, *backward(dout, cache), rm, rv)


def torch_reference(torch, x, gamma, beta, rm, rv, dout, train, momentum):
    """The same in float64 with torch's autograd."""
    t = [torch.from_numpy(a.astype(np.float64)) for a in (x, gamma, beta, dout)]
    trm, trv = (torch.from_numpy(a.astype(np.float64)) for a in (rm, rv))
    leaves = [a.requires_grad_(True) for a in t[:3]]
    out = torch.nn.functional.batch_norm(leaves[0], trm, trv, leaves[1], leaves[2],
                                         training=train, momentum=momentum, eps=1e-5)
    out.backward(t[3])
    return (out.detach().numpy(), *(a.grad.numpy() for a in leaves), trm.numpy(), trv.numpy())


def blocks_of(shape, dtype):
    """How many blocks the CPU path cuts a batch of ``shape`` into (0: too small for blocks)."""
    x = np.empty(shape, dtype)
    if cpu_batchnorm._is_small(x):
        return 0
    work = np.result_type(dtype, np.float32)
    return cpu_batchnorm._Blocks(cpu_batchnorm._rows(x), work).count


@pytest.mark.parametrize("layout", [SPATIAL, FEATURES])
@pytest.mark.parametrize("train", [True, False])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_several_blocks_match_torch(torch, layout, train, dtype):
    shape = MULTI_BLOCK[layout]
    assert blocks_of(shape, dtype) >= 3
    case = inputs(layout, shape, dtype, seed=3)
    got = run(layout, *case, train=train, momentum=0.3)
    want = torch_reference(torch, *case, train, 0.3)
    torch_oracle.check("batchnorm", dtype, dict(zip(
        ["out", "dx", "dgamma", "dbeta", "running_mean", "running_var"], zip(got, want))))
    assert got[0].flags.c_contiguous and got[1].flags.c_contiguous


@pytest.mark.parametrize("layout", [SPATIAL, FEATURES])
def test_float16_sums_in_float32_over_several_blocks(torch, layout):
    """Values near 1000 over more than 65504 / 1000 entries: float16 sums would overflow."""
    shape = MULTI_BLOCK[layout]
    assert blocks_of(shape, np.float32) >= 3
    x, gamma, beta, rm, rv, dout = inputs(layout, shape, np.float16, seed=4, offset=1000.0)
    got = run(layout, x, gamma, beta, rm, rv, dout, train=True, momentum=1.0)
    want = torch_reference(torch, x, gamma, beta, rm, rv, dout, True, 1.0)
    assert all(g.dtype == np.float16 for g in got)
    for name, g, w in zip(["out", "dx", "dgamma", "dbeta", "mean", "var"], got, want):
        scale = np.abs(w).max()
        assert np.abs(g.astype(np.float64) - w).max() <= 2e-3 * scale, name


@pytest.mark.parametrize("layout", [SPATIAL, FEATURES])
def test_variance_of_a_large_mean_is_exact_two_pass(layout):
    """Mean 1e4, standard deviation 1, the blocks' means apart: E[x^2] - E[x]^2 in float32
    would be off by whole units, and so would a mean summed naively; both match float64."""
    shape = MULTI_BLOCK[layout]
    x = randn(shape, seed=5) + 1e4
    x += np.arange(shape[0]).reshape((-1,) + (1,) * (len(shape) - 1)) % 3  # blocks differ
    x = x.astype(np.float32)
    axes = (0,) + tuple(range(2, len(shape)))
    mean, var = cpu_batchnorm.batch_statistics(x)
    exact = x.astype(np.float64)
    np.testing.assert_allclose(mean, exact.mean(axis=axes), rtol=1e-6)
    np.testing.assert_allclose(var, exact.var(axis=axes), rtol=2e-5)


@pytest.mark.parametrize("layout", [SPATIAL, FEATURES])
@pytest.mark.parametrize("train", [True, False])
def test_numerical_gradients_over_several_blocks(layout, train):
    shape = {SPATIAL: (20, 8, 30, 30), FEATURES: (2500, 60)}[layout]
    assert blocks_of(shape, np.float64) >= 2
    forward, backward = OPS[layout]
    c = shape[1]

    def op(x, gamma, beta):
        return forward(x, gamma, beta, np.zeros(c) + 0.3, np.ones(c) * 2, train=train)

    err = gradcheck.check_op(op, backward, randn(shape, seed=6), randn((c,), seed=7),
                             randn((c,), seed=8), directions=6)
    assert err < 1e-7, f"relative error {err:.2e}"


def record_splits(monkeypatch):
    """Wrap the CPU path's over_batch: the list gets the number of slices of each pass."""
    splits = []

    def recording(work, batch, nbytes):
        slices = []

        def counted(part):
            slices.append(part)
            work(part)

        threads.over_batch(counted, batch, nbytes)
        splits.append(len(slices))

    monkeypatch.setattr(cpu_batchnorm, "over_batch", recording)
    return splits


@pytest.mark.parametrize("layout, shape, dtype", [
    (SPATIAL, (64, 48, 16, 16), np.float32),  # 3 MiB in 4 blocks: each pass splits three ways
    (SPATIAL, (32, 32, 40, 40), np.float16),
    (FEATURES, (8192, 96), np.float32),
])
@pytest.mark.parametrize("train, running", [(True, True), (False, True), (True, False)])
def test_results_are_bitwise_the_same_for_any_thread_count(monkeypatch, layout, shape, dtype,
                                                           train, running):
    case = list(inputs(layout, shape, dtype, seed=9))
    if not running:
        case[3] = case[4] = None
    splits = record_splits(monkeypatch)
    results = {}
    for count in ("1", "2", "3"):
        monkeypatch.setenv("FASTCONV_NUM_THREADS", count)
        splits.clear()
        results[count] = run(layout, *case, train=train)
        assert max(splits) == int(count), splits  # the work really was split
    for count in ("2", "3"):
        for got, want in zip(results[count], results["1"]):
            if want is not None:
                np.testing.assert_array_equal(got.view(np.uint8), want.view(np.uint8))


def test_the_cache_keeps_x_itself_and_per_channel_statistics():
    x, gamma, beta, rm, rv, _ = inputs(SPATIAL, (6, 5, 4, 3), np.float32)
    _, cache = F.spatial_batchnorm_forward(x, gamma, beta, rm, rv)
    assert cache.x is x  # no copy, and no full-size xhat
    assert all(getattr(cache, f).size <= 5 for f in ("gamma", "mean", "inv_std"))
    want = (x - x.mean(axis=(0, 2, 3), keepdims=True)) / np.sqrt(
        x.var(axis=(0, 2, 3), keepdims=True) + 1e-5)
    np.testing.assert_allclose(cache.xhat, want, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("train", [True, False])
def test_non_contiguous_arrays_give_the_contiguous_results(train):
    x, gamma, beta, rm, rv, dout = inputs(SPATIAL, (5, 6, 7, 4), np.float64)
    strided = np.ascontiguousarray(x.transpose(0, 2, 3, 1)).transpose(0, 3, 1, 2)
    dout_strided = np.asfortranarray(dout)
    assert not strided.flags.c_contiguous and not dout_strided.flags.c_contiguous
    want = run(SPATIAL, x, gamma, beta, rm, rv, dout, train=train)
    got = run(SPATIAL, strided, gamma, beta, rm, rv, dout_strided, train=train)
    for g, w in zip(got, want):
        np.testing.assert_array_equal(g, w)
    assert got[0].flags.c_contiguous and got[1].flags.c_contiguous


def test_profiling_names_the_batchnorm_steps():
    x, gamma, beta, rm, rv, dout = inputs(SPATIAL, (4, 3, 5, 5), np.float32)
    with profiling.record() as steps:
        run(SPATIAL, x, gamma, beta, rm, rv, dout, train=True)
    assert {"batchnorm", "batchnorm backward"} <= set(steps)


@pytest.mark.parametrize("call, exc, message", [
    (lambda: F.spatial_batchnorm_forward(np.ones((1, 3, 1, 1)), np.ones(3), np.zeros(3),
                                         None, None),
     ValueError, r"more than one value per feature, got x.shape=\(1, 3\)"),
    (lambda: F.spatial_batchnorm_forward(np.ones((2, 3, 2, 2)), np.ones(4), np.zeros(4),
                                         None, None),
     ValueError, r"gamma has 4 entries \(gamma.shape=\(4,\)\) but x has 3 features/channels"),
    (lambda: F.spatial_batchnorm_forward(np.ones((2, 3, 2, 2)), np.ones(3, np.float32),
                                         np.zeros(3), None, None),
     TypeError, "x is float64 but gamma is float32"),
    (lambda: F.batchnorm_backward(np.ones((2, 3, 2, 2)), F.spatial_batchnorm_forward(
        np.arange(24.0).reshape(2, 3, 2, 2), np.ones(3), np.zeros(3), None, None)[1]),
     TypeError, "cache comes from spatial_batchnorm_forward, not batchnorm_forward"),
])
def test_errors_name_the_normalised_values(call, exc, message):
    with pytest.raises(exc, match=message):
        call()


# ------------------------------------------------------------- the GPU backend on NumPy

@pytest.fixture
def gpu_backend_on_numpy(monkeypatch):
    """Route NumPy arrays to fastconv._gpu: its batchnorm is array code over ``xp``."""
    monkeypatch.setattr(_backends, "backend_for", lambda *arrays: _gpu)


GPU_TOLERANCE = {np.float64: 1e-12, np.float32: 1e-5, np.float16: 2e-3}


@pytest.mark.parametrize("layout", [SPATIAL, FEATURES])
@pytest.mark.parametrize("train, running", [(True, True), (False, True), (False, False)])
@pytest.mark.parametrize("dtype", [np.float64, np.float32, np.float16])
def test_gpu_backend_matches_the_cpu_path(gpu_backend_on_numpy, layout, train, running, dtype):
    case = list(inputs(layout, MULTI_BLOCK[layout], dtype, seed=11))
    if not running:
        case[3] = case[4] = None
    got = run(layout, *case, train=train)
    with pytest.MonkeyPatch.context() as m:
        m.setattr(_backends, "backend_for", lambda *arrays: _cpu)
        want = run(layout, *case, train=train)
    for name, g, w in zip(["out", "dx", "dgamma", "dbeta", "mean", "var"], got, want):
        if w is None:
            continue
        assert g.dtype == w.dtype and g.shape == w.shape, name
        scale = np.abs(w.astype(np.float64)).max()
        err = np.abs(g.astype(np.float64) - w).max() / scale
        assert err <= GPU_TOLERANCE[dtype], f"{name}: {err:.2e}"
