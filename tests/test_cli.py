"""The `fastconv` command: exit statuses, one-line errors, and smoke runs of bench, train, report, info."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from fastconv import cli
from fastconv.backend import gpu_available
from fastconv.checkpoint import load_arrays


def run_main(capsys, *argv):
    """Run the CLI in-process; return (exit status, stdout, stderr)."""
    try:
        status = cli.main(list(argv))
    except SystemExit as exc:  # argparse exits on parse errors
        status = exc.code
    out, err = capsys.readouterr()
    return status, out, err


BAD = [
    (["train", "--epochs", "-1"], "--epochs: must be >= 1, got -1"),
    (["train", "--epochs", "0"], "--epochs: must be >= 1"),
    (["train", "--lr", "0"], "--lr: must be > 0, got 0"),
    (["train", "--lr", "-0.1"], "--lr: must be > 0"),
    (["train", "--lr", "fast"], "expected a number, got 'fast'"),
    (["train", "--lr", "inf"], "--lr: must be a finite number, got inf"),  # trained to NaN
    (["train", "--reg", "1e400"], "--reg: must be a finite number"),
    (["train", "--seed", "-1"], "--seed: must be >= 0, got -1"),  # NumPy's seed rule
    # 2**63: the checkpoint's int64 (it used to fail there, after an epoch)
    (["train", "--seed", "99999999999999999999999"], "--seed: must be < 9223372036854775808"),
    (["bench", "--pause", "inf"], "--pause: must be a finite number"),
    (["train", "--dropout", "1"], "--dropout: must be >= 0 and < 1"),
    (["train", "--model", "resnet"], "invalid choice: 'resnet'"),
    (["train", "--model", "linear", "--batchnorm"], "apply to mlp and cnn"),
    (["train", "--dataset", "mnist"], "needs --data-dir"),
    (["train", "--dataset", "cifar10", "--data-dir", "no/such/dir"], "no/such/dir does not exist"),
    (["bench", "--repeats", "0"], "--repeats: must be >= 1"),
    (["bench", "--shapes", "1,2,3"], "expected 8 for a convolution"),
    (["bench", "--ops", "conv3d"], "invalid choice: 'conv3d'"),
    (["bench", "--breakdown", "--ops", "im2col"], "--breakdown covers conv2d, max_pool2d"),
    (["report", "no/such/run"], "has no history.json"),
    (["bench", "--json", "no/such/dir/b.json"], "--json no/such/dir/b.json: directory"),
    (["train", "--out", "/dev/null/run"], "--out /dev/null/run: "),
    (["frobnicate"], "invalid choice: 'frobnicate'"),
    ([], "required"),
]


@pytest.mark.parametrize("argv, message", BAD)
def test_bad_input_exits_2_with_one_line(capsys, argv, message):
    status, out, err = run_main(capsys, *argv)
    assert status == 2
    assert message in err
    assert len(err.strip().splitlines()) == 1, err


@pytest.mark.skipif(gpu_available(), reason="a GPU is usable here")
@pytest.mark.parametrize("command", [["train", "--device", "gpu"], ["bench", "--device", "gpu"]])
def test_missing_gpu_exits_2(capsys, command):
    status, _, err = run_main(capsys, *command)
    assert status == 2 and "GPU" in err and len(err.strip().splitlines()) == 1


def test_info(capsys):
    status, out, _ = run_main(capsys, "info")
    assert status == 0
    assert out.startswith("fastconv ")
    assert "NumPy " + np.__version__ in out and "BLAS:" in out
    assert "GPU: " in out and "workspace limit: 256 MiB" in out


def test_bench_small_custom_shapes_writes_json_markdown_and_chart(capsys, tmp_path):
    status, out, err = run_main(
        capsys, "bench", "--quick", "--shapes", "a=4,3,10,10,4,3,1,1", "p=4,3,10,10,2,2,0", "--ops", "conv2d",
        "max_pool2d", "im2col", "--dtype", "float32", "float64", "--repeats", "2", "--pause", "0",
        "--device", "cpu", "--json", str(tmp_path / "b.json"), "--markdown", str(tmp_path / "b.md"),
        "--plot", str(tmp_path / "b.png"))
    assert status == 0, err
    assert "GEMM peak (cpu, float32" in err
    result = json.loads((tmp_path / "b.json").read_text())
    statuses = {(r["op"], r["impl"], r["dtype"]): r["status"] for r in result["results"]}
    assert statuses[("conv2d", "fastconv", "float64")] == "ok"
    assert statuses[("conv2d", "loop", "float32")] == "ok"
    assert "machine" in result and result["machine"]["cores"] >= 1
    # the terminal table fits 100 columns; the file has every column
    assert max(map(len, out.splitlines())) <= 100
    assert any(line.startswith("conv2d a f64") and " fwd+bwd " in line for line in out.splitlines())
    assert "| conv2d | a 4x3x10x10 F4 k3 s1 p1 | float64 | fwd+bwd | fastconv |" in (
        tmp_path / "b.md").read_text()
    if "matplotlib is not installed" not in err:
        assert (tmp_path / "b.png").stat().st_size > 0


def test_bench_breakdown(capsys, tmp_path):
    status, out, err = run_main(capsys, "bench", "--breakdown", "--shapes", "4,8,10,10,8,3,1,1",
                                "--repeats", "1", "--pause", "0", "--json", str(tmp_path / "d.json"))
    assert status == 0, err
    assert "| GEMM" in out and "| col2im |" in out and "Python overhead" in out
    assert json.loads((tmp_path / "d.json").read_text())["breakdown"][0]["steps_ms"]["col2im"] >= 0


def test_bench_quick_end_to_end(tmp_path):
    """The README's main-job command, as a user runs it (separate process, standard shapes)."""
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    proc = subprocess.run([sys.executable, "-m", "fastconv", "bench", "--quick", "--json",
                           str(tmp_path / "q.json")], capture_output=True, text=True, env=env,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    for name in ("S1", "S2", "S3", "S4", "S5", "S6", "P1", "P2", "P3"):
        assert f" {name} " in proc.stdout
    results = json.loads((tmp_path / "q.json").read_text())["results"]
    assert all(r["status"] in ("ok", "skipped", "unavailable") for r in results), \
        [r for r in results if r["status"] not in ("ok", "skipped", "unavailable")]
    assert any(r["impl"] == "loop" and r["status"] == "ok" for r in results)


@pytest.fixture(scope="module")
def digits_run(tmp_path_factory):
    """One epoch of the default model on digits, in a child process."""
    pytest.importorskip("sklearn")
    out = tmp_path_factory.mktemp("runs") / "cnn1"
    proc = subprocess.run([sys.executable, "-m", "fastconv", "train", "--epochs", "1",
                           "--out", str(out), "--no-progress"],
                          capture_output=True, text=True, timeout=300)
    return out, proc


def test_train_one_epoch_on_digits(digits_run):
    out, proc = digits_run
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "epoch 1/1: loss " in proc.stdout and "val acc" in proc.stdout
    assert "test accuracy" in proc.stdout and "top-5 error" in proc.stdout
    history = json.loads((out / "history.json").read_text())
    assert history["config"]["model"] == "cnn" and history["config"]["batchnorm"] is True
    assert len(history["val_acc_history"]) == 1 and len(history["loss_history"]) == 20
    assert 0.5 < history["test_acc"] <= 1 and history["top5_error"] <= 1 - history["test_acc"]
    assert load_arrays(out / "checkpoint.npz")["meta/epoch"] == 1
    if "matplotlib is not installed" not in proc.stdout:
        assert (out / "learning_curves.png").read_bytes()[:4] == b"\x89PNG"


def test_report_combines_runs(capsys, tmp_path, digits_run):
    first, _ = digits_run
    status, _, err = run_main(capsys, "train", "--model", "linear", "--epochs", "2", "--lr", "0.05",
                              "--out", str(tmp_path / "lin"), "--no-progress")
    assert status == 0, err
    plot = tmp_path / "all.png"
    status, out, err = run_main(capsys, "report", str(first), str(tmp_path / "lin"), "--plot",
                                str(plot), "--markdown", str(tmp_path / "r.md"))
    assert status == 0, err
    assert "| cnn1 | cnn | digits | adam |" in out and "| lin | linear | digits | adam | 0.05 | 2 |" in out
    assert "| test accuracy |" in out  # the models x settings grid
    assert (tmp_path / "r.md").read_text().strip() == out.strip()


def test_train_reports_every_epoch_once_through_the_progress_bar(capsys, tmp_path):
    pytest.importorskip("sklearn")
    status, out, err = run_main(capsys, "train", "--model", "linear", "--epochs", "2",
                                "--out", str(tmp_path))
    assert status == 0, err
    history = json.loads((tmp_path / "history.json").read_text())
    loss = history["loss_history"]
    steps = len(loss) // 2
    lines = [line for line in out.splitlines() if line.startswith("epoch ")]
    assert [line.split(",")[0] for line in lines] == [
        f"epoch 1/2: loss {sum(loss[:steps]) / steps:.4f}",
        f"epoch 2/2: loss {sum(loss[steps:]) / steps:.4f}"]
    assert lines[1].endswith(f"val acc {history['val_acc_history'][1]:.4f}")


def test_train_on_mnist_files(capsys, tmp_path):
    from test_data import write_mnist
    write_mnist(tmp_path, n_train=5100, n_test=20, compress=True)  # 5000 of them validate
    status, out, err = run_main(capsys, "train", "--dataset", "mnist", "--data-dir", str(tmp_path),
                                "--model", "linear", "--epochs", "1", "--out",
                                str(tmp_path / "run"), "--no-progress")
    assert status == 0, err
    assert "mnist: 100 train / 5000 val / 20 test images of 1x28x28" in out
    assert "test accuracy" in out


def test_ctrl_c_keeps_the_last_checkpoint(capsys, tmp_path, monkeypatch):
    from fastconv.train import Solver
    calls = {"n": 0}
    original = Solver.step

    def step(self, X, y):
        calls["n"] += 1
        if calls["n"] == 25:  # in the second epoch (20 batches per epoch)
            raise KeyboardInterrupt
        return original(self, X, y)

    monkeypatch.setattr(Solver, "step", step)
    status, out, err = run_main(capsys, "train", "--model", "linear", "--epochs", "3",
                                "--out", str(tmp_path), "--no-progress")
    assert status == 130
    assert "interrupted: the last checkpoint (epoch 1)" in err
    assert load_arrays(tmp_path / "checkpoint.npz")["meta/epoch"] == 1
    assert json.loads((tmp_path / "history.json").read_text())["interrupted"] is True


def test_python_dash_m_version():
    proc = subprocess.run([sys.executable, "-m", "fastconv", "--version"], capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 0 and proc.stdout.startswith("fastconv ")


def test_an_output_name_taken_by_a_directory_is_refused_before_training(capsys, tmp_path,
                                                                        monkeypatch):
    from fastconv.train import Solver
    monkeypatch.setattr(Solver, "train", lambda self: pytest.fail("training started"))
    (tmp_path / "history.json").mkdir()
    status, _, err = run_main(capsys, "train", "--model", "linear", "--epochs", "1",
                              "--no-progress", "--out", str(tmp_path))
    assert status == 2
    assert err.strip() == (f"fastconv train: error: --out {tmp_path}: history.json is a "
                           "directory, so the run could not write it; remove it or choose "
                           "another --out")


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into a read-only directory")
def test_an_out_without_write_permission_is_refused_before_training(capsys, tmp_path,
                                                                    monkeypatch):
    from fastconv.train import Solver
    monkeypatch.setattr(Solver, "train", lambda self: pytest.fail("training started"))
    tmp_path.chmod(0o555)
    try:
        status, _, err = run_main(capsys, "train", "--model", "linear", "--epochs", "1",
                                  "--out", str(tmp_path / "run"))
    finally:
        tmp_path.chmod(0o755)
    assert status == 2 and "cannot write there (Permission denied)" in err
    assert len(err.strip().splitlines()) == 1, err


def a_history():
    """A history.json's content as `fastconv train` writes it (two epochs, no test result)."""
    config = dict(model="mlp", dataset="digits", optimizer="adam", lr=1e-3, lr_decay=1.0,
                  epochs=2, batch_size=64, reg=0.0, dropout=0.0, batchnorm=False, device="cpu",
                  seed=0)
    return {"config": config, "loss_history": [2.3, 1.1, 0.7, 0.5],
            "train_acc_history": [0.8, 0.9], "val_acc_history": [0.75, 0.85]}


ODD_HISTORIES = {
    "a number": 5,
    "config a list": {**a_history(), "config": list(a_history()["config"])},  # of its keys
    "lr a string": {**a_history(), "config": {**a_history()["config"], "lr": "fast"}},
    "dropout null": {**a_history(), "config": {**a_history()["config"], "dropout": None}},
    "loss a string": {**a_history(), "loss_history": "2.3, 1.1"},
    "accuracies nested": {**a_history(), "val_acc_history": [[0.75], [0.85]]},
}


@pytest.mark.parametrize("history", ODD_HISTORIES.values(), ids=ODD_HISTORIES.keys())
def test_report_refuses_a_history_with_odd_types_in_one_line(capsys, tmp_path, history):
    good, odd = tmp_path / "good", tmp_path / "odd"
    for directory, content in ((good, a_history()), (odd, history)):
        directory.mkdir()
        (directory / "history.json").write_text(json.dumps(content))
    plot = str(tmp_path / "curves.png")
    status, _, err = run_main(capsys, "report", str(good), "--plot", plot)
    assert status == 0, err
    status, _, err = run_main(capsys, "report", str(good), str(odd), "--plot", plot)
    assert status == 2
    assert err.startswith(f"fastconv report: error: {odd / 'history.json'}")
    assert len(err.strip().splitlines()) == 1, err


def test_bench_network_quick_runs_and_writes_its_table(capsys, tmp_path):
    """The network benchmark through the command: one size, one repeat, the table written."""
    path = tmp_path / "net.md"
    status, out, err = run_main(capsys, "bench", "--network", "--quick", "--repeats", "1",
                                "--max-repeats", "1", "--pause", "0", "--markdown", str(path))
    assert status == 0, err
    assert "| cnn | 64x3x32x32 |" in out and path.read_text().strip() in out
    status, _, err = run_main(capsys, "bench", "--network", "--ops", "conv2d")
    assert status == 2 and "--network times whole float32 models" in err


def test_version_is_the_package_version(capsys):
    import fastconv
    status, out, _ = run_main(capsys, "--version")
    assert status == 0 and out.strip() == f"fastconv {fastconv.__version__}"


def test_selftest_is_a_subcommand(capsys):
    status, out, _ = run_main(capsys, "--help")
    assert status == 0 and "selftest" in out
    status, out, _ = run_main(capsys, "selftest", "--cpu-only")
    assert status == 0 and "checks passed" in out and "GPU not checked: switched off" in out


def test_bench_quick_without_torch_checks_on_reduced_problems(tmp_path):
    """``fastconv bench --quick`` where torch cannot be imported: the loops check one image and
    a few channels of each layer, the loop column is an estimate from a reduced problem."""
    code = ("import sys; sys.modules['torch'] = None; from fastconv.cli import main; "
            f"sys.exit(main(['bench', '--quick', '--json', {str(tmp_path / 'q.json')!r}]))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=300, env=dict(os.environ, PYTHONUNBUFFERED="1"))
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert max(map(len, proc.stdout.splitlines())) <= 100
    assert "against the reference loops in float64 on one image and at most 4 channels" in proc.stdout
    assert "torch unavailable (torch is not installed): every case" in proc.stdout
    results = json.loads((tmp_path / "q.json").read_text())["results"]
    mine = [r for r in results if r["impl"] == "fastconv"]
    assert len(mine) == 9 and all(r["status"] == "ok" for r in mine)
    assert {r["oracle"] for r in mine if r["shape"] == "S3"} == {
        "loop-float64 on S3 1x4x32x32 F4 k3 s1 p1"}
    loops = {r["shape"]: r for r in results if r["impl"] == "loop"}
    assert all(r["status"] == "ok" for r in loops.values())
    assert loops["S3"]["extrapolated_from"] == "S3 1x4x32x32 F4 k3 s1 p1"


# -- outputs that cannot be written, sizes that cannot fit: one line, before the work ----------

needs_proc = pytest.mark.skipif(not os.path.isdir("/proc/self"), reason="needs Linux's /proc")


def a_run_dir(tmp_path):
    """A directory `fastconv report` reads, without training one."""
    run = tmp_path / "run"
    run.mkdir()
    (run / "history.json").write_text(json.dumps(a_history()))
    return run


def assert_one_line(status, err, message):
    assert status == 2, err
    assert message in err
    assert len(err.strip().splitlines()) == 1, err


@needs_proc
@pytest.mark.parametrize("option, path", [("--plot", "/proc/x.png"), ("--markdown", "/proc/x.md")])
def test_report_refuses_an_output_in_a_directory_that_takes_no_files(capsys, tmp_path, option,
                                                                     path):
    argv = ["report", str(a_run_dir(tmp_path)), "--plot", str(tmp_path / "c.png")]
    status, out, err = run_main(capsys, *argv, option, path)
    assert_one_line(status, err, f"fastconv report: error: {option} {path}: cannot write there (")
    assert out == ""  # refused before the table


def test_report_refuses_a_figure_format_matplotlib_does_not_write(capsys, tmp_path):
    pytest.importorskip("matplotlib")
    status, _, err = run_main(capsys, "report", str(a_run_dir(tmp_path)), "--plot",
                              str(tmp_path / "x.pdfx"))
    assert_one_line(status, err, "matplotlib cannot write .pdfx figures; use a file name ending "
                                 "in one of .")
    assert ".png" in err and ".svg" in err


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs /dev/full")
def test_report_says_in_one_line_when_the_markdown_write_fails(capsys, tmp_path):
    status, out, err = run_main(capsys, "report", str(a_run_dir(tmp_path)), "--markdown",
                                "/dev/full", "--plot", str(tmp_path / "c.png"))
    assert "| run | mlp |" in out  # the table was printed; writing it to the file failed
    assert_one_line(status, err, "--markdown /dev/full: could not write it (No space left on "
                                 "device)")


def test_a_figure_name_without_suffix_gets_matplotlibs(capsys, tmp_path):
    pytest.importorskip("matplotlib")
    status, _, err = run_main(capsys, "report", str(a_run_dir(tmp_path)), "--plot",
                              str(tmp_path / "curves"))
    assert status == 0, err
    assert f"wrote {tmp_path / 'curves.png'}" in err and (tmp_path / "curves.png").is_file()


BENCH = ["bench", "--shapes", "2,3,8,8,2,3,1,1", "--ops", "conv2d", "--no-torch", "--no-loops",
         "--repeats", "1", "--pause", "0", "--device", "cpu"]


@pytest.fixture
def no_benchmark(monkeypatch):
    """The benchmark fails the test if it starts: the checks come first."""
    from fastconv.bench import runner
    monkeypatch.setattr(runner, "run", lambda *a, **k: pytest.fail("the benchmark ran"))


@needs_proc
@pytest.mark.parametrize("option, name", [("--json", "x.json"), ("--markdown", "x.md"),
                                          ("--plot", "x.png")])
def test_bench_refuses_an_unwritable_output_before_running(capsys, no_benchmark, option, name):
    if option == "--plot":
        pytest.importorskip("matplotlib")
    status, _, err = run_main(capsys, *BENCH, option, f"/proc/{name}")
    assert_one_line(status, err, f"fastconv bench: error: {option} /proc/{name}: cannot write "
                                 "there (")


def test_bench_refuses_a_figure_format_before_running(capsys, tmp_path, no_benchmark):
    pytest.importorskip("matplotlib")
    status, _, err = run_main(capsys, *BENCH, "--plot", str(tmp_path / "b.pdfx"))
    assert_one_line(status, err, "matplotlib cannot write .pdfx figures")


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs /dev/full")
def test_bench_says_in_one_line_when_writing_its_json_fails(capsys):
    status, out, err = run_main(capsys, *BENCH, "--json", "/dev/full")
    assert "conv2d" in out  # it ran and printed its table
    assert err.strip().splitlines()[-1] == ("fastconv bench: error: --json /dev/full: could not "
                                            "write it (No space left on device)")
    assert status == 2 and "Traceback" not in err


@pytest.mark.parametrize("extra", [[], ["--breakdown"]])
def test_bench_refuses_shapes_whose_inputs_exceed_the_memory(capsys, no_benchmark, extra):
    status, _, err = run_main(capsys, "bench", "--shapes", "100000,1000,1000,1000,1000,3,1,1",
                              "--no-torch", "--no-loops", *extra)
    assert_one_line(status, err, "--shapes: conv2d custom1 100000x1000x1000x1000 F1000 k3 s1 p1 "
                                 "needs too much memory: its input arrays alone are 727.6 TiB "
                                 "in float32, and this machine has ")


def test_running_out_of_memory_is_one_line(capsys, monkeypatch):
    from fastconv.cli.info import add_info_parser

    def exhausted(args):
        raise MemoryError("Unable to allocate 728. TiB for an array with shape (100000, 1000)")

    monkeypatch.setitem(cli.COMMANDS, "info", (add_info_parser, exhausted))
    status, _, err = run_main(capsys, "info")
    assert_one_line(status, err, "fastconv info: error: the sizes asked for need too much "
                                 "memory (Unable to allocate 728. TiB")


def test_train_says_a_model_too_big_for_the_memory_in_one_line(capsys, tmp_path, monkeypatch):
    pytest.importorskip("sklearn")
    from fastconv.nn import models

    def too_big(*args, **kwargs):  # what a 47.7 GiB first layer gets from NumPy, without trying
        raise MemoryError("Unable to allocate 47.7 GiB for an array with shape (64, 100000000) "
                          "and data type float64")

    monkeypatch.setattr(models, "build_model", too_big)
    status, _, err = run_main(capsys, "train", "--model", "mlp", "--hidden", "100000000",
                              "--epochs", "1", "--no-progress", "--out", str(tmp_path))
    assert_one_line(status, err, "fastconv train: error: the mlp model needs too much memory "
                                 "(Unable to allocate 47.7 GiB")
    assert "choose smaller --hidden sizes" in err


@pytest.mark.parametrize("name", ["history.json", "learning_curves.png", "checkpoint.npz"])
def test_train_refuses_an_output_linked_to_a_missing_directory_before_training(
        capsys, tmp_path, monkeypatch, name):
    from fastconv.train import Solver
    monkeypatch.setattr(Solver, "train", lambda self: pytest.fail("training started"))
    nowhere = tmp_path / "gone" / "x"
    (tmp_path / name).symlink_to(nowhere)
    status, _, err = run_main(capsys, "train", "--model", "linear", "--epochs", "1",
                              "--no-progress", "--out", str(tmp_path))
    assert_one_line(status, err, f"fastconv train: error: --out {tmp_path}: {name} could not be "
                                 f"written: it links to {nowhere}, in a directory that does not "
                                 "exist; remove it or choose another --out")


@needs_proc
def test_train_refuses_an_output_linked_into_proc_before_training(capsys, tmp_path, monkeypatch):
    from fastconv.train import Solver
    monkeypatch.setattr(Solver, "train", lambda self: pytest.fail("training started"))
    (tmp_path / "checkpoint.npz").symlink_to("/proc/x.npz")
    status, _, err = run_main(capsys, "train", "--model", "linear", "--epochs", "1",
                              "--no-progress", "--out", str(tmp_path))
    assert_one_line(status, err, "checkpoint.npz could not be written: cannot write its link "
                                 "target /proc/x.npz (")


def test_train_says_in_one_line_when_a_write_fails_during_training(capsys, tmp_path,
                                                                  monkeypatch):
    pytest.importorskip("sklearn")
    import errno

    from fastconv import checkpoint

    def full(fd):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(checkpoint.os, "fsync", full)  # every atomic write: history, checkpoint
    status, _, err = run_main(capsys, "train", "--model", "linear", "--epochs", "1",
                              "--no-progress", "--out", str(tmp_path))
    assert_one_line(status, err, f"fastconv train: error: --out {tmp_path}: could not write "
                                 f"{tmp_path}/")
    assert err.strip().endswith("(No space left on device)")
    assert not [p for p in os.listdir(tmp_path) if p.endswith(".tmp")]


def test_an_unknown_option_before_the_subcommand_is_named(capsys):
    status, _, err = run_main(capsys, "--bogus")
    assert_one_line(status, err, "unrecognized arguments: --bogus")
    status, _, err = run_main(capsys)
    assert_one_line(status, err, "the following arguments are required: {bench,train,report,")
