"""The batch split across threads (fastconv._cpu.threads) covers every image once and
changes no result: ops on inputs large enough to be split agree with PyTorch."""

import numpy as np
import pytest

import fastconv as fc
from fastconv._cpu import threads


def test_over_batch_covers_each_item_once_and_splits_large_work(monkeypatch):
    monkeypatch.setenv("FASTCONV_NUM_THREADS", "3")
    seen = np.zeros(10, dtype=int)
    slices = []

    def work(batch):
        slices.append(batch)
        seen[batch] += 1

    threads.over_batch(work, 10, nbytes=64 << 20)
    assert (seen == 1).all()
    assert len(slices) == 3


def test_over_batch_keeps_small_work_on_one_thread(monkeypatch):
    monkeypatch.setenv("FASTCONV_NUM_THREADS", "4")
    slices = []
    threads.over_batch(slices.append, 10, nbytes=1000)
    assert slices == [slice(0, 10)]


def test_over_batch_raises_a_worker_exception(monkeypatch):
    monkeypatch.setenv("FASTCONV_NUM_THREADS", "2")

    def work(batch):
        if batch.start > 0:
            raise RuntimeError("worker failed")

    with pytest.raises(RuntimeError, match="worker failed"):
        threads.over_batch(work, 4, nbytes=64 << 20)


def test_every_slice_runs_under_the_callers_errstate(monkeypatch):
    monkeypatch.setenv("FASTCONV_NUM_THREADS", "3")
    zeros = np.zeros(3)

    def work(batch):
        if batch.start > 0:  # the slices on worker threads
            zeros[batch] / zeros[batch]  # 0/0: invalid

    with np.errstate(invalid="raise"):
        with pytest.raises(FloatingPointError):
            threads.over_batch(work, 3, nbytes=64 << 20)
    seen = []

    def settings(batch):
        seen.append(np.geterr()["invalid"])

    with np.errstate(invalid="ignore"):
        threads.over_batch(settings, 3, nbytes=64 << 20)
    assert seen == ["ignore"] * 3


def test_multi_pass_work_runs_in_cache_blocks_covering_each_item_once(monkeypatch):
    monkeypatch.setenv("FASTCONV_NUM_THREADS", "2")
    monkeypatch.setattr(threads, "_CACHE_BLOCK_BYTES", 3 << 20)
    seen = np.zeros(20, dtype=int)
    blocks = []

    def work(batch):
        blocks.append(batch.stop - batch.start)
        seen[batch] += 1

    threads.over_batch(work, 20, nbytes=20 << 20, passes=4)  # 1 MiB an image: 3 a block
    assert (seen == 1).all()
    assert sorted(blocks) == [1, 1, 3, 3, 3, 3, 3, 3]  # two threads of 10: 3 + 3 + 3 + 1
    blocks.clear()
    threads.over_batch(work, 20, nbytes=20 << 20)  # one sweep: no blocks
    assert sorted(blocks) == [10, 10]


def test_bad_thread_count_is_named(monkeypatch):
    monkeypatch.setenv("FASTCONV_NUM_THREADS", "many")
    with pytest.raises(ValueError, match="FASTCONV_NUM_THREADS"):
        threads.thread_count()


def assert_close(got, expected):
    """float64 agreement to 1e-12 relative to the largest magnitude (elementwise fails on cancellation)."""
    assert got.shape == expected.shape
    assert np.abs(got - expected).max() <= 1e-12 * np.abs(expected).max()


@pytest.mark.parametrize("threads, block_bytes", [("1", 1 << 20), ("2", 1 << 20), ("3", 1 << 20),
                                                 ("1", 1), ("2", 100_000)])
def test_split_ops_agree_with_torch(monkeypatch, torch, threads, block_bytes):
    """Inputs of several MiB, so the split really happens with 2 and 3 threads; the
    multi-pass work (col2im, the pools) in cache blocks of one image or a few."""
    monkeypatch.setenv("FASTCONV_NUM_THREADS", threads)
    monkeypatch.setattr(fc._cpu.threads, "_CACHE_BLOCK_BYTES", block_bytes)
    F = torch.nn.functional
    rng = np.random.default_rng(1)
    x = rng.permutation(6 * 8 * 40 * 40).reshape(6, 8, 40, 40).astype(np.float64) / 100
    w = rng.standard_normal((5, 8, 3, 3))
    xt = torch.tensor(x, requires_grad=True)
    wt = torch.tensor(w, requires_grad=True)

    out, cache = fc.conv2d_forward(x, w, padding=1)
    dout = rng.standard_normal(out.shape)
    dx, dw, _ = fc.conv2d_backward(dout, cache)
    F.conv2d(xt, wt, padding=1).backward(torch.tensor(dout))
    assert_close(out, F.conv2d(xt, wt, padding=1).detach().numpy())
    assert_close(dx, xt.grad.numpy())
    assert_close(dw, wt.grad.numpy())

    for pool, grad in ((fc.max_pool2d_forward, fc.max_pool2d_backward),
                       (fc.avg_pool2d_forward, fc.avg_pool2d_backward)):
        xt.grad = None
        torch_pool = F.max_pool2d if pool is fc.max_pool2d_forward else F.avg_pool2d
        expected = torch_pool(xt, 3, 2, 1)
        out, cache = pool(x, 3, 2, 1)
        dout = rng.standard_normal(out.shape)
        expected.backward(torch.tensor(dout))
        assert_close(out, expected.detach().numpy())
        assert_close(grad(dout, cache), xt.grad.numpy())
