"""fastconv/_cuda.py's launcher and the emulator's strictness, without a GPU.

The launch helper and the emulated launch must reject what a real launch
would silently mis-run: wrong argument counts, dtypes and scalar widths,
non-contiguous arrays. The launch plan must cover sizes beyond 2**31
elements, and binary16 rounding in the kernels must be IEEE's.
"""

import re
import shutil
import sys

import numpy as np
import pytest

from cuda_emu.emu import EmuModule, emu_launcher, require_kernel_tools
from fastconv import _cuda, _cuda_registry
from fastconv.im2col import col2im_into, im2col_into, window_geometry


@pytest.fixture(scope="module")
def emu():
    require_kernel_tools("g++")
    return emu_launcher()


def _im2col_args(x, cols):
    n, c, h, w = x.shape
    return [x, cols, n, c, h, w, h, w, 1, 1, 1, 1, 0, 0, 1, 1]


def test_launch_helper_rejects_bad_arguments(emu):
    x = np.zeros((1, 2, 3, 3), np.float32)
    cols = np.zeros((1, 2, 1, 1, 3, 3), np.float32)
    args = _im2col_args(x, cols)
    with pytest.raises(TypeError, match=r"takes 16 arguments \(x, cols, N, C, H, W"):
        emu.launch("im2col_kernel", (2, 9), *args[:-1])
    with pytest.raises(TypeError, match="argument cols has dtype float64, expected float32"):
        emu.launch("im2col_kernel", (2, 9), x, cols.astype(np.float64), *args[2:])
    with pytest.raises(ValueError, match="argument x .* must be C-contiguous"):
        emu.launch("im2col_kernel", (2, 9), x.transpose(0, 1, 3, 2), cols, *args[2:])
    with pytest.raises(TypeError, match="argument KH must be an int, got 1.0"):
        emu.launch("im2col_kernel", (2, 9), *args[:8], 1.0, *args[9:])
    with pytest.raises(TypeError, match="must be a numpy array, got list"):
        emu.launch("im2col_kernel", (2, 9), x, [0.0], *args[2:])
    with pytest.raises(TypeError, match="runs on float16, float32 or float64 arrays, got int32"):
        emu.launch("im2col_kernel", (2, 9), x.astype(np.int32), cols.astype(np.int32), *args[2:])
    with pytest.raises(ValueError, match="does not fit in 64 bits"):
        emu.launch("im2col_kernel", (2, 9), *args[:2], 2**63, *args[3:])
    out = np.zeros((1, 2, 3, 3), np.float32)
    with pytest.raises(TypeError, match="argmax has dtype int64, expected int32"):
        emu.launch("max_pool_forward_kernel", (2, 9), x, out, np.zeros(out.shape, np.int64),
                   2, 3, 3, 3, 3, 1, 1, 1, 1, 0, 0, 1, 1)


def test_a_repeated_launch_checks_its_arrays_again_and_its_scalars_once(monkeypatch):
    """What follows from the scalars alone is memoised per launcher by their values and
    types: a repeated launch checks no scalar again, but still every array; True after 1 is
    a new key, refused."""
    require_kernel_tools("g++")
    launcher = emu_launcher()
    checked = []
    check = _cuda.Launcher._check_scalar
    monkeypatch.setattr(_cuda.Launcher, "_check_scalar",
                        staticmethod(lambda *args: checked.append(args[1]) or check(*args)))
    x = np.arange(18, dtype=np.float32).reshape(1, 2, 3, 3)
    cols = np.zeros((1, 2, 1, 1, 3, 3), np.float32)
    args = _im2col_args(x, cols)
    launcher.launch("im2col_kernel", (2, 9), *args)
    assert checked == [name for name, _ in _cuda_registry.PARAMETERS["im2col_kernel"][2:]]
    cols[...] = 0
    launcher.launch("im2col_kernel", (2, 9), *args)
    assert len(checked) == len(args) - 2
    np.testing.assert_array_equal(cols.reshape(x.shape), x)
    with pytest.raises(ValueError, match="argument x .* must be C-contiguous"):
        launcher.launch("im2col_kernel", (2, 9), x.transpose(0, 1, 3, 2), cols, *args[2:])
    assert args[2] == 1
    with pytest.raises(TypeError, match="argument N must be an int, got True"):
        launcher.launch("im2col_kernel", (2, 9), x, cols, True, *args[3:])


