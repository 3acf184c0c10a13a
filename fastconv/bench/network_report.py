"""The network benchmark's Markdown table: ms per training step, fastconv / PyTorch, shares.

One row per side of each case (the PyTorch row is left out where PyTorch did not run),
then notes: the machine, how the steps were timed, how the shares were measured, the
outputs-agree errors, and every case that was not timed or not compared.
"""

from .layer_time import KINDS

COLUMNS = ("network", "input (N x C x H x W)", "device", "impl", "ms / step, median (min–max)",
           "time / PyTorch") + KINDS


def _ms(value):
    """Three significant digits, without an exponent for steps of a second or more."""
    return f"{value:.0f}" if value >= 100 else f"{value:.3g}"


def _ms_cell(side):
    if side["status"] != "ok":
        return f"not timed ({side['reason']})"
    step = side["step"]
    return (f"{_ms(step['median_ms'])} ({_ms(step['min_ms'])}–{_ms(step['max_ms'])})"
            + (" *" if side["repeats"]["noisy"] else ""))


def _ratio_cell(rec):
    if rec["ratio"] is not None:
        return f"{rec['ratio']:.2f}x"
    return f"missing ({rec['ratio_missing']})"


def _share_cells(side):
    """One percentage per kind of :data:`.layer_time.KINDS`; "–" where the network has none."""
    shares = side.get("profile", {}).get("shares", {})
    return [_percent(shares[kind]) if kind in shares else "–" for kind in KINDS]


def _percent(share):
    """``12%``; ``<1%`` for a part that took time but rounds to nothing."""
    return "<1%" if 0 < share < 0.005 else f"{100 * share:.0f}%"


def table_rows(rec):
    """The table's rows (lists of cells, :data:`COLUMNS` order) for one case record."""
    case = rec["case"]
    head = [rec["network"], "x".join(str(d) for d in (case["n"], *case["input_shape"])),
            rec["device"]]
    rows = [head + [rec["fastconv"]["impl"], _ms_cell(rec["fastconv"]), _ratio_cell(rec)]
            + _share_cells(rec["fastconv"])]
    if rec["torch"]["status"] != "not run":
        rows.append(head + [rec["torch"]["impl"], _ms_cell(rec["torch"]), ""]
                    + _share_cells(rec["torch"]))
    return rows


def _machine_note(m):
    blas = ", ".join(f"{b['library']} {b['version'] or ''}, {b['threads'] or '?'} threads"
                     for b in m["blas"])
    torch = m.get("torch", "not used")
    if "torch_threads" in m:
        torch += f", {m['torch_threads']} threads"
    return (f"Machine: {m['cpu']}, {m['cores']} cores; NumPy {m['numpy']} ({blas}); "
            f"PyTorch {torch}; GPU: {m['gpu']}.")


def _method_note(s):
    loss = (f"plus the L2 term 0.5 * {s['reg']:g} * sum(W**2)" if s["reg"]
            else "without an L2 term (reg=0, the model builders' default)")
    return (f"One step: forward in training mode, softmax cross-entropy {loss}, backward, "
            f"SGD update (lr {s['lr']:g}), float32, seeded weights and random data. Medians "
            f"and ranges over interleaved repeats ({s['repeats']} clean ones wanted, at most "
            f"{s['max_repeats'] or s['repeats']} timed) after {s['warmup']} warm-up steps, "
            f"{s['pause']:g} s settle pause before each CPU step; * marks cases with fewer "
            "than 3 clean repeats (other processes used "
            f"< {s['noise_threshold']:g} cores), whose statistics use every repeat. "
            "time / PyTorch: median of per-repeat ratios (< 1: fastconv is faster).")


def _shares_note(report):
    profiled = [f"{rec['label']} {side['impl']} {_ms(side['profile']['step_ms'])}"
                + (" *" if side["profile"]["repeats"]["noisy"] else "")
                for rec in report["results"] for side in (rec["fastconv"], rec["torch"])
                if "profile" in side]
    return (f"Shares of the step: medians over {report['settings']['profile_repeats']} further "
            "clean steps per side with wall-clock timers around each layer's forward and "
            "backward (fastconv: the model's own layers, or each op the course convnet calls; "
            "PyTorch: module hooks, and a hook on each layer's output gradient marking where "
            "its backward starts), the loss and the update; other: the rest of the step "
            "(Python glue, flatten, the gradient dict). Those steps took (ms; * fewer clean "
            "steps than asked, every one used): " + ", ".join(profiled) + ".")


def _check_note(report):
    checked = [rec["check"] for rec in report["results"] if "float32" in rec["check"]]
    if not checked:
        return "Outputs not checked: PyTorch did not run."
    worst = {dtype: {key: max(c[dtype]["errors"][key] for c in checked)
                     for key in ("loss", "grads", "grads_max", "scores")}
             for dtype in ("float64", "float32")}
    tol = checked[0]["float32"]["tolerance"]
    return ("Outputs-agree check before timing: loss, every parameter gradient (norm-wise) and "
            "the eval-mode scores after the update, in float64 and in float32 (tolerances "
            f"{tol['loss']:g}, {tol['grads']:g}, {tol['scores']:g}: in float32 a ReLU mask or a "
            "max-pool choice flips wherever a value lies within rounding of the threshold). "
            "Largest errors: " + "; ".join(
                f"{dtype} loss {w['loss']:.1e}, gradients {w['grads']:.1e} (largest element "
                f"{w['grads_max']:.1e}), scores {w['scores']:.1e}" for dtype, w in worst.items())
            + ".")


def _case_notes(report):
    out = []
    for rec in report["results"]:
        where = f"{rec['label']} {rec['device']}"
        if rec["check"]["status"] == "mismatch":
            out.append(f"{where}: outputs disagree, not timed: {rec['check']['reason']}.")
        elif rec["torch"]["status"] == "not run":
            out.append(f"{where}: PyTorch not run ({rec['torch']['reason']}); fastconv timed "
                       "alone and unchecked.")
    return out


def network_notes(report):
    """The lines under the table, each a sentence or a few."""
    s = report["settings"]
    return ([_machine_note(report["machine"]), _method_note(s), _shares_note(report),
             _check_note(report)] + _case_notes(report))


def network_table(report):
    """The network benchmark as a Markdown table followed by its notes.

    Parameters
    ----------
    report : dict
        What :func:`.network.run_network` returns.

    Returns
    -------
    str
        One row per side of each case: ms per step (median and range), fastconv / PyTorch
        (on fastconv's row; "missing (why)" where PyTorch did not run or outputs
        disagree) and the share of the step per layer type; then the notes as bullets.
    """
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    for rec in report["results"]:
        lines += ["| " + " | ".join(row) + " |" for row in table_rows(rec)]
    return "\n".join(lines + [""] + ["- " + note for note in network_notes(report)])
