"""Turn a benchmark report dict into a Markdown table, a JSON file and a PNG chart."""

import json

from . import ops
from .cases import ConvShape, PoolShape

PRIMARY = {"fastconv": "torch", "fastconv-gpu": "torch-cuda"}
PASS_ORDER = ("fwd", "bwd", "fwd+bwd")


def _case_of(rec):
    from .cases import Case
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


def _rate(case, pass_name, median_ms, dtype, peak):
    """('61.2 GFLOP/s', '81%') for conv, ('12.3 GB/s', '') for memory-bound ops."""
    import numpy as np
    seconds = median_ms / 1e3
    work = ops.flops(case, pass_name)
    if work is not None:
        rate = work / seconds / 1e9
        return f"{rate:.1f} GFLOP/s", (f"{100 * rate / peak:.0f}%" if peak else "")
    moved = ops.bytes_moved(case, pass_name, np.dtype(dtype).itemsize)
    return f"{moved / seconds / 1e9:.1f} GB/s", ""


def rows(report):
    """One dict per (case, dtype, pass, fastconv implementation) with the table's columns."""
    peaks = report.get("gemm_peak_gflops", {})
    out = []
    for (op, shape, dtype), impls in _index(report["results"]).items():
        for name, torch_name in PRIMARY.items():
            rec = impls.get(name)
            if rec is None or rec["status"] != "ok":
                continue
            case = _case_of(rec)
            loop, torch = impls.get("loop"), impls.get(torch_name)
            for pass_name in PASS_ORDER:
                p = rec["passes"].get(pass_name)
                if p is None:
                    continue
                rate, pct = _rate(case, pass_name, p["median_ms"], dtype,
                                  peaks.get(rec["device"], {}).get(dtype))
                noisy = rec.get("repeats", {}).get("noisy")
                row = {"op": op, "shape": rec["label"], "dtype": dtype, "pass": pass_name,
                       "impl": name, "ms": _fmt_ms(p) + (" *" if noisy else ""), "rate": rate,
                       "peak": pct,
                       "vs_loop": "", "torch_ms": "", "vs_torch": "", "mem": ""}
                if loop and loop["status"] == "ok" and pass_name in loop["passes"]:
                    row["vs_loop"] = f"~{loop['passes'][pass_name]['median_ms'] / p['median_ms']:,.0f}x"
                if torch and torch["status"] == "ok" and pass_name in torch["passes"]:
                    row["torch_ms"] = f"{torch['passes'][pass_name]['median_ms']:.3g}"
                    ratio = rec.get("vs_torch", {}).get(pass_name)
                    row["vs_torch"] = f"{ratio:.2f}x" if ratio else ""
                if pass_name in rec.get("peak_bytes", {}):
                    row["mem"] = f"{rec['peak_bytes'][pass_name] / 2**20:.1f}"
                out.append(row)
    return out


COLUMNS = (("op", "op"), ("shape", "shape (N x C x H x W ...)"), ("dtype", "dtype"),
           ("pass", "pass"), ("impl", "impl"), ("ms", "ms median (min–max)"),
           ("rate", "rate"), ("peak", "% GEMM peak"), ("vs_loop", "speedup vs loop"),
           ("torch_ms", "PyTorch ms"), ("vs_torch", "time / PyTorch"),
           ("mem", "peak MiB (incl. workspace)"))


def markdown_table(report):
    """The results as a Markdown table followed by notes (peaks, loops, first calls, mismatches)."""
    lines = ["| " + " | ".join(title for _, title in COLUMNS) + " |",
             "|" + "---|" * len(COLUMNS)]
    for row in rows(report):
        lines.append("| " + " | ".join(row[key] for key, _ in COLUMNS) + " |")
    bullets = [n if n.startswith("- ") else "- " + n for n in notes(report)]
    return "\n".join(lines + [""] + bullets)


def notes(report):
    """The lines under the table: what the columns mean and anything that was not timed."""
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
               + " Loop speedups (~) are from one image, scaled linearly to the batch. Peak MiB:"
               " the pass's own (fwd+bwd: the larger of the two).")
    counts = [r["repeats"] for r in report["results"] if "repeats" in r and r["impl"] == "fastconv"]
    if counts:
        out.append(f"Clean repeats (other processes used < {s.get('noise_threshold', 0.15):g} cores): "
                   f"{min(c['clean'] for c in counts)}-{max(c['clean'] for c in counts)} per case "
                   f"of {min(c['timed'] for c in counts)}-{max(c['timed'] for c in counts)} timed; "
                   "* marks cases with fewer than 3, whose statistics use every repeat.")
    for rec in report["results"]:
        if rec["status"] not in ("ok",) and rec["impl"] != "loop":
            out.append(f"- {rec['impl']} on {rec['op']} {rec['shape']} {rec['dtype']}: "
                       f"{rec['status']} ({rec.get('reason', '')})")
        if rec["status"] == "mismatch" and rec["impl"] == "loop":
            out.append(f"- loop on {rec['op']} {rec['shape']}: {rec['reason']}")
        if rec["impl"] == "fastconv-gpu" and "first_call_ms" in rec:
            out.append(f"- GPU first call (includes kernel compilation) {rec['op']} {rec['shape']} "
                       f"{rec['dtype']}: {rec['first_call_ms']:.1f} ms")
    return out


def write_json(report, path):
    """Write the report (machine, settings, peaks, every record) as JSON."""
    with open(path, "w") as f:
        json.dump(report, f, indent=1, default=str)


def plot(report, path):
    """Bar chart of the median time of every implementation per case (log scale).

    Returns None on success, or a one-line message when matplotlib is not installed.
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
                label="loop (1 image, scaled to the batch)" if name == "loop" else name)
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
