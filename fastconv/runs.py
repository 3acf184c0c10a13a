"""Training runs on disk: the history JSON, learning-curve figures and summary tables.

``fastconv train --out DIR`` writes ``DIR/history.json`` (config, per-iteration loss,
per-epoch accuracies, test results), ``DIR/learning_curves.png`` and
``DIR/checkpoint.npz``; ``fastconv report DIR...`` reads the histories back.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from typing import Any

from .checkpoint import atomic_file

HISTORY = "history.json"
CURVES = "learning_curves.png"
CHECKPOINT = "checkpoint.npz"
SETTING_KEYS = ("dataset", "optimizer", "lr", "lr_decay", "epochs", "batch_size", "reg",
                "dropout", "batchnorm", "device", "seed")

History = Mapping[str, Any]  # a run's history.json, as read_history returns it


def write_history(directory: str | os.PathLike[str], history: History) -> str:
    """Write ``history`` (a JSON-ready dict) to ``directory/history.json`` atomically.

    Runs writing into one directory at once each leave a whole file, the last
    one written.

    Parameters
    ----------
    directory : str or os.PathLike
        The run's ``--out`` directory.
    history : mapping
        Config, histories and results; JSON-serialisable.

    Returns
    -------
    str
        The history file's path.

    Raises
    ------
    TypeError
        For a value JSON cannot hold; the previous file is kept then.

    Examples
    --------
    >>> import json, os, tempfile
    >>> from fastconv.runs import write_history
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     path = write_history(tmp, {"loss_history": [2.3, 1.9]})
    ...     with open(path) as f:
    ...         os.path.basename(path), json.load(f)
    ('history.json', {'loss_history': [2.3, 1.9]})
    """
    # Through atomic_file: a reader, or a run writing at the same time, never sees half a file.
    path = os.path.join(directory, HISTORY)
    with atomic_file(path) as f:
        f.write(json.dumps(history, indent=1).encode("utf-8"))
    return path


def read_history(directory: str | os.PathLike[str]) -> dict[str, Any]:
    """Read a run's history back, checked for the entries ``fastconv report`` uses.

    Parameters
    ----------
    directory : str or os.PathLike
        A ``fastconv train --out`` directory.

    Returns
    -------
    dict
        The history: ``config`` (model and :data:`SETTING_KEYS`),
        ``loss_history``, ``train_acc_history``, ``val_acc_history`` and any results.

    Raises
    ------
    FileNotFoundError
        When ``directory`` has no history file.
    ValueError
        Naming the file, when it is no JSON or lacks an entry.

    Examples
    --------
    >>> import tempfile
    >>> from fastconv.runs import SETTING_KEYS, read_history, write_history
    >>> config = {"model": "mlp", **{key: 0 for key in SETTING_KEYS}}
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     _ = write_history(tmp, {"config": config, "loss_history": [2.3],
    ...                             "train_acc_history": [], "val_acc_history": []})
    ...     read_history(tmp)["config"]["model"]
    'mlp'
    """
    path = os.path.join(directory, HISTORY)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{directory} has no {HISTORY}: not a `fastconv train --out` directory")
    try:
        with open(path) as f:
            history = json.load(f)
    except (OSError, ValueError) as exc:
        raise ValueError(f"{path} is not a readable history file: {exc}") from exc
    for key in ("config", "loss_history", "train_acc_history", "val_acc_history"):
        if key not in history:
            raise ValueError(f"{path} has no {key!r} entry")
    missing = [k for k in ("model",) + SETTING_KEYS if k not in history["config"]]
    if missing:
        raise ValueError(f"{path}: its config has no {', '.join(map(repr, missing))} entry")
    return history


def _pyplot():
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    return plt


NO_MATPLOTLIB = "no figure: matplotlib is not installed (pip install \"fastconv[plot]\")"


def _draw(axes, history, label):
    loss = history["loss_history"]
    axes[0].plot(range(1, len(loss) + 1), loss, alpha=0.35 if label is None else 0.8,
                 label=label)
    epochs = range(1, len(history["val_acc_history"]) + 1)
    if label is None:
        axes[1].plot(epochs, history["train_acc_history"], "o-", label="train")
        axes[1].plot(epochs, history["val_acc_history"], "s-", label="validation")
    else:
        line, = axes[1].plot(epochs, history["val_acc_history"], "o-", label=f"{label} val")
        axes[1].plot(epochs, history["train_acc_history"], ":", color=line.get_color())


def plot_curves(histories: Sequence[History], path: str | os.PathLike[str],
                labels: Sequence[str] | None = None) -> str | None:
    """Loss per iteration and train/validation accuracy per epoch for one or more runs.

    One run: loss, train and validation accuracy. Several: one colour per run (solid
    validation, dotted train).

    Parameters
    ----------
    histories : sequence of mapping
        The runs' histories (``loss_history``, ``train_acc_history``, ``val_acc_history``).
    path : str or os.PathLike
        The figure's file; its format follows the extension (``.png``).
    labels : sequence of str, optional
        One legend label per run (default "1", "2", ...).

    Returns
    -------
    str or None
        None when the figure was written, else :data:`NO_MATPLOTLIB` (the
        ``plot`` extra is not installed).

    Examples
    --------
    >>> import os, tempfile
    >>> from fastconv.runs import NO_MATPLOTLIB, plot_curves
    >>> run = {"loss_history": [2.3, 1.9, 1.6], "train_acc_history": [0.5],
    ...        "val_acc_history": [0.4]}
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     message = plot_curves([run], os.path.join(tmp, "curves.png"))
    ...     written = os.path.isfile(os.path.join(tmp, "curves.png"))
    >>> written if message is None else message == NO_MATPLOTLIB
    True
    """
    plt = _pyplot()
    if plt is None:
        return NO_MATPLOTLIB
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    labels = labels or [str(i + 1) for i in range(len(histories))]
    for history, label in zip(histories, labels):
        _draw(axes, history, None if len(histories) == 1 else label)
    axes[0].set(xlabel="iteration", ylabel="training loss", title="loss")
    axes[1].set(xlabel="epoch", ylabel="accuracy", title="accuracy")
    axes[1].legend(fontsize=8)
    if len(histories) > 1:
        axes[0].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return None


def run_label(history: History) -> str:
    """Short name of a run: model plus the settings that distinguish it.

    Parameters
    ----------
    history : mapping
        A run's history; its ``config`` names model, optimizer, lr and
        optionally batchnorm and dropout.

    Returns
    -------
    str
        "<model> <optimizer> lr=<lr>", then " bn" and " do=<dropout>" when used.

    Examples
    --------
    >>> from fastconv.runs import run_label
    >>> run_label({"config": {"model": "cnn", "optimizer": "adam", "lr": 0.001,
    ...                       "batchnorm": True, "dropout": 0.0}})
    'cnn adam lr=0.001 bn'
    """
    c = history["config"]
    return f"{c['model']} {c['optimizer']} lr={c['lr']:g}" + (" bn" if c.get("batchnorm") else "") + (
        f" do={c['dropout']:g}" if c.get("dropout") else "")


def _fmt(value, digits=4):
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def summary_table(histories: Sequence[History], names: Sequence[str]) -> str:
    """A Markdown table of runs, with a models x settings grid of test accuracy for several.

    Parameters
    ----------
    histories : sequence of mapping
        The runs' histories, as :func:`read_history` returns them.
    names : sequence of str
        One name per run (its directory, say).

    Returns
    -------
    str
        One row per run (settings, best validation and test accuracy, top-5
        error, seconds), then, for several runs, the grid over the settings
        that vary.

    Examples
    --------
    >>> from fastconv.runs import SETTING_KEYS, summary_table
    >>> config = {"model": "mlp", **{key: 0 for key in SETTING_KEYS}}
    >>> print(summary_table([{"config": config, "test_acc": 0.9}], ["run1"]).splitlines()[2])
    | run1 | mlp | 0 | 0 | 0 | 0 | 0 | 0 | 0 | no | – | 0.9000 | – | – |
    """
    lines = ["| run | model | dataset | optimizer | lr | epochs | batch | reg | dropout | batchnorm "
             "| best val acc | test acc | top-5 error | seconds |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for name, h in zip(names, histories):
        c = h["config"]
        settings = [c["model"], c["dataset"], c["optimizer"], f"{c['lr']:g}", c["epochs"],
                    c["batch_size"], f"{c['reg']:g}", f"{c['dropout']:g}",
                    "yes" if c["batchnorm"] else "no"]
        results = [_fmt(h.get("best_val_acc")), _fmt(h.get("test_acc")),
                   _fmt(h.get("top5_error")), _fmt(h.get("seconds"), 1)]
        label = f"{name} (interrupted)" if h.get("interrupted") else name
        lines.append("| " + " | ".join(str(v) for v in [label] + settings + results) + " |")
    grid = _grid(histories)
    if grid:
        lines += ["", grid]
    return "\n".join(lines)


def _grid(histories):
    """Models x settings (the config values that vary across runs) of test accuracy."""
    if len(histories) < 2:
        return ""
    varying = [k for k in SETTING_KEYS if len({str(h["config"].get(k)) for h in histories}) > 1]

    def setting(h):
        return ", ".join(f"{k}={h['config'].get(k)}" for k in varying) or "default"

    models = list(dict.fromkeys(h["config"]["model"] for h in histories))
    settings = list(dict.fromkeys(setting(h) for h in histories))
    cells = {(h["config"]["model"], setting(h)): h.get("test_acc") for h in histories}
    lines = ["| test accuracy | " + " | ".join(settings) + " |", "|---|" + "---|" * len(settings)]
    for model in models:
        lines.append(f"| {model} | " + " | ".join(_fmt(cells.get((model, s))) for s in settings) + " |")
    return "\n".join(lines)