def test_emulated_launch_is_stricter_than_cupy(emu):
    """The emulator checks what CuPy cannot: scalar widths, pointer vs scalar, element size."""
    x = np.zeros((1, 2, 3, 3), np.float32)
    cols = np.zeros((1, 2, 1, 1, 3, 3), np.float32)
    good = [np.int64(a) if isinstance(a, int) else a for a in _im2col_args(x, cols)]
    kernel = emu.module("im2col.cu", np.float32).get_function("im2col_kernel<float, 0, 0>")
    kernel((1,), (32,), tuple(good))
    cases = [
        (good[:-1], TypeError, "takes 16 arguments, got 15"),
        (good[:2] + [2] + good[3:], TypeError, "CuPy would pack a Python int as 8 bytes"),
        (good[:2] + [np.int32(2)] + good[3:], TypeError, "is int32, the kernel expects a 8-byte"),
        (good[:2] + [np.float64(2)] + good[3:], TypeError, "expects a 8-byte integer"),
        ([x, np.int64(0)] + good[2:], TypeError, "must be an array"),
        ([x.astype(np.float64)] + good[1:], TypeError, "the kernel expects 4-byte floating"),
        ([x.astype(np.int32)] + good[1:], TypeError, "the kernel expects 4-byte floating"),
        ([x[:, :, ::2]] + good[1:], ValueError, "not C-contiguous"),
    ]
    for args, error, message in cases:
        with pytest.raises(error, match=message):
            kernel((1,), (32,), tuple(args))
    readonly = cols.copy()
    readonly.flags.writeable = False
    with pytest.raises(ValueError, match="written by the kernel but is read-only"):
        kernel((1,), (32,), (x, readonly, *good[2:]))
    with pytest.raises(RuntimeError, match="out of the hardware limits"):
        kernel((1,), (2048,), tuple(good))
    with pytest.raises(RuntimeError, match="out of the hardware limits"):
        kernel((1, 70000), (32,), tuple(good))
    with pytest.raises(ValueError, match="not among this module's name expressions"):
        emu.module("im2col.cu", np.float32).get_function("im2col_kernel<double, 0, 0>")


def test_kernel_parameters_match_the_registry(emu):
    """Every kernel's C++ parameters (read from the emulator) are what KERNELS declares:
    64-bit integer scalars, and pointers whose element size fits the declared dtype."""
    sizes = {"T": {np.float16: 2, np.float32: 4, np.float64: 8},
             "acc": {np.float16: 4, np.float32: 4, np.float64: 8}, "int32": 4, "int64": 8,
             "i8": 8}  # i8: an int64 array
    for dtype in _cuda.CTYPES:
        for name, (file, _) in _cuda.KERNELS.items():
            for window in _cuda.kernel_windows(name, dtype):
                fn = emu.module(file, dtype).get_function(_cuda.kernel_name(name, dtype, window))
                _check_parameters(name, fn, sizes, dtype)


def test_kernels_without_a_window_have_only_the_run_time_instantiation():
    """A kernel without window scalars (the weight sum) is instantiated once per dtype and
    launched on it whatever its scalars; a windowed one gets the unrolled windows too."""
    f32 = np.dtype(np.float32)
    assert _cuda.kernel_windows("weight_sum_kernel", f32) == (_cuda.RUNTIME_WINDOW,)
    assert _cuda.kernel_windows("depthwise_forward_kernel", f32) == (
        (_cuda.RUNTIME_WINDOW,) + _cuda.WINDOWS["depthwise.cu"])
    assert _cuda.name_expressions("weight_sum.cu", f32) == ["weight_sum_kernel<float, 0, 0>"]
    assert _cuda_registry.launch_window("weight_sum_kernel", f32,
                                        [None] * 3 + [3, 3, 1, 1]) == _cuda.RUNTIME_WINDOW
    window = [2, 3, 8, 8, 8, 8, 3, 3, 1, 1, 1, 1, 1, 1]  # N C H W OH OW KH KW SH SW PT PL DH DW
    args = [None] * 2 + window  # cols, x, then the scalars
    assert _cuda_registry.launch_window("col2im_kernel", f32, args) == (3, 1)
    assert _cuda_registry.launch_window("col2im_kernel", np.float64, args) == _cuda.RUNTIME_WINDOW


