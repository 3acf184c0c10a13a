"""The benchmark table as ``fastconv bench`` prints it: plain text within 100 columns.

The columns that answer "how fast, against what" (median ms, rate, % of the GEMM
peak, the loop speed-up, PyTorch's ms and the ratio), the case as op, shape name and
dtype with the shapes spelled out once below, then the notes wrapped to the same
width. Ranges, peak memory and full labels are in ``--markdown`` and ``--json``.
"""

from __future__ import annotations

import textwrap
from typing import Any

from .report import case_of, notes, rows

WIDTH = 100
DEVICE = {"fastconv": "cpu", "fastconv-gpu": "gpu", "fastconv-gpu-tf32": "gpu tf32"}
DTYPE = {"float32": "f32", "float64": "f64"}
COLUMNS = (("case", "case"), ("pass", "pass"), ("device", "device"), ("ms", "ms"),
           ("rate", "rate"), ("peak", "%peak"), ("vs_loop", "vs loop"),
           ("torch_ms", "torch ms"), ("vs_torch", "vs torch"))
SEPARATOR = "  "


def number(value: float) -> str:
    """A time in at most six characters: three significant digits, no exponent.

    Examples
    --------
    >>> number(0.01234), number(12.34), number(12345.6)
    ('0.0123', '12.3', '12346')
    """
    return f"{value:.3g}" if value < 1000 else f"{value:.0f}"


def rate(value: float, unit: str) -> str:
    """A rate with a unit prefix that keeps it short (``1.2 TFLOP/s``, ``850.3 GB/s``).

    Examples
    --------
    >>> rate(12345.0, "GFLOP/s"), rate(12.3, "GB/s")
    ('12.3 TFLOP/s', '12.3 GB/s')
    """
    if value >= 1000:
        return f"{value / 1000:.1f} {unit.replace('G', 'T', 1)}"
    return f"{value:.1f} {unit}"


def times(value: float) -> str:
    """A speed-up estimate: ``~2,734x``, ``~1.2Mx`` past a million.

    Examples
    --------
    >>> times(2734.4), times(1234567.0)
    ('~2,734x', '~1.2Mx')
    """
    return f"~{value:,.0f}x" if value < 1e6 else f"~{value / 1e6:.1f}Mx"


def _cells(row: dict[str, Any]) -> dict[str, str]:
    return {"case": f"{row['op']} {row['name']} {DTYPE.get(row['dtype'], row['dtype'])}",
            "pass": row["pass"], "device": DEVICE.get(row["impl"], row["impl"]),
            "ms": number(row["median_ms"]) + (" *" if row["noisy"] else ""),
            "rate": rate(row["rate"], row["unit"]),
            "peak": f"{row['peak_pct']:.0f}%" if row["peak_pct"] is not None else "",
            "vs_loop": times(row["vs_loop_x"]) if row["vs_loop_x"] else "",
            "torch_ms": number(row["torch_median_ms"]) if row["torch_median_ms"] else "",
            "vs_torch": f"{row['vs_torch_x']:.2f}x" if row["vs_torch_x"] else ""}


def _fit(cells: list[dict[str, str]]) -> dict[str, int]:
    """Column widths; the case column gives way (truncated) when the rest would pass WIDTH."""
    widths = {key: max(len(c[key]) for c in cells) for key, _ in COLUMNS}
    total = sum(widths.values()) + len(SEPARATOR) * (len(COLUMNS) - 1)
    widths["case"] = max(8, widths["case"] - max(0, total - WIDTH))
    return widths


def _legend(report: dict[str, Any]) -> list[str]:
    """``Shapes: S1 = 64x1x28x28 F32 k3 s1 p1; ...``, lines broken between shapes only."""
    shapes: dict[str, str] = {}
    for rec in report["results"]:
        shapes.setdefault(rec["shape"], case_of(rec).shape.label().split(" ", 1)[1])
    lines, line = [], "Shapes:"
    for name, label in shapes.items():
        item = f" {name} = {label};"
        if len(line) + len(item) > WIDTH:
            lines.append(line)
            line = " "
        line += item
    return lines + [line.rstrip(";")]


def terminal_table(report: dict[str, Any]) -> str:
    """The report as a text table of at most 100 columns, the shapes, then the notes.

    Parameters
    ----------
    report : dict
        :func:`.runner.run`'s report.

    Returns
    -------
    str
        Every line at most :data:`WIDTH` characters.
    """
    cells = [dict(COLUMNS)] + [_cells(row) for row in rows(report)]
    widths = _fit(cells)
    lines = []
    for c in cells:
        text = c["case"] if len(c["case"]) <= widths["case"] else c["case"][:widths["case"] - 1] + "…"
        c = dict(c, case=text)
        lines.append(SEPARATOR.join(c[key].ljust(widths[key]) for key, _ in COLUMNS).rstrip())
    wrap = textwrap.TextWrapper(width=WIDTH, subsequent_indent="  ", break_on_hyphens=False)
    below = ["ms: median of the clean repeats (ranges, peak memory and full labels in --markdown "
             "and --json); vs torch: time / PyTorch's, < 1 is faster."]
    below += [n[2:] if n.startswith("- ") else n for n in notes(report)]
    return "\n".join(lines + [""] + _legend(report) + [wrap.fill(text) for text in below])
