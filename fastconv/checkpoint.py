"""Safe checkpoint files: flat ``name -> array`` dicts in .npz, never pickled.

``save_arrays`` writes atomically (a temporary file, then ``os.replace``), so an
interrupted save (Ctrl-C, a crash) leaves the previous checkpoint intact.
``load_arrays`` reads with ``allow_pickle=False``, so an untrusted file cannot
run code; a file that is not a readable .npz, an entry that is corrupt, or an
entry holding pickled objects raises :class:`CheckpointError` naming the file
and the entry.
"""

import os
import zipfile
import zlib

import numpy

from .backend import as_numpy


class CheckpointError(ValueError):
    """A checkpoint file is unreadable, corrupt, unsafe or does not fit the model."""


def save_arrays(path, arrays):
    """Write ``arrays`` (name -> NumPy/CuPy array or number) to the .npz file ``path`` atomically."""
    path = os.fspath(path)
    tmp = f"{path}.tmp-{os.getpid()}"
    host = {}
    for name, value in arrays.items():
        a = numpy.asarray(as_numpy(value))
        if a.dtype == object:
            raise CheckpointError(f"checkpoint entry {name!r} is not a plain array "
                                  f"(dtype object); refusing to pickle it")
        host[name] = a
    try:
        with open(tmp, "wb") as f:
            numpy.savez(f, **host)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def load_arrays(path):
    """Read every entry of the .npz file ``path`` into a dict of NumPy arrays, without pickle."""
    path = os.fspath(path)
    try:
        npz = numpy.load(path, allow_pickle=False)
    except FileNotFoundError:
        raise
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
        raise CheckpointError(f"{path} is not a readable .npz checkpoint ({exc})") from exc
    if not isinstance(npz, numpy.lib.npyio.NpzFile):
        raise CheckpointError(f"{path} holds a single array, not a .npz checkpoint")
    arrays = {}
    with npz:
        for name in npz.files:
            try:
                arrays[name] = npz[name]
            except ValueError as exc:
                raise CheckpointError(f"{path}: entry {name!r} cannot be loaded without pickle "
                                      f"(object arrays are refused: {exc})") from exc
            except (OSError, EOFError, zipfile.BadZipFile, zlib.error) as exc:
                raise CheckpointError(f"{path}: entry {name!r} is corrupt ({exc})") from exc
    return arrays
