"""The GPU convolution run on NumPy arrays: its device work per call, float16 sums, every path.

The kernels run on the CPU emulator and the products in the NumPy model of
cuBLAS (fastconv/_gpu/gemm.py). Launches and allocations are counted with the
recording stand-in for CuPy of tests/device_counter.py, plus the output arrays
the kernel wrappers allocate through their launcher (``Launcher.empty``, one
CuPy allocation each). ``BEFORE`` is the same count of the code this replaced
(``cupy.matmul`` with the weights broadcast over the batch, W^T and dout^T
copied, dW as float16-rounded per-image products summed per chunk, db and dw
cast); ``GENERIC`` that of a depthwise layer through im2col and the products,
which the depthwise kernels (fastconv/_gpu/depthwise.py) replace.
"""

import contextlib

import numpy as np
import pytest

import fastconv
import fastconv.functional as F
from cuda_emu.emu import emu_launcher, prebuild, require_kernel_tools
from device_counter import DeviceArray, counting, device
from fastconv import _backends, _cuda, _gpu
from fastconv import _cpu as _cpu_backend
from fastconv._cuda_launcher import PreparedLaunch
from fastconv._kept_memory import kept_blocks
from fastconv.workspace import workspace_limit

CASES = {"3x3": ((4, 8, 12, 12), (16, 8, 3, 3), dict(padding=1)),
         "depthwise": ((32, 64, 8, 8), (64, 1, 3, 3), dict(padding=1, groups=64))}
# (launches, allocations) per call, with bias and dx
BEFORE = {("3x3", "float32"): {"forward": (9, 8), "backward": (17, 16)},
          ("3x3", "float16"): {"forward": (12, 11), "backward": (24, 23)},
          ("depthwise", "float32"): {"forward": (9, 8), "backward": (16, 15)},
          ("depthwise", "float16"): {"forward": (12, 11), "backward": (23, 22)}}
# forward: the columns and the output; im2col, the product and the bias's product. Backward,
# on the columns the forward held: dx and the partials, the dW product and the bias
# gradient's into them, then dw and db (one weight-sum launch, two outputs). dx in float32
# comes from the implicit-product kernel, which reads the filters flipped in place (one
# launch, where the column-gradient product and col2im are two); in float16 from those
# two. Every launch is a cuBLAS call or a fastconv kernel: no CuPy reduction, broadcast or
# copy (each costs the host several cuBLAS calls' time).
AFTER = {("3x3", "float32"): {"forward": (3, 2), "backward": (4, 4)},
         ("3x3", "float16"): {"forward": (3, 2), "backward": (5, 4)},
         ("depthwise", "float32"): {"forward": (1, 1), "backward": (3, 4)},
         ("depthwise", "float16"): {"forward": (1, 1), "backward": (3, 4)}}
# the depthwise case through im2col and the products, with the weights copied per image
# (one copy, one buffer): one product, not 32
GENERIC = {"float32": {"forward": (4, 3), "backward": (6, 5)},
           "float16": {"forward": (4, 3), "backward": (6, 5)}}


@pytest.fixture(scope="module", autouse=True)
def kernels_built():
    """Build the emulated kernels once (skipped without g++)."""
    require_kernel_tools("g++")
    prebuild()


@pytest.fixture
def gpu_path(monkeypatch):
    """NumPy arrays through the GPU backend: emulated kernels, products in the cuBLAS model."""
    launcher = emu_launcher()
    monkeypatch.setattr(_backends, "backend_for", lambda *arrays: _gpu)
    monkeypatch.setattr(_cuda, "default_launcher", lambda: launcher)


