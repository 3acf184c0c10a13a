"""Where an op's CPU time goes: ``fastconv bench --breakdown``.

Runs the real forward and backward passes under :func:`fastconv.profiling.record`, which
collects the time of every named step the ops mark (padding, im2col, each GEMM, col2im,
layout copies, bias, the pooling reductions), so the numbers describe exactly the code
users run. Python overhead is the call's time minus its steps. For convolutions each GEMM's
achieved GFLOP/s is set against the machine's measured GEMM peak.
"""

from __future__ import annotations

import statistics
import time
from typing import Any

from ..profiling import record
from . import impls, ops
from .cases import Case
from .timing import OtherLoad

BREAKDOWN_OPS = ("conv2d", "max_pool2d", "avg_pool2d")


def _gemm_flops(case):
    """Flops of each GEMM of one conv (forward, dW and dcols are equal: 2*N*F*C*k*k*OH*OW)."""
    return case.shape.forward_flops() if case.op == "conv2d" else None


def breakdown(case: Case, dtype: str = "float32", repeats: int = 5, pause: float = 0.3,
              peak: float | None = None, seed: int = 0, max_repeats: int | None = None,
              noise_threshold: float = 0.15) -> dict[str, Any]:
    """Median ms of each named step of one forward + backward pass of ``case`` on the CPU.

    As in the benchmark, a repeat counts when other processes kept fewer than
    ``noise_threshold`` cores busy; repeats go on (up to ``max_repeats``) to collect
    ``repeats`` clean ones.

    Parameters
    ----------
    case : Case
        A conv2d, max_pool2d or avg_pool2d case.
    dtype : str, default "float32"
        The inputs' dtype.
    repeats : int, default 5
        Clean repeats wanted.
    pause : float, default 0.3
        Settle seconds before each repeat.
    peak : float, optional
        The GEMM peak in GFLOP/s, for the % column.
    seed : int, default 0
        Seed of the inputs.
    max_repeats : int, optional
        Repeat up to this many times (default: ``repeats``).
    noise_threshold : float, default 0.15
        Cores other processes may use during a clean repeat.

    Returns
    -------
    dict
        ``total_ms`` (the whole call), ``steps_ms`` (step -> median ms, in the order
        the code runs them), ``python_overhead_ms`` (total minus steps),
        ``outside_gemm_share``, ``gemm_gflops`` per GEMM step (convolutions),
        ``gemm_peak_gflops`` and ``repeats``.

    Raises
    ------
    ValueError
        For an op other than :data:`BREAKDOWN_OPS`.

    Examples
    --------
    >>> from fastconv.bench.cases import PoolShape
    >>> result = breakdown(Case("max_pool2d", PoolShape("p", 2, 3, 8, 8, 2, 2, 0)), repeats=1,
    ...                    pause=0)
    >>> result["total_ms"] > 0
    True
    """
    if case.op not in BREAKDOWN_OPS:
        raise ValueError(f"--breakdown covers {', '.join(BREAKDOWN_OPS)}, not {case.op}")
    bound = impls.fastconv_cpu().bind(case, ops.make_inputs(case, dtype, seed))
    bound.forward()  # warm-up: workspace buffers, first-touch page faults
    bound.backward()
    rounds = []  # (others' cores, total seconds, {step: seconds})
    for _ in range(max(repeats, max_repeats or repeats)):
        with OtherLoad() as load:
            time.sleep(pause)
            with record() as steps:
                t0 = time.perf_counter()
                bound.forward()
                bound.backward()
                total = time.perf_counter() - t0
        rounds.append((load.cores, total, dict(steps)))
        clean = [r for r in rounds if r[0] is None or r[0] < noise_threshold]
        if len(clean) >= repeats:
            break
    used = clean if len(clean) >= min(3, repeats) else rounds
    names = list(dict.fromkeys(name for r in used for name in r[2]))
    steps_ms = {name: statistics.median(r[2].get(name, 0.0) for r in used) * 1e3 for name in names}
    total_ms = statistics.median(r[1] for r in used) * 1e3
    gemms = [name for name in names if name.startswith("GEMM")]
    flops = _gemm_flops(case)
    return {
        "case": case.label(), "op": case.op, "dtype": dtype, "total_ms": total_ms,
        "steps_ms": steps_ms,
        # per repeat, then the median: never negative, unlike total minus summed medians
        "python_overhead_ms": statistics.median(r[1] - sum(r[2].values()) for r in used) * 1e3,
        "outside_gemm_share": 1 - sum(steps_ms[g] for g in gemms) / total_ms,
        "gemm_gflops": {g: flops / (steps_ms[g] / 1e3) / 1e9 for g in gemms if steps_ms[g] > 0},
        "gemm_peak_gflops": peak,
        "repeats": {"timed": len(rounds), "clean": len(clean), "used": len(used)},
    }


def format_breakdown(result: dict[str, Any]) -> str:
    """A small Markdown table of one :func:`breakdown` result.

    Examples
    --------
    >>> from fastconv.bench.cases import PoolShape
    >>> case = Case("avg_pool2d", PoolShape("p", 2, 3, 8, 8, 2, 2, 0))
    >>> format_breakdown(breakdown(case, repeats=1, pause=0)).splitlines()[2]
    '| step | ms | share | GEMM GFLOP/s | % of GEMM peak |'
    """
    total = result["total_ms"]
    peak = result.get("gemm_peak_gflops")
    reps = result["repeats"]
    head = f"**{result['case']}** {result['dtype']}: {result['op']} fwd+bwd {total:.1f} ms"
    if result["gemm_gflops"]:
        head += f"; {100 * result['outside_gemm_share']:.0f}% of it outside the GEMMs"
    lines = [f"{head} (medians of {reps['used']} repeats; {reps['clean']} of {reps['timed']} clean)",
             "", "| step | ms | share | GEMM GFLOP/s | % of GEMM peak |", "|---|---|---|---|---|"]
    for name, ms in result["steps_ms"].items():
        rate = result["gemm_gflops"].get(name)
        lines.append(f"| {name} | {ms:.2f} | {100 * ms / total:.0f}% | "
                     f"{f'{rate:.1f}' if rate else ''} | "
                     f"{f'{100 * rate / peak:.0f}%' if rate and peak else ''} |")
    over = result["python_overhead_ms"]
    lines.append(f"| Python overhead (total - steps) | {over:.2f} | {100 * over / total:.0f}% |  |  |")
    return "\n".join(lines)
