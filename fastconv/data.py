"""Datasets as NCHW float arrays with integer labels, split and normalised.

Three sources, none of which touches the network:

- :func:`load_digits`: scikit-learn's bundled 8x8 handwritten digits (the ``data`` extra),
  the embedded default for quick experiments;
- :func:`load_mnist`: the original MNIST IDX files, gzipped or not;
- :func:`load_cifar10`: the original CIFAR-10 "python version" batches, read through a
  restricted unpickler that resolves no global from the file at all (see
  :mod:`fastconv._cifar_pickle`), so a crafted pickle cannot run code, change shared state
  or take more time and memory than the objects it really stores.

Every loader returns a :class:`Dataset`: train/validation/test splits, normalised with the
per-channel mean and standard deviation of the training split.
"""

import contextlib
import gzip
import math
import numbers
import os
import zlib
from dataclasses import dataclass

import numpy as np

# the reader of one CIFAR-10 batch has its own module; both names stay importable from here
from ._cifar_pickle import _CifarUnpickler, load_cifar_pickle  # noqa: F401

MNIST_FILES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}
MNIST_SOURCE = "https://yann.lecun.com/exdb/mnist/ (or any mirror of the four original files)"
CIFAR10_FILES = tuple(f"data_batch_{i}" for i in range(1, 6)) + ("test_batch", "batches.meta")
CIFAR10_SOURCE = ("https://www.cs.toronto.edu/~kriz/cifar.html "
                  "(download cifar-10-python.tar.gz and extract it)")


@dataclass
class Dataset:
    """Train/validation/test splits of one dataset (x: NCHW float, y: int64 labels).

    ``mean``/``std`` are the per-channel statistics of the raw training images that were
    used to normalise every split (None when not normalised).
    """

    name: str
    X_train: np.ndarray
    y_train: np.ndarray
    X_val: np.ndarray
    y_val: np.ndarray
    X_test: np.ndarray
    y_test: np.ndarray
    classes: tuple
    mean: np.ndarray = None
    std: np.ndarray = None

    @property
    def num_classes(self):
        """Number of label classes."""
        return len(self.classes)

    @property
    def input_shape(self):
        """(C, H, W) of one image."""
        return tuple(self.X_train.shape[1:])

    def as_dict(self):
        """The splits under the CS231n keys (X_train, y_train, X_val, y_val, X_test, y_test)."""
        keys = ("X_train", "y_train", "X_val", "y_val", "X_test", "y_test")
        return {k: getattr(self, k) for k in keys}

    def summary(self):
        """One line: name, split sizes and image shape."""
        c, h, w = self.input_shape
        return (f"{self.name}: {len(self.y_train)} train / {len(self.y_val)} val / "
                f"{len(self.y_test)} test images of {c}x{h}x{w}, {self.num_classes} classes")


def _finish(name, x_train, y_train, x_val, y_val, x_test, y_test, classes, dtype, normalize):
    """Cast to ``dtype`` and normalise all splits with the training split's channel stats."""
    dtype = np.dtype(dtype)
    if dtype.kind != "f":
        raise TypeError(f"dtype must be a floating type, got {dtype}")
    splits = [np.asarray(x, dtype=np.float64) for x in (x_train, x_val, x_test)]
    mean = std = None
    if normalize:
        mean = splits[0].mean(axis=(0, 2, 3))
        std = splits[0].std(axis=(0, 2, 3))
        std[std == 0] = 1.0
        splits = [(x - mean[:, None, None]) / std[:, None, None] for x in splits]
    x_train, x_val, x_test = (np.ascontiguousarray(x, dtype=dtype) for x in splits)
    labels = [np.asarray(y, dtype=np.int64) for y in (y_train, y_val, y_test)]
    return Dataset(name, x_train, labels[0], x_val, labels[1], x_test, labels[2],
                   tuple(classes), mean, std)


def _check_fraction(name, value):
    if not 0 <= value < 1:
        raise ValueError(f"{name} must be in [0, 1), got {value}")


