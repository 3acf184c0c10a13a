"""Run histories, summary tables and learning-curve figures."""

import json

import pytest

from fastconv import runs


def history(model="cnn", lr=1e-3, test_acc=0.98, **config):
    base = dict(model=model, dataset="digits", optimizer="adam", lr=lr, lr_decay=1.0, epochs=2,
                batch_size=64, reg=0.0, dropout=0.0, batchnorm=False, device="cpu", seed=0)
    base.update(config)
    return {"config": base, "loss_history": [2.0, 1.0, 0.5, 0.4], "train_acc_history": [0.8, 0.9],
            "val_acc_history": [0.7, 0.85], "best_val_acc": 0.85, "test_acc": test_acc,
            "top5_error": 0.0, "seconds": 1.25}


def test_history_round_trip_and_errors(tmp_path):
    runs.write_history(tmp_path, history())
    assert runs.read_history(tmp_path)["config"]["model"] == "cnn"
    with pytest.raises(FileNotFoundError, match="not a `fastconv train --out` directory"):
        runs.read_history(tmp_path / "other")
    (tmp_path / "history.json").write_text("{broken")
    with pytest.raises(ValueError, match="not a readable history"):
        runs.read_history(tmp_path)
    (tmp_path / "history.json").write_text(json.dumps({"config": {}}))
    with pytest.raises(ValueError, match="loss_history"):
        runs.read_history(tmp_path)
    hand_edited = dict(history(), config={"lr": 0.1})
    (tmp_path / "history.json").write_text(json.dumps(hand_edited))
    with pytest.raises(ValueError, match="config has no 'model', 'dataset'"):
        runs.read_history(tmp_path)


def test_summary_table_rows_and_models_by_settings_grid():
    hs = [history("cnn", 1e-3, 0.98), history("mlp", 1e-3, 0.96), history("cnn", 1e-2, 0.97),
          dict(history("mlp", 1e-2, 0.95), interrupted=True)]
    table = runs.summary_table(hs, ["a", "b", "c", "d"])
    lines = table.splitlines()
    assert lines[2] == ("| a | cnn | digits | adam | 0.001 | 2 | 64 | 0 | 0 | no | 0.8500 | 0.9800 "
                        "| 0.0000 | 1.2 |")
    assert lines[5].startswith("| d (interrupted) | mlp")
    grid = table.split("\n\n")[1].splitlines()
    assert grid[0] == "| test accuracy | lr=0.001 | lr=0.01 |"
    assert grid[2:] == ["| cnn | 0.9800 | 0.9700 |", "| mlp | 0.9600 | 0.9500 |"]
    assert "\n\n" not in runs.summary_table(hs[:1], ["a"])  # one run: no grid


def test_curves_figure(tmp_path):
    pytest.importorskip("matplotlib")
    assert runs.plot_curves([history()], tmp_path / "one.png") is None
    assert runs.plot_curves([history(), history("mlp")], tmp_path / "two.png",
                            labels=["cnn", "mlp"]) is None
    assert (tmp_path / "two.png").read_bytes()[:4] == b"\x89PNG"
    assert runs.run_label(history(batchnorm=True, dropout=0.2)) == "cnn adam lr=0.001 bn do=0.2"
