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


# ---------------------------------------------------------------- plans and the Workspace
from fastconv.workspace import Buffer, Workspace, release_workspace, run_in_chunks, whole_batch


def test_a_plan_names_each_buffer_once():
    plan = (Buffer("cols", (4,), np.float32), Buffer("cols", (2,), np.float64))
    with pytest.raises(ValueError, match="names each buffer once"):
        Workspace(np, plan, 3)


def test_buffer_bytes_are_those_of_one_image_or_of_the_call():
    assert Buffer("cols", (3, 5), np.float32).nbytes == 60
    assert Buffer("dW", (2, 2), np.float64, per_image=False).nbytes == 32


def test_chunks_cover_the_batch_once_within_the_limit():
    """Per-image bytes times the chunk plus the per-call bytes never exceed the limit."""
    plan = (Buffer("cols", (100,), np.float64), Buffer("sum", (10,), np.float64, per_image=False))
    with fastconv.workspace_limit(80 + 3 * 800 + 799):  # room for 3 images, not 4
        with Workspace(np, plan, 10) as workspace:
            chunks = [(chunk, {k: v.shape for k, v in buffers.items()})
                      for chunk, buffers in workspace.chunks()]
    assert [c for c, _ in chunks] == [slice(0, 3), slice(3, 6), slice(6, 9), slice(9, 10)]
    assert [shapes["cols"] for _, shapes in chunks] == [(3, 100)] * 3 + [(1, 100)]
    assert all(shapes["sum"] == (10,) for _, shapes in chunks)


def test_whole_batch_ignores_the_limit_without_a_warning():
    import warnings
    with fastconv.workspace_limit(8), warnings.catch_warnings():
        warnings.simplefilter("error")
        with whole_batch(np, (Buffer("padded", (100,), np.float32),), 7) as buffers:
            assert buffers["padded"].shape == (7, 100)


def test_two_live_workspaces_never_share_memory():
    """The same plan, open twice at once (a nested call, another thread): distinct memory."""
    plan = (Buffer("cols", (64,), np.float32), Buffer("padded", (16,), np.float32))
    with Workspace(np, plan, 4) as outer, Workspace(np, plan, 4) as inner:
        arrays = list(outer.buffers.values()) + list(inner.buffers.values())
        for i, a in enumerate(arrays):
            for b in arrays[i + 1:]:
                assert not np.shares_memory(a, b)


def test_memory_is_kept_between_calls_until_released():
    release_workspace()
    plan = (Buffer("cols", (1000,), np.float64),)
    with Workspace(np, plan, 4) as workspace:
        first = workspace.buffers["cols"].__array_interface__["data"][0]
    with Workspace(np, plan, 2) as workspace:  # a smaller request takes the kept block
        assert workspace.buffers["cols"].__array_interface__["data"][0] == first
    with Workspace(np, plan, 4) as workspace:
        release_workspace()  # while lent: the block stays valid, and is freed on return
        workspace.buffers["cols"][...] = 1.0
    tracemalloc.start()
    try:
        with Workspace(np, plan, 4):
            fresh = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    assert fresh >= 4 * 1000 * 8  # nothing was kept: the block is made anew


def test_kept_blocks_never_outnumber_those_in_use_at_once():
    """Requests of growing sizes replace the kept blocks rather than pile them up."""
    from fastconv import workspace as ws
    release_workspace()
    for size in range(1, 40):
        plan = (Buffer("a", (size * 100,), np.uint8), Buffer("b", (size * 50,), np.uint8))
        with Workspace(np, plan, 1):
            pass
        assert len(ws._kept._idle) <= 2


def test_run_in_chunks_drives_plan_run_and_result():
    class Doubling:
        plan = (Buffer("tmp", (3,), np.float64),)

        def __init__(self, x):
            self.x, self.out, self.seen = x, np.empty_like(x), []

        def run(self, chunk, buffers):
            self.seen.append((chunk.start, chunk.stop))
            np.multiply(self.x[chunk], 2, out=buffers["tmp"])
            self.out[chunk] = buffers["tmp"]

        def result(self, workspace):
            return self.out

    x = np.arange(15.0).reshape(5, 3)
    algorithm = Doubling(x)
    with fastconv.workspace_limit(2 * 24):
        np.testing.assert_array_equal(run_in_chunks(algorithm, np, 5), 2 * x)
    assert algorithm.seen == [(0, 2), (2, 4), (4, 5)]