def load_digits(val_fraction=0.1, test_fraction=0.2, seed=0, dtype=np.float32, normalize=True):
    """scikit-learn's bundled handwritten digits (1797 images, 1x8x8, 10 classes).

    The embedded default dataset: real data shipped inside scikit-learn, so it works
    offline. The split is a seeded permutation (the same ``seed`` gives the same split).
    Needs the ``data`` extra (``pip install "fastconv[data]"``).
    """
    _check_fraction("val_fraction", val_fraction)
    _check_fraction("test_fraction", test_fraction)
    if val_fraction + test_fraction >= 1:
        raise ValueError(f"val_fraction + test_fraction must be < 1, got "
                         f"{val_fraction} + {test_fraction}")
    try:
        from sklearn.datasets import load_digits as sk_load_digits
    except ImportError as exc:
        raise ImportError("load_digits needs scikit-learn: pip install \"fastconv[data]\"") from exc
    bunch = sk_load_digits()
    x = bunch.images[:, None, :, :]
    y = bunch.target
    order = np.random.default_rng(seed).permutation(len(y))
    n_test = int(round(test_fraction * len(y)))
    n_val = int(round(val_fraction * len(y)))
    test, val, train = np.split(order, [n_test, n_test + n_val])
    return _finish("digits", x[train], y[train], x[val], y[val], x[test], y[test],
                   [str(c) for c in range(10)], dtype, normalize)


# --------------------------------------------------------------------------- MNIST

def _find_file(directory, name, expected, source):
    """The path of ``name`` or ``name.gz`` in ``directory``; a clear error when absent."""
    for candidate in (name, name + ".gz"):
        path = os.path.join(directory, candidate)
        if os.path.isfile(path):
            return path
    raise FileNotFoundError(
        f"{name}[.gz] not found in {directory}; expected the files "
        f"{', '.join(expected)} there. Get them from {source}")


@contextlib.contextmanager
def _malformed_hint(expected, source):
    """Add the expected file names and their source to a malformed-file ValueError."""
    try:
        yield
    except ValueError as exc:
        raise ValueError(f"{exc}. Expected the original files {', '.join(expected)}; get them "
                         f"from {source}") from exc


def _check_directory(path, expected, source):
    if not os.path.isdir(path):
        raise FileNotFoundError(
            f"dataset directory {path} does not exist; it should hold "
            f"{', '.join(expected)} (get them from {source})")


# IDX data is read (and gzip data inflated) this many bytes at a time
_INFLATE_CHUNK = 1 << 20


