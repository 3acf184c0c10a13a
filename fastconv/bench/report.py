"""Turn a benchmark report dict into table rows, a Markdown table, notes, JSON and a chart.

:func:`rows` computes every column once; :func:`markdown_table` shows all of them
(``--markdown``), :func:`.terminal.terminal_table` the ones that fit 100 columns.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np

from . import ops
from .cases import Case, ConvShape, PoolShape
from .impls import TORCH_TWIN

# the fastconv implementation of each device and its PyTorch twin, TF32 off
PRIMARY = {name: TORCH_TWIN[name] for name in ("fastconv", "fastconv-gpu")}
PASS_ORDER = ("fwd", "bwd", "fwd+bwd")
Report = dict[str, Any]


def case_of(rec: dict) -> Case:
    """The :class:`.cases.Case` a result record describes.

    Examples
    --------
    >>> rec = {"op": "im2col", "params": dict(name="t", n=1, c=1, h=4, w=4, f=1, k=3, stride=1, pad=0)}
    >>> case_of(rec).label()
    'im2col t 1x1x4x4 F1 k3 s1 p0'
    """
    params = dict(rec["params"])
    shape = ConvShape(**params) if "f" in params else PoolShape(**params)
    return Case(rec["op"], shape)


def _index(results):
    """{(op, shape, dtype): {impl: record}}, keeping the run's order."""
    table = {}
    for rec in results:
        table.setdefault((rec["op"], rec["shape"], rec["dtype"]), {})[rec["impl"]] = rec
    return table


def _fmt_ms(p):
    return f"{p['median_ms']:.3g} ({p['min_ms']:.3g}–{p['max_ms']:.3g})"


def rate(case: Case, pass_name: str, median_ms: float, dtype: str) -> tuple[float, str]:
    """The achieved rate of a pass: ``(GFLOP/s, "GFLOP/s")`` for a convolution, ``(GB/s,
    "GB/s")`` for the memory-bound ops.

    Examples
    --------
    >>> rate(Case("max_pool2d", PoolShape("p", 1, 1, 4, 4, 2, 2, 0)), "fwd", 1e-3, "float32")
    (0.08, 'GB/s')
    """
    seconds = median_ms / 1e3
    work = ops.flops(case, pass_name)
    if work is not None:
        return work / seconds / 1e9, "GFLOP/s"
    moved = ops.bytes_moved(case, pass_name, np.dtype(dtype).itemsize) or 0
    return moved / seconds / 1e9, "GB/s"


def rows(report: Report) -> list[dict[str, Any]]:
    """One dict per (case, dtype, pass, fastconv implementation) with every column.

    Parameters
    ----------
    report : dict
        :func:`.runner.run`'s report.

    Returns
    -------
    list of dict
        Each row has the formatted columns of :data:`COLUMNS` and the numbers behind
        them (``median_ms``, ``rate``, ``unit``, ``peak_pct``, ``vs_loop_x``,
        ``torch_median_ms``, ``vs_torch_x``; None where there is none), ``name`` (the
        shape's) and ``noisy``. TF32 rows have no % of peak (none is measured).

    Examples
    --------
    >>> rows({"results": []})
    []
    """
    peaks = report.get("gemm_peak_gflops", {})
    out = []
    for (op, _shape, dtype), impls in _index(report["results"]).items():
        for name, torch_name in TORCH_TWIN.items():
            rec = impls.get(name)
            if rec is None or rec["status"] != "ok":
                continue
            out.extend(_case_rows(rec, impls.get("loop"), impls.get(torch_name),
                                  None if name.endswith("tf32") else
                                  peaks.get(rec["device"], {}).get(dtype)))
    return out


def _case_rows(rec, loop, torch, peak):
    """The rows of one fastconv record (one per pass); ``peak`` GFLOP/s or None."""
    case = case_of(rec)
    out = []
    for pass_name in PASS_ORDER:
        p = rec["passes"].get(pass_name)
        if p is None:
            continue
        value, unit = rate(case, pass_name, p["median_ms"], rec["dtype"])
        noisy = bool(rec.get("repeats", {}).get("noisy"))
        row = {"op": rec["op"], "shape": rec["label"], "name": rec["shape"], "dtype": rec["dtype"],
               "pass": pass_name, "impl": rec["impl"], "noisy": noisy,
               "median_ms": p["median_ms"], "rate": value, "unit": unit,
               "peak_pct": 100 * value / peak if peak and unit == "GFLOP/s" else None,
               "vs_loop_x": None, "torch_median_ms": None, "vs_torch_x": None,
               "ms": _fmt_ms(p) + (" *" if noisy else ""), "rate_text": f"{value:.1f} {unit}",
               "vs_loop": "", "torch_ms": "", "vs_torch": "", "mem": ""}
        row["peak"] = f"{row['peak_pct']:.0f}%" if row["peak_pct"] is not None else ""
        if loop and loop["status"] == "ok" and pass_name in loop["passes"]:
            row["vs_loop_x"] = loop["passes"][pass_name]["median_ms"] / p["median_ms"]
            row["vs_loop"] = f"~{row['vs_loop_x']:,.0f}x"
        if torch and torch["status"] == "ok" and pass_name in torch["passes"]:
            row["torch_median_ms"] = torch["passes"][pass_name]["median_ms"]
            row["torch_ms"] = f"{row['torch_median_ms']:.3g}"
            row["vs_torch_x"] = rec.get("vs_torch", {}).get(pass_name)
            row["vs_torch"] = f"{row['vs_torch_x']:.2f}x" if row["vs_torch_x"] else ""
        if pass_name in rec.get("peak_bytes", {}):
            row["mem"] = f"{rec['peak_bytes'][pass_name] / 2**20:.1f}"
        out.append(row)
    return out


