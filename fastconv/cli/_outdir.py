"""Output files shown to be writable before any work, and ``train --out DIR`` held by one run.

:func:`check_output_paths` checks the file options of ``bench`` and ``report``
(``--json``, ``--markdown``, ``--plot``): each must be a file that can be
created or written, a figure's in a format matplotlib writes. :func:`writing`
turns a failure when the file is finally written (a full disk) into the same
one-line error.

``fastconv train --out DIR`` is created, shown to be writable, and held by one
run at a time: its output files (through a symbolic link, their targets) are
checked as :func:`unwritable` says.

The run holds an exclusive ``flock`` on ``DIR/.fastconv-train.lock`` (the file
holds its PID, for the message a second run gets). The kernel drops the lock
when the holder ends, however it ends, so a lock file left by a killed run is
simply taken over. ``--nproc`` holds the lock for its ranks and tells rank 0 so
through the environment.
"""

import contextlib
import fcntl
import io
import os
import tempfile

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
    """A UsageError when one of the file names ``outputs`` in ``directory`` cannot be written."""
    for name in outputs:
        path = os.path.join(directory, name)
        if os.path.isdir(path):
            raise UsageError(f"--out {directory}: {name} is a directory, so the run could not "
                             "write it; remove it or choose another --out")
        reason = unwritable(path, replaced=True)  # the run writes them through atomic_file
        if reason:
            raise UsageError(f"--out {directory}: {name} could not be written: {reason}; "
                             "remove it or choose another --out")


def unwritable(path, replaced=False):
    """Why the file ``path`` could not be written, or None when it can be.

    Parameters
    ----------
    path : str
        The output file, which may exist (it is then overwritten) or be a
        symbolic link (its target is written).
    replaced : bool, default False
        True for a file written as a temporary beside it that then replaces it
        (:func:`fastconv.checkpoint.atomic_file`): its directory must take a new
        file even when it exists. False for one opened and written in place.

    Returns
    -------
    str or None
        The reason, in words for a message: it is a directory, its directory
        (or its link target's) does not exist, or creating or opening the file
        failed (with the system's reason, e.g. ``Permission denied``). The test
        creates and removes a probe file, and opens an existing file without
        changing it; a write can still fail later (a full disk).

    Examples
    --------
    >>> import os, tempfile
    >>> with tempfile.TemporaryDirectory() as folder:
    ...     unwritable(os.path.join(folder, "table.md")), unwritable(folder)
    (None, 'it is a directory')
    >>> unwritable(os.path.join("no", "such", "dir", "table.md"))
    'directory ... does not exist'
    """
    if os.path.isdir(path):
        return "it is a directory"
    link = os.path.islink(path)
    try:
        if os.path.exists(path) and not replaced:  # in place: open it as it is, not truncated
            # The path as given: the kernel follows a link such as /dev/stdout.
            os.close(os.open(path, os.O_WRONLY | os.O_APPEND | os.O_NONBLOCK))
            return None
        target = os.path.realpath(path) if link or replaced else os.path.abspath(path)
        parent = os.path.dirname(target)
        if not os.path.isdir(parent):
            return (f"it links to {target}, in a directory that does not exist" if link
                    else f"directory {parent} does not exist")
        fd, probe = tempfile.mkstemp(dir=parent, prefix=".fastconv-", suffix=".probe")
        os.close(fd)
        os.remove(probe)
    except OSError as exc:
        where = f"its link target {os.path.realpath(path)}" if link else "there"
        return f"cannot write {where} ({exc.strerror or exc})"
    return None


def check_output_paths(args, options, plots=()):
    """Fail before a long run, not after it, when an output file cannot be written.

    Parameters
    ----------
    args : argparse.Namespace
        The parsed options.
    options : sequence of str
        The file options to check (``"--json"``); an unset one is skipped.
    plots : sequence of str, optional
        Those of ``options`` that name a figure: its suffix must be a format
        matplotlib writes here (:func:`check_figure_format`); a name without
        one gets matplotlib's (``.png``) in ``args``. Not checked at all
        without matplotlib, which then writes nothing.

    Raises
    ------
    UsageError
        Naming the option, the path and the reason.
    """
    for option in options:
        attr = option.lstrip("-").replace("-", "_")
        path = getattr(args, attr)
        if path is None:
            continue
        if not path:
            raise UsageError(f"{option}: give a file name, not an empty one")
        if option in plots:
            path = check_figure_format(option, path)
            if path is None:
                continue
            setattr(args, attr, path)  # the file matplotlib writes: suffix added where none
        if os.path.isdir(path):
            raise UsageError(f"{option} {path} is a directory; give a file name")
        reason = unwritable(path)
        if reason:
            raise UsageError(f"{option} {path}: {reason}")


def check_figure_format(option, path):
    """The file matplotlib will write for ``path``; a UsageError when it cannot write its format.

    The format is the suffix (``.png``, ``.pdf``, ``.svg``: any of
    ``FigureCanvasBase.get_supported_filetypes()``); without one matplotlib
    appends ``savefig.format``'s (``.png``). A tiny figure is saved to memory in
    that format, so one that needs a missing program (``.pgf``: LaTeX) is
    refused now too. Returns None when matplotlib is not installed.
    """
    try:
        import matplotlib
        from matplotlib.backend_bases import FigureCanvasBase
        from matplotlib.figure import Figure
    except ImportError:
        return None
    formats = FigureCanvasBase.get_supported_filetypes()
    suffix = os.path.splitext(path)[1][1:].lower()
    if not suffix:
        suffix = matplotlib.rcParams["savefig.format"]
        path = f"{path}.{suffix}"
    if suffix not in formats:
        raise UsageError(f"{option} {path}: matplotlib cannot write .{suffix} figures; use a "
                         f"file name ending in one of .{', .'.join(sorted(formats))}")
    try:
        figure = Figure(figsize=(1, 1))
        figure.text(0.5, 0.5, "fastconv")
        figure.savefig(io.BytesIO(), format=suffix)
    except Exception as exc:  # noqa: BLE001 - whatever the format's writer needs and lacks
        reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise UsageError(f"{option} {path}: matplotlib cannot write .{suffix} figures here "
                         f"({reason})") from None
    return path


@contextlib.contextmanager
def writing(option, path):
    """Within the block ``path`` is written; an OSError becomes the one-line UsageError."""
    try:
        yield
    except OSError as exc:
        raise UsageError(f"{option} {path}: could not write it ({exc.strerror or exc})") from None