def on_cpu(fn, *args, **kwargs):
    """``fn`` on the NumPy path, whatever the dispatch is patched to."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(_backends, "backend_for", lambda *arrays: _cpu_backend)
        return fn(*args, **kwargs)


def rand(shape, dtype, seed):
    """Standard normal values of ``dtype``."""
    return np.random.default_rng(seed).standard_normal(shape).astype(dtype)


@contextlib.contextmanager
def counting_outputs(monkeypatch):
    """device_counter's counting, with the wrappers' output arrays (``Launcher.empty``)
    counted as the allocations they are on CuPy."""
    with counting(monkeypatch) as counts:
        launcher = _cuda.default_launcher()
        empty = launcher.empty

        def counted_empty(shape, dtype):
            counts.record("launcher.empty", 0, 1)
            return empty(shape, dtype).view(DeviceArray)

        monkeypatch.setattr(launcher, "empty", counted_empty)
        yield counts


def count_passes(monkeypatch, forward, backward, shapes, dtype, args):
    """{"forward": (launches, allocations), "backward": ...} of ``forward(x, w, b, **args)``
    and ``backward(dout, cache)`` on arrays of ``shapes`` (x, w, b), and the log of both.
    The second call's: a first call makes what every later one reuses (the bias products'
    vector of ones)."""
    with counting_outputs(monkeypatch) as counts:
        x, w, b = (device(rand(shape, dtype, seed)) for seed, shape in enumerate(shapes))
        for _ in range(2):
            counts.launches = counts.allocations = 0
            counts.log.clear()
            out, cache = forward(x, w, b, **args)
            passes = {"forward": (counts.launches, counts.allocations)}
            dout = device(rand(out.shape, dtype, 3))
            counts.launches = counts.allocations = 0
            backward(dout, cache)
            passes["backward"] = counts.launches, counts.allocations
    return passes, counts.log


def count_conv(monkeypatch, case, dtype):
    """:func:`count_passes` of one conv2d of ``CASES`` with bias and dx."""
    x_shape, w_shape, args = CASES[case]
    return count_passes(monkeypatch, F.conv2d_forward, F.conv2d_backward,
                        (x_shape, w_shape, w_shape[:1]), dtype, args)


@pytest.mark.parametrize("dtype", ["float32", "float16"])
@pytest.mark.parametrize("case", CASES)
def test_launches_and_allocations_per_call_are_at_most_half_of_before(monkeypatch, case, dtype):
    counted, log = count_conv(monkeypatch, case, dtype)
    assert counted == AFTER[case, dtype], log
    for step, (launches, allocations) in BEFORE[case, dtype].items():
        after = AFTER[case, dtype][step]
        assert 2 * after[0] <= launches and 2 * after[1] <= allocations
    # the products all in gemm, the sums in the weight-sum kernel; the rest: the per-image
    # weights, the depthwise kernels' outputs
    assert {what for what, *_ in log} <= {"empty", "zeros", "kernel", "gemm", "copyto",
                                          "launcher.empty"}


@pytest.mark.parametrize("dtype", ["float32", "float16"])
def test_a_backward_without_held_columns_computes_them_again(monkeypatch, dtype):
    """Where the held buffers would pass the workspace limit the forward holds nothing and
    the backward runs im2col into a column buffer of its own: one launch and one allocation
    more, the same bits."""
    held, _ = count_conv(monkeypatch, "3x3", dtype)
    x_shape, w_shape, args = CASES["3x3"]
    x, w, b = (rand(shape, dtype, seed) for shape, seed in ((x_shape, 0), (w_shape, 1),
                                                            (w_shape[:1], 2)))
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(_backends, "backend_for", lambda *arrays: _gpu)
        patch.setattr(_cuda, "default_launcher", emu_launcher)
        out, cache = F.conv2d_forward(x, w, b, **args)
        assert cache.columns is not None
        dout = rand(out.shape, dtype, 3)
        with_held = F.conv2d_backward(dout, cache)
        patch.setattr(kept_blocks, "hold", lambda nbytes, limit: False)
        out_again, cache = F.conv2d_forward(x, w, b, **args)
        assert cache.columns is None
        recomputed = F.conv2d_backward(dout, cache)
        np.testing.assert_array_equal(out_again, out)
        for a, b in zip(with_held, recomputed):
            np.testing.assert_array_equal(a, b)
        counted, log = count_conv(patch, "3x3", dtype)
    assert counted["forward"] == held["forward"]
    assert counted["backward"] == (held["backward"][0] + 1, held["backward"][1] + 1), log


# A transposed convolution, (4, 8, 6, 6) into 4 channels, 3x3, stride 2, with bias: the code
# this replaced ran cupy.matmul (the weights broadcast over the batch: pointer arrays; float16
# cast to float32 and back), copied W^T, and reduced each chunk's dW products; now the products
# are gemm calls with the weights shared and transposed by flag, and one weight-sum launch.
# The front's bias add and db sum (one launch each, and db's cast) are in both.
TRANSPOSE_BEFORE = {"float32": {"forward": (10, 9), "backward": (14, 13)},
                    "float16": {"forward": (13, 12), "backward": (20, 19)}}
TRANSPOSE_AFTER = {"float32": {"forward": (3, 2), "backward": (6, 6)},
                   "float16": {"forward": (3, 2), "backward": (6, 6)}}


@pytest.mark.parametrize("dtype", ["float32", "float16"])
def test_a_transposed_convolution_launches_and_allocates_at_most_half_of_before(monkeypatch,
                                                                               dtype):
    counted, log = count_passes(monkeypatch, F.conv_transpose2d_forward,
                                F.conv_transpose2d_backward, ((4, 8, 6, 6), (8, 4, 3, 3), (4,)),
                                dtype, dict(stride=2, padding=1, output_padding=1))
    assert counted == TRANSPOSE_AFTER[dtype], log
    assert "matmul cuBLAS" not in {what for what, *_ in log}
    for step, (launches, allocations) in TRANSPOSE_BEFORE[dtype].items():
        after = TRANSPOSE_AFTER[dtype][step]
        assert 2 * after[0] <= launches and 2 * after[1] <= allocations, step


@pytest.mark.parametrize("dtype", ["float32", "float16"])
def test_depthwise_kernels_launch_and_allocate_no_more_than_the_generic_path(monkeypatch,
                                                                             dtype):
    """The same depthwise layer with the dispatch to the depthwise kernels turned off runs
    im2col and the products (``GENERIC``); the kernels take no more launches or allocations
    in either pass, and no matrix product."""
    counted, log = count_conv(monkeypatch, "depthwise", dtype)
    assert "gemm" not in {what for what, *_ in log}
    monkeypatch.setattr(_gpu.conv, "runs_depthwise", lambda *args: False)
    generic, generic_log = count_conv(monkeypatch, "depthwise", dtype)
    assert generic == GENERIC[dtype] and "gemm" in {what for what, *_ in generic_log}
    for step, (launches, allocations) in counted.items():
        assert launches <= generic[step][0] and allocations <= generic[step][1], step


def _cancelling_images(kernel, groups):
    """Two float16 images of 255s whose dout is +1 and -1, but -0.5 at one position: each image's
    dW partial is far above 65504, the sum of the two is 127.5 where that position counts."""
    x = np.full((2, 2, 32, 32), 255, np.float16)
    w = np.ones((groups, 2 // groups) + kernel, np.float16)
    dout = np.ones((2, groups, 32, 32), np.float16)
    dout[1] = -1
    dout[1, :, 0, 0] = -0.5
    return x, w, dout


def _weight_grad(x, w, dout, padding, groups):
    cache = F.conv2d_forward(x, w, None, padding=padding, groups=groups)[1]
    return F.conv2d_backward(dout, cache, needs_input_grad=False)[1]


@pytest.mark.parametrize("kernel, padding, groups", [((3, 3), 1, 1), ((1, 1), 0, 1),
                                                     ((3, 3), 1, 2)])
def test_float16_weight_gradient_partials_above_65504_stay_finite(gpu_path, kernel, padding,
                                                                  groups):
    x, w, dout = _cancelling_images(kernel, groups)
    dw = _weight_grad(x, w, dout, padding, groups)
    exact = on_cpu(_weight_grad, *(a.astype(np.float64) for a in (x, w, dout)), padding, groups)
    np.testing.assert_array_equal(dw, exact.astype(np.float16))
    assert float(dw[(0, 0) + tuple(k // 2 for k in kernel)]) == 127.5


def bias_gradient_case():
    """x, w, b, dout of a float16 conv whose dout sums to 204800 over half an image, to -204800
    over the other half, and to 100.5 in all (db) once one -100 is +0.5."""
    x, w, b = np.ones((1, 1, 64, 64), np.float16), np.ones((1, 1, 3, 3), np.float16), np.zeros(1,
                                                                                   np.float16)
    dout = np.full((1, 1, 64, 64), 100, np.float16)
    dout[:, :, 32:], dout[0, 0, 63, 63] = -100, 0.5
    return x, w, b, dout


def test_float16_bias_gradient_sums_in_float32(gpu_path):
    x, w, b, dout = bias_gradient_case()
    cache = F.conv2d_forward(x, w, b, padding=1)[1]
    assert F.conv2d_backward(dout, cache)[2][0] == 100.5


@pytest.mark.parametrize("limit", [None, 30_000])
@pytest.mark.parametrize("case", [
    ((5, 4, 9, 8), (6, 2, 3, 3), dict(padding=1, groups=2)),
    ((5, 3, 11, 7), (4, 3, 3, 2), dict(stride=(2, 1), padding=((1, 2), (0, 1)), dilation=(2, 1))),
    ((5, 4, 6, 6), (6, 4, 1, 1), {}),
    ((5, 3, 8, 8), (3, 1, 3, 3), dict(padding="same", groups=3)),
], ids=["groups", "strided", "1x1", "depthwise"])
def test_float16_matches_the_float64_cpu_path(gpu_path, case, limit):
    """float16 through the GPU path (products accumulated in float32), one chunk or many."""
    x_shape, w_shape, args = case
    x, w, b = rand(x_shape, np.float16, 4), rand(w_shape, np.float16, 5), rand(w_shape[:1],
                                                                               np.float16, 6)
    with workspace_limit(limit or 2**28):
        out, cache = F.conv2d_forward(x, w, b, **args)
        dout = rand(out.shape, np.float16, 7)
        grads = F.conv2d_backward(dout, cache)
    wide = [a.astype(np.float64) for a in (x, w, b)]
    ref, ref_cache = on_cpu(F.conv2d_forward, *wide, **args)
    ref_grads = on_cpu(F.conv2d_backward, dout.astype(np.float64), ref_cache)
    for got, want in zip((out,) + grads, (ref,) + ref_grads):
        assert got.dtype == np.float16
        np.testing.assert_allclose(got, want, rtol=5e-3, atol=5e-3 * np.abs(want).max())


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_chunked_backward_sums_every_image_once(gpu_path, dtype):
    """5 images, 2 per chunk: the last chunk adds into part of the partials only."""
    x, w = rand((5, 3, 7, 7), dtype, 8), rand((4, 3, 3, 3), dtype, 9)
    out, cache = F.conv2d_forward(x, w, rand(4, dtype, 10), padding=1)
    dout = rand(out.shape, dtype, 11)
    whole = F.conv2d_backward(dout, cache)
    per_image = (3 * 9 * 49 + 4 * 27) * np.dtype(dtype).itemsize
    with workspace_limit(2 * per_image):
        chunked = F.conv2d_backward(dout, cache)
    rtol = 1e-5 if dtype == np.float32 else 1e-12
    for a, b in zip(whole, chunked):
        np.testing.assert_allclose(a, b, rtol=rtol, atol=rtol * np.abs(a).max())


@pytest.mark.parametrize("kernel, padding", [((3, 3), 1), ((1, 1), 0)])
def test_without_input_grad_dw_and_db_are_those_of_the_full_backward(gpu_path, kernel, padding):
    x, w = rand((3, 4, 6, 5), np.float32, 12), rand((2, 4) + kernel, np.float32, 13)
    out, cache = F.conv2d_forward(x, w, rand(2, np.float32, 14), padding=padding)
    dout = rand(out.shape, np.float32, 15)
    dx, dw, db = F.conv2d_backward(dout, cache)
    assert dx is not None
    none, dw_only, db_only = F.conv2d_backward(dout, cache, needs_input_grad=False)
    assert none is None
    np.testing.assert_array_equal(dw_only, dw)
    np.testing.assert_array_equal(db_only, db)


@pytest.mark.parametrize("op, x_shape, w_shape, args", [
    ("conv2d", (0, 3, 5, 5), (4, 3, 3, 3), dict(padding=1)),
    ("conv2d", (0, 4, 5, 5), (4, 1, 3, 3), dict(groups=4)),  # depthwise
    ("conv2d", (0, 3, 5, 5), (4, 3, 1, 1), {}),  # the input is its own columns
    ("conv3d", (0, 2, 3, 4, 4), (3, 2, 2, 2, 2), dict(stride=2)),
    ("conv_transpose2d", (0, 3, 4, 4), (3, 2, 3, 3), dict(stride=2)),
])
def test_an_empty_batch_gives_the_cpu_paths_empty_and_zero_results(gpu_path, op, x_shape,
                                                                    w_shape, args):
    """No image: no product runs (gemm's batch of 0) and no bias is added, and the weight
    sums over no image are zeros, as on the CPU path."""
    forward, backward = getattr(F, f"{op}_forward"), getattr(F, f"{op}_backward")
    x, w = rand(x_shape, np.float32, 0), rand(w_shape, np.float32, 1)
    b = rand((w_shape[1] if op == "conv_transpose2d" else w_shape[0],), np.float32, 2)
    out, cache = forward(x, w, b, **args)
    grads = backward(np.ones_like(out), cache)
    want_out, want_cache = on_cpu(forward, x, w, b, **args)
    want = on_cpu(backward, np.ones_like(want_out), want_cache)
    assert out.shape == want_out.shape and out.shape[0] == 0
    for got, expected in zip(grads, want):
        assert got.shape == expected.shape and got.dtype == expected.dtype
        np.testing.assert_array_equal(got, expected)


def test_tf32_setting_leaves_the_model_path_unchanged(gpu_path, monkeypatch):
    """On NumPy arrays the products run in the model, which computes TF32 as FP32: a 1x1
    convolution, x its own columns, is one product either way (the other windows take the
    TF32 kernel: tests/test_cuda_conv_gemm_tf32.py)."""
    x, w = rand((2, 3, 6, 6), np.float32, 16), rand((4, 3, 1, 1), np.float32, 17)
    monkeypatch.setattr(_gpu.gemm, "_tf32", False)
    fp32 = F.conv2d_forward(x, w, None)[0]
    fastconv.set_tf32(True)
    np.testing.assert_array_equal(F.conv2d_forward(x, w, None)[0], fp32)


def test_prepared_steps_follow_the_tf32_setting_between_calls(gpu_path, monkeypatch):
    """The steps of one set of sizes are prepared once per TF32 setting: after set_tf32 the
    same layer's products take the other path (cuBLAS's FP32, or the TF32 kernels), and back."""
    computes, launch_names = [], []
    product, launch = _gpu.gemm.GemmCall.__call__, PreparedLaunch.__call__
    monkeypatch.setattr(_gpu.gemm.GemmCall, "__call__",
                        lambda call, *arrays: (computes.append(call.compute),
                                               product(call, *arrays)))
    monkeypatch.setattr(PreparedLaunch, "__call__",
                        lambda prepared, *arrays: (launch_names.append(prepared.kernel),
                                                   launch(prepared, *arrays)))
    monkeypatch.setattr(_gpu.gemm, "_tf32", False)
    x, w, b = rand((2, 3, 6, 6), np.float32, 18), rand((4, 3, 3, 3), np.float32, 19), None
    # with TF32 every product is a TF32 kernel's: none is cuBLAS's
    for tf32, compute, input_grad in ((False, {"32F"}, "conv_gemm_kernel"),
                                      (True, set(), "conv_gemm_tf32_kernel"),
                                      (False, {"32F"}, "conv_gemm_kernel")):
        fastconv.set_tf32(tf32)
        computes.clear(), launch_names.clear()
        out, cache = F.conv2d_forward(x, w, b, padding=1)
        F.conv2d_backward(np.ones_like(out), cache)
        assert set(computes) == compute and input_grad in launch_names, (computes,
                                                                          launch_names)


def test_prepared_steps_follow_the_workspace_limit_between_calls(gpu_path):
    """A layer first run in one chunk, then under a limit of two images' columns, then in
    one chunk again: each gets the CPU path's results, chunked where the limit says."""
    x, w, b = rand((5, 3, 6, 6), np.float64, 20), rand((4, 3, 3, 3), np.float64, 21), None
    dout = rand((5, 4, 6, 6), np.float64, 22)
    want_out, want_cache = on_cpu(F.conv2d_forward, x, w, b, padding=1)
    want = on_cpu(F.conv2d_backward, dout, want_cache)
    columns = 3 * 9 * 36 * 8  # one image's, float64
    for limit in (None, 2 * columns + 4 * 28 * 8, None):
        with contextlib.nullcontext() if limit is None else workspace_limit(limit):
            out, cache = F.conv2d_forward(x, w, b, padding=1)
            grads = F.conv2d_backward(dout, cache)
        assert (cache.columns is None) == (limit is not None)
        np.testing.assert_allclose(out, want_out, rtol=1e-12)
        assert grads[2] is None and want[2] is None
        for got, expected in zip(grads[:2], want[:2]):
            np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("tf32", [[], ["--tf32"]], ids=["fp32", "tf32"])