COLUMNS = (("op", "op"), ("shape", "shape (N x C x H x W ...)"), ("dtype", "dtype"),
           ("pass", "pass"), ("impl", "impl"), ("ms", "ms median (min–max)"),
           ("rate_text", "rate"), ("peak", "% GEMM peak"), ("vs_loop", "speedup vs loop"),
           ("torch_ms", "PyTorch ms"), ("vs_torch", "time / PyTorch"),
           ("mem", "peak MiB (incl. workspace)"))


def markdown_table(report: Report) -> str:
    """The results as a Markdown table with every column, followed by :func:`notes`.

    Parameters
    ----------
    report : dict
        :func:`.runner.run`'s report.

    Returns
    -------
    str
        The table, a blank line, the notes as a bullet list.
    """
    lines = ["| " + " | ".join(title for _, title in COLUMNS) + " |",
             "|" + "---|" * len(COLUMNS)]
    for row in rows(report):
        lines.append("| " + " | ".join(row[key] for key, _ in COLUMNS) + " |")
    bullets = [n if n.startswith("- ") else "- " + n for n in notes(report)]
    return "\n".join(lines + [""] + bullets)


def _oracle_note(report):
    """How the results were checked, and (without PyTorch) on what."""
    checked = [r for r in report["results"] if r.get("oracle") and r["impl"] != "loop"]
    if not checked or all(r["oracle"] == "torch-float64" for r in checked):
        return ("Checked before timing against PyTorch CPU in float64 on the whole batch."
                if checked else None)
    problems = dict.fromkeys(r["oracle"].split(" on ", 1)[1] for r in checked if " on " in r["oracle"])
    return ("Checked before timing against the reference loops in float64 on one image and at "
            "most 4 channels and filters of each layer (PyTorch is not installed or not used): "
            + ", ".join(problems) + ".")


def _loop_note(report):
    loops = [r for r in report["results"] if r["impl"] == "loop" and r["status"] == "ok"]
    if not loops:
        return None
    budget = report["settings"].get("loop_budget")
    return ("speedup vs loop (~) is an estimate: the loops ran once on one image, with fewer "
            f"channels and filters where that was estimated over the {budget:g} s loop budget, "
            "and their time was scaled by the work (multiply-adds or window elements) to the "
            "batch: " + ", ".join(dict.fromkeys(r["extrapolated_from"] for r in loops)) + ".")


def _gpu_notes(report):
    out = []
    compiled = report.get("gpu_compile_ms") or {}
    if compiled:
        out.append("GPU kernel compile (NVRTC, first use in this process; CuPy 14.1+ loads "
                   "earlier builds from its disk cache), before any timing: "
                   + ", ".join(f"{name} {ms:.0f} ms" for name, ms in compiled.items()) + ".")
    first = [r for r in report["results"] if r["impl"].startswith("fastconv-gpu")
             and "first_call_ms" in r]
    if first:
        slowest = max(first, key=lambda r: r["first_call_ms"])
        out.append(f"GPU first calls (kernels already compiled; every case's in the JSON): "
                   f"{min(r['first_call_ms'] for r in first):.1f}-"
                   f"{slowest['first_call_ms']:.1f} ms, the slowest {slowest['op']} "
                   f"{slowest['shape']} {slowest['dtype']} ({slowest['impl']}).")
    if any(r["impl"].endswith("tf32") for r in report["results"]):
        out.append("GPU float32 convolutions run twice: TF32 off on both sides "
                   "(fastconv.set_tf32(False); torch.backends.cuda.matmul.allow_tf32 and "
                   "torch.backends.cudnn.allow_tf32 False, cuDNN's default being True) and on "
                   "(fastconv-gpu-tf32 against torch-cuda-tf32, checked within 1e-2); "
                   "timed with CUDA events after a synchronisation; no % of peak for TF32.")
    return out


