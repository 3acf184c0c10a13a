"""Comparisons with an oracle where the answer may cancel to (nearly) zero.

A batchnorm dx over two samples, or the loss of a confidently right score, is a
difference of terms much larger than the result, so its rounding error is
relative to those terms, not to the result. ``check_at_scale`` measures
``max|got - want|`` against ``max(max|want|, scale)``, where ``scale`` is the
size of the terms that cancel, with the tolerances of tests/torch_oracle.py.
"""

import numpy as np

from torch_oracle import TOLERANCE


def check_at_scale(op, dtype, pairs):
    """Assert every ``name: (got, want, scale)`` in ``pairs`` within the dtype's tolerance."""
    tol = TOLERANCE[np.dtype(dtype)]
    bad = {}
    for name, (got, want, scale) in pairs.items():
        got, want = np.asarray(got, np.float64), np.asarray(want, np.float64)
        assert got.shape == want.shape, f"{op} {name}: shape {got.shape} != {want.shape}"
        err = np.abs(got - want).max(initial=0.0) / max(np.abs(want).max(initial=0.0), scale,
                                                         1e-300)
        if not err <= tol:
            bad[name] = err
    assert not bad, f"{op} {np.dtype(dtype).name}: error above {tol:g} at scale: {bad}"
