"""The workspace limit: its API, results independent of the chunking, and the memory bound."""

import tracemalloc

import numpy as np
import pytest

import fastconv
import fastconv.functional as F
from torch_oracle import rel_err

MiB = 2**20


@pytest.fixture(autouse=True)
def _restore_limit():
    before = fastconv.get_workspace_limit()
    yield
    fastconv.set_workspace_limit(before)


def test_default_limit_is_256_mib():
    assert fastconv.get_workspace_limit() == 256 * MiB


def test_set_and_get():
    fastconv.set_workspace_limit(12345)
    assert fastconv.get_workspace_limit() == 12345


def test_context_manager_restores_on_exit():
    fastconv.set_workspace_limit(5 * MiB)
    with fastconv.workspace_limit(1000):
        assert fastconv.get_workspace_limit() == 1000
    assert fastconv.get_workspace_limit() == 5 * MiB


def test_context_manager_restores_on_exception():
    fastconv.set_workspace_limit(5 * MiB)
    with pytest.raises(KeyError):
        with fastconv.workspace_limit(1000):
            raise KeyError("boom")
    assert fastconv.get_workspace_limit() == 5 * MiB


@pytest.mark.parametrize("bad", [0, -1])
def test_non_positive_limits_are_rejected(bad):
    with pytest.raises(ValueError, match="workspace limit"):
        fastconv.set_workspace_limit(bad)
    with pytest.raises(ValueError, match="workspace limit"):
        with fastconv.workspace_limit(bad):
            pass
    assert fastconv.get_workspace_limit() == 256 * MiB


def _conv_all(x, w, b, dout, **kw):
    out, cache = F.conv2d_forward(x, w, b, **kw)
    return [out, *F.conv2d_backward(dout, cache)]


def _pools_all(x, seed):
    rng = np.random.default_rng(seed)
    results = []
    for forward, backward, kw in [
        (F.max_pool2d_forward, F.max_pool2d_backward, dict(kernel_size=3, stride=2, padding=1)),
        (F.avg_pool2d_forward, F.avg_pool2d_backward, dict(kernel_size=3, stride=1, padding=1)),
        (F.adaptive_avg_pool2d_forward, F.adaptive_avg_pool2d_backward, dict(output_size=(3, 4))),
    ]:
        out, cache = forward(x, **kw)
        results += [out, backward(rng.standard_normal(out.shape).astype(x.dtype), cache)]
    return results


@pytest.mark.filterwarnings("ignore:the column buffer:UserWarning")
@pytest.mark.parametrize("dtype, tol", [(np.float32, 1e-6), (np.float64, 1e-12)])
def test_chunked_results_equal_the_unchunked_ones(dtype, tol):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((7, 3, 9, 8)).astype(dtype)  # 7 images: an uneven last chunk
    w = rng.standard_normal((4, 3, 3, 3)).astype(dtype)
    b = rng.standard_normal(4).astype(dtype)
    dout = rng.standard_normal((7, 4, 9, 8)).astype(dtype)
    per_image = 3 * 3 * 3 * 9 * 8 * np.dtype(dtype).itemsize  # one image's columns
    full = _conv_all(x, w, b, dout, padding=1) + _pools_all(x, 1)
    # 3 images of columns a chunk in the forward; the backward, whose buffers per
    # image are larger, runs one image at a time (with a warning)
    with fastconv.workspace_limit(3 * per_image):
        chunked = _conv_all(x, w, b, dout, padding=1) + _pools_all(x, 1)
    for got, want in zip(chunked, full):
        assert got.dtype == np.dtype(dtype)
        assert rel_err(got, want) <= tol


@pytest.mark.filterwarnings("ignore:the column buffer:UserWarning")
@pytest.mark.parametrize("images_per_limit", [1, 1.5, 2, 3, 4, 5, 8])
def test_any_limit_gives_the_unlimited_result(images_per_limit):
    """Limits from one image's columns to the whole batch's: forward and backward may chunk
    differently (the backward needs more buffers per image), the results may not differ."""
    rng = np.random.default_rng(3)
    x, w, b = rng.standard_normal((4, 2, 6, 6)), rng.standard_normal((3, 2, 3, 3)), rng.standard_normal(3)
    dout = rng.standard_normal((4, 3, 4, 4))
    per_image = 2 * 3 * 3 * 4 * 4 * 8  # one image's columns, float64
    want = _conv_all(x, w, b, dout)
    with fastconv.workspace_limit(int(images_per_limit * per_image) + 8):
        got = _conv_all(x, w, b, dout)
    for g, r in zip(got, want):
        assert rel_err(g, r) <= 1e-12


def test_an_image_larger_than_the_limit_still_works_with_a_warning():
    rng = np.random.default_rng(1)
    x, w = rng.standard_normal((3, 2, 8, 8)), rng.standard_normal((3, 2, 3, 3))
    dout = rng.standard_normal((3, 3, 8, 8))
    want = _conv_all(x, w, None, dout, padding=1)
    with fastconv.workspace_limit(512):  # one image's columns are 9216 bytes
        with pytest.warns(UserWarning, match="workspace limit"):
            out, cache = F.conv2d_forward(x, w, None, padding=1)
        with pytest.warns(UserWarning, match="workspace limit"):
            dx, dw, _ = F.conv2d_backward(dout, cache)
    for got, ref in zip((out, dx, dw), want):
        assert rel_err(got, ref) <= 1e-12


