"""Files written safely, and checkpoint files read without trusting them.

:func:`atomic_file` writes every file fastconv keeps (checkpoints, run
histories): a temporary file of its own in the same directory, flushed to
disk, then ``os.replace``-d over the target, so an interrupted write (Ctrl-C,
a crash) leaves the previous file intact and two writers at once never share
a temporary. A symbolic link is written through: its target is replaced, the
link stays.

Checkpoints are flat ``name -> array`` dicts in .npz files, never pickled,
whose names are the Solver checkpoint's (see fastconv.train.checkpoints):
``format``, ``model/<name>``, ``best/<name>``, ``optim/<param>/<key>``,
``history/loss|train_acc|val_acc`` and ``meta/<name>``. :func:`load_arrays`
checks every entry's name, its zip sizes and its .npy header before reading
any data, and reads without pickle, so an untrusted file can neither run code
nor make it allocate more than its entries really hold. A file that is not a
readable .npz, or an entry that is undefined, corrupt, truncated or holds
pickled objects, raises :class:`CheckpointError` naming the file and the entry.
"""

from __future__ import annotations

import contextlib
import math
import os
import re
import secrets
import zipfile
import zlib
from collections.abc import Callable, Iterator, Mapping
from typing import IO, Any

import numpy
from numpy.lib import format as npy

from .backend import as_numpy

PathLike = str | os.PathLike[str]

ENTRY_NAMES = re.compile(r"format|(?:model|best)/.+|optim/.+/[^/]+"
                         r"|history/(?:loss|train_acc|val_acc)|meta/[^/]+")
"""The names a Solver checkpoint defines; :func:`load_arrays` refuses any other unread."""

# Deflate's best case is a 258-byte match coded in 2 bits: 1032 bytes out per byte in.
# An entry claiming more than that is a lie (or a bomb) whatever its header says.
_DEFLATE_MAX_RATIO = 1032
# What reading a damaged entry raises; RuntimeError: zipfile's "encrypted, password required".
_READ_ERRORS = (OSError, ValueError, EOFError, RuntimeError, zipfile.BadZipFile, zlib.error)


class CheckpointError(ValueError):
    """A checkpoint file is unreadable, corrupt, unsafe or does not fit the model.

    Parameters
    ----------
    message : str
        What is wrong, naming the file and the entry where there is one.

    Examples
    --------
    >>> try:
    ...     save_arrays("unused.npz", {"weights": 1.0})
    ... except CheckpointError as error:
    ...     print(str(error).split(";")[0])
    checkpoint entry 'weights' is not one a Solver checkpoint defines
    """


@contextlib.contextmanager
def atomic_file(path: PathLike) -> Iterator[IO[bytes]]:
    """A binary file to write that becomes ``path`` only when the ``with`` block ends without error.

    Parameters
    ----------
    path : path-like
        The file to create or replace; through a symbolic link, its target.

    Yields
    ------
    file
        The temporary file, open for writing, in the target's directory.

    Raises
    ------
    OSError
        When the temporary cannot be created or written or the target
        replaced, with ``path`` as its ``filename`` (not the temporary's name);
        an error inside the block propagates too. Either way the temporary is removed.

    Examples
    --------
    >>> import os, tempfile
    >>> with tempfile.TemporaryDirectory() as folder:
    ...     path = os.path.join(folder, "notes.bin")
    ...     with atomic_file(path) as f:
    ...         _ = f.write(b"saved")
    ...     with open(path, "rb") as f:
    ...         f.read(), os.listdir(folder)
    (b'saved', ['notes.bin'])
    """
    # Resolved, so a symlinked checkpoint stays a link and its target is the file updated.
    target = os.path.realpath(os.fspath(path))
    # A name of its own per call (not per process: two threads of one process save at
    # once), created exclusively so no other writer's temporary is ever reused; the
    # mode is open()'s (0o666 less the umask), not mkstemp's owner-only 0o600.
    tmp = f"{target}.{secrets.token_hex(8)}.tmp"
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0),
                     0o666)
    except OSError as exc:
        raise _naming(exc, path) from exc
    try:
        with os.fdopen(fd, "wb") as f:
            yield f
            f.flush()
            os.fsync(f.fileno())  # on disk before it replaces the file: a crash keeps one whole
        os.replace(tmp, target)
    except BaseException as exc:
        with contextlib.suppress(FileNotFoundError):
            os.remove(tmp)
        if isinstance(exc, OSError) and exc.errno is not None and exc.filename in (None, tmp):
            raise _naming(exc, path) from exc
        raise


def _naming(exc: OSError, path: PathLike) -> OSError:
    """``exc`` (its subclass, errno and reason) about ``path``, not the temporary beside it."""
    return OSError(exc.errno, exc.strerror, os.fspath(path))


def save_arrays(path: PathLike, arrays: Mapping[str, Any]) -> None:
    """Write ``arrays`` to the .npz checkpoint ``path`` atomically (see :func:`atomic_file`).

    Parameters
    ----------
    path : path-like
        The checkpoint file.
    arrays : mapping
        Entry name (one :data:`ENTRY_NAMES` defines) -> NumPy/CuPy array or number.

    Raises
    ------
    CheckpointError
        For a name :func:`load_arrays` would refuse, or an object array (it
        would have to be pickled); nothing is written then.

    Examples
    --------
    >>> import os, tempfile
    >>> import numpy as np
    >>> with tempfile.TemporaryDirectory() as folder:
    ...     path = os.path.join(folder, "run.npz")
    ...     save_arrays(path, {"model/W1": np.ones((2, 3)), "format": 1})
    ...     sorted(load_arrays(path))
    ['format', 'model/W1']
    """
    host: dict[str, Any] = {}
    for name, value in arrays.items():
        if not ENTRY_NAMES.fullmatch(name):
            raise CheckpointError(f"checkpoint entry {name!r} is not one a Solver checkpoint "
                                  "defines; load_arrays would refuse the file")
        a = numpy.asarray(as_numpy(value))
        if a.dtype == object:
            raise CheckpointError(f"checkpoint entry {name!r} is not a plain array "
                                  f"(dtype object); refusing to pickle it")
        host[name] = a
    with atomic_file(path) as f:
        numpy.savez(f, **host)


