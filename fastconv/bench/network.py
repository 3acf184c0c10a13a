"""One whole training step of fastconv's models against the same networks in PyTorch.

``fastconv bench --network`` runs, per network, batch size and device:

1. fastconv's model is built (``build_model``, seeded) and its PyTorch twin from the
   model's own layer list with its initial weights (:mod:`.twin`). The step is the same
   on both sides: forward in training mode, mean softmax cross-entropy plus the model's
   L2 term ``0.5 * reg * sum(W**2)`` (matched on the torch side; the builders' default
   ``reg=0`` has none), backward, plain SGD update.
2. Outputs-agree check, twice: one step on both sides from the same state must give the
   same loss (relative error), every parameter gradient (norm of the difference over the
   norm of PyTorch's, per parameter) and, after the update, the same eval-mode scores
   (max difference over max value: this covers the updated parameters and running
   statistics), within :data:`TOLERANCE`; first in float64, then in float32 (the timed
   configuration). A case that disagrees is reported as a mismatch and not timed.
3. Warm-up steps, then fastconv and PyTorch steps interleaved by the suite's loop
   (:func:`.runner._time_interleaved`: a settle pause before each CPU step, repeats that
   other processes disturbed left out, medians and ranges, ratio = median of per-repeat
   ratios). PyTorch uses every core this process may run on.
4. A few more steps per side with per-layer-type timers (:mod:`.layer_time`) give the
   shares of the step; they are kept apart from the timed steps, which carry no timers.

Without torch installed only the fastconv side runs, unchecked, and the report says so.
:mod:`.network_report` turns the report into the Markdown table.
"""

import time
from dataclasses import asdict, dataclass

import numpy as np

from ..backend import as_numpy, to_device
from ..nn import build_model
from ..optim import SGD
from . import layer_time, ops, runner
from .machine import describe
from .timing import OtherLoad
from .network_report import network_table
from .report import PRIMARY
from .twin import TorchStep, Twin

__all__ = ["NetworkCase", "NetworkSettings", "network_cases", "run_network", "network_table",
           "run_case", "check_agreement", "build_steps", "TOLERANCE"]

# float64 proves the twin is the same network (rounding alone differs); float32 is the timed
# configuration, where a ReLU mask or a max-pool choice flips wherever a value lies within
# rounding of the threshold, so single gradient elements may differ by whole terms: its
# gradients are compared norm-wise (the max-element error is reported, not gated).
TOLERANCE = {"float64": {"loss": 1e-10, "grads": 1e-8, "scores": 1e-8},
             "float32": {"loss": 1e-4, "grads": 5e-2, "scores": 1e-3}}
TORCH_DEVICE = {"cpu": "cpu", "gpu": "cuda"}
CHECK_WORDS = {"ok": "outputs agree, timed", "mismatch": "outputs disagree, not timed",
               "unchecked": "no PyTorch, fastconv timed unchecked"}


@dataclass(frozen=True)
class NetworkCase:
    """One network at one batch size: ``build_model(model, input_shape, num_classes)``, N images."""

    model: str
    input_shape: tuple
    n: int
    num_classes: int = 10

    def label(self):
        """e.g. ``cnn 64x3x32x32``."""
        return f"{self.model} {'x'.join(str(d) for d in (self.n, *self.input_shape))}"


NETWORKS = (("cnn", (3, 32, 32)), ("convnet", (1, 28, 28)))


def network_cases(quick=False):
    """The standard cases: the VGG-style ``cnn`` on CIFAR-shaped and the course ``convnet``
    on MNIST-shaped input, at N=64 and N=128 (``quick``: N=64 only).

    Parameters
    ----------
    quick : bool
        One batch size instead of two.

    Returns
    -------
    list of NetworkCase
    """
    sizes = (64,) if quick else (64, 128)
    return [NetworkCase(model, shape, n) for model, shape in NETWORKS for n in sizes]


