"""Where a CPU convolution's time goes: ``fastconv bench --breakdown``.

Replays ``conv2d_forward`` + ``conv2d_backward`` step by step with the very building
blocks :mod:`fastconv.functional.conv` uses (its chunk plan, ``pad_input``,
``window_view``, the GEMMs, ``col2im_into``), timing each step, and checks that the
replay's out, dx, dw and db equal the real functions' results, so the numbers describe
the real code path. Python overhead is the real call's time minus the sum of the steps.
"""

import statistics
import time
from collections import defaultdict

import numpy as np

from ..functional import conv as conv_module
from ..im2col import col2im_into, pad_input, window_geometry, window_view
from .ops import make_inputs, relative_error
from .timing import OtherLoad, median_ratio

STEPS = ("pad", "im2col", "GEMM fwd (W @ cols)", "bias", "GEMM dW (dout @ cols^T)",
         "dW batch sum", "GEMM dcols (W^T @ dout)", "col2im", "layout copies + db")
GEMMS = {"GEMM fwd (W @ cols)", "GEMM dW (dout @ cols^T)", "GEMM dcols (W^T @ dout)"}


class _Stopwatch:
    """Accumulates seconds per step name over one replay."""

    def __init__(self):
        self.seconds = defaultdict(float)

    def __call__(self, name, fn, *args, **kwargs):
        t0 = time.perf_counter()
        result = fn(*args, **kwargs)
        self.seconds[name] += time.perf_counter() - t0
        return result


def _replay(x, w, b, dout, stride, padding, clock):
    """conv2d forward + backward (groups=1) as conv.py runs it, each step timed by ``clock``."""
    geometry = window_geometry(x.shape, w.shape[2:], stride, padding, 1)
    n, f = x.shape[0], w.shape[0]
    oh, ow = geometry.out
    w_mat = w.reshape(1, f, -1)
    out = np.empty((n, f, oh, ow), dtype=x.dtype)
    out_groups = out.reshape(n, 1, f, oh * ow)
    dout_groups = clock("layout copies + db", np.ascontiguousarray, dout).reshape(n, 1, f, oh * ow)
    w_t = w_mat.transpose(0, 2, 1)
    dx = np.empty(x.shape, dtype=x.dtype)
    if geometry.is_identity:
        x_cols = clock("layout copies + db", np.ascontiguousarray, x).reshape(n, 1, -1, oh * ow)
        clock("GEMM fwd (W @ cols)", np.matmul, w_mat, x_cols, out=out_groups)
        clock("bias", np.add, out, b.reshape(1, f, 1, 1), out=out)
        db = clock("layout copies + db", dout.sum, axis=(0, 2, 3))
        partial = clock("GEMM dW (dout @ cols^T)", np.matmul, dout_groups, x_cols.transpose(0, 1, 3, 2))
        dw = clock("dW batch sum", partial.sum, axis=0)
        clock("GEMM dcols (W^T @ dout)", np.matmul, w_t, dout_groups, out=dx.reshape(x_cols.shape))
        return out, dx, dw.reshape(w.shape), db

    def columns(chunk_x, buffer):
        cols = buffer[:chunk_x.shape[0]]
        padded = clock("pad", pad_input, chunk_x, geometry)
        clock("im2col", np.copyto, cols.reshape((chunk_x.shape[0], x.shape[1]) + geometry.kernel
                                                + geometry.out), window_view(padded, geometry))
        return cols

    per_image = conv_module._column_bytes(x, geometry) + conv_module._padded_bytes(x, geometry)
    chunks, shape = conv_module._chunk_plan(x, geometry, 1, per_image)
    buffer = np.empty(shape, dtype=x.dtype)
    cols = None
    for chunk in chunks:
        cols = columns(x[chunk], buffer)
        clock("GEMM fwd (W @ cols)", np.matmul, w_mat, cols, out=out_groups[chunk])
    kept = cols if len(chunks) == 1 else None
    clock("bias", np.add, out, b.reshape(1, f, 1, 1), out=out)

    db = clock("layout copies + db", dout.sum, axis=(0, 2, 3))
    dw = np.zeros((1, f, w_t.shape[1]), dtype=x.dtype)
    recompute = kept is None
    per_image = (conv_module._column_bytes(x, geometry) * (2 if recompute else 1)
                 + conv_module._padded_bytes(x, geometry) + dw.nbytes)
    chunks, shape = conv_module._chunk_plan(x, geometry, 1, per_image)
    col_buffer = np.empty(shape, dtype=x.dtype) if recompute else None
    dcol_buffer = np.empty(shape, dtype=x.dtype)
    for chunk in chunks:
        cols = columns(x[chunk], col_buffer) if recompute else kept[chunk]
        dout_chunk = dout_groups[chunk]
        partial = clock("GEMM dW (dout @ cols^T)", np.matmul, dout_chunk, cols.transpose(0, 1, 3, 2))
        dw += clock("dW batch sum", partial.sum, axis=0)
        dcols = clock("GEMM dcols (W^T @ dout)", np.matmul, w_t, dout_chunk,
                      out=dcol_buffer[:cols.shape[0]])
        clock("col2im", col2im_into,
              dcols.reshape((cols.shape[0], x.shape[1]) + geometry.kernel + geometry.out),
              geometry, dx[chunk])
    return out, dx, dw.reshape(w.shape), db


