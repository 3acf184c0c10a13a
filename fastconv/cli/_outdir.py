"""``fastconv train --out DIR``: created, shown to be writable, and held by one run at a time.

The run holds an exclusive ``flock`` on ``DIR/.fastconv-train.lock`` (the file
holds its PID, for the message a second run gets). The kernel drops the lock
when the holder ends, however it ends, so a lock file left by a killed run is
simply taken over. ``--nproc`` holds the lock for its ranks and tells rank 0 so
through the environment.
"""

import contextlib
import fcntl
import os

from ._args import UsageError

LOCK = ".fastconv-train.lock"
#: Set by ``--nproc`` for its ranks: the path of the lock file it holds for them.
HELD_FOR_RANKS = "FASTCONV_TRAIN_LOCK"


@contextlib.contextmanager
def claimed(directory, outputs):
    """Within the block this run owns ``directory``: created, writable and locked.

    Parameters
    ----------
    directory : str
        The ``--out`` directory.
    outputs : sequence of str
        The file names the run will write there; none may be a directory.

    Yields
    ------
    str
        The lock file's path.

    Raises
    ------
    UsageError
        When the directory cannot be created or written to, an output name is
        a directory, or another live run holds the lock.
    """
    path = os.path.join(os.path.abspath(directory), LOCK)
    if os.environ.get(HELD_FOR_RANKS) == path:  # a rank of `--nproc`, which holds the lock
        yield path
        return
    fd = _take_lock(directory, path)
    try:
        _check_outputs(directory, outputs)
        yield path
    finally:
        _release(fd, path)


def _take_lock(directory, path):
    """Create ``directory``, lock ``path`` in it and write this PID there (the write test)."""
    try:
        os.makedirs(directory, exist_ok=True)
        fd = _open_locked(directory, path)
    except OSError as exc:
        raise UsageError(f"--out {directory}: cannot write there ({exc.strerror})") from None
    try:
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
    except OSError as exc:
        _release(fd, path)
        raise UsageError(f"--out {directory}: cannot write there ({exc.strerror})") from None
    return fd


def _open_locked(directory, path):
    """``path`` opened and locked; a UsageError naming the holder when a live run has it."""
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 32).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            raise UsageError(f"--out {directory} is in use by another fastconv train (PID "
                             f"{holder}); wait for it to end or choose another --out") from None
        if _still_there(fd, path):
            return fd
        os.close(fd)  # its holder removed it between our open and our lock: open the new one


def _release(fd, path):
    """Remove the lock file, then drop the lock: a run that opened it meanwhile sees it gone."""
    with contextlib.suppress(FileNotFoundError):
        os.remove(path)
    os.close(fd)


def _still_there(fd, path):
    """True when ``path`` is still the file open as ``fd``."""
    try:
        return os.path.samestat(os.fstat(fd), os.stat(path))
    except FileNotFoundError:
        return False


def _check_outputs(directory, outputs):
    """A UsageError when one of the file names ``outputs`` is a directory in ``directory``."""
    for name in outputs:
        if os.path.isdir(os.path.join(directory, name)):
            raise UsageError(f"--out {directory}: {name} is a directory, so the run could not "
                             "write it; remove it or choose another --out")