@dataclass
class NetworkSettings:
    """How to run the network benchmark (field names as :class:`.runner.Settings` where shared)."""

    device: str = "auto"           # cpu | gpu | auto (CPU, plus the GPU when usable)
    repeats: int = 10              # clean repeats wanted
    max_repeats: int | None = None  # keep repeating up to this many to get them (None: repeats)
    noise_threshold: float = 0.15  # cores other processes may use during a clean repeat
    warmup: int = 2                # untimed steps per side (after the checked one, if any)
    pause: float = 0.3             # settle time before each timed CPU step, seconds
    profile_repeats: int = 3       # clean steps per side with the per-layer-type timers
    lr: float = 0.01
    reg: float = 0.0               # the model's L2 strength (the builders' default)
    torch: bool = True
    seed: int = 0


class FastconvStep:
    """One fastconv training step: ``model.loss(x, y)`` (forward, loss, backward), then SGD."""

    def __init__(self, model, x, y, lr):
        self.model, self.x, self.y = model, x, y
        self.optimizer = SGD(model.params, lr=lr)

    def loss_and_grads(self):
        """The course interface's ``(loss, grads)`` for the batch (no update)."""
        return self.model.loss(self.x, self.y)

    def update(self, grads):
        """One SGD step on ``grads``."""
        self.optimizer.step(grads)

    def __call__(self):
        self.update(self.loss_and_grads()[1])

    def scores(self):
        """Eval-mode class scores of the batch as NumPy."""
        return as_numpy(self.model.loss(self.x))


