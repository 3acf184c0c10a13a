"""The array-module abstraction: lazy imports, device selection, and CPU/GPU parity (gpu-marked)."""

import subprocess
import sys
import types

import numpy as np
import pytest

import fastconv
import fastconv.functional as F
from fastconv import backend
from torch_oracle import rel_err

NO_GPU = not backend.gpu_available()
needs_no_gpu = pytest.mark.skipif(not NO_GPU, reason="checks the behaviour where no GPU is usable")

HEAVY = ["cupy", "torch", "matplotlib", "tqdm", "mpi4py", "sklearn"]


def test_import_fastconv_pulls_in_no_optional_dependency():
    code = ("import sys, fastconv, fastconv.functional, fastconv.reference; "
            f"print([m for m in {HEAVY!r} if m in sys.modules])")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]", done.stdout + done.stderr


def test_get_array_module_of_numpy_arrays_is_numpy():
    a = np.zeros(3)
    assert fastconv.get_array_module(a) is np
    assert fastconv.get_array_module(a, np.ones((2, 2)), None, 3.0) is np
    assert fastconv.get_array_module() is np


def test_is_array_is_true_for_arrays_only():
    assert backend.is_array(np.zeros(3)) and backend.is_array(np.array(1.0))
    for not_array in (np.float64(1.0), 1.0, [1.0], None):
        assert not backend.is_array(not_array)


def test_accumulator_dtype_widens_only_float16():
    assert backend.accumulator_dtype(np.float16) == np.float32
    assert backend.accumulator_dtype(np.float32) == np.float32
    assert backend.accumulator_dtype(np.dtype(np.float64)) == np.float64


def test_promoted_casts_to_the_common_dtype_as_numpy_arithmetic_would():
    a, b = np.ones(2, np.float32), np.ones(3, np.float64)
    pa, none, pb = backend.promoted(a, None, b, names=("x", "w", "b"))
    assert pa.dtype == pb.dtype == np.float64 and none is None
    assert backend.promoted(a, a, names=("x", "w"))[0] is a  # nothing to cast: no copy


@pytest.mark.parametrize("bad", [0.5, [1.0, 2.0], (1.0,), "ab"])
def test_promoted_refuses_what_is_no_array_by_name(bad):
    """Not NumPy's result_type error on a list ("Field elements must be 2- or 3-tuples") or
    an AttributeError on a number's astype: a TypeError naming the argument."""
    with pytest.raises(TypeError, match=r"^b must be a NumPy or CuPy array, got "):
        backend.promoted(np.ones(2), None, bad, names=("x", "w", "b"))


def test_gpu_available_is_a_bool_consistent_with_its_reason():
    available = fastconv.gpu_available()
    status, reason = fastconv.gpu_status()
    assert isinstance(available, bool) and available is status
    assert isinstance(reason, str) and reason


@needs_no_gpu
def test_without_gpu_the_reason_says_why():
    available, reason = fastconv.gpu_status()
    assert available is False
    assert any(word in reason for word in ("CuPy", "CUDA", "device")), reason


def stand_in_cupy(monkeypatch, cublas_failure=None, handle_failure=None):
    """A CuPy with one working device; its cuBLAS loads lazily, as CuPy's does, and
    ``from cupy.cuda import cublas`` raises ``cublas_failure`` (get_cublas_handle()
    ``handle_failure``) when given."""
    def getattr_lazily(name):  # CuPy's cupy.cuda.__getattr__ imports cublas on first use
        if name != "cublas":
            raise AttributeError(name)
        if cublas_failure is not None:
            raise cublas_failure
        return types.SimpleNamespace()

    def get_cublas_handle():
        if handle_failure is not None:
            raise handle_failure
        return 1

    cuda = types.ModuleType("cupy.cuda")
    cuda.__getattr__ = getattr_lazily
    cuda.runtime = types.SimpleNamespace(getDeviceCount=lambda: 1,
                                         getDeviceProperties=lambda i: {"name": b"Stand-in"})
    cuda.Device = lambda: types.SimpleNamespace(id=0)
    cuda.device = types.SimpleNamespace(get_cublas_handle=get_cublas_handle)
    cupy = types.ModuleType("cupy")
    cupy.cuda, cupy.zeros = cuda, np.zeros  # the probe's kernel launch, on the host
    monkeypatch.setitem(sys.modules, "cupy", cupy)
    monkeypatch.setitem(sys.modules, "cupy.cuda", cuda)
    monkeypatch.delitem(sys.modules, "cupy.cuda.cublas", raising=False)


def test_the_gpu_probe_accepts_a_device_whose_cublas_loads(monkeypatch):
    stand_in_cupy(monkeypatch)
    assert backend._probe_gpu() == (True, "1 CUDA device(s); using Stand-in")


