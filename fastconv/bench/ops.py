"""How each benchmarked op is called by each implementation, behind one small interface.

An implementation (:class:`Impl`) binds an op to inputs and returns a :class:`Bound` with
``forward()``, ``backward()`` (None for single-pass ops) and ``results()`` (NumPy arrays
named out, dx, dw, db), so the runner can check and time every implementation alike:

- ``fastconv`` / ``fastconv-gpu``: fastconv's public functions on NumPy / CuPy arrays;
- ``loop``: :mod:`fastconv.reference`, the plain loops (same names and signatures);
- ``torch`` / ``torch-cuda``: ``torch.nn.functional`` with autograd, when installed.
"""

import math

import numpy as np

from ..backend import as_numpy, gpu_status

SINGLE_PASS_OPS = ("im2col", "col2im")


def make_inputs(case, dtype, seed=0):
    """Random NumPy inputs of ``dtype`` for ``case``: x (or cols), w, b, dout as the op needs."""
    rng = np.random.default_rng(seed)
    s = case.shape
    oh, ow = s.out_hw

    def normal(*shape, scale=1.0):
        return (rng.standard_normal(shape) * scale).astype(dtype)

    if case.op == "conv2d":
        fan_in = s.c * s.k * s.k
        return {"x": normal(s.n, s.c, s.h, s.w), "w": normal(s.f, s.c, s.k, s.k, scale=fan_in ** -0.5),
                "b": normal(s.f), "dout": normal(s.n, s.f, oh, ow)}
    if case.op in ("max_pool2d", "avg_pool2d"):
        return {"x": normal(s.n, s.c, s.h, s.w), "dout": normal(s.n, s.c, oh, ow)}
    if case.op == "im2col":
        return {"x": normal(s.n, s.c, s.h, s.w)}
    if case.op == "col2im":
        return {"cols": normal(s.n, s.c * s.k * s.k, oh * ow)}
    raise ValueError(f"unknown op {case.op!r}")


def batch_slice(inputs, n):
    """The first ``n`` images of every batched input (weights and bias unchanged)."""
    return {k: (v if k in ("w", "b") else v[:n]) for k, v in inputs.items()}


def flops(case, pass_name):
    """Floating-point operations of a conv pass (forward GEMM; backward = dx + dw GEMMs)."""
    if case.op != "conv2d":
        return None
    fwd = case.shape.forward_flops()
    return {"fwd": fwd, "bwd": 2 * fwd, "fwd+bwd": 3 * fwd}[pass_name]


def bytes_moved(case, pass_name, itemsize):
    """Bytes read plus written by a memory-bound pass (pools, im2col, col2im): its inputs and outputs."""
    if case.op == "conv2d":
        return None
    s = case.shape
    oh, ow = s.out_hw
    image = s.n * s.c * s.h * s.w
    small = s.n * s.c * oh * ow
    if case.op in ("im2col", "col2im"):
        per_pass = image + small * s.k * s.k
    else:
        per_pass = image + small
    passes = {"fwd": 1, "bwd": 1, "fwd+bwd": 2}[pass_name]
    return per_pass * passes * itemsize


class Bound:
    """One op bound to one implementation's inputs: forward, backward, results."""

    def __init__(self, forward, backward, collect):
        self._forward, self._backward, self._collect = forward, backward, collect
        self.state = self.grads = None
        self.has_backward = backward is not None

    def forward(self):
        """Run the forward pass (keeps its output and cache)."""
        self.state = self._forward()

    def backward(self):
        """Run the backward pass on the last forward's cache."""
        self.grads = self._backward(self.state)

    def results(self):
        """The last outputs as NumPy arrays: a dict with out and dx/dw/db where they exist."""
        collected = self._collect(self.state, self.grads)
        return {k: as_numpy(v) for k, v in collected.items() if v is not None}


def _fastconv_api_bind(mod, case, a):
    """Bind an op of a module with fastconv's API (fastconv itself or fastconv.reference)."""
    s = case.shape
    if case.op == "conv2d":
        return Bound(lambda: mod.conv2d_forward(a["x"], a["w"], a["b"], s.stride, s.pad),
                     lambda st: mod.conv2d_backward(a["dout"], st[1]),
                     lambda st, g: {"out": st[0], "dx": g and g[0], "dw": g and g[1], "db": g and g[2]})
    if case.op in ("max_pool2d", "avg_pool2d"):
        forward = getattr(mod, case.op + "_forward")
        backward = getattr(mod, case.op + "_backward")
        return Bound(lambda: forward(a["x"], s.k, s.stride, s.pad),
                     lambda st: backward(a["dout"], st[1]),
                     lambda st, g: {"out": st[0], "dx": g})
    if case.op == "im2col":
        return Bound(lambda: mod.im2col(a["x"], s.k, s.stride, s.pad), None,
                     lambda st, g: {"out": st})
    if case.op == "col2im":
        shape = (a["cols"].shape[0], s.c, s.h, s.w)
        return Bound(lambda: mod.col2im(a["cols"], shape, s.k, s.stride, s.pad), None,
                     lambda st, g: {"out": st})
    raise ValueError(f"unknown op {case.op!r}")


