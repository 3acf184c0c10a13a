"""`fastconv train` and its processes: stop signals, `--nproc` leaving no rank, the --out lock.

Each test starts a long run of the small mlp on digits in a session of its own
and kills what is left of it in `finally`, so a failure leaves no process.
"""

import json
import os
import shutil
import signal
import subprocess
import sys
import time

import pytest

from fastconv import cli
from fastconv.checkpoint import load_arrays

pytest.importorskip("sklearn", reason="the digits dataset needs the data extra")

LOCK = ".fastconv-train.lock"
WAIT_S = 60  # generous bounds: each wait is a few seconds on an idle machine
RANKS_END_S = 20  # how long the ranks may take to end once the launcher has


def train_command(out, *options):
    return [sys.executable, "-m", "fastconv", "train", "--model", "mlp", "--epochs", "100000",
            "--no-progress", "--out", str(out), *options]


def matching_pids(text):
    """PIDs of the processes whose command line holds ``text`` (a unique --out path)."""
    found = subprocess.run(["pgrep", "-f", text], capture_output=True, text=True)
    return [int(pid) for pid in found.stdout.split()]


class LongRun:
    """A ``fastconv train`` run in its own session; on exit every process naming --out is killed.

    Its output goes to files beside --out, not pipes: orphaned ranks would hold a pipe open.
    """

    def __init__(self, out, *options):
        self.out, self.stderr = out, out.parent / "stderr.txt"
        with open(out.parent / "stdout.txt", "w") as stdout, open(self.stderr, "w") as stderr:
            self.proc = subprocess.Popen(train_command(out, *options), stdout=stdout,
                                         stderr=stderr, start_new_session=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        # mpiexec's ranks run in sessions of their own: find them by the --out path.
        for pid in matching_pids(str(self.out)):
            os.kill(pid, signal.SIGKILL)
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait()
        return False

    def wait_for_first_epoch(self):
        """Return once history.json exists (an epoch is done); fail if the run ends first."""
        deadline = time.monotonic() + WAIT_S
        while not (self.out / "history.json").exists():
            if self.proc.poll() is not None:
                pytest.fail(f"the run ended with {self.proc.returncode}: "
                            f"{self.stderr.read_text()[-2000:]}")
            assert time.monotonic() < deadline, "no epoch finished in time"
            time.sleep(0.05)

    def stop(self, signum):
        """Send ``signum`` to the command's process alone (as `kill` does); status and stderr."""
        self.proc.send_signal(signum)
        return self.proc.wait(timeout=WAIT_S), self.stderr.read_text()


def require_pgrep():
    if shutil.which("pgrep") is None:
        pytest.skip("pgrep (procps) is needed to find the ranks")


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP], ids=["SIGTERM", "SIGHUP"])
def test_a_stop_signal_ends_a_single_process_run_as_ctrl_c_does(tmp_path, signum):
    out = tmp_path / "run"
    with LongRun(out) as run:
        run.wait_for_first_epoch()
        status, err = run.stop(signum)
    assert status == 128 + signum, err[-2000:]
    assert f"interrupted by {signal.Signals(signum).name}: the last checkpoint (epoch" in err
    assert json.loads((out / "history.json").read_text())["interrupted"] is True
    assert load_arrays(out / "checkpoint.npz")["meta/epoch"] >= 1
    assert not (out / LOCK).exists()


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP], ids=["SIGTERM", "SIGHUP"])
def test_a_stop_signal_to_nproc_ends_every_rank(tmp_path, capsys, signum):
    from test_distributed import require_mpi
    require_mpi()
    require_pgrep()
    out = tmp_path / "run"
    with LongRun(out, "--nproc", "2", "--batch-size", "32") as run:
        run.wait_for_first_epoch()
        assert len(matching_pids(str(out))) >= 4  # the launcher, mpiexec and two ranks
        # While it runs, the launcher holds --out for its ranks: a second run is refused.
        second = cli.main(["train", "--model", "linear", "--epochs", "1", "--out", str(out)])
        status, err = run.stop(signum)
        deadline = time.monotonic() + RANKS_END_S
        while matching_pids(str(out)) and time.monotonic() < deadline:
            time.sleep(0.1)
        survivors = matching_pids(str(out))
    assert not survivors, f"still running: {survivors}"
    assert status == 128 + signum, err[-2000:]
    assert json.loads((out / "history.json").read_text())["interrupted"] is True
    assert not (out / LOCK).exists()
    assert second == 2
    assert f"in use by another fastconv train (PID {run.proc.pid})" in capsys.readouterr().err


def test_a_second_run_on_the_same_out_is_refused_with_one_line(tmp_path, capsys):
    out = tmp_path / "run"
    with LongRun(out) as run:
        run.wait_for_first_epoch()
        status = cli.main(["train", "--model", "linear", "--epochs", "1", "--no-progress",
                           "--out", str(out)])
        err = capsys.readouterr().err
        assert status == 2
        assert err.strip() == (f"fastconv train: error: --out {out} is in use by another "
                               f"fastconv train (PID {run.proc.pid}); wait for it to end or "
                               "choose another --out")
        assert run.proc.poll() is None  # the first run goes on
        status, _ = run.stop(signal.SIGTERM)
    assert status == 143


def test_a_lock_left_by_a_killed_run_is_taken_over(tmp_path, capsys):
    out = tmp_path / "run"
    out.mkdir()
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    (out / LOCK).write_text(f"{dead.pid}\n")
    status = cli.main(["train", "--model", "linear", "--epochs", "1", "--no-progress",
                       "--out", str(out)])
    assert status == 0, capsys.readouterr().err
    assert not (out / LOCK).exists()


def test_a_second_ctrl_c_while_the_first_is_handled_still_exits_130(tmp_path, monkeypatch,
                                                                    capsys):
    """The first Ctrl-C stops training; the second comes while the history is being marked
    interrupted, and used to end the command there with status -2."""
    from fastconv import runs
    from fastconv.train import Solver
    steps = {"n": 0}
    step, write_history = Solver.step, runs.write_history

    def interrupted_step(self, X, y):
        steps["n"] += 1
        if steps["n"] == 25:  # in the second epoch (20 batches per epoch)
            os.kill(os.getpid(), signal.SIGINT)
        return step(self, X, y)

    def write_history_interrupted_again(directory, history):
        if history["interrupted"]:
            os.kill(os.getpid(), signal.SIGINT)
        return write_history(directory, history)

    monkeypatch.setattr(Solver, "step", interrupted_step)
    monkeypatch.setattr(runs, "write_history", write_history_interrupted_again)
    try:
        status = cli.main(["train", "--model", "linear", "--epochs", "3", "--no-progress",
                           "--out", str(tmp_path)])
    except KeyboardInterrupt:
        pytest.fail("the second Ctrl-C cut the interrupt handling short")
    assert status == 130
    assert "interrupted: the last checkpoint (epoch 1)" in capsys.readouterr().err
    assert json.loads((tmp_path / "history.json").read_text())["interrupted"] is True
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # put back