@pytest.mark.parametrize("failure", [
    dict(cublas_failure=ImportError('Failure finding "libcublasLt.so.13 or libcublasLt.so.12"'
                                    '\n  listdir("site-packages/nvidia/cu13/lib"):')),
    dict(handle_failure=RuntimeError("CUBLAS_STATUS_NOT_INITIALIZED")),
], ids=["library missing", "no handle"])
def test_the_gpu_probe_refuses_a_device_without_cublas_saying_what_to_install(monkeypatch,
                                                                              failure):
    """The driver, a device and NVRTC, and no cuBLAS: every convolution would fail."""
    stand_in_cupy(monkeypatch, **failure)
    available, reason = backend._probe_gpu()
    assert available is False
    assert reason.startswith("cuBLAS is not loadable (") and "\n" not in reason, reason
    assert reason.endswith("install cupy-cudaXX[ctk] (CuPy 14+) or the CUDA toolkit"), reason
    assert ("libcublasLt.so.13" in reason) or ("CUBLAS_STATUS_NOT_INITIALIZED" in reason)


@pytest.fixture
def device_env(monkeypatch):
    def set_to(value):
        if value is None:
            monkeypatch.delenv("FASTCONV_DEVICE", raising=False)
        else:
            monkeypatch.setenv("FASTCONV_DEVICE", value)
    return set_to


def test_default_device_is_cpu_when_unset_or_cpu(device_env):
    device_env(None)
    assert fastconv.default_device() == "cpu"
    device_env("cpu")
    assert fastconv.default_device() == "cpu"


def test_auto_picks_the_gpu_only_when_usable(device_env):
    device_env("auto")
    assert fastconv.default_device() == ("cpu" if NO_GPU else "gpu")


@needs_no_gpu
def test_asking_for_a_missing_gpu_says_why(device_env):
    device_env("gpu")
    with pytest.raises(RuntimeError, match="GPU") as info:
        fastconv.default_device()
    assert fastconv.gpu_status()[1] in str(info.value)


def test_bad_device_name_is_a_value_error(device_env):
    device_env("tpu")
    with pytest.raises(ValueError, match="FASTCONV_DEVICE"):
        fastconv.default_device()
    with pytest.raises(ValueError, match="device"):
        backend.resolve_device("tpu")


def test_to_device_cpu_returns_numpy_without_copying():
    x = np.arange(6.0).reshape(2, 3)
    assert fastconv.to_device(x, "cpu") is x
    moved = fastconv.to_device([[1.0, 2.0]], "cpu")
    assert isinstance(moved, np.ndarray) and moved.shape == (1, 2)


@needs_no_gpu
def test_to_device_gpu_without_gpu_raises():
    with pytest.raises(RuntimeError, match="GPU"):
        fastconv.to_device(np.zeros(2), "gpu")


@needs_no_gpu
def test_to_device_auto_without_gpu_is_numpy():
    x = np.zeros(2)
    assert fastconv.to_device(x, "auto") is x


def test_as_numpy():
    x = np.ones(3, dtype=np.float32)
    assert fastconv.as_numpy(x) is x
    y = fastconv.as_numpy([1.0, 2.0])
    assert isinstance(y, np.ndarray) and y.tolist() == [1.0, 2.0]


def test_device_of_and_module_for_cpu():
    assert backend.device_of(np.zeros(1)) == "cpu"
    assert backend.module_for_device("cpu") is np


# ---------------------------------------------------------------- on a GPU

@pytest.fixture
def cupy():
    return pytest.importorskip("cupy")


@pytest.mark.gpu
def test_mixing_devices_is_a_value_error(cupy):
    x, w = cupy.zeros((1, 1, 4, 4)), np.zeros((1, 1, 3, 3))
    with pytest.raises(ValueError, match="device"):
        fastconv.get_array_module(x, w)
    with pytest.raises(ValueError, match="device"):
        F.conv2d_forward(x, w)


@pytest.mark.gpu
def test_gpu_device_helpers(cupy, device_env):
    x = np.arange(4.0)
    g = fastconv.to_device(x, "gpu")
    assert isinstance(g, cupy.ndarray) and backend.device_of(g) == "gpu"
    assert fastconv.get_array_module(g) is cupy
    np.testing.assert_array_equal(fastconv.as_numpy(g), x)
    assert isinstance(fastconv.to_device(g, "cpu"), np.ndarray)
    device_env("auto")
    assert fastconv.default_device() == "gpu"