def make_batch(case, seed=0, dtype="float32"):
    """Standard-normal images of ``dtype`` and uniform labels for ``case`` (NumPy)."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((case.n, *case.input_shape)).astype(dtype)
    return x, rng.integers(0, case.num_classes, case.n)


def build_steps(case, device, settings, with_torch=True, dtype="float32"):
    """The fastconv step and (``with_torch``) its PyTorch twin's step, from the same weights.

    Parameters
    ----------
    case : NetworkCase
    device : str
        "cpu" or "gpu" (the model's arrays are CuPy arrays and the twin on CUDA there).
    settings : NetworkSettings
        Its ``seed``, ``lr`` and ``reg`` are used.
    with_torch : bool
        Build the twin too.
    dtype : str
        "float32" (timed) or "float64" (the strict check).

    Returns
    -------
    tuple
        ``(FastconvStep, TorchStep or None)``.
    """
    model = build_model(case.model, case.input_shape, case.num_classes, reg=settings.reg,
                        seed=settings.seed, device=device, dtype=dtype)
    x, y = make_batch(case, settings.seed, dtype)
    fastconv = FastconvStep(model, to_device(x, device), to_device(y, device), settings.lr)
    if not with_torch:
        return fastconv, None
    twin = Twin(model, TORCH_DEVICE[device])
    return fastconv, TorchStep(twin, x, y, settings.lr, settings.reg, model.weight_names())


def _norm_error(got, ref):
    """||got - ref|| / ||ref|| in float64 (inf when ``got`` is missing or shaped otherwise)."""
    if got is None or got.shape != ref.shape:
        return float("inf")
    ref64 = ref.astype(np.float64).ravel()
    diff = np.linalg.norm(got.astype(np.float64).ravel() - ref64)
    return float(diff / max(np.linalg.norm(ref64), 1e-300))


def check_agreement(fastconv, torch_step, dtype="float32"):
    """One step on both sides from the same state: do loss, gradients and scores agree?

    Both sides take the step, update included. PyTorch's results are the reference
    each error is scaled by.

    Parameters
    ----------
    fastconv : FastconvStep
    torch_step : TorchStep
    dtype : str
        Which :data:`TOLERANCE` applies: the steps' dtype.

    Returns
    -------
    dict
        ``status`` ("ok" or "mismatch"), ``errors`` (loss; grads: the largest per-parameter
        norm-wise error, at ``worst_grad``; grads_max: the largest element error over the
        array's max, reported only; scores), ``tolerance`` and, for a mismatch, ``reason``.
    """
    tolerance = TOLERANCE[dtype]
    loss, grads = fastconv.loss_and_grads()
    torch_loss = torch_step.loss_and_grads()
    expected = torch_step.twin.grads()
    got = {k: as_numpy(g) for k, g in grads.items()}
    per_param = {k: _norm_error(got.get(k), ref) for k, ref in expected.items()}
    worst = max(per_param, key=per_param.get)
    fastconv.update(grads)
    torch_step.update()
    errors = {"loss": abs(loss - torch_loss) / max(abs(torch_loss), 1e-30),
              "grads": per_param[worst], "grads_max": ops.relative_error(got, expected),
              "scores": ops.relative_error({"scores": fastconv.scores()},
                                           {"scores": torch_step.scores()})}
    result = {"status": "ok", "dtype": dtype, "errors": errors, "tolerance": dict(tolerance),
              "worst_grad": worst}
    failed = [k for k, limit in tolerance.items() if not errors[k] <= limit]
    if failed:
        result["status"] = "mismatch"
        result["reason"] = "; ".join(
            f"{dtype} {k} error {errors[k]:.2e} exceeds {tolerance[k]:.0e}"
            + (f" (worst: {worst})" if k == "grads" else "") for k in failed)
    return result


def _checks(case, device, settings, timed):
    """The float64 check on a pair of its own, then the float32 one on the ``timed`` pair.

    Returns ``{"status", "float64", "float32"}`` and, when either disagrees, ``reason``.
    """
    strict = check_agreement(*build_steps(case, device, settings, dtype="float64"), "float64")
    checks = {"status": "ok", "float64": strict, "float32": check_agreement(*timed, "float32")}
    failed = [checks[d]["reason"] for d in ("float64", "float32") if checks[d]["status"] != "ok"]
    if failed:
        checks.update(status="mismatch", reason="; ".join(failed))
    return checks


def _device_pairs(settings):
    """[(device, fastconv impl, torch impl or None)] for the devices ``settings`` asks for."""
    impls = {impl.name: impl for impl in runner.select_impls(settings)}
    return [(impls[ours].device, impls[ours], impls.get(theirs))
            for ours, theirs in PRIMARY.items() if ours in impls]


def _time_steps(sides, settings):
    """Interleaved timing of ``sides`` [(impl, step)] with the suite's loop.

    Returns ``{impl name: record}`` with ``step`` (median, min, max, samples in ms),
    ``repeats`` and, on fastconv's record when PyTorch ran too, ``ratio``.
    """
    entries = [(impl, ops.Bound(step, None, None), {"impl": impl.name})  # no results() asked
               for impl, step in sides]
    runner._time_interleaved(entries, settings)
    records = {}
    for _, _, rec in entries:
        # the runner's single pass ("fwd") is the whole training step here
        records[rec["impl"]] = {"step": rec["passes"]["fwd"], "repeats": rec["repeats"],
                                "ratio": rec.get("vs_torch", {}).get("fwd")}
    return records


def _profile_round(sides, settings):
    """One profiled step per side, in order; returns (others' cores, {impl name: sample})."""
    with OtherLoad() as load:
        samples = {impl.name: layer_time.profile_step(
            step, install, impl.sync, settings.pause if impl.clock == "cpu" else 0.0)
            for impl, step, install in sides}
    return load.cores, samples


def _profile(sides, settings):
    """Per-layer-type shares of each side's step: ``{impl name: summarize_profile(...)}``.

    As for the timed steps, a round of profiled steps counts when other processes kept
    fewer than ``noise_threshold`` cores busy; rounds go on (as many as the timing may
    take) until ``profile_repeats`` clean ones are in, else every round is used and the
    profile is marked ``noisy``.
    """
    limit = max(settings.profile_repeats, settings.max_repeats or settings.repeats)
    rounds = []
    for _ in range(limit):
        rounds.append(_profile_round(sides, settings))
        clean = [s for cores, s in rounds if cores is None or cores < settings.noise_threshold]
        if len(clean) >= settings.profile_repeats:
            break
    noisy = len(clean) < settings.profile_repeats
    used = [s for _, s in rounds] if noisy else clean
    return {impl.name: dict(layer_time.summarize_profile([s[impl.name] for s in used]),
                            repeats={"timed": len(rounds), "clean": len(clean), "noisy": noisy})
            for impl, _, _ in sides}


def _torch_missing(torch_impl):
    """Why the PyTorch side does not run (None when it does); ``select_impls`` leaves it out
    only when the settings switch PyTorch off."""
    return "PyTorch comparison switched off" if torch_impl is None else torch_impl.reason


def _case_record(case, device, fastconv_impl, torch_impl):
    return {"network": case.model, "label": case.label(), "case": asdict(case),
            "device": device, "dtype": "float32",
            "fastconv": {"impl": fastconv_impl.name, "status": "ok"},
            "torch": {"impl": PRIMARY[fastconv_impl.name], "status": "ok"},
            "check": {"status": "unchecked"}, "ratio": None}


def run_case(case, device, fastconv_impl, torch_impl, settings):
    """Check, time and profile one case on one device; returns its record (a JSON-ready dict).

    Parameters
    ----------
    case : NetworkCase
    device : str
        "cpu" or "gpu".
    fastconv_impl, torch_impl : fastconv.bench.ops.Impl
        The two sides' implementations (clock, sync, availability); ``torch_impl`` may
        be None or unavailable, and then only fastconv runs.
    settings : NetworkSettings

    Returns
    -------
    dict
        ``fastconv`` and ``torch`` side records (``status``, ``step`` timings,
        ``repeats``, ``profile``: :func:`.layer_time.summarize_profile`), ``check``
        (``status`` and the float64 and float32 :func:`check_agreement` results; just
        ``status`` "unchecked" without PyTorch) and ``ratio`` (fastconv / PyTorch, or
        None with ``ratio_missing`` saying why).
    """
    rec = _case_record(case, device, fastconv_impl, torch_impl)
    missing = _torch_missing(torch_impl)
    fastconv, torch_step = build_steps(case, device, settings, with_torch=missing is None)
    rec["parameters"] = int(sum(p.size for p in fastconv.model.params.values()))
    sides = [(fastconv_impl, fastconv, layer_time.fastconv_timers)]
    if missing is None:
        rec["check"] = _checks(case, device, settings, (fastconv, torch_step))
        sides.append((torch_impl, torch_step, layer_time.torch_timers))
    else:
        rec["torch"].update(status="not run", reason=missing)
    if rec["check"]["status"] == "mismatch":
        for side in ("fastconv", "torch"):
            rec[side].update(status="not timed", reason="outputs disagree")
        rec["ratio_missing"] = "outputs disagree: " + rec["check"]["reason"]
        return rec
    timed = _time_steps([(impl, step) for impl, step, _ in sides], settings)
    profiles = _profile(sides, settings)
    for (impl, _, _), side in zip(sides, ("fastconv", "torch")):
        rec[side].update(timed[impl.name], profile=profiles[impl.name])
    rec["ratio"] = rec["fastconv"].pop("ratio")
    rec["torch"].pop("ratio", None)
    if missing:
        rec["ratio_missing"] = missing
    return rec


def run_network(cases, settings, log=print):
    """Run every case on every device ``settings`` asks for; the full report dict.

    Parameters
    ----------
    cases : list of NetworkCase
        Usually :func:`network_cases`.
    settings : NetworkSettings
    log : callable
        Receives progress lines.

    Returns
    -------
    dict
        ``machine`` (:func:`.machine.describe`), ``settings``, ``started``, ``results``
        (one :func:`run_case` record per case and device) and ``seconds``; JSON-ready
        (:func:`.report.write_json` writes it).
    """
    started = time.time()
    pairs = _device_pairs(settings)
    report = {"machine": describe(include_torch=settings.torch), "settings": asdict(settings),
              "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started)),
              "results": []}
    for case in cases:
        for device, fastconv_impl, torch_impl in pairs:
            t0 = time.perf_counter()
            rec = run_case(case, device, fastconv_impl, torch_impl, settings)
            report["results"].append(rec)
            log(f"  {case.label()} {device}: {CHECK_WORDS[rec['check']['status']]}, "
                f"{time.perf_counter() - t0:.1f} s")
    report["seconds"] = time.time() - started
    return report
