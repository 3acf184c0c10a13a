"""The network benchmark: the PyTorch twin, the outputs-agree gate, the shares, the table.

Tiny batches and few repeats; no timing assertions beyond the shares adding up.
"""

import sys

import numpy as np
import pytest

from fastconv.bench import layer_time, network, network_report
from fastconv.bench.twin import Twin
from fastconv.nn import build_model

TINY = (network.NetworkCase("cnn", (3, 32, 32), 2), network.NetworkCase("convnet", (1, 28, 28), 2))
FAST = dict(repeats=2, warmup=0, pause=0.0, profile_repeats=3)


def _steps(case, dtype="float32", **settings):
    return network.build_steps(case, "cpu", network.NetworkSettings(**settings), dtype=dtype)


@pytest.fixture(scope="module")
def report():
    pytest.importorskip("torch")
    return network.run_network(TINY, network.NetworkSettings(device="cpu", **FAST), log=lambda m: None)


def test_standard_cases():
    assert [(c.model, c.input_shape, c.n) for c in network.network_cases()] == [
        ("cnn", (3, 32, 32), 64), ("cnn", (3, 32, 32), 128),
        ("convnet", (1, 28, 28), 64), ("convnet", (1, 28, 28), 128)]
    assert [(c.model, c.n) for c in network.network_cases(quick=True)] == [("cnn", 64), ("convnet", 64)]
    assert TINY[0].label() == "cnn 2x3x32x32"


@pytest.mark.parametrize("case", TINY, ids=lambda c: c.model)
@pytest.mark.parametrize("dtype, limit", [("float64", 1e-10), ("float32", 1e-4)])
def test_twin_reproduces_loss_gradients_and_scores(torch, case, dtype, limit):
    check = network.check_agreement(*_steps(case, dtype, reg=0.05), dtype)
    assert check["status"] == "ok", check
    assert max(check["errors"].values()) < limit


@pytest.mark.parametrize("case", TINY, ids=lambda c: c.model)
def test_a_perturbed_twin_weight_is_a_mismatch(torch, case):
    fastconv, twin_step = _steps(case)
    weight = next(twin_step.twin.module.parameters())  # the first conv's weight
    with torch.no_grad():
        weight[0] += 0.5 * weight.abs().max()
    check = network.check_agreement(fastconv, twin_step)
    assert check["status"] == "mismatch" and "exceeds" in check["reason"]


def test_the_l2_term_must_be_matched(torch):
    fastconv, twin_step = _steps(TINY[1], "float64", reg=0.5)
    twin_step.reg = 0.0  # the torch side forgets the model's regularisation
    check = network.check_agreement(fastconv, twin_step, "float64")
    assert check["status"] == "mismatch" and "loss" in check["reason"]


def test_twin_layout_and_dropout(torch):
    model = build_model("cnn", (3, 8, 8), 10, seed=0)
    twin = Twin(model)
    linear = [link for link in twin.links if link.fastconv == "23.W"][0]
    assert linear.transposed
    np.testing.assert_array_equal(twin.tensor(linear).detach().numpy(), model.params["23.W"].T)
    assert twin.module[1].momentum == model[1].momentum and twin.module[1].eps == model[1].eps
    with pytest.raises(ValueError, match="dropout=0"):
        Twin(build_model("cnn", (3, 8, 8), 10, dropout=0.5))


def test_timers_are_removed_after_a_profiled_step(torch):
    fastconv, twin_step = _steps(TINY[0])
    layer_time.profile_step(fastconv, layer_time.fastconv_timers, lambda: None)
    layer_time.profile_step(twin_step, layer_time.torch_timers, lambda: None)
    assert not any("forward" in vars(layer) or "backward" in vars(layer) for layer in fastconv.model)
    assert not any(m._forward_hooks or m._forward_pre_hooks for m in twin_step.twin.module.modules())
    assert not {"loss_of", "backward", "update"} & set(vars(twin_step))


def test_summarize_profile_takes_median_fractions():
    samples = [(1.0, {"conv fwd": 0.5, "loss": 0.1}), (2.0, {"conv fwd": 0.7, "loss": 0.3}),
               (4.0, {"conv fwd": 1.2, "loss": 0.2})]
    got = layer_time.summarize_profile(samples)
    assert got["step_ms"] == pytest.approx(2000)
    assert list(got["shares"]) == ["conv fwd", "loss", "other"]
    # fractions: conv 0.5, 0.35, 0.3; loss 0.1, 0.15, 0.05; other 0.4, 0.5, 0.65;
    # medians 0.35, 0.1, 0.5, scaled by 1/0.95 to sum to 1
    assert got["shares"] == pytest.approx({"conv fwd": 0.35 / 0.95, "loss": 0.1 / 0.95,
                                           "other": 0.5 / 0.95})
    assert got["layers_ms"]["conv fwd"] == pytest.approx(2000 * 0.35 / 0.95)