def test_the_warning_points_at_the_callers_line():
    x, w = np.zeros((1, 2, 8, 8)), np.zeros((3, 2, 3, 3))
    with fastconv.workspace_limit(512), pytest.warns(UserWarning) as record:
        F.conv2d_forward(x, w, None, padding=1)
    assert record[0].filename == __file__


def test_a_workspace_limit_block_holds_for_its_own_thread_only():
    """Overlapping blocks in two threads: each sees its own limit, and the default survives."""
    import threading
    steps = [threading.Event() for _ in range(4)]
    seen = {}

    def thread_a():
        with fastconv.workspace_limit(1000):
            steps[0].set()
            steps[1].wait(5)
            seen["a"] = fastconv.get_workspace_limit()
        steps[2].set()

    def thread_b():
        steps[0].wait(5)
        with fastconv.workspace_limit(2000):
            steps[1].set()
            steps[2].wait(5)
            seen["b"] = fastconv.get_workspace_limit()
        steps[3].set()

    threads = [threading.Thread(target=thread_a), threading.Thread(target=thread_b)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert seen == {"a": 1000, "b": 2000}
    assert fastconv.get_workspace_limit() == 256 * MiB


def test_release_workspace_frees_the_buffers_of_fastconvs_worker_threads(monkeypatch):
    """Pooling splits the batch over worker threads, which keep padded buffers of their own."""
    from fastconv.workspace import release_workspace
    monkeypatch.setenv("FASTCONV_NUM_THREADS", "2")
    x = np.random.default_rng(2).standard_normal((16, 64, 32, 32))  # 8 MiB: two threads
    release_workspace()
    tracemalloc.start()
    try:
        out, cache = F.max_pool2d_forward(x, 3, stride=2, padding=1)
        F.max_pool2d_backward(np.ones_like(out), cache)
        del out, cache
        kept = tracemalloc.get_traced_memory()[0]
        release_workspace()
        after = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    assert kept > 8 * MiB  # each thread keeps padded copies of its half of x
    assert after < 0.5 * MiB


def _traced_peak(fn):
    """(result, peak bytes traced by tracemalloc above the start) of fn()."""
    tracemalloc.start()
    try:
        start = tracemalloc.get_traced_memory()[0]
        result = fn()
        return result, tracemalloc.get_traced_memory()[1] - start
    finally:
        tracemalloc.stop()


def test_peak_memory_stays_within_the_limit_for_a_large_batch():
    """16 images whose full column matrix is 12.5 MiB, under a 2 MiB limit (6.25x).

    Bound asserted for the forward call: limit (the column buffer) + the output
    (it must exist) + 2x the input (a zero-padded copy of the chunk is input-sized
    at most 1.3x here, plus small per-chunk GEMM temporaries, each below the
    output's size); for the backward: limit + 2x the input (dx and its padded
    accumulator) + 2x dout (a reshaped copy per chunk). Either way far below the
    full column matrix, which an unchunked im2col would allocate.
    """
    rng = np.random.default_rng(2)
    x = rng.standard_normal((16, 4, 32, 32))
    w = rng.standard_normal((4, 4, 5, 5))
    limit = 2 * MiB
    full_columns = 16 * (4 * 5 * 5) * (32 * 32) * 8
    assert full_columns >= 6 * limit
    with fastconv.workspace_limit(limit):
        (out, cache), fwd_peak = _traced_peak(lambda: F.conv2d_forward(x, w, None, padding=2))
        dout = rng.standard_normal(out.shape)
        _, bwd_peak = _traced_peak(lambda: F.conv2d_backward(dout, cache))
    assert fwd_peak <= limit + out.nbytes + 2 * x.nbytes, f"forward peak {fwd_peak / MiB:.2f} MiB"
    assert bwd_peak <= limit + 2 * x.nbytes + 2 * dout.nbytes, f"backward peak {bwd_peak / MiB:.2f} MiB"
    assert max(fwd_peak, bwd_peak) < full_columns / 4


def test_peak_memory_with_stride_2_stays_within_the_limit():
    """Stride 2: the backward sums its column gradient on four stride-phase planes, and
    those buffers count against the limit too. 16 images under a 1 MiB limit, whose
    unchunked backward buffers take about 9 MiB; same bounds as the stride-1 test."""
    rng = np.random.default_rng(4)
    x = rng.standard_normal((16, 4, 32, 32))
    w = rng.standard_normal((4, 4, 5, 5))
    limit = MiB
    with fastconv.workspace_limit(limit):
        (out, cache), fwd_peak = _traced_peak(
            lambda: F.conv2d_forward(x, w, None, stride=2, padding=2))
        dout = rng.standard_normal(out.shape)
        _, bwd_peak = _traced_peak(lambda: F.conv2d_backward(dout, cache))
    assert fwd_peak <= limit + out.nbytes + 2 * x.nbytes, f"forward peak {fwd_peak / MiB:.2f} MiB"
    assert bwd_peak <= limit + 2 * x.nbytes + 2 * dout.nbytes, f"backward peak {bwd_peak / MiB:.2f} MiB"
