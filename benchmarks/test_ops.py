"""pytest-benchmark suites: loops vs vectorised NumPy vs the GPU path vs PyTorch.

Grouped by op, shape, dtype and pass, so pytest-benchmark's table puts the
implementations of one case side by side (its relative columns are the speedups):

    pytest benchmarks/ --benchmark-group-by=group --benchmark-columns=min,median,max,rounds
    pytest benchmarks/ -m gpu            # the GPU rows only (fastconv-gpu, torch-cuda)
    pytest benchmarks/ -k "S3 and float32"

Every case first checks the implementation against the oracle (PyTorch float64 when
installed, else the reference loops on one image and a few channels of the same layer,
fastconv.bench.oracle); one that disagrees fails instead of being timed. The loops run
only on the small shapes. CPU rounds start after a settle pause (FASTCONV_BENCH_PAUSE, default 0.3 s; see fastconv bench for why). GPU
rounds synchronise the device inside the timed call; the first call (kernel compilation)
happens in the untimed check and its time is in each row's extra_info (--benchmark-json).
Rounds: FASTCONV_BENCH_ROUNDS (default 5). benchmarks/gpu_bench.py is the CUDA-event GPU
benchmark (fastconv bench --device gpu).
For interleaved, same-run ratios with PyTorch and the GEMM peak, use `fastconv bench`.
"""

import os
import time

import pytest

from fastconv.bench import cases, impls, ops
from fastconv.bench.oracle import Oracle

ROUNDS = int(os.environ.get("FASTCONV_BENCH_ROUNDS", "5"))
PAUSE = float(os.environ.get("FASTCONV_BENCH_PAUSE", "0.3"))
SMALL_CONV = cases.ConvShape("tiny", 4, 3, 16, 16, 8, 3, 1, 1)
SMALL_POOL = cases.PoolShape("tinypool", 4, 8, 16, 16, 2, 2, 0)

IMPLS = {
    "loop": impls.loop,
    "fastconv": impls.fastconv_cpu,
    "torch": impls.torch_cpu,
    "fastconv-gpu": impls.fastconv_gpu,
    "torch-cuda": impls.torch_cuda,
}


def _cases():
    standard = cases.build_cases()
    small = cases.build_cases(None, [SMALL_CONV, SMALL_POOL])
    for case in small + standard:
        is_small = case.shape in (SMALL_CONV, SMALL_POOL)
        for dtype in ("float32", "float64"):
            for name in IMPLS:
                if name == "loop" and not is_small:
                    continue  # the loops take minutes on the standard shapes
                passes = ("fwd",) if case.op in ops.SINGLE_PASS_OPS else ("fwd", "bwd")
                marks = [pytest.mark.gpu] if name in ("fastconv-gpu", "torch-cuda") else []
                for p in passes:
                    yield pytest.param(case, dtype, name, p, marks=marks,
                                       id=f"{case.op}-{case.shape.name}-{dtype}-{p}-{name}")


@pytest.fixture(scope="module")
def oracles():
    return {}


def _checked_bound(case, dtype, impl, oracles):
    """``impl`` bound to the case's inputs, after its results passed the oracle check."""
    inputs = ops.make_inputs(case, dtype)
    if (case, dtype) not in oracles:
        oracles[case, dtype] = Oracle(case, inputs, impls.torch_oracle() is not None)
    oracle = oracles[case, dtype]
    bound = impl.bind(oracle.check_case, oracle.check_inputs)
    t0 = time.perf_counter()
    bound.forward()
    if bound.has_backward:
        bound.backward()
    impl.sync()
    first_call_ms = (time.perf_counter() - t0) * 1e3  # includes kernel compilation on the GPU
    error = ops.relative_error(bound.results(), oracle.expected)
    assert error <= ops.TOLERANCE[dtype], (
        f"{impl.name} disagrees with {oracle.label} on {case.label()} {dtype}: relative "
        f"error {error:.2e}; not timing a wrong result")
    return (bound if oracle.full else impl.bind(case, inputs)), first_call_ms


@pytest.mark.parametrize("case, dtype, impl_name, pass_name", list(_cases()))
def test_op(benchmark, oracles, case, dtype, impl_name, pass_name):
    impl = IMPLS[impl_name]()
    if not impl.available:
        pytest.skip(impl.reason)
    bound, first_call_ms = _checked_bound(case, dtype, impl, oracles)
    pause = PAUSE if impl.clock == "cpu" else 0.0
    benchmark.group = f"{case.op} {case.shape.label()} {dtype} {pass_name}"
    benchmark.extra_info.update(impl=impl_name, first_call_ms=first_call_ms)

    def forward():
        bound.forward()
        impl.sync()

    def backward():
        bound.backward()
        impl.sync()

    if pass_name == "fwd":
        setup = lambda: time.sleep(pause)  # noqa: E731
        benchmark.pedantic(forward, setup=setup, rounds=1 if impl_name == "loop" else ROUNDS)
    else:
        def setup():
            time.sleep(pause)
            forward()
        benchmark.pedantic(backward, setup=setup, rounds=1 if impl_name == "loop" else ROUNDS)
