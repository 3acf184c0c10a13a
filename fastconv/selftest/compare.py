"""How a result is judged and shown: the error measure, the tolerances, the table.

The error of a case is the worst, over every array it returns (the output,
indices, each gradient), of ``max |got - expected| / max |expected|``: the
largest deviation as a fraction of the array's scale. Integer arrays
(indices) must be equal. An array one side returns and the other does not,
a shape that differs, or a NaN or infinity where the other side is finite is
an infinite error.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import numpy as np

from ..bench.tf32 import TF32_TOLERANCE

# float32 against float64 on the same inputs: a few float32 roundings per term, far
# below what a wrong index or a dropped term gives (a whole term, about 1e-1 here).
TOLERANCE = {"float16": 1e-2, "float32": 1e-4, "float64": 1e-10}


@dataclass(frozen=True)
class Check:
    """One case on one device in one dtype, and how far it was from the expected results.

    Parameters
    ----------
    op : str
        The case's label.
    arrays : tuple of str
        The arrays compared (``out``, ``dx``, ...).
    device : str
        ``cpu`` or ``gpu`` (``gpu tf32`` with TF32 on).
    dtype : str
        The dtype under test.
    error : float
        The case's error (module docstring); ``inf`` when it raised.
    tolerance : float
        The largest error that passes.
    detail : str, default ""
        The worst array, or the exception when the case raised.

    Examples
    --------
    >>> Check("relu", ("out", "dx"), "cpu", "float32", 2e-8, 1e-4).passed
    True
    """

    op: str
    arrays: tuple[str, ...]
    device: str
    dtype: str
    error: float
    tolerance: float
    detail: str = ""

    @property
    def passed(self) -> bool:
        """Whether the error is within the tolerance."""
        return self.error <= self.tolerance


def array_error(got: np.ndarray, expected: np.ndarray) -> float:
    """``max |got - expected| / max |expected|``; integer arrays: 0 when equal, else inf.

    Parameters
    ----------
    got, expected : numpy.ndarray
        The array under test and the expected one.

    Returns
    -------
    float
        The scaled error (inf for a shape mismatch or a non-finite difference).

    Examples
    --------
    >>> array_error(np.array([1.0, 2.2]), np.array([1.0, 2.0]))
    0.10000000000000009
    """
    if got.shape != expected.shape:
        return math.inf
    if expected.dtype.kind != "f" or got.dtype.kind != "f":
        return 0.0 if np.array_equal(got, expected) else math.inf
    if not expected.size:
        return 0.0
    want = expected.astype(np.float64)
    diff = np.abs(got.astype(np.float64) - want)
    same_specials = (np.isnan(got) & np.isnan(want)) | (got == want)
    diff = np.where(same_specials, 0.0, diff)
    if not np.isfinite(diff).all():
        return math.inf
    finite = want[np.isfinite(want)]
    scale = max(float(np.max(np.abs(finite))) if finite.size else 0.0, 1e-30)
    return float(diff.max()) / scale


def worst_error(got: Mapping[str, np.ndarray], expected: Mapping[str, np.ndarray]
                ) -> tuple[float, str]:
    """The largest :func:`array_error` over the arrays, and the name of that array.

    Parameters
    ----------
    got, expected : mapping of str to numpy.ndarray
        The results under test and the expected ones, by name.

    Returns
    -------
    error : float
        The worst error (inf when one side lacks an array the other has).
    name : str
        The array it came from (``"dw missing"`` style when one is missing).

    Examples
    --------
    >>> worst_error({"out": np.ones(2)}, {"out": np.ones(2), "dx": np.ones(2)})
    (inf, 'dx missing')
    """
    worst, where = 0.0, ""
    for name in dict.fromkeys([*expected, *got]):
        if name not in got or name not in expected:
            return math.inf, f"{name} {'missing' if name not in got else 'unexpected'}"
        error = array_error(got[name], expected[name])
        if error > worst or not where:
            worst, where = error, name
    return worst, where


COLUMNS = (("op", "op"), ("device", "device"), ("dtype", "dtype"), ("error", "max error"),
           ("tolerance", "tolerance"), ("result", "pass"))
OP_WIDTH = 40  # the table stays within 100 columns


def _row(check: Check) -> dict[str, str]:
    if check.passed:
        result = "ok"
    elif check.detail.startswith("raised"):
        result = "ERROR"
    else:
        result = f"FAIL in {check.detail}"
    return {"op": check.op[:OP_WIDTH], "device": check.device, "dtype": check.dtype,
            "error": "-" if math.isinf(check.error) else f"{check.error:.1e}",
            "tolerance": f"{check.tolerance:.0e}", "result": result}


def table(checks: Iterable[Check]) -> str:
    """The checks as an aligned text table, then one line per case that raised.

    Parameters
    ----------
    checks : iterable of Check
        The checks, in order.

    Returns
    -------
    str
        The table (no trailing newline).

    Examples
    --------
    >>> print(table([Check("relu", ("out", "dx"), "cpu", "float64", 0.0, 1e-10)]))
    op    device  dtype    max error  tolerance  pass
    relu  cpu     float64  0.0e+00    1e-10      ok
    """
    checks = list(checks)
    rows = [dict(COLUMNS)] + [_row(c) for c in checks]
    widths = {key: max(len(r[key]) for r in rows) for key, _ in COLUMNS}
    lines = ["  ".join(r[key].ljust(widths[key]) for key, _ in COLUMNS).rstrip() for r in rows]
    lines += [f"  {c.op} ({c.device}, {c.dtype}) {c.detail}" for c in checks
              if c.detail.startswith("raised")]
    return "\n".join(lines)