def read_idx(path):
    """Read one IDX file (unsigned-byte data, optionally gzipped) into a NumPy array.

    The format of the original MNIST files: two zero bytes, type code 0x08, the number of
    dimensions, the dimensions as big-endian int32, then the data. No more data is read
    than the header declares (plus one byte, to see that none trails), so time and memory
    follow the declared size, however far the file would inflate.

    Parameters
    ----------
    path : str
        The file; a name ending in ``.gz`` is read through gzip.

    Returns
    -------
    numpy.ndarray
        uint8, of the shape the header declares.

    A file of any other kind, or data of another length than declared, raises a ValueError
    naming the file.
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


def _mnist_pair(directory, images_key, labels_key):
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


def load_mnist(path, val_size=5000, seed=0, dtype=np.float32, normalize=True):
    """MNIST from the four original IDX files in directory ``path`` (gzipped or not).

    The validation split is ``val_size`` images drawn (seeded) from the training file; the
    test split is the t10k file. Missing or malformed files raise an error that names the
    expected files and where to get them; nothing is downloaded.
    """
    expected = [n + "[.gz]" for n in MNIST_FILES.values()]
    _check_directory(path, expected, MNIST_SOURCE)
    with _malformed_hint(expected, MNIST_SOURCE):
        x, y = _mnist_pair(path, "train_images", "train_labels")
        x_test, y_test = _mnist_pair(path, "test_images", "test_labels")
        if x.shape[1:] != x_test.shape[1:]:
            raise ValueError(f"{path}: {MNIST_FILES['train_images']} holds {x.shape[2:]} images "
                             f"but {MNIST_FILES['test_images']} holds {x_test.shape[2:]} images")
    train, val = _train_val_split(len(y), val_size, seed)
    return _finish("mnist", x[train], y[train], x[val], y[val], x_test, y_test,
                   [str(c) for c in range(10)], dtype, normalize)


def _train_val_split(n_train, val_size, seed):
    """Indices (train, val): ``val_size`` of the ``n_train`` training images, drawn seeded."""
    if isinstance(val_size, bool) or not isinstance(val_size, numbers.Integral):
        raise TypeError(f"val_size must be an int (a number of images), got {val_size!r}")
    if not 0 <= val_size < n_train:
        raise ValueError(f"val_size must be in [0, {n_train}) for {n_train} training images, "
                         f"got {val_size}")
    order = np.random.default_rng(seed).permutation(n_train)
    return order[val_size:], order[:val_size]


# --------------------------------------------------------------------------- CIFAR-10

def _described(value):
    """'uint8 (N, 3072)' for an array, the type name for anything else."""
    if isinstance(value, np.ndarray):
        return f"{value.dtype} {value.shape}"
    return type(value).__name__


def _cifar_batch(path):
    batch = load_cifar_pickle(path)
    data, labels = batch.get("data"), batch.get("labels")
    if isinstance(labels, list):  # the original files hold a list of ints
        labels = np.asarray(labels) if labels else np.zeros(0, np.int64)
    if (not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2
            or data.shape[1] != 3 * 32 * 32 or not isinstance(labels, np.ndarray)
            or labels.ndim != 1 or labels.dtype.kind not in "iu" or len(labels) != len(data)):
        raise ValueError(f"{path}: expected 'data' uint8 (N, 3072) and a list of N integer "
                         f"'labels', got data {_described(data)} and labels {_described(labels)}")
    labels = labels.astype(np.int64)
    if labels.size and (labels.min() < 0 or labels.max() > 9):
        raise ValueError(f"{path}: labels outside 0..9")
    return data.reshape(-1, 3, 32, 32), labels


def load_cifar10(path, val_size=5000, seed=0, dtype=np.float32, normalize=True):
    """CIFAR-10 from the original python batches (data_batch_1..5, test_batch, batches.meta).

    ``path`` is the extracted ``cifar-10-batches-py`` directory or its parent. The files are
    read through a restricted unpickler (no global from the file is ever resolved). The
    validation split is ``val_size`` images drawn (seeded) from the training batches.
    """
    root = path
    nested = os.path.join(path, "cifar-10-batches-py")
    if os.path.isdir(nested):
        root = nested
    _check_directory(root, CIFAR10_FILES, CIFAR10_SOURCE)
    missing = [n for n in CIFAR10_FILES if not os.path.isfile(os.path.join(root, n))]
    if missing:
        raise FileNotFoundError(
            f"{', '.join(missing)} not found in {root}; expected the files "
            f"{', '.join(CIFAR10_FILES)} there (or in {root}/cifar-10-batches-py). "
            f"Get them from {CIFAR10_SOURCE}")
    with _malformed_hint(CIFAR10_FILES, CIFAR10_SOURCE):
        train = [_cifar_batch(os.path.join(root, n)) for n in CIFAR10_FILES[:5]]
        x_test, y_test = _cifar_batch(os.path.join(root, "test_batch"))
        meta = load_cifar_pickle(os.path.join(root, "batches.meta"))
        names = meta.get("label_names")
        if not isinstance(names, list) or len(names) != 10:
            raise ValueError(f"{os.path.join(root, 'batches.meta')}: expected 10 label_names")
    x = np.concatenate([b[0] for b in train])
    y = np.concatenate([b[1] for b in train])
    classes = [n.decode("latin-1") if isinstance(n, bytes) else str(n) for n in names]
    train, val = _train_val_split(len(y), val_size, seed)
    return _finish("cifar10", x[train], y[train], x[val], y[val], x_test, y_test, classes,
                   dtype, normalize)


LOADERS = {"digits": load_digits, "mnist": load_mnist, "cifar10": load_cifar10}


def load_dataset(name, path=None, **kwargs):
    """Load dataset ``name`` ('digits', 'mnist' or 'cifar10'); mnist/cifar10 need ``path``."""
    if name not in LOADERS:
        raise ValueError(f"unknown dataset {name!r}; choose one of {', '.join(LOADERS)}")
    if name == "digits":
        return load_digits(**kwargs)
    if path is None:
        raise ValueError(f"dataset {name!r} needs a data directory (the path argument)")
    return LOADERS[name](path, **kwargs)
