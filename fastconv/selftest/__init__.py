"""``fastconv selftest``: is this installation computing the right numbers, here?

Two parts, both on small fixed cases (:mod:`.suite`), in well under a minute:

1. the CPU path against the plain loops of :mod:`fastconv.reference`
   (convolution, max and average pooling, im2col and col2im, forward and every
   gradient, float32 and float64; the loops run in float64 on the same values);
2. where a GPU is usable (:func:`fastconv.backend.gpu_status`), every op with
   a GPU path, in float16, float32 and float64, forward and every gradient,
   against the CPU path in float64 on the same values; TF32 off, then the
   convolutions again in float32 with TF32 on (its own rows and tolerance).

A table of every check (op, arrays, device, dtype, max error, tolerance,
result) is printed, with the GPU's description, or the reason no GPU was
checked. :func:`run` returns a :class:`Report`; the command exits 1 when any
check failed, else 0 (also when no GPU is usable: the CPU part passed).

Examples
--------
>>> report = cpu_checks(dtypes=("float64",))
>>> all(check.passed for check in report)
True
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

from ..backend import gpu_status
from ..bench.tf32 import TF32_TOLERANCE, fastconv_tf32
from .cases import FASTCONV, LOOPS, OpCase, call, draw_inputs
from .compare import TOLERANCE, Check, table, worst_error
from .device import CupyDevice, Device
from .suite import GPU_CASES, LOOP_CASES, TF32_CASES

__all__ = ["Check", "CupyDevice", "Device", "Report", "cpu_checks", "gpu_checks", "run"]

GPU_DTYPES = ("float16", "float32", "float64")


def _check(case: OpCase, device: str, dtype: str, tolerance: float,
           expected: Callable[[], dict], got: Callable[[], dict]) -> Check:
    """Run both sides of one check; an exception on either is a failed check that says so."""
    arrays = case.names
    try:
        want = expected()
        arrays = tuple(want)
        error, where = worst_error(got(), want)
    except Exception as exc:  # a case that cannot run is a failure to report, not a crash
        error, where = math.inf, f"raised {type(exc).__name__}: {exc}"
    return Check(case.label, arrays, device, dtype, error, tolerance, where)


def cpu_checks(dtypes: Sequence[str] = ("float32", "float64"),
               cases: Iterable[OpCase] = LOOP_CASES) -> list[Check]:
    """The CPU path against the reference loops (run in float64 on the same values).

    Parameters
    ----------
    dtypes : sequence of str, default ("float32", "float64")
        The dtypes the CPU path runs in.
    cases : iterable of OpCase, default :data:`.suite.LOOP_CASES`
        Cases whose ops :mod:`fastconv.reference` has.

    Returns
    -------
    list of Check
        One per case and dtype, device ``cpu``.

    Examples
    --------
    >>> [c.passed for c in cpu_checks(("float32",), LOOP_CASES[:1])]
    [True]
    """
    checks = []
    for case in cases:
        inputs = draw_inputs(case)
        for dtype in dtypes:
            checks.append(_check(case, "cpu", dtype, TOLERANCE[dtype],
                                 lambda: call(case, LOOPS, inputs, dtype, "float64"),
                                 lambda: call(case, FASTCONV, inputs, dtype)))
    return checks


def gpu_checks(device: Device, dtypes: Sequence[str] = GPU_DTYPES,
               cases: Iterable[OpCase] = GPU_CASES,
               tf32_cases: Iterable[OpCase] = TF32_CASES) -> list[Check]:
    """The GPU path against the CPU path (run in float64 on the same values).

    Parameters
    ----------
    device : Device
        Where the GPU path runs (:class:`CupyDevice` for the real GPU).
    dtypes : sequence of str, default ("float16", "float32", "float64")
        The dtypes the GPU path runs in, TF32 off.
    cases : iterable of OpCase, default :data:`.suite.GPU_CASES`
        The cases.
    tf32_cases : iterable of OpCase, default :data:`.suite.TF32_CASES`
        Run once more in float32 with TF32 on (device ``gpu tf32``), when
        float32 is among ``dtypes``.

    Returns
    -------
    list of Check
        One per case and dtype, then the TF32 ones. fastconv's TF32 setting is
        restored afterwards.

    Examples
    --------
    >>> from fastconv.backend import gpu_available
    >>> checks = gpu_checks(CupyDevice(), ("float64",), GPU_CASES[:1], ()) if gpu_available() else []
    >>> all(c.passed for c in checks)
    True
    """
    def on_device(case, inputs, dtype):
        return lambda: device.run(lambda: call(case, FASTCONV, inputs, dtype,
                                               to_device=device.asarray))

    runs = [(case, dtype, False) for case in cases for dtype in dtypes]
    if "float32" in dtypes:
        runs += [(case, "float32", True) for case in tf32_cases]
    checks = []
    for case, dtype, tf32 in runs:
        inputs = draw_inputs(case)
        with fastconv_tf32(tf32):
            checks.append(_check(case, "gpu tf32" if tf32 else "gpu", dtype,
                                 TF32_TOLERANCE if tf32 else TOLERANCE[dtype],
                                 lambda: call(case, FASTCONV, inputs, dtype, "float64"),
                                 on_device(case, inputs, dtype)))
    return checks


@dataclass
class Report:
    """What :func:`run` found.

    Parameters
    ----------
    checks : list of Check
        Every check, CPU ones first.
    gpu : str
        The GPU's description, or why no GPU was checked.
    gpu_checked : bool
        Whether the GPU part ran.
    seconds : dict of str to float
        Wall time of each part (``cpu``, ``gpu``).

    Examples
    --------
    >>> Report([], "no GPU", False).passed
    True
    """

    checks: list[Check]
    gpu: str
    gpu_checked: bool
    seconds: dict[str, float] = field(default_factory=dict)

    @property
    def passed(self) -> bool:
        """True when every check passed."""
        return all(check.passed for check in self.checks)

    @property
    def failed(self) -> list[Check]:
        """The checks that did not pass."""
        return [check for check in self.checks if not check.passed]


def _timed(fn: Callable[[], list[Check]]) -> tuple[list[Check], float]:
    t0 = time.perf_counter()
    checks = fn()
    return checks, time.perf_counter() - t0


def run(gpu: bool = True, device: Device | None = None, log: Callable[[str], None] = print
        ) -> Report:
    """Run the self-test and print its tables: the CPU part, then the GPU part where usable.

    Parameters
    ----------
    gpu : bool, default True
        False skips the GPU part.
    device : Device, optional
        Where to run the GPU part (default: :class:`CupyDevice` when
        :func:`fastconv.backend.gpu_status` finds a usable GPU).
    log : callable, default print
        Receives each block of text.

    Returns
    -------
    Report
        Every check; ``report.passed`` is the verdict.

    Examples
    --------
    >>> report = run(gpu=False, log=lambda text: None)
    >>> report.passed, report.gpu
    (True, 'not checked: switched off')
    """
    log("CPU path against the reference loops (fastconv.reference, float64 on the same values);"
        "\nmax error: max |got - expected| / max |expected| over the output and every gradient")
    checks, cpu_seconds = _timed(cpu_checks)
    log(table(checks))
    report = Report(checks, "not checked: switched off", False, {"cpu": cpu_seconds})
    if gpu and device is None:
        usable, reason = gpu_status()
        if not usable:
            report.gpu = f"not checked: {reason}"
        else:
            device = CupyDevice()
    if device is not None:
        log(f"\nGPU: {device.description}\nGPU path against the CPU path (float64 on the same "
            "values), TF32 off except in the 'gpu tf32' rows")
        gpu_part, report.seconds["gpu"] = _timed(lambda: gpu_checks(device))
        log(table(gpu_part))
        report.checks += gpu_part
        report.gpu, report.gpu_checked = device.description, True
    else:
        log(f"\nGPU {report.gpu}")
    parts = ", ".join(f"{name} {s:.1f} s" for name, s in report.seconds.items())
    verdict = (f"all {len(report.checks)} checks passed" if report.passed
               else f"{len(report.failed)} of {len(report.checks)} checks FAILED")
    log(f"\nselftest: {verdict} ({parts})")
    return report
