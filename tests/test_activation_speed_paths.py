"""ReLU and leaky ReLU's CPU path (fastconv._cpu.activation): branch-free blocks over threads.

Oracles: the plain formulas (``maximum`` and ``where``), bitwise, on inputs
full of special values (NaN of either sign, infinities, signed zeros,
subnormals) and large enough to be cut into blocks and split across 1, 2 and
3 threads; PyTorch's autograd for ordinary values; the GPU backend's array
code, run on NumPy arrays.
"""

import numpy as np
import pytest

import fastconv.functional as F
from fastconv import _backends, _gpu, profiling
from fastconv._cpu import activation as cpu_activation

DTYPES = [np.float16, np.float32, np.float64]
SHAPE = (16, 8, 100, 100)  # 1.28M values: 20 blocks, and three threads even in float16
SLOPES = [0.01, 0.0, -0.5, 1.0, 2.0]


def with_specials(dtype, seed):
    """Normal values with NaN (both signs), infinities, signed zeros and subnormals mixed in."""
    rng = np.random.default_rng(seed)
    a = rng.standard_normal(SHAPE).astype(dtype)
    info = np.finfo(dtype)
    specials = np.array([np.nan, -np.nan, np.inf, -np.inf, 0.0, -0.0, info.smallest_subnormal,
                         -info.smallest_subnormal, info.max, -info.max], dtype=dtype)
    flat = a.reshape(-1)
    picks = rng.choice(flat.size, size=flat.size // 10, replace=False)
    flat[picks] = rng.choice(specials, size=picks.size)
    return a


def bits(a):
    return a.view({2: np.uint16, 4: np.uint32, 8: np.uint64}[a.itemsize])


def assert_bitwise(got, want):
    assert got.shape == want.shape and got.dtype == want.dtype
    np.testing.assert_array_equal(bits(got), bits(want))


@pytest.mark.parametrize("threads", ["1", "2", "3"])
@pytest.mark.parametrize("dtype", DTYPES)
def test_relu_is_bitwise_the_plain_formula(monkeypatch, threads, dtype):
    monkeypatch.setenv("FASTCONV_NUM_THREADS", threads)
    x, dout = with_specials(dtype, 1), with_specials(dtype, 2)
    zero = np.zeros((), dtype)
    out, cache = F.relu_forward(x)
    assert_bitwise(out, np.maximum(x, zero))
    assert_bitwise(F.relu_backward(dout, cache), np.where(x <= 0, zero, dout))


@pytest.mark.filterwarnings("ignore:(invalid value|overflow) encountered in multiply")
@pytest.mark.parametrize("threads", ["1", "3"])
@pytest.mark.parametrize("slope", SLOPES)
@pytest.mark.parametrize("dtype", DTYPES)
def test_leaky_relu_is_bitwise_the_plain_formula(monkeypatch, threads, slope, dtype):
    """The factor 1 or slope is picked in integer bits: exact for any slope, 0 and 1 too.

    inf * 0 and max * 2 warn, in the worker threads too, as the formula does."""
    monkeypatch.setenv("FASTCONV_NUM_THREADS", threads)
    x, dout = with_specials(dtype, 3), with_specials(dtype, 4)
    s = dtype(slope)
    out, cache = F.leaky_relu_forward(x, negative_slope=slope)
    with np.errstate(invalid="ignore", over="ignore"):  # 0 * inf, max * 2 in the formulas
        assert_bitwise(out, np.where(x > 0, x, x * s))
        assert_bitwise(F.leaky_relu_backward(dout, cache), np.where(x > 0, dout, dout * s))


def test_the_work_is_split_and_blocked(monkeypatch):
    monkeypatch.setenv("FASTCONV_NUM_THREADS", "3")
    shares = []
    real = cpu_activation.over_batch

    def recording(work, batch, nbytes):
        def counted(share):
            shares.append(share)
            work(share)
        real(counted, batch, nbytes)

    monkeypatch.setattr(cpu_activation, "over_batch", recording)
    x = with_specials(np.float32, 5)
    _, cache = F.relu_forward(x)
    assert len(shares) == 3
    shares.clear()
    F.relu_backward(x, cache)
    assert len(shares) == 3 and all(s.stop - s.start > cpu_activation._BLOCK for s in shares)


def test_relu_matches_torch_autograd(torch):
    x = np.random.default_rng(6).standard_normal(SHAPE).astype(np.float32)
    x[:, :, :10] = 0  # relu's gradient at 0 is 0, as in torch
    dout = np.random.default_rng(7).standard_normal(SHAPE).astype(np.float32)
    tx = torch.from_numpy(x.copy()).requires_grad_(True)
    out = torch.relu(tx)
    out.backward(torch.from_numpy(dout))
    ours, cache = F.relu_forward(x)
    np.testing.assert_array_equal(ours, out.detach().numpy())
    np.testing.assert_array_equal(F.relu_backward(dout, cache), tx.grad.numpy())


@pytest.mark.parametrize("forward, backward", [
    (F.relu_forward, F.relu_backward),
    (lambda x: F.leaky_relu_forward(x, 0.2), F.leaky_relu_backward),
])
def test_strided_and_scalar_inputs(forward, backward):
    x = np.random.default_rng(8).standard_normal((6, 5, 4)).transpose(2, 0, 1)
    out, cache = forward(x)
    want, want_cache = forward(np.ascontiguousarray(x))
    np.testing.assert_array_equal(out, want)
    assert out.flags.c_contiguous
    dout = np.asfortranarray(np.ones(x.shape))
    np.testing.assert_array_equal(backward(dout, cache), backward(np.ones(x.shape), want_cache))
    out, cache = forward(np.array(-2.0))
    assert out.shape == () and backward(np.array(3.0), cache).shape == ()
    out, cache = forward(np.ones((0, 3)))
    assert backward(np.ones((0, 3)), cache).shape == (0, 3)


def test_relu_cache_keeps_the_output_not_the_input():
    x = np.random.default_rng(9).standard_normal((3, 4))
    out, cache = F.relu_forward(x)
    assert cache.out is out


def test_profiling_names_the_activation_steps():
    x = np.random.default_rng(10).standard_normal((4, 5))
    with profiling.record() as steps:
        out, cache = F.relu_forward(x)
        F.relu_backward(out, cache)
        out, cache = F.leaky_relu_forward(x)
        F.leaky_relu_backward(out, cache)
    assert {"relu", "relu backward", "leaky relu", "leaky relu backward"} <= set(steps)


@pytest.mark.parametrize("dtype", DTYPES)
def test_gpu_backend_matches_the_cpu_path(monkeypatch, dtype):
    """fastconv._gpu.activation is array code over ``xp``: on NumPy arrays, the same bits."""
    x, dout = with_specials(dtype, 11), with_specials(dtype, 12)
    cpu = [F.relu_forward(x), F.leaky_relu_forward(x, 0.3)]
    cpu_grads = [F.relu_backward(dout, cpu[0][1]), F.leaky_relu_backward(dout, cpu[1][1])]
    monkeypatch.setattr(_backends, "backend_for", lambda *arrays: _gpu)
    gpu = [F.relu_forward(x), F.leaky_relu_forward(x, 0.3)]
    gpu_grads = [F.relu_backward(dout, gpu[0][1]), F.leaky_relu_backward(dout, gpu[1][1])]
    with np.errstate(invalid="ignore"):
        for (got, _), (want, _) in zip(gpu, cpu):
            assert_bitwise(got, want)
        for got, want in zip(gpu_grads, cpu_grads):
            assert_bitwise(got, want)