def test_shares_sum_to_about_the_whole_step(report):
    for rec in report["results"]:
        assert rec["check"]["status"] == "ok"
        for side in ("fastconv", "torch"):
            profile = rec[side]["profile"]
            expected = set(layer_time.KINDS) - ({"batch norm"} if rec["network"] == "convnet" else set())
            assert set(profile["shares"]) == expected, (rec["label"], side)
            assert sum(profile["shares"].values()) == pytest.approx(1.0)
            assert profile["shares"]["other"] < 0.5  # the timers cover most of the step


def test_table_rows_and_columns(report):
    table = network.network_table(report)
    lines = table.splitlines()
    header = [cell.strip() for cell in lines[0].strip("|").split("|")]
    assert header == list(network_report.COLUMNS)
    assert header[6:] == ["conv fwd", "conv bwd", "batch norm", "ReLU", "pooling", "linear",
                          "loss", "update", "other"]
    rows = [[cell.strip() for cell in line.strip("|").split("|")] for line in lines[2:6]]
    assert [row[:4] for row in rows] == [["cnn", "2x3x32x32", "cpu", "fastconv"],
                                         ["cnn", "2x3x32x32", "cpu", "torch"],
                                         ["convnet", "2x1x28x28", "cpu", "fastconv"],
                                         ["convnet", "2x1x28x28", "cpu", "torch"]]
    assert rows[0][5].endswith("x") and rows[1][5] == ""
    assert rows[2][8] == "–"  # the convnet has no batch norm
    assert lines[6] == "" and all(line.startswith("- ") for line in lines[7:])
    assert "Outputs-agree check" in table


def test_a_mismatch_is_reported_and_not_timed(torch, monkeypatch):
    monkeypatch.setitem(network.TOLERANCE["float64"], "grads", 0.0)
    report = network.run_network(TINY[1:], network.NetworkSettings(device="cpu", **FAST),
                                 log=lambda m: None)
    rec = report["results"][0]
    assert rec["check"]["status"] == "mismatch" and "step" not in rec["fastconv"]
    table = network.network_table(report)
    assert "not timed (outputs disagree)" in table and "missing (outputs disagree" in table


def test_without_torch_the_fastconv_side_runs(monkeypatch):
    monkeypatch.setitem(sys.modules, "torch", None)
    report = network.run_network(TINY[1:], network.NetworkSettings(device="cpu", **FAST),
                                 log=lambda m: None)
    rec = report["results"][0]
    assert rec["fastconv"]["status"] == "ok" and rec["fastconv"]["step"]["median_ms"] > 0
    assert rec["torch"] == {"impl": "torch", "status": "not run", "reason": "torch is not installed"}
    assert rec["ratio"] is None and set(rec["fastconv"]["profile"]["shares"]) >= {"conv fwd", "loss"}
    table = network.network_table(report)
    assert "missing (torch is not installed)" in table
    assert len([line for line in table.splitlines() if line.startswith("| convnet")]) == 1
    assert "fastconv timed alone and unchecked" in table


def test_disturbed_steps_are_marked(monkeypatch):
    monkeypatch.setitem(sys.modules, "torch", None)
    settings = network.NetworkSettings(device="cpu", noise_threshold=-1.0, **FAST)  # none clean
    rec = network.run_network(TINY[1:], settings, log=lambda m: None)["results"][0]
    assert rec["fastconv"]["repeats"]["noisy"] and rec["fastconv"]["profile"]["repeats"] == {
        "timed": 3, "clean": 0, "noisy": True}
    row = network_report.table_rows(rec)[0]
    assert row[4].endswith(" *")


@pytest.mark.gpu
def test_gpu_case_checks_and_times(torch):
    if not torch.cuda.is_available():
        pytest.skip("this torch build sees no CUDA device")
    report = network.run_network(TINY, network.NetworkSettings(device="gpu", **FAST),
                                 log=lambda m: None)
    for rec in report["results"]:
        assert rec["device"] == "gpu" and rec["check"]["status"] == "ok", rec["check"]
        assert rec["ratio"] > 0