def _check_parameters(name, fn, sizes, dtype):
    params = _cuda_registry._parameters(name)
    assert fn.arity == len(params), name
    for (pname, kind), size, ckind in zip(params, fn.sizes, fn.kinds):
        if kind == "int64":
            assert (ckind, size) == ("i", 8), (name, pname)
        else:
            expected = sizes[kind][dtype.type] if kind in ("T", "acc") else sizes[kind]
            assert ckind in "pP" and size == expected, (name, pname)


def test_launch_plan_beyond_32_bit_sizes():
    """The grid is capped and the grid-stride loops cover any count, 2**31 planes and
    beyond; small planes share a block; the scalars reach the kernel as exact int64;
    planes too large for the kernels' 32-bit in-plane arithmetic are refused (no
    allocation needed to check)."""
    for planes in (1, 3, 65535 * 8 + 1, 2**31, 2**40):
        for plane_size in (1, 31, 32, 33, 255, 256, 257, 2**31 - 1):
            (gx, gy, gz), (bx, by, bz) = _cuda.launch_config(planes, plane_size)
            assert bx * by <= _cuda.BLOCK and bx % _cuda.WARP == 0 and gz == bz == 1
            assert 1 <= gx <= _cuda.MAX_BLOCKS and 1 <= gy <= 65535
            assert gx * bx < 2**31  # blockIdx.x * blockDim.x cannot wrap in 32 bits
            assert bx < 2 * plane_size + _cuda.WARP  # few idle lanes on small planes
            for total, step in ((plane_size, gx * bx), (planes, gy * by)):
                iterations = -(-total // step)
                assert step * iterations >= total > step * (iterations - 1)
    assert _cuda.launch_config(2, 9) == ((1, 1, 1), (32, 8, 1))
    assert _cuda.launch_config(4, 1000, max_blocks=2) == ((2, 2, 1), (256, 1, 1))
    for empty in ((0, 5), (5, 0)):
        with pytest.raises(ValueError, match="at least one work item"):
            _cuda.launch_config(*empty)
    # An im2col of a (64, 256, 128, 128) input with a 3x3 kernel has 2.4e9 column
    # entries; its size scalars survive packing exactly.
    launcher = _cuda.Launcher(np, None, options=())
    n, c, h, w = 64, 256, 128, 128
    packed = launcher._check_scalar("im2col_kernel", "N", n * c * 9 * h * w)
    assert packed.dtype == np.int64 and int(packed) == n * c * 9 * h * w > 2**31
    # In-plane divisions are 32-bit: a plane of 2**31 elements is refused before any
    # launch or allocation, one of 2**30 accepted.
    huge = window_geometry((1, 1, 2**16, 2**15), 3, 1, 1, 1)
    tiny = np.zeros((1, 1, 1, 1), np.float32)
    with pytest.raises(ValueError, match="too large for the CUDA kernels"):
        _cuda.im2col_into(tiny, huge, tiny, launcher)
    assert _cuda._window_args(window_geometry((1, 1, 2**15, 2**15), 3, 1, 1, 1))[:2] == (
        2**15, 2**15)
    # KH*KW offsets count in int (and the argmax is int32): a 46341x46341 window is refused
    wide = window_geometry((1, 1, 1, 1), 46341, 1, 23170, 1)
    with pytest.raises(ValueError, match="the window"):
        _cuda._window_args(wide)
    # sizes given as NumPy int32 (an x_shape built by hand) are Python ints in the geometry,
    # so H*W cannot wrap in 32 bits and slip past the plane check
    big = window_geometry(np.array([1, 1, 2**16, 2**15], np.int32), 3, 1, 1, 1)
    assert all(type(v) is int for v in big.size)
    with pytest.raises(ValueError, match="too large for the CUDA kernels"):
        _cuda._window_args(big)


def test_float16_rounding_is_ieee_round_to_nearest_even(emu):
    """avg pooling with a 1x1 window computes float(x) / float(d) and stores binary16:
    the kernels' conversions must agree bit for bit with NumPy's (IEEE) conversions
    over every finite binary16 input and divisors that reach subnormals and overflow."""
    every = np.arange(2**16, dtype=np.uint16).view(np.float16)
    # -0.0 left out: the kernel's sum starts at +0, so a lone -0 averages to +0
    x = every[np.isfinite(every) & (every.view(np.uint16) != 0x8000)].reshape(1, 1, 1, -1)
    geometry = window_geometry(x.shape, 1, 1, 0, 1)
    for d in (1.0, 3.0, 0.1, 7e-4, 1e4, 6e-5):
        divisor = np.full(geometry.out, d, np.float16).astype(np.float32)  # the float32 divisor
        out = _cuda.avg_pool2d_forward(x, geometry, divisor, emu)
        with np.errstate(over="ignore"):  # overflow to inf is part of what is checked
            expected = (x.astype(np.float32) / divisor).astype(np.float16)
        np.testing.assert_array_equal(out.view(np.uint16), expected.view(np.uint16))
    # The mean of two neighbouring binary16 values is an exact tie: ties go to even.
    low = np.arange(0x7bff, dtype=np.uint16)
    low = np.concatenate([low, low | 0x8000])
    pairs = np.stack([low, low + 1], axis=-1).view(np.float16).reshape(1, 1, -1, 2)
    geometry = window_geometry(pairs.shape, (1, 2), (1, 2), 0, 1)
    out = _cuda.avg_pool2d_forward(pairs, geometry, np.full(geometry.out, 2, np.float32), emu)
    expected = (pairs.astype(np.float32).sum(axis=-1, keepdims=True) / 2).astype(np.float16)
    np.testing.assert_array_equal(out.view(np.uint16), expected.view(np.uint16))
    specials = np.array([[[[np.nan, -np.inf, np.inf, -0.0]]]], np.float16)
    out = _cuda.avg_pool2d_forward(specials, window_geometry(specials.shape, 1, 1, 0, 1),
                                   np.ones((1, 4), np.float32), emu)
    assert np.isnan(out[0, 0, 0, 0]) and list(out[0, 0, 0, 1:]) == [-np.inf, np.inf, 0.0]


def test_float32_max_pool_orders_subnormals_under_flush_to_zero(emu):
    """CuPy compiles with -ftz=true, and the emulator runs float kernels with subnormals
    flushed as the GPU does: a float comparison would see 1e-40 == 0 == -1e-40 and keep
    the first of them. The max-pool kernel must still pick what the NumPy path picks."""
    import fastconv.functional as F
    from cuda_emu.emu import EmuFunction
    fn = emu.module("pool.cu", np.float32).get_function("max_pool_forward_kernel<float, 0, 0>")
    assert isinstance(fn, EmuFunction)
    if not fn.flushes_denormals:
        pytest.skip("this CPU's flush-to-zero mode is not emulated (x86 only)")
    x = np.array([[[[0.0, 1e-40, -1e-40, 2e-40, -3e-40, -0.0, 0.0, -1e-45]]]], np.float32)
    square = np.stack([x[0, 0, 0], x[0, 0, 0, ::-1]]).reshape(1, 1, 2, 8)
    for x, window in ((x, (1, 2)), (square, 2)):  # the run-time and the unrolled 2x2/2 kernel
        expected, cache = F.max_pool2d_forward(x, window, stride=window)
        out, argmax = _cuda.max_pool2d_forward(x, cache.geometry, emu)
        np.testing.assert_array_equal(out.view(np.uint32), expected.view(np.uint32))
        np.testing.assert_array_equal(argmax, cache.argmax)


def test_float32_max_pool_gradient_sums_keep_subnormals_under_flush_to_zero(emu):
    """The max pool's gradient sums float32 values in double and rounds once, promising the
    CPU path's bits; under -ftz=true (here the CPU's flush modes) a plain conversion either
    way flushes a float subnormal, read or produced (kernels/common.cuh, fc_widen and
    fc_narrow). Ties of 0 and 1 send several windows' gradients to one cell; the run-time
    and an unrolled kernel."""
    import fastconv.functional as F
    from test_cuda_emulated import (SUBNORMAL_SUM_TERMS, bits, has_subnormals, launcher,
                                    require_flushing)
    require_flushing(emu, "pool.cu", "max_pool_backward_kernel<float, 0, 0>")
    rng = np.random.default_rng(7)
    x = rng.integers(0, 2, (2, 3, 7, 9)).astype(np.float32)
    for window in (3, 4):  # 3x3/1 unrolled, 4x4/1 not
        _, cache = F.max_pool2d_forward(x, window, stride=1, padding=1)
        dout = rng.choice(SUBNORMAL_SUM_TERMS, cache.argmax.shape)
        want = F.max_pool2d_backward(dout, cache)
        assert has_subnormals(want)
        for launch in (emu, launcher(specialize=False)):
            got = _cuda.max_pool2d_backward(dout, cache.argmax, x.shape, cache.geometry, launch)
            np.testing.assert_array_equal(bits(got), bits(want))


def test_non_contiguous_inputs_and_outputs(emu):
    """The wrappers make inputs contiguous and write non-contiguous outputs through a copy."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 3, 6, 5)).transpose(0, 1, 3, 2)  # (2, 3, 5, 6), strided
    geometry = window_geometry(x.shape, 3, 2, 1, 1)
    col_shape = x.shape[:2] + geometry.kernel + geometry.out
    expected = im2col_into(x, geometry, np.empty(col_shape))
    out = np.full(col_shape + (2,), np.nan)[..., 0]  # a strided output view
    _cuda.im2col_into(x, geometry, out, emu)
    np.testing.assert_array_equal(out, expected)
    cols = rng.standard_normal(col_shape[::-1]).T  # Fortran-ordered columns
    dx = np.full(x.shape + (2,), np.nan)[..., 1]
    _cuda.col2im_into(cols, geometry, dx, emu)
    np.testing.assert_allclose(dx, col2im_into(cols, geometry, np.empty(x.shape)), rtol=1e-12)


def test_compile_error_carries_the_compiler_log(tmp_path):
    require_kernel_tools("g++")
    for file in ("common.cuh", "im2col.cu", "pool.cu"):
        shutil.copy(_cuda.kernel_dir() / file, tmp_path / file)
    source = (tmp_path / "im2col.cu").read_text()
    (tmp_path / "im2col.cu").write_text(source.replace("fc_zero<T>()", "fc_zero<T>(", 1))
    broken = emu_launcher(kernel_dir=tmp_path)
    x = np.zeros((1, 1, 2, 2), np.float32)
    geometry = window_geometry(x.shape, 1, 1, 0, 1)
    with pytest.raises(_cuda.KernelCompileError, match=r"(?s)im2col.cu failed to compile for "
                                                        r"float32.*error"):
        _cuda.im2col_into(x, geometry, np.empty((1, 1, 1, 1, 2, 2), np.float32), broken)


def test_only_the_tiled_products_use_shared_memory_and_no_kernel_atomics():
    """Serial emulation is sound only without __shared__/__syncthreads: only the files of
    the tiled kernels (TILES) use them, and the emulator runs those with a block's threads
    at once; gather-style backward kernels need no atomics (and are deterministic)."""
    tiled = {_cuda.KERNELS[kernel][0] for kernel in _cuda.TILES}
    assert tiled == {"conv_gemm.cu"}
    for path in sorted(_cuda.kernel_dir().glob("*.cu*")):
        code = re.sub(r"//[^\n]*", "", path.read_text())  # comments may name them
        for word in ("__shared__", "__syncthreads", "atomic"):
            if path.name in tiled and word != "atomic":
                assert word in code, f"{path.name} does not use {word}"
            else:
                assert word not in code, f"{path.name} uses {word}"


def test_emulator_refuses_shared_memory_at_build_time(tmp_path):
    require_kernel_tools("g++")
    code = "__global__ void k(float* x) { __shared__ float s[4]; s[0] = 1; x[0] = s[0]; }"
    from cuda_emu.emu import EmuBuildError
    with pytest.raises(EmuBuildError, match="shared_memory_is_not_emulated"):
        EmuModule(code, name_expressions=["k"])


def test_emulator_runs_a_blocks_threads_at_once_where_they_synchronise():
    """A file that calls __syncthreads gets one std::thread per CUDA thread: each thread
    reads what another wrote before the barrier (serially the later one's would be unset),
    in every block, and a thread that returned first does not hold the others up."""
    require_kernel_tools("g++")
    code = """
    __global__ void k(float* out) {
        __shared__ float s[64];
        const int t = threadIdx.x;
        if (t == 63) return;  // leaves the barrier
        s[t] = (float)(blockIdx.x * 100 + t);
        __syncthreads();
        out[blockIdx.x * 64 + t] = s[62 - t];
    }"""
    kernel = EmuModule(code, name_expressions=["k"]).get_function("k")
    out = np.full(3 * 64, -1, np.float32)
    kernel((3, 1, 1), (64, 1, 1), (out,))
    expected = np.array([[b * 100 + 62 - t if t < 63 else -1 for t in range(64)]
                         for b in range(3)], np.float32)
    np.testing.assert_array_equal(out.reshape(3, 64), expected)


def test_importing_the_launcher_does_not_import_cupy():
    import subprocess
    code = "import fastconv, fastconv._cuda, sys; print('cupy' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.stdout.strip() == "False", result.stderr


def test_default_launcher_uses_cupy_rawmodule_with_the_installed_sources():
    """Built without a device (CuPy is imported, nothing compiles until a launch)."""
    cupy = pytest.importorskip("cupy")
    launcher = _cuda.default_launcher()
    assert launcher.xp is cupy and launcher.module_class is cupy.RawModule
    assert f"-I{_cuda.kernel_dir()}" in launcher.options
    new_nvrtc = tuple(cupy.cuda.nvrtc.getVersion()) >= (12, 8)
    assert ("--pch-messages=false" in launcher.options) == new_nvrtc


def test_a_changed_header_changes_the_compile_options(tmp_path):
    """CuPy's disk cache keys on source and options: a header edit must change the key."""
    (tmp_path / "common.cuh").write_text("// one\n")
    first = _cuda.compile_options(tmp_path)
    (tmp_path / "common.cuh").write_text("// two\n")
    assert _cuda.compile_options(tmp_path) != first
    assert _cuda.compile_options(tmp_path) == _cuda.compile_options(tmp_path)


def test_outputs_overlapping_the_input_are_refused(emu):
    """On a GPU the kernels read their input through the non-coherent cache (const
    __restrict__), so an output overlapping it gives undefined results, which the serial
    emulator would still get right: the wrappers refuse it before launching anything."""
    x_shape = (2, 3, 5, 5)
    geometry = window_geometry(x_shape, 3, 1, 1, 1)
    col_shape = x_shape[:2] + geometry.kernel + geometry.out
    buffer = np.zeros(np.prod(col_shape) + 150, np.float32)
    x = buffer[:150].reshape(x_shape)
    cols = buffer[100:100 + np.prod(col_shape)].reshape(col_shape)  # shares x's last 50
    with pytest.raises(ValueError, match="im2col_kernel: the output overlaps the input"):
        _cuda.im2col_into(x, geometry, cols, emu)
    with pytest.raises(ValueError, match="col2im_kernel: the output overlaps the input"):
        _cuda.col2im_into(cols, geometry, x, emu)
    same = np.zeros(x_shape, np.float32)
    identity = window_geometry(x_shape, 1, 1, 0, 1)
    with pytest.raises(ValueError, match="overlaps the input"):
        _cuda.im2col_into(same, identity, same.reshape(x_shape[:2] + (1, 1) + x_shape[2:]),
                          emu)
    # neighbouring slices of one buffer do not overlap: accepted
    x, cols = buffer[:150].reshape(x_shape), buffer[150:].reshape(col_shape)
    x[...] = np.arange(150).reshape(x_shape)
    _cuda.im2col_into(x, geometry, cols, emu)
    np.testing.assert_array_equal(cols, im2col_into(x, geometry, np.empty(col_shape, np.float32)))


class _OnDevice1(np.ndarray):
    """A NumPy array that says it lives on device 1, as a CuPy array says where it lives."""


def test_arrays_on_another_device_are_refused():
    """Kernels run on the current device: an array on another one is refused, naming it
    and the fix, before anything compiles or launches; matching devices run."""
    require_kernel_tools("g++")
    x = np.arange(16, dtype=np.float32).reshape(1, 1, 4, 4)
    out, argmax = np.empty((1, 1, 2, 2), np.float32), np.empty((1, 1, 2, 2), np.int32)
    args = (1, 4, 4, 2, 2, 2, 2, 2, 2, 0, 0, 1, 1)
    for current in (0, 1):
        launcher = emu_launcher()
        launcher.device_id = lambda: current
        launcher.device_of = lambda array: 1 if isinstance(array, _OnDevice1) else 0
        on_1 = [a.view(_OnDevice1) for a in (x, out, argmax)]
        arrays = on_1 if current else (on_1[0], out, argmax)
        if current:
            launcher.launch("max_pool_forward_kernel", (1, 4), *arrays, *args)
            np.testing.assert_array_equal(out, [[[[5, 7], [13, 15]]]])
            continue
        with pytest.raises(ValueError, match=r"argument x is on device 1 but the current device "
                                             r"is 0: launch inside `with cupy.cuda.Device\(1\):`"):
            launcher.launch("max_pool_forward_kernel", (1, 4), *arrays, *args)
        assert launcher._functions == {}


def test_launches_reuse_kernel_functions_per_device(monkeypatch):
    """A launch resolves nothing twice: the function object of each (device, dtype, kernel,
    instantiation) is looked up once (CuPy builds a new one on every get_function) and the
    parameter lists are parsed once, at import."""
    require_kernel_tools("g++")
    from cuda_emu.emu import kernels_under_test

    looked_up = []

    class CountingModule(EmuModule):
        def get_function(self, name):
            looked_up.append(name)
            return super().get_function(name)

    device = [0]
    directory = kernels_under_test()
    launcher = _cuda.Launcher(np, CountingModule, options=_cuda.compile_options(directory),
                              kernel_dir=directory, device_id=lambda: device[0])
    monkeypatch.setattr(_cuda_registry, "_parse", None)  # parsing now would fail
    x = np.ones((2, 3, 6, 6), np.float32)
    for geometry in [window_geometry(x.shape, 3, 1, 1, 1)] * 3 + [
            window_geometry(x.shape, 2, 1, 1, 1)] * 2:
        _cuda.im2col_into(x, geometry, np.empty(x.shape[:2] + geometry.kernel + geometry.out,
                                                np.float32), launcher)
    device[0] = 1
    _cuda.im2col_into(x, geometry, np.empty(x.shape[:2] + geometry.kernel + geometry.out,
                                            np.float32), launcher)
    assert looked_up == ["im2col_kernel<float, 3, 1>", "im2col_kernel<float, 0, 0>",
                         "im2col_kernel<float, 0, 0>"]
    assert sorted(launcher._modules) == [("im2col.cu", np.dtype(np.float32), 0),
                                         ("im2col.cu", np.dtype(np.float32), 1)]


def test_every_wrapper_takes_launcher_none_for_the_default_looked_up_at_call_time(monkeypatch):
    """One rule for all the kernel wrappers: ``launcher=None`` means
    ``fastconv._cuda.default_launcher()``, looked up when called (the tests replace it)."""
    import inspect

    from fastconv import _cuda_launcher

    functions = [getattr(_cuda, name) for name in _cuda.__all__
                 if inspect.isfunction(getattr(_cuda, name))]
    wrappers = [f for f in functions if "launcher" in inspect.signature(f).parameters]
    assert len(wrappers) >= 20
    for wrapper in wrappers:
        assert inspect.signature(wrapper).parameters["launcher"].default is None, wrapper
    sentinel = object()
    monkeypatch.setattr(_cuda, "default_launcher", lambda: sentinel)
    assert _cuda_launcher.resolved(None) is sentinel
    assert _cuda_launcher.resolved("given") == "given"
