"""Shared by the tests of the transposed, 1-D and padding-mode convolutions and the 1-D pools.

PyTorch runs of any op (forward and the gradients of every array input), the comparison of
fastconv's results with them (through tests/torch_oracle.py's tolerance and counters), the GPU
backend on NumPy arrays (the CUDA kernels on the CPU emulator) against the CPU path, and CuPy
runs against the NumPy path.
"""

import warnings

import numpy as np
import pytest

import torch_oracle
from cuda_emu.emu import prebuild, require_kernel_tools
from fastconv import _backends
from fastconv import _cpu as _cpu_backend

GPU_RTOL = {np.dtype(np.float32): 1e-6, np.dtype(np.float64): 1e-12}
CUPY_TOL = {np.dtype(np.float16): 5e-3, np.dtype(np.float32): 1e-5, np.dtype(np.float64): 1e-12}


def normal(seed, shape, dtype):
    return np.random.default_rng(seed).standard_normal(shape).astype(dtype)


def case_arrays(case, dtype):
    """A drawn case's generator (after drawing them), x, w and b (None when ``b_size`` is)."""
    rng = np.random.default_rng(case["seed"])
    x = rng.standard_normal(case["x_shape"]).astype(dtype)
    w = rng.standard_normal(case["w_shape"]).astype(dtype)
    b = None if case["b_size"] is None else rng.standard_normal(case["b_size"]).astype(dtype)
    return rng, x, w, b


def torch_run(torch, fn, arrays, dout_fn):
    """``fn(*tensors)`` with autograd on copies of ``arrays`` (None stays None).

    Returns ``(out, dout, grads)``: torch's output, the upstream gradient ``dout_fn(shape)``
    made for it, and the gradient of each array (None for None).
    """
    leaves = [None if a is None else torch.from_numpy(np.ascontiguousarray(a)).requires_grad_()
              for a in arrays]
    with warnings.catch_warnings():  # torch notes that 'same' padding may copy the input
        warnings.simplefilter("ignore", UserWarning)
        out = fn(*leaves)
    dout = dout_fn(tuple(out.shape))
    out.backward(torch.from_numpy(dout))
    return out.detach().numpy(), dout, [None if t is None else t.grad.numpy() for t in leaves]


def compare(op, dtype, got, want, names=("out", "dx", "dw", "db")):
    """Assert fastconv's results ``got`` match torch's ``want`` (None where torch has none)."""
    pairs = {}
    for name, g, w in zip(names, got, want):
        if w is None:
            assert g is None, f"{op}: {name} should be None"
            continue
        assert g.dtype == np.dtype(dtype), f"{op}: {name} is {g.dtype}, the input {dtype}"
        pairs[name] = (g, w)
    torch_oracle.check(op, dtype, pairs)


@pytest.fixture(scope="module")
def emulated_kernels():
    """The CUDA kernels built for the CPU emulator (skip without g++, unless CI requires it);
    tests/test_cuda_emulated.py's ``kernels_for_numpy`` then routes NumPy arrays to them."""
    require_kernel_tools("g++")
    prebuild()


def on_cpu(fn, *args, **kwargs):
    """``fn`` on the NumPy backend, whatever the dispatch is patched to."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(_backends, "backend_for", lambda *arrays: _cpu_backend)
        return fn(*args, **kwargs)


def assert_gpu_matches_cpu(got, want):
    """The GPU path's results against the CPU path's: within 1e-12 (float64) or 1e-6 (float32)
    of the largest magnitude, the same dtype, shape and Nones."""
    for g, w in zip(got, want):
        if w is None:
            assert g is None
            continue
        assert g.dtype == w.dtype and g.shape == w.shape
        scale = max(float(np.abs(w).max(initial=0.0)), 1e-300)
        np.testing.assert_allclose(g, w, rtol=0, atol=GPU_RTOL[w.dtype] * scale)


def check_on_cupy(forward, backward, arrays, kw, dtype):
    """``forward``/``backward`` on CuPy copies of ``arrays`` in ``dtype`` against the NumPy path
    in float64 on the same values (float16 to 5e-3, float32 to 1e-5, float64 to 1e-12)."""
    import cupy

    def on(module, kind):
        return [None if a is None else module.asarray(a.astype(kind)) for a in arrays]

    out, cache = forward(*on(cupy, dtype), **kw)
    ref, ref_cache = forward(*on(np, np.float64), **kw)
    dout = normal(3, ref.shape, dtype)
    got, want = backward(cupy.asarray(dout), cache), backward(dout.astype(np.float64), ref_cache)
    got, want = (got, want) if isinstance(want, tuple) else ((got,), (want,))
    tol = CUPY_TOL[np.dtype(dtype)]
    for g, r in zip((out, *got), (ref, *want)):
        if r is None:
            assert g is None
            continue
        assert g.dtype == np.dtype(dtype)
        np.testing.assert_allclose(cupy.asnumpy(g).astype(np.float64), r, rtol=tol,
                                   atol=tol * np.abs(r).max(initial=0.0))
