"""The original MNIST files: their names, their IDX format's reader (:func:`read_idx`), a pair."""

from __future__ import annotations

import gzip
import math
import os
import zlib

import numpy as np

MNIST_FILES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}
MNIST_SOURCE = "https://yann.lecun.com/exdb/mnist/ (or any mirror of the four original files)"

# IDX data is read (and gzip data inflated) this many bytes at a time
_INFLATE_CHUNK = 1 << 20


def read_idx(path: str) -> np.ndarray:
    """Read one IDX file (unsigned-byte data, optionally gzipped) into a NumPy array.

    The format of the original MNIST files: two zero bytes, type code 0x08, the number of
    dimensions, the dimensions as big-endian int32, then the data. Time and memory follow
    the size the header declares, however far a gzipped file would inflate.

    Parameters
    ----------
    path : str
        The file; a name ending in ``.gz`` is read through gzip.

    Returns
    -------
    numpy.ndarray
        uint8, of the shape the header declares.

    Raises
    ------
    ValueError
        Naming the file, when it is of another kind, unreadable, or holds data
        of another length than its header declares.

    Examples
    --------
    >>> import os, tempfile
    >>> from fastconv.data import read_idx
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     path = os.path.join(tmp, "labels-idx1-ubyte")
    ...     with open(path, "wb") as f:
    ...         _ = f.write(bytes([0, 0, 8, 1, 0, 0, 0, 3, 7, 2, 1]))
    ...     read_idx(path)
    array([7, 2, 1], dtype=uint8)
    """
    compressed = path.endswith(".gz")
    try:
        with (gzip.open if compressed else open)(path, "rb") as f:
            shape, header = _idx_header(f, path)
            expected = math.prod(shape)
            if not compressed:  # the file's size tells the data's length without reading it
                held = os.fstat(f.fileno()).st_size - header
                if held != expected:
                    raise ValueError(_idx_mismatch(path, shape, f"{held} bytes"))
            data = _read_exactly(f, expected, path, shape)
    except (OSError, EOFError, zlib.error) as exc:
        raise ValueError(f"{path} is not a readable IDX file: {exc}") from exc
    return np.frombuffer(data, dtype=np.uint8).reshape(shape)


def _idx_header(f, path):
    """(shape, header length in bytes) from the IDX header at the start of open file ``f``."""
    magic = f.read(4)
    if len(magic) < 4 or magic[0] != 0 or magic[1] != 0:
        raise ValueError(f"{path} is not an IDX file (bad magic number)")
    if magic[2] != 0x08:
        raise ValueError(f"{path}: IDX type code 0x{magic[2]:02x} is not unsigned byte (0x08)")
    ndim = magic[3]
    dims = f.read(4 * ndim)
    if len(dims) < 4 * ndim:
        raise ValueError(f"{path} is truncated inside its IDX header")
    shape = tuple(int(d) for d in np.frombuffer(dims, dtype=">i4"))
    if min(shape, default=0) < 0:
        raise ValueError(f"{path}: IDX header gives a negative dimension, shape {shape}")
    return shape, 4 + 4 * ndim


def _idx_mismatch(path, shape, held):
    """The message for data of another length than the header declares."""
    return (f"{path}: header says shape {shape} ({math.prod(shape)} bytes) but the file "
            f"holds {held} of data")


def _read_exactly(f, size, path, shape):
    """The next ``size`` bytes of ``f``, refusing fewer, or any byte after them.

    Read in chunks, so that memory grows with the data that really arrives and stops at the
    declared size: a small gzip file can inflate to far more than its header declares.
    """
    data = bytearray()
    while len(data) < size:
        chunk = f.read(min(size - len(data), _INFLATE_CHUNK))
        if not chunk:
            raise ValueError(_idx_mismatch(path, shape, f"{len(data)} bytes"))
        data += chunk
    if f.read(1):
        raise ValueError(_idx_mismatch(path, shape, f"more than {size} bytes"))
    return data


def _find_file(directory, name, expected, source):
    """The path of ``name`` or ``name.gz`` in ``directory``; a clear error when absent."""
    for candidate in (name, name + ".gz"):
        path = os.path.join(directory, candidate)
        if os.path.isfile(path):
            return path
    raise FileNotFoundError(
        f"{name}[.gz] not found in {directory}; expected the files "
        f"{', '.join(expected)} there. Get them from {source}")


def mnist_pair(directory: str | os.PathLike[str], images_key: str,
               labels_key: str) -> tuple[np.ndarray, np.ndarray]:
    """(N, 1, H, W) images and N labels from the files ``MNIST_FILES[...]`` in ``directory``."""
    expected = [n + "[.gz]" for n in MNIST_FILES.values()]
    images = read_idx(_find_file(directory, MNIST_FILES[images_key], expected, MNIST_SOURCE))
    labels = read_idx(_find_file(directory, MNIST_FILES[labels_key], expected, MNIST_SOURCE))
    if images.ndim != 3 or labels.ndim != 1 or len(images) != len(labels):
        raise ValueError(f"{directory}: {MNIST_FILES[images_key]} has shape {images.shape} and "
                         f"{MNIST_FILES[labels_key]} has shape {labels.shape}; expected "
                         "(N, H, W) images and N labels")
    if labels.size and labels.max() > 9:
        raise ValueError(f"{directory}: {MNIST_FILES[labels_key]} holds label {labels.max()} > 9")
    return images[:, None, :, :], labels