def notes(report: Report) -> list[str]:
    """The lines under the table: what the columns mean and anything that was not timed.

    Parameters
    ----------
    report : dict
        :func:`.runner.run`'s report.

    Returns
    -------
    list of str
        The machine, the peaks, how the timing and the checks were done, how the loop
        column was estimated, the GPU compile and first-call times, TF32, and one line
        (starting ``- ``) per implementation and status that was not ok.
    """
    m = report["machine"]
    peaks = report.get("gemm_peak_gflops", {})
    threads = ", ".join(f"{b['library']} {b['version'] or ''}, {b['threads'] or '?'} threads"
                        for b in m["blas"])
    out = [f"Machine: {m['cpu']}, {m['cores']} cores; NumPy {m['numpy']} ({threads}); "
           f"PyTorch {m.get('torch', 'not used')}; GPU: {m['gpu']}."]
    for device, per_dtype in peaks.items():
        out.append(f"GEMM peak measured in this run ({device}, best of 5 square products): " + ", ".join(
            f"{dtype} {rate:.1f} GFLOP/s" for dtype, rate in per_dtype.items()))
    s = report["settings"]
    out.append(f"Medians over interleaved repeats ({s['repeats']} clean ones wanted, at most "
               f"{s.get('max_repeats') or s['repeats']} timed) after {s['warmup']} warm-up, "
               f"{s['pause']:g} s settle pause before each CPU forward. fwd+bwd = forward plus "
               "dx, dw, db."
               + (" time / PyTorch: median of per-repeat ratios (< 1 is faster)."
                  if any(r.get("vs_torch") for r in report["results"]) else "")
               + " Peak MiB: the pass's own (fwd+bwd: the larger of the two).")
    out += [n for n in (_oracle_note(report), _loop_note(report)) if n]
    counts = [r["repeats"] for r in report["results"] if "repeats" in r and r["impl"] == "fastconv"]
    if counts:
        out.append(f"Clean repeats (other processes used < {s.get('noise_threshold', 0.15):g} cores): "
                   f"{min(c['clean'] for c in counts)}-{max(c['clean'] for c in counts)} per case "
                   f"of {min(c['timed'] for c in counts)}-{max(c['timed'] for c in counts)} timed; "
                   "* marks cases with fewer than 3, whose statistics use every repeat.")
    return out + _gpu_notes(report) + _status_notes(report)


def _status_notes(report):
    """One line per implementation, status and reason that was not ``ok``, naming its cases
    (``every case`` when it is all of them)."""
    every = dict.fromkeys((r["op"], r["shape"], r["dtype"]) for r in report["results"])
    grouped = {}
    for rec in report["results"]:
        if rec["status"] != "ok":
            key = (rec["impl"], rec["status"], rec.get("reason", ""))
            grouped.setdefault(key, []).append((rec["op"], rec["shape"], rec["dtype"]))
    out = []
    for (impl, status, reason), where in grouped.items():
        cases = ("every case" if len(where) == len(every) > 1
                 else ", ".join(" ".join(case) for case in where))
        out.append(f"- {impl} {status} ({reason}): {cases}")
    return out


def write_json(report: Report, path: str) -> None:
    """Write the report (machine, settings, peaks, every record) as JSON.

    Parameters
    ----------
    report : dict
        :func:`.runner.run`'s report.
    path : str
        The file to write.
    """
    with open(path, "w") as f:
        json.dump(report, f, indent=1, default=str)


def plot(report: Report, path: str) -> str | None:
    """Bar chart of the median time of every implementation per case (log scale).

    Parameters
    ----------
    report : dict
        :func:`.runner.run`'s report.
    path : str
        The PNG file to write.

    Returns
    -------
    str or None
        None on success, or a one-line message when matplotlib is not installed.
    """
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return "no chart: matplotlib is not installed (pip install \"fastconv[plot]\")"
    table = _index(report["results"])
    impl_names = []
    for impls in table.values():
        for name, rec in impls.items():
            if rec["status"] == "ok" and name not in impl_names:
                impl_names.append(name)
    labels = [f"{op} {shape} {dtype}" for op, shape, dtype in table]
    fig, ax = plt.subplots(figsize=(9, 0.5 * len(labels) + 1.5))
    height = 0.8 / max(1, len(impl_names))
    for k, name in enumerate(impl_names):
        ys, widths = [], []
        for i, impls in enumerate(table.values()):
            rec = impls.get(name)
            if rec and rec["status"] == "ok":
                passes = rec["passes"]
                ys.append(i + k * height)
                widths.append(passes.get("fwd+bwd", passes["fwd"])["median_ms"])
        ax.barh(ys, widths, height=height,
                label="loop (estimate, scaled to the batch)" if name == "loop" else name)
    ax.set_yticks([i + 0.4 - height / 2 for i in range(len(labels))], labels, fontsize=8)
    ax.invert_yaxis()
    ax.set_xscale("log")
    ax.set_xlabel("median ms (fwd+bwd where the op has a backward), log scale")
    ax.legend(loc="best", fontsize=8)
    ax.set_title("fastconv bench")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return None
