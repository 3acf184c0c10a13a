"""What machine the numbers come from, and its measured GEMM peak.

The description (CPU model, cores, BLAS and its threads, library versions, GPU or why
none) goes into the benchmark JSON and ``fastconv info``; the GEMM peak, measured in the
same run, is the denominator of every "% of peak" figure.
"""

from __future__ import annotations

import os
import platform
import time
from collections.abc import Callable, Iterable
from typing import Any

import numpy as np

from ..backend import gpu_status


def cpu_model() -> str:
    """The CPU model name from /proc/cpuinfo (or platform.processor()).

    Examples
    --------
    >>> isinstance(cpu_model(), str)
    True
    """
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def usable_cores() -> int:
    """Cores this process may run on (its affinity mask where the OS has one).

    Examples
    --------
    >>> usable_cores() >= 1
    True
    """
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def blas_info() -> list[dict[str, Any]]:
    """The BLAS libraries NumPy uses and their thread counts.

    Uses threadpoolctl when installed (it reports live thread counts), else NumPy's build
    configuration (library name only).

    Returns
    -------
    list of dict
        One per library: ``library``, ``version``, ``threads``, ``architecture``,
        ``prefix`` (None where unknown).

    Examples
    --------
    >>> "library" in blas_info()[0]
    True
    """
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        threadpool_info = None
    if threadpool_info is not None:
        pools = [{"library": p.get("internal_api"), "version": p.get("version"),
                  "threads": p.get("num_threads"), "architecture": p.get("architecture"),
                  "prefix": p.get("prefix")}
                 for p in threadpool_info() if p.get("user_api") == "blas"]
        if pools:
            return pools
    try:
        config = np.show_config(mode="dicts")
        blas = config["Build Dependencies"]["blas"]
        return [{"library": blas.get("name"), "version": blas.get("version"), "threads": None,
                 "architecture": None, "prefix": None}]
    except Exception:  # older NumPy without mode="dicts"
        return [{"library": "unknown", "version": None, "threads": None, "architecture": None,
                 "prefix": None}]


def _version(module_name):
    try:
        module = __import__(module_name)
    except Exception as exc:
        return None, f"{type(exc).__name__}: {exc}"
    return getattr(module, "__version__", "unknown"), None


def describe(include_torch: bool = True) -> dict[str, Any]:
    """A JSON-ready dict describing this machine and the library versions.

    Parameters
    ----------
    include_torch : bool, default True
        Also import torch and give its version and thread count.

    Returns
    -------
    dict
        ``cpu``, ``cores``, ``platform``, ``python``, ``fastconv``, ``numpy``, ``blas``,
        ``gpu_available``, ``gpu`` (the device or why none), ``cupy`` and, where they
        apply, ``cuda_runtime``, ``torch``, ``torch_threads``.

    Examples
    --------
    >>> describe(include_torch=False)["cores"] >= 1
    True
    """
    import fastconv
    gpu_ok, gpu_reason = gpu_status()
    info = {
        "cpu": cpu_model(),
        "cores": usable_cores(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "fastconv": fastconv.__version__,
        "numpy": np.__version__,
        "blas": blas_info(),
        "gpu_available": gpu_ok,
        "gpu": gpu_reason,
    }
    cupy_version, cupy_error = _version("cupy")
    info["cupy"] = cupy_version or f"not importable ({cupy_error})"
    if cupy_version and gpu_ok:
        import cupy
        info["cuda_runtime"] = cupy.cuda.runtime.runtimeGetVersion()
    if include_torch:
        torch_version, _ = _version("torch")
        info["torch"] = torch_version or "not installed"
        if torch_version:
            import torch
            info["torch_threads"] = torch.get_num_threads()
    return info


def gemm_peak(dtype: str, xp: Any = np, n: int = 2048, repeats: int = 5, pause: float = 0.3,
              sync: Callable[[], None] | None = None) -> float:
    """Best GFLOP/s of an n x n x n matrix product in ``dtype`` on ``xp`` (numpy or cupy).

    One warm-up, then ``repeats`` timed products (each after ``pause`` seconds so idle
    BLAS threads start from the same state as in the benchmark); the best one is the
    peak (on a shared machine the others measure the neighbours).

    Parameters
    ----------
    dtype : str
        The matrices' dtype.
    xp : module, default numpy
        The array module (``cupy`` for the GPU).
    n : int, default 2048
        The matrices' size.
    repeats : int, default 5
        Timed products.
    pause : float, default 0.3
        Seconds before each.
    sync : callable, optional
        Waits for the device when ``xp`` is CuPy.

    Returns
    -------
    float
        GFLOP/s of the fastest product.

    Examples
    --------
    >>> gemm_peak("float64", n=32, repeats=1, pause=0) > 0
    True
    """
    rng = np.random.default_rng(0)
    a = xp.asarray(rng.standard_normal((n, n)).astype(dtype))
    b = xp.asarray(rng.standard_normal((n, n)).astype(dtype))
    out = xp.empty((n, n), dtype=dtype)
    xp.matmul(a, b, out=out)
    if sync:
        sync()
    rates = []
    for _ in range(repeats):
        if pause:
            time.sleep(pause)
        t0 = time.perf_counter()
        xp.matmul(a, b, out=out)
        if sync:
            sync()
        rates.append(2 * n ** 3 / (time.perf_counter() - t0) / 1e9)
    return max(rates)


# The kernel files of the ops the benchmark times (convolution and the 2-D pools)
BENCHMARKED_KERNEL_FILES = ("im2col.cu", "pool.cu")


def kernel_compile_seconds(dtypes: Iterable[str], launcher: Any = None,
                           files: Iterable[str] = BENCHMARKED_KERNEL_FILES) -> dict[str, float]:
    """Compile the CUDA kernel files the benchmark uses for each dtype now, timing each one.

    The first use of a kernel file in a dtype compiles it with NVRTC (or, on
    CuPy 14.1 and later, loads an earlier build from CuPy's disk cache); the
    benchmark does it here, on its own clock, so no timed first call includes it.

    Parameters
    ----------
    dtypes : iterable of str
        The dtypes to compile for.
    launcher : fastconv._cuda.Launcher, optional
        Default: the CuPy launcher (imports CuPy).
    files : iterable of str, default :data:`BENCHMARKED_KERNEL_FILES`
        The kernel files (of :func:`fastconv._cuda.kernel_files`).

    Returns
    -------
    dict of str to float
        ``{"im2col.cu float32": seconds, ...}``; near zero for a file this process
        had already compiled.
    """
    from .. import _cuda
    launcher = launcher or _cuda.default_launcher()
    seconds = {}
    files = tuple(files)
    unknown = set(files) - set(_cuda.kernel_files())
    if unknown:
        raise ValueError(f"no kernel file {', '.join(sorted(unknown))}; the files are "
                         f"{', '.join(_cuda.kernel_files())}")
    for dtype in dtypes:
        for file in files:
            t0 = time.perf_counter()
            launcher.module(file, dtype)
            seconds[f"{file} {dtype}"] = time.perf_counter() - t0
    return seconds