def _torch_bind(torch, device, case, arrays):
    F = torch.nn.functional
    s = case.shape
    needs_grad = case.op not in SINGLE_PASS_OPS
    t = {k: torch.from_numpy(np.ascontiguousarray(v)).to(device) for k, v in arrays.items()}
    for k in ("x", "w", "b"):
        if k in t and needs_grad:
            t[k].requires_grad_(True)
    if case.op == "conv2d":
        params = (t["x"], t["w"], t["b"])
        forward = lambda: F.conv2d(*params, stride=s.stride, padding=s.pad)  # noqa: E731
    elif case.op == "max_pool2d":
        params = (t["x"],)
        forward = lambda: F.max_pool2d(t["x"], s.k, s.stride, s.pad)  # noqa: E731
    elif case.op == "avg_pool2d":
        params = (t["x"],)
        forward = lambda: F.avg_pool2d(t["x"], s.k, s.stride, s.pad)  # noqa: E731
    elif case.op == "im2col":
        return Bound(lambda: F.unfold(t["x"], s.k, padding=s.pad, stride=s.stride), None,
                     lambda st, g: {"out": st.detach().cpu().numpy()})
    elif case.op == "col2im":
        return Bound(lambda: F.fold(t["cols"], (s.h, s.w), s.k, padding=s.pad, stride=s.stride),
                     None, lambda st, g: {"out": st.detach().cpu().numpy()})
    else:
        raise ValueError(f"unknown op {case.op!r}")

    def collect(out, grads):
        result = {"out": out.detach().cpu().numpy()}
        if grads is not None:
            result.update(zip(("dx", "dw", "db"), (g.cpu().numpy() for g in grads)))
        return result

    return Bound(forward, lambda out: torch.autograd.grad(out, params, t["dout"]), collect)


class Impl:
    """An implementation: a name, a device, a clock kind and a way to bind ops to inputs."""

    def __init__(self, name, device, clock, bind, reason=None):
        self.name, self.device, self.clock, self._bind = name, device, clock, bind
        self.reason = reason  # why it is unavailable (None when available)

    @property
    def available(self):
        """True when this implementation can run here."""
        return self.reason is None

    def bind(self, case, arrays):
        """Move NumPy ``arrays`` to this implementation's device and bind ``case``'s op."""
        return self._bind(case, arrays)

    def sync(self):
        """Wait for queued device work (no-op on the CPU)."""
        if self.clock == "cupy":
            import cupy
            cupy.cuda.Device().synchronize()
        elif self.clock == "torch-cuda":
            import torch
            torch.cuda.synchronize()


def _import_torch():
    try:
        import torch
    except ImportError:
        return None
    return torch


def fastconv_cpu():
    """fastconv's vectorised NumPy path."""
    import fastconv
    return Impl("fastconv", "cpu", "cpu", lambda case, a: _fastconv_api_bind(fastconv, case, a))


def fastconv_gpu():
    """fastconv on CuPy arrays (unavailable, with the reason, when no GPU is usable)."""
    ok, reason = gpu_status()

    def bind(case, arrays):
        import cupy

        import fastconv
        return _fastconv_api_bind(fastconv, case, {k: cupy.asarray(v) for k, v in arrays.items()})

    return Impl("fastconv-gpu", "gpu", "cupy", bind, None if ok else reason)


def loop():
    """The plain nested loops of fastconv.reference."""
    from .. import reference
    return Impl("loop", "cpu", "cpu", lambda case, a: _fastconv_api_bind(reference, case, a))


def torch_cpu(threads=None):
    """PyTorch's CPU ops (all cores unless ``threads``), or unavailable without torch."""
    torch = _import_torch()
    if torch is None:
        return Impl("torch", "cpu", "cpu", None, "torch is not installed")
    import os
    torch.set_num_threads(threads or len(os.sched_getaffinity(0)))
    return Impl("torch", "cpu", "cpu", lambda case, a: _torch_bind(torch, "cpu", case, a))


def torch_cuda():
    """PyTorch on CUDA (cuDNN), or unavailable with the reason."""
    torch = _import_torch()
    if torch is None:
        return Impl("torch-cuda", "gpu", "torch-cuda", None, "torch is not installed")
    if not torch.cuda.is_available():
        return Impl("torch-cuda", "gpu", "torch-cuda", None, "this torch build sees no CUDA device")
    return Impl("torch-cuda", "gpu", "torch-cuda", lambda case, a: _torch_bind(torch, "cuda", case, a))


def _f64(arrays):
    return {k: v.astype(np.float64) for k, v in arrays.items()}


def torch_oracle():
    """PyTorch CPU in float64: the independent oracle every timed result is checked against."""
    torch = _import_torch()
    if torch is None:
        return None
    return Impl("torch-float64", "cpu", "cpu", lambda case, a: _torch_bind(torch, "cpu", case, _f64(a)))


def loop_oracle():
    """The reference loops in float64: the oracle when torch is missing (run on a batch slice)."""
    from .. import reference
    return Impl("loop-float64", "cpu", "cpu",
                lambda case, a: _fastconv_api_bind(reference, case, _f64(a)))


def relative_error(got, expected):
    """max |got - expected| / max |expected| over every array the oracle gives.

    An array the oracle gives and ``got`` lacks (a gradient returned as None)
    is a mismatch: infinite error.
    """
    worst = 0.0
    for key, ref in expected.items():
        if key not in got:
            return math.inf
        val = got[key]
        if val.shape != ref.shape:
            return math.inf
        ref64 = ref.astype(np.float64)
        scale = max(float(np.max(np.abs(ref64))) if ref64.size else 0.0, 1e-30)
        diff = np.abs(val.astype(np.float64) - ref64)
        if diff.size and not np.isfinite(diff).all():
            return math.inf
        worst = max(worst, float(diff.max()) / scale if diff.size else 0.0)
    return worst


TOLERANCE = {"float32": 1e-4, "float64": 1e-10}