def _gpu_vs_cpu(cupy, forward, backward, args, kw, dtype, n_grads_from_x=1):
    """Run forward+backward on NumPy and on CuPy copies; return pairs (gpu as numpy, cpu)."""
    rng = np.random.default_rng(0)
    cpu_out, cpu_cache = forward(*args, **kw)
    dout = rng.standard_normal(cpu_out.shape).astype(dtype)
    cpu_grads = backward(dout, cpu_cache)
    gpu_args = [None if a is None else cupy.asarray(a) for a in args]
    gpu_out, gpu_cache = forward(*gpu_args, **kw)
    assert isinstance(gpu_out, cupy.ndarray) and gpu_out.dtype == dtype
    gpu_grads = backward(cupy.asarray(dout), gpu_cache)
    cpu_grads = cpu_grads if isinstance(cpu_grads, tuple) else (cpu_grads,)
    gpu_grads = gpu_grads if isinstance(gpu_grads, tuple) else (gpu_grads,)
    pairs = [(gpu_out, cpu_out)] + list(zip(gpu_grads, cpu_grads))
    return [(cupy.asnumpy(g), c) for g, c in pairs if c is not None]


GPU_TOL = {np.float64: 1e-12, np.float32: 1e-5}


@pytest.mark.gpu
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("kw", [dict(padding=1), dict(stride=2, dilation=(1, 2), groups=2),
                                dict(padding="same", groups=4)])
def test_conv2d_on_gpu_matches_numpy(cupy, dtype, kw):
    rng = np.random.default_rng(1)
    x = rng.standard_normal((3, 4, 9, 10)).astype(dtype)
    w = rng.standard_normal((8, 4 // kw.get("groups", 1), 3, 3)).astype(dtype)
    b = rng.standard_normal(8).astype(dtype)
    for got, want in _gpu_vs_cpu(cupy, F.conv2d_forward, F.conv2d_backward, (x, w, b), kw, dtype):
        assert got.dtype == want.dtype
        assert rel_err(got, want) <= GPU_TOL[dtype]


@pytest.mark.gpu
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("forward, backward, kw", [
    (F.max_pool2d_forward, F.max_pool2d_backward, dict(kernel_size=2)),
    (F.max_pool2d_forward, F.max_pool2d_backward,
     dict(kernel_size=3, stride=2, padding=1, dilation=2, ceil_mode=True)),
    (F.avg_pool2d_forward, F.avg_pool2d_backward,
     dict(kernel_size=3, stride=2, padding=1, ceil_mode=True, count_include_pad=False)),
    (F.adaptive_avg_pool2d_forward, F.adaptive_avg_pool2d_backward, dict(output_size=(4, 3))),
])
def test_pools_on_gpu_match_numpy(cupy, dtype, forward, backward, kw):
    size = 3 * 2 * 9 * 10
    x = ((np.random.default_rng(2).permutation(size) - size / 2) * 0.5).reshape(3, 2, 9, 10)
    x = x.astype(dtype)
    for got, want in _gpu_vs_cpu(cupy, forward, backward, (x,), kw, dtype):
        assert rel_err(got, want) <= GPU_TOL[dtype]


@pytest.mark.gpu
def test_max_pool_indices_and_ties_on_gpu_match_numpy(cupy):
    x = np.full((2, 2, 6, 6), 0.5)
    for kw in (dict(kernel_size=2), dict(kernel_size=3, stride=1, padding=1)):
        out, idx, cache = F.max_pool2d_forward(x, return_indices=True, **kw)
        g_out, g_idx, g_cache = F.max_pool2d_forward(cupy.asarray(x), return_indices=True, **kw)
        np.testing.assert_array_equal(cupy.asnumpy(g_idx), idx)
        dx = F.max_pool2d_backward(np.ones_like(out), cache)
        g_dx = F.max_pool2d_backward(cupy.ones_like(g_out), g_cache)
        np.testing.assert_array_equal(cupy.asnumpy(g_dx), dx)


def test_model_device_reads_the_first_param_then_the_first_buffer():
    class Course:  # a course-style model: a params dict only
        params = {"W1": np.zeros(3)}

    assert backend.model_device(Course()) == "cpu"
    assert backend.model_device(type("Empty", (), {"params": {}})()) == "cpu"
    from fastconv import nn
    assert backend.model_device(nn.BatchNorm1d(3)) == "cpu"


def test_the_op_backend_follows_the_arrays_device():
    from fastconv import _backends, _cpu
    assert _backends.backend_for(np.zeros(2), None) is _cpu


def test_check_int_names_the_argument():
    from fastconv._validate import check_int
    assert check_int("n", np.int64(3), 1) == 3 and type(check_int("n", np.int64(3))) is int
    with pytest.raises(TypeError, match="n must be an int, got 1.5"):
        check_int("n", 1.5)
    with pytest.raises(TypeError, match="n must be an int, got True"):
        check_int("n", True)
    with pytest.raises(ValueError, match="n must be >= 1, got 0"):
        check_int("n", 0, 1)


@pytest.mark.gpu
def test_cupy_arrays_take_the_gpu_backend(cupy):
    from fastconv import _backends, _gpu
    assert _backends.backend_for(cupy.zeros(2), None) is _gpu
    with pytest.raises(ValueError, match="device"):
        _backends.backend_for(cupy.zeros(2), np.zeros(2))