def _gemm_flops(shape):
    """Flops of each of the three GEMMs of one conv (they are equal: 2*N*F*C*k*k*OH*OW)."""
    return shape.forward_flops()


def breakdown(case, dtype="float32", repeats=5, pause=0.3, peak=None, seed=0, max_repeats=None,
              noise_threshold=0.15):
    """Time each step of one conv2d forward+backward; return a dict of step -> median ms.

    Also returns the real call's median (``total_ms``), the Python overhead (total minus
    steps), each GEMM's GFLOP/s and its share of ``peak`` (GFLOP/s, when given), and the
    share of time outside the GEMMs. As in the benchmark, a repeat counts when other
    processes kept fewer than ``noise_threshold`` cores busy, and repeats go on (up to
    ``max_repeats``) to collect ``repeats`` clean ones. Raises RuntimeError if the replay
    disagrees with the real conv2d (it would then not describe the real code path).
    """
    from .. import conv2d_backward, conv2d_forward
    s = case.shape
    a = make_inputs(case, dtype, seed)
    args = (a["x"], a["w"], a["b"], a["dout"], s.stride, s.pad)
    out, cache = conv2d_forward(a["x"], a["w"], a["b"], s.stride, s.pad)
    real = dict(zip(("out", "dx", "dw", "db"), (out,) + conv2d_backward(a["dout"], cache)))
    replay = dict(zip(("out", "dx", "dw", "db"), _replay(*args, _Stopwatch())))
    err = relative_error(replay, real)
    if err > 1e-6:
        raise RuntimeError(f"the breakdown replay of {case.label()} differs from conv2d "
                           f"(relative error {err:.1e}): fastconv/bench/breakdown.py must follow "
                           "fastconv/functional/conv.py")
    del out, cache, real, replay
    rounds = []  # (others' cores, real call seconds, replay step seconds)
    for _ in range(max(repeats, max_repeats or repeats)):
        with OtherLoad() as load:
            time.sleep(pause)
            t0 = time.perf_counter()
            out, cache = conv2d_forward(a["x"], a["w"], a["b"], s.stride, s.pad)
            conv2d_backward(a["dout"], cache)
            total = time.perf_counter() - t0
            del out, cache
            time.sleep(pause)
            clock = _Stopwatch()
            _replay(*args, clock)
        rounds.append((load.cores, total, clock.seconds))
        clean = [r for r in rounds if r[0] is None or r[0] < noise_threshold]
        if len(clean) >= repeats:
            break
    used = clean if len(clean) >= min(3, repeats) else rounds
    steps = {name: statistics.median(r[2].get(name, 0.0) for r in used) * 1e3 for name in STEPS}
    result = {"case": case.label(), "dtype": dtype,
              "total_ms": statistics.median(r[1] for r in used) * 1e3, "steps_ms": steps,
              "repeats": {"timed": len(rounds), "clean": len(clean), "used": len(used)}}
    result["python_overhead_ms"] = result["total_ms"] - sum(steps.values())
    result["steps_over_total"] = median_ratio([sum(r[2].values()) for r in used],
                                              [r[1] for r in used])
    gemm_ms = sum(steps[g] for g in GEMMS)
    result["outside_gemm_share"] = 1 - gemm_ms / result["total_ms"]
    flops = _gemm_flops(s)
    result["gemm_gflops"] = {g: flops / (steps[g] / 1e3) / 1e9 for g in GEMMS if steps[g] > 0}
    result["gemm_peak_gflops"] = peak
    return result


def format_breakdown(result):
    """A small Markdown table of one breakdown result."""
    total = result["total_ms"]
    peak = result.get("gemm_peak_gflops")
    reps = result["repeats"]
    lines = [f"**{result['case']}** {result['dtype']}: conv2d fwd+bwd {total:.1f} ms; "
             f"{100 * result['outside_gemm_share']:.0f}% of it outside the GEMMs "
             f"(medians of {reps['used']} repeats; {reps['clean']} of {reps['timed']} clean)",
             "", "| step | ms | share | GEMM GFLOP/s | % of GEMM peak |", "|---|---|---|---|---|"]
    for name in STEPS:
        ms = result["steps_ms"][name]
        rate = result["gemm_gflops"].get(name)
        lines.append(f"| {name} | {ms:.2f} | {100 * ms / total:.0f}% | "
                     f"{f'{rate:.1f}' if rate else ''} | "
                     f"{f'{100 * rate / peak:.0f}%' if rate and peak else ''} |")
    over = result["python_overhead_ms"]
    lines.append(f"| Python overhead (total - steps) | {over:.2f} | {100 * over / total:.0f}% |  |  |")
    return "\n".join(lines)
