"""PyTorch CPU as the test oracle: run an op with autograd, compare, and keep score.

Every comparison against torch goes through :func:`check`, which asserts the
tolerance (relative to the largest magnitude of torch's answer) and records the
case, so the session summary (tests/conftest.py) can quote how many cases were
compared and the largest relative error per dtype.
"""

import warnings

import numpy as np
from hypothesis import HealthCheck, settings

TOLERANCE = {np.dtype(np.float64): 1e-10, np.dtype(np.float32): 1e-4}

# op name -> number of cases compared; dtype name -> largest relative error seen
CASES = {}
WORST = {}


def hypothesis_settings(n):
    """Deterministic hypothesis settings for CI: n fixed examples, no deadline, no database."""
    return settings(max_examples=n, deadline=None, derandomize=True, database=None,
                    suppress_health_check=[HealthCheck.too_slow])


def rel_err(got, want):
    """max |got - want| / max |want| (absolute when want is all zero); shapes must agree."""
    got, want = np.asarray(got), np.asarray(want)
    assert got.shape == want.shape, f"shape {got.shape} != oracle's {want.shape}"
    if want.size == 0:
        return 0.0
    diff = np.abs(got.astype(np.float64) - want.astype(np.float64))
    if np.isnan(diff).any():
        return float("inf")
    return float(diff.max() / max(np.abs(want.astype(np.float64)).max(), 1e-300))


def check(op, dtype, pairs):
    """Assert every (got, want) in ``pairs`` (a dict name -> pair) within the dtype's tolerance.

    Records the largest error per dtype. Call once per compared case and dtype.
    """
    dtype = np.dtype(dtype)
    tol = TOLERANCE[dtype]
    errors = {name: rel_err(got, want) for name, (got, want) in pairs.items()}
    WORST[dtype.name] = max(WORST.get(dtype.name, 0.0), *errors.values())
    bad = {name: e for name, e in errors.items() if not e <= tol}
    assert not bad, f"{op} {dtype.name}: relative error above {tol:g} vs PyTorch: {bad}"


def count_case(op):
    """Count one geometry compared with torch (in every dtype) for the session summary."""
    CASES[op] = CASES.get(op, 0) + 1


def summary_lines():
    """Lines for the terminal summary: cases per op and the worst error per dtype."""
    if not CASES:
        return []
    per_op = ", ".join(f"{op} {n}" for op, n in sorted(CASES.items()))
    worst = ", ".join(f"{dt} {err:.2e}" for dt, err in sorted(WORST.items()))
    return [f"PyTorch oracle: {sum(CASES.values())} hypothesis cases compared ({per_op})",
            f"PyTorch oracle: largest relative error per dtype: {worst}"]


def _leaf(torch, a):
    """A torch leaf tensor sharing ``a``'s values and dtype, tracking gradients."""
    return torch.from_numpy(np.ascontiguousarray(a)).requires_grad_(True)


def _grad(t):
    return None if t is None else t.grad.numpy()


def conv2d(torch, x, w, b, dout_fn, stride=1, padding=0, dilation=1, groups=1):
    """torch's conv2d and its gradients: (out, dout, dx, dw, db).

    ``dout_fn(shape)`` makes the upstream gradient once the output shape is known.
    """
    tx, tw = _leaf(torch, x), _leaf(torch, w)
    tb = None if b is None else _leaf(torch, b)
    with warnings.catch_warnings():  # torch notes that even "same" padding copies the input
        warnings.simplefilter("ignore", UserWarning)
        out = torch.nn.functional.conv2d(tx, tw, tb, stride=stride, padding=padding,
                                         dilation=dilation, groups=groups)
    dout = dout_fn(tuple(out.shape))
    out.backward(torch.from_numpy(dout))
    return out.detach().numpy(), dout, _grad(tx), _grad(tw), _grad(tb)


def max_pool2d(torch, x, dout_fn, kernel_size, stride=None, padding=0, dilation=1,
               ceil_mode=False):
    """torch's max_pool2d with indices and its gradient: (out, indices, dout, dx)."""
    tx = _leaf(torch, x)
    out, idx = torch.nn.functional.max_pool2d(tx, kernel_size, stride=stride, padding=padding,
                                              dilation=dilation, ceil_mode=ceil_mode,
                                              return_indices=True)
    dout = dout_fn(tuple(out.shape))
    out.backward(torch.from_numpy(dout))
    return out.detach().numpy(), idx.numpy(), dout, _grad(tx)


def avg_pool2d(torch, x, dout_fn, kernel_size, stride=None, padding=0, ceil_mode=False,
               count_include_pad=True):
    """torch's avg_pool2d and its gradient: (out, dout, dx)."""
    tx = _leaf(torch, x)
    out = torch.nn.functional.avg_pool2d(tx, kernel_size, stride=stride, padding=padding,
                                         ceil_mode=ceil_mode, count_include_pad=count_include_pad)
    dout = dout_fn(tuple(out.shape))
    out.backward(torch.from_numpy(dout))
    return out.detach().numpy(), dout, _grad(tx)


def adaptive_avg_pool2d(torch, x, dout_fn, output_size):
    """torch's adaptive_avg_pool2d and its gradient: (out, dout, dx)."""
    tx = _leaf(torch, x)
    out = torch.nn.functional.adaptive_avg_pool2d(tx, output_size)
    dout = dout_fn(tuple(out.shape))
    out.backward(torch.from_numpy(dout))
    return out.detach().numpy(), dout, _grad(tx)