def load_arrays(path: PathLike, check_entry: Callable[[str, tuple[int, ...], numpy.dtype], Any]
                | None = None) -> dict[str, numpy.ndarray]:
    """Read every entry of the .npz checkpoint ``path``, without pickle, checking it before reading.

    Parameters
    ----------
    path : path-like
        The checkpoint file.
    check_entry : callable, optional
        ``check_entry(name, shape, dtype)``, called with each entry's .npy header
        before its data is read, raises :class:`CheckpointError` for an entry the
        caller cannot use (a model parameter of another shape, say), so that it
        is never read.

    Returns
    -------
    dict
        Entry name -> NumPy array.

    Raises
    ------
    FileNotFoundError
        When ``path`` does not exist.
    CheckpointError
        Naming the file, and the entry where there is one: not a readable
        .npz; an entry :data:`ENTRY_NAMES` does not define (refused unread);
        zip sizes that no .npz writer produces; a .npy header that does not
        match the entry's size; pickled objects; corrupt data.

    Examples
    --------
    >>> import os, tempfile
    >>> import numpy as np
    >>> with tempfile.TemporaryDirectory() as folder:
    ...     path = os.path.join(folder, "run.npz")
    ...     save_arrays(path, {"model/W1": np.ones((2, 3))})
    ...     load_arrays(path)["model/W1"].shape
    (2, 3)
    """
    path = os.fspath(path)
    try:
        npz = numpy.load(path, allow_pickle=False)
    except FileNotFoundError:
        raise
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
        raise CheckpointError(f"{path} is not a readable .npz checkpoint ({exc})") from exc
    if not isinstance(npz, numpy.lib.npyio.NpzFile):
        raise CheckpointError(f"{path} holds a single array, not a .npz checkpoint")
    with npz:
        members = _members(path, npz.zip)  # every name and size checked before any data is read
        return {name: _read_entry(path, name, npz.zip, info, check_entry)
                for name, info in members.items()}


def _members(path, archive):
    """``{entry name: ZipInfo}`` of ``archive``, refusing an entry by its name or zip sizes."""
    infos = archive.infolist()
    compressed, size = sum(info.compress_size for info in infos), os.path.getsize(path)
    if compressed > size:  # entries overlap (a zip bomb's trick) or lie about their sizes
        raise CheckpointError(f"{path} is not a readable .npz checkpoint (its entries claim "
                              f"{compressed} compressed bytes; the file has {size})")
    members = {}
    for info in infos:
        name = info.filename.removesuffix(".npy")
        if not (info.filename.endswith(".npy") and ENTRY_NAMES.fullmatch(name)):
            raise CheckpointError(f"{path} is not a fastconv Solver checkpoint: entry "
                                  f"{info.filename!r} is not one the format defines "
                                  "(refused unread)")
        _check_sizes(path, name, info)
        members[name] = info
    return members


def _check_sizes(path, name, info):
    """Refuse an entry whose zip sizes no .npz writer produces, before it is decompressed."""
    if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
        raise CheckpointError(f"{path}: entry {name!r} is compressed with zip method "
                              f"{info.compress_type}; numpy writes stored or deflated entries only")
    most = info.compress_size * (1 if info.compress_type == zipfile.ZIP_STORED
                                 else _DEFLATE_MAX_RATIO)
    if info.file_size > most:
        raise CheckpointError(f"{path}: entry {name!r} is corrupt (it claims {info.file_size} "
                              f"bytes from {info.compress_size} compressed, more than its "
                              "compression can produce)")


def _read_entry(path, name, archive, info, check_entry):
    """The array of entry ``name``, its .npy header checked (size, ``check_entry``) first."""
    try:
        with archive.open(info) as member:
            shape, dtype = _header(path, name, member)
            if check_entry is not None:
                check_entry(name, shape, dtype)
            # Header and data are all the entry holds: a header claiming more data than
            # that is truncated or forged, and must not size an allocation.
            held, claimed = info.file_size - member.tell(), math.prod(shape) * dtype.itemsize
            if claimed != held:
                raise CheckpointError(f"{path}: entry {name!r} is corrupt or truncated (its "
                                      f"header claims {shape} {dtype}, {claimed} bytes of "
                                      f"data; the entry holds {held})")
            member.seek(0)
            return npy.read_array(member, allow_pickle=False)
    except CheckpointError:  # a ValueError too, already naming what is wrong
        raise
    except _READ_ERRORS as exc:
        raise CheckpointError(f"{path}: entry {name!r} is corrupt ({exc})") from exc


def _header(path, name, member):
    """``(shape, dtype)`` from the .npy header at the start of ``member``; pickled data refused."""
    version = npy.read_magic(member)
    readers = {(1, 0): npy.read_array_header_1_0, (2, 0): npy.read_array_header_2_0}
    if version not in readers:  # 3.0 is only for structured dtypes, which no checkpoint holds
        raise ValueError(f".npy format version {version} is not one a checkpoint uses")
    shape, _, dtype = readers[version](member)
    if dtype.hasobject:
        raise CheckpointError(f"{path}: entry {name!r} cannot be loaded without pickle "
                              f"(object arrays are refused; its dtype is {dtype})")
    return shape, dtype