def test_a_conv_result_is_never_workspace_memory():
    """Results stay valid after later calls: none of them is a kept buffer."""
    rng = np.random.default_rng(5)
    x, w, b = rng.standard_normal((3, 2, 6, 6)), rng.standard_normal((4, 2, 3, 3)), rng.standard_normal(4)
    out, cache = F.conv2d_forward(x, w, b, padding=1)
    dx, dw, db = F.conv2d_backward(np.ones_like(out), cache)
    kept = [out.copy(), dx.copy(), dw.copy(), db.copy()]
    for _ in range(2):  # the same shapes again: the same kept blocks are lent again
        F.conv2d_backward(-np.ones_like(out), F.conv2d_forward(-x, w, -b, padding=1)[1])
    for got, want in zip((out, dx, dw, db), kept):
        np.testing.assert_array_equal(got, want)


def test_pad_input_returns_a_new_array_each_call():
    from fastconv.im2col import pad_input, window_geometry
    x = np.ones((1, 1, 2, 2))
    geometry = window_geometry(x.shape, 3, 1, 1, 1)
    first = pad_input(x, geometry, value=-1.0)
    second = pad_input(2 * x, geometry)
    assert first[0, 0, 1, 1] == 1.0 and first[0, 0, 0, 0] == -1.0
    assert not np.shares_memory(first, second)


# ---------------------------------------------------------------- columns held for the backward
def _conv_case(seed=7, n=4):
    rng = np.random.default_rng(seed)
    return (rng.standard_normal((n, 3, 9, 8)), rng.standard_normal((5, 3, 3, 3)),
            rng.standard_normal(5), rng.standard_normal((n, 5, 9, 8)))


def _held_bytes():
    from fastconv import workspace as ws
    return ws._kept._held


def test_the_backward_uses_the_forwards_columns_and_gives_them_back():
    """Held columns give the bits the recomputed ones give; the memory returns after use."""
    import dataclasses
    x, w, b, dout = _conv_case()
    before = _held_bytes()  # other tests' caches may still hold theirs
    out, cache = F.conv2d_forward(x, w, b, padding=1)
    assert cache.columns is not None and _held_bytes() > before
    recomputed = F.conv2d_backward(dout, dataclasses.replace(cache, columns=None))
    held = F.conv2d_backward(dout, cache)
    assert cache.columns.array is None and _held_bytes() == before
    again = F.conv2d_backward(dout, cache)  # a second backward recomputes them
    for a, b_, c in zip(recomputed, held, again):
        np.testing.assert_array_equal(a, b_)
        np.testing.assert_array_equal(a, c)


def test_held_columns_stay_within_the_workspace_limit():
    x, w, b, _ = _conv_case(n=4)
    columns = 4 * (3 * 9 + 1) * 9 * 8 * 8  # the whole batch's columns and ones row, float64
    padded = 4 * 3 * 11 * 10 * 8
    import gc
    gc.collect()
    before = _held_bytes()
    with fastconv.workspace_limit(before + 2 * columns + padded):
        first = F.conv2d_forward(x, w, b, padding=1)[1]
        second = F.conv2d_forward(x, w, b, padding=1)[1]
        third = F.conv2d_forward(x, w, b, padding=1)[1]  # a third would pass the limit
        assert first.columns is not None and second.columns is not None
        assert third.columns is None
        assert _held_bytes() <= fastconv.get_workspace_limit()
        del first, second, third  # caches dropped unused give their memory back
        gc.collect()
        assert _held_bytes() == before
    with fastconv.workspace_limit(columns // 2):  # a chunked forward holds nothing
        assert F.conv2d_forward(x, w, b, padding=1)[1].columns is None


def test_device_buffers_are_held_within_the_same_limit():
    """A workspace on another array module (CuPy's place, here a stand-in allocating NumPy
    arrays) holds its buffer itself, counted against the limit with the CPU's, until released."""
    import gc
    import types
    device = types.SimpleNamespace(empty=np.empty)
    plan = (Buffer("cols", (10,), np.float64),)
    gc.collect()
    before = _held_bytes()
    with fastconv.workspace_limit(before + 160):
        with Workspace(device, plan, 2) as workspace:
            cols = workspace.buffers["cols"]
            held = workspace.keep("cols")
        assert held.array is cols and _held_bytes() == before + 160
        with Workspace(device, plan, 2) as workspace:  # a second one would pass the limit
            assert workspace.keep("cols") is None
        held.release()
        assert held.array is None and _held_bytes() == before
    with fastconv.workspace_limit(100), Workspace(device, plan, 2) as workspace:
        assert workspace.images_per_chunk == 1 and workspace.keep("cols") is None  # chunked