def test_the_host_time_script_times_both_passes_without_a_gpu(tf32):
    """benchmarks/host_time.py runs the GPU path on a null device and prints one timing
    line per pass, TF32 allowed or not; the numbers are for reading, not asserted."""
    import subprocess
    import sys
    from pathlib import Path

    script = Path(__file__).resolve().parents[1] / "benchmarks" / "host_time.py"
    proc = subprocess.run([sys.executable, str(script), "--repeats", "4", "--shape", "2", "3",
                           "5", "5", *tf32], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert [line.split()[0] for line in lines] == ["forward", "forward+backward"], lines
    assert all("(2, 3, 5, 5)" in line and "us per call" in line for line in lines), lines


def test_a_tf32_convolution_launches_one_kernel_forward_and_three_backward(monkeypatch):
    """With TF32 allowed (and the emulated GPU's tensor cores), the 3x3 layer's forward is one
    launch and one allocation, its output; the backward is dx's and dW's implicit products
    and the weight sum, with dx, the splits' partials, dw and db (which kernels:
    tests/test_cuda_conv_gemm_tf32.py). No columns anywhere."""
    monkeypatch.setattr(_gpu.conv, "get_tf32", lambda: True)
    counted, log = count_conv(monkeypatch, "3x3", "float32")
    assert counted == {"forward": (1, 1), "backward": (3, 4)}, log
