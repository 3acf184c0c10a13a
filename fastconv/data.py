"""Datasets as NCHW float arrays with integer labels, split and normalised.

Three sources, none of which touches the network:

- :func:`load_digits`: scikit-learn's bundled 8x8 handwritten digits (the ``data`` extra),
  the embedded default for quick experiments;
- :func:`load_mnist`: the original MNIST IDX files, gzipped or not;
- :func:`load_cifar10`: the original CIFAR-10 "python version" batches, read through a
  restricted unpickler (:mod:`fastconv._cifar_pickle`): a crafted pickle cannot run code,
  change shared state or take more time and memory than the objects it really stores.

Every loader returns a :class:`Dataset`: train/validation/test splits, normalised with the
per-channel mean and standard deviation of the training split.
"""

from __future__ import annotations

import contextlib
import numbers
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

# the readers of one CIFAR-10 batch and of the MNIST files have their own modules
from ._cifar_pickle import _CifarUnpickler, load_cifar_pickle  # noqa: F401
from ._mnist_files import MNIST_FILES, MNIST_SOURCE, mnist_pair, read_idx  # noqa: F401
from ._typing import DTypeLike

CIFAR10_FILES = tuple(f"data_batch_{i}" for i in range(1, 6)) + ("test_batch", "batches.meta")
CIFAR10_SOURCE = ("https://www.cs.toronto.edu/~kriz/cifar.html "
                  "(download cifar-10-python.tar.gz and extract it)")


@dataclass
class Dataset:
    """Train/validation/test splits of one dataset (x: NCHW float, y: int64 labels).

    Parameters
    ----------
    name : str
        'digits', 'mnist', 'cifar10' or your own.
    X_train, X_val, X_test : numpy.ndarray
        (N, C, H, W) float images of each split.
    y_train, y_val, y_test : numpy.ndarray
        (N,) int64 labels.
    classes : tuple of str
        The class names, indexed by label.
    mean, std : numpy.ndarray, optional
        The per-channel statistics of the raw training images that normalised
        every split (None when not normalised).

    Examples
    --------
    >>> import numpy as np
    >>> from fastconv.data import Dataset
    >>> x, y = np.zeros((4, 1, 8, 8), np.float32), np.arange(4) % 2
    >>> ds = Dataset("toy", x, y, x[:2], y[:2], x[:1], y[:1], ("even", "odd"))
    >>> ds.summary()
    'toy: 4 train / 2 val / 1 test images of 1x8x8, 2 classes'
    >>> sorted(ds.as_dict()), ds.input_shape
    (['X_test', 'X_train', 'X_val', 'y_test', 'y_train', 'y_val'], (1, 8, 8))
    """

    name: str
    X_train: np.ndarray
    y_train: np.ndarray
    X_val: np.ndarray
    y_val: np.ndarray
    X_test: np.ndarray
    y_test: np.ndarray
    classes: tuple[str, ...]
    mean: np.ndarray | None = None
    std: np.ndarray | None = None

    @property
    def num_classes(self) -> int:
        """Number of label classes."""
        return len(self.classes)

    @property
    def input_shape(self) -> tuple[int, ...]:
        """(C, H, W) of one image."""
        return tuple(self.X_train.shape[1:])

    def as_dict(self) -> dict[str, np.ndarray]:
        """The splits under the CS231n keys, as :class:`fastconv.train.Solver` takes them.

        Returns
        -------
        dict
            X_train, y_train, X_val, y_val, X_test, y_test.
        """
        keys = ("X_train", "y_train", "X_val", "y_val", "X_test", "y_test")
        return {k: getattr(self, k) for k in keys}

    def summary(self) -> str:
        """One line: name, split sizes and image shape.

        Returns
        -------
        str
        """
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


def load_digits(val_fraction: float = 0.1, test_fraction: float = 0.2, seed: int = 0,
                dtype: DTypeLike = np.float32, normalize: bool = True) -> Dataset:
    """scikit-learn's bundled handwritten digits (1797 images, 1x8x8, 10 classes).

    The embedded default dataset: real data shipped inside scikit-learn, so it works
    offline. Needs the ``data`` extra (``pip install "fastconv[data]"``).

    Parameters
    ----------
    val_fraction, test_fraction : float, default 0.1 and 0.2
        The validation and test splits' shares of the images, each in [0, 1),
        together below 1.
    seed : int, default 0
        Seeds the permutation the splits are cut from (the same seed, the same split).
    dtype : dtype, default float32
        A floating dtype for the images.
    normalize : bool, default True
        Normalise every split by the training split's per-channel mean and std.

    Returns
    -------
    Dataset

    Raises
    ------
    ValueError
        For fractions out of range.
    TypeError
        For a dtype that is not floating.
    ImportError
        When scikit-learn is not installed.

    Examples
    --------
    >>> from fastconv.data import load_digits
    >>> load_digits().summary()
    'digits: 1258 train / 180 val / 359 test images of 1x8x8, 10 classes'
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


# --------------------------------------------------------------------------- MNIST

def load_mnist(path: str | os.PathLike[str], val_size: int = 5000, seed: int = 0,
               dtype: DTypeLike = np.float32, normalize: bool = True) -> Dataset:
    """MNIST from the four original IDX files in directory ``path`` (gzipped or not).

    Nothing is downloaded: the files are :data:`MNIST_FILES`, from :data:`MNIST_SOURCE`.

    Parameters
    ----------
    path : str or os.PathLike
        The directory holding the four files, each optionally gzipped (``.gz``).
    val_size, seed : int, default 5000 and 0
        The validation split: ``val_size`` images drawn from the training file,
        seeded by ``seed``; the test split is the t10k file.
    dtype : dtype, default float32
        A floating dtype for the images.
    normalize : bool, default True
        Normalise every split by the training split's mean and std.

    Returns
    -------
    Dataset

    Raises
    ------
    FileNotFoundError
        For a missing directory or file, naming the expected files and where to get them.
    ValueError
        For a malformed file (naming it) or a ``val_size`` out of range.
    TypeError
        For a ``val_size`` that is no int, or a dtype that is not floating.

    Examples
    --------
    >>> import os, tempfile
    >>> import numpy as np
    >>> from fastconv.data import MNIST_FILES, load_mnist
    >>> def write_idx(path, array):
    ...     header = bytes([0, 0, 8, array.ndim]) + np.array(array.shape, ">i4").tobytes()
    ...     with open(path, "wb") as f:
    ...         _ = f.write(header + array.astype(np.uint8).tobytes())
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     for key, name in MNIST_FILES.items():
    ...         shape = (10 if key.startswith("train") else 4,) + (28, 28) * key.endswith("images")
    ...         write_idx(os.path.join(tmp, name), np.arange(np.prod(shape)).reshape(shape) % 10)
    ...     load_mnist(tmp, val_size=2).summary()
    'mnist: 8 train / 2 val / 4 test images of 1x28x28, 10 classes'
    """
    expected = [n + "[.gz]" for n in MNIST_FILES.values()]
    _check_directory(path, expected, MNIST_SOURCE)
    with _malformed_hint(expected, MNIST_SOURCE):
        x, y = mnist_pair(path, "train_images", "train_labels")
        x_test, y_test = mnist_pair(path, "test_images", "test_labels")
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
        try:
            labels = np.asarray(labels) if labels else np.zeros(0, np.int64)
        except (ValueError, TypeError, OverflowError) as exc:  # ragged: lists among the ints
            raise ValueError(f"{path}: expected a list of N integer 'labels', got a list that "
                             f"is not one ({exc})") from exc
    if (not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2
            or data.shape[1] != 3 * 32 * 32 or not isinstance(labels, np.ndarray)
            or labels.ndim != 1 or labels.dtype.kind not in "iu" or len(labels) != len(data)):
        raise ValueError(f"{path}: expected 'data' uint8 (N, 3072) and a list of N integer "
                         f"'labels', got data {_described(data)} and labels {_described(labels)}")
    labels = labels.astype(np.int64)
    if labels.size and (labels.min() < 0 or labels.max() > 9):
        raise ValueError(f"{path}: labels outside 0..9")
    return data.reshape(-1, 3, 32, 32), labels


def load_cifar10(path: str | os.PathLike[str], val_size: int = 5000, seed: int = 0,
                 dtype: DTypeLike = np.float32, normalize: bool = True) -> Dataset:
    """CIFAR-10 from the original python batches (data_batch_1..5, test_batch, batches.meta).

    The files are read through a restricted unpickler that resolves no global from the
    file, so a crafted one cannot run code. Nothing is downloaded: the files are
    :data:`CIFAR10_FILES`, from :data:`CIFAR10_SOURCE`.

    Parameters
    ----------
    path : str or os.PathLike
        The extracted ``cifar-10-batches-py`` directory or its parent.
    val_size, seed : int, default 5000 and 0
        The validation split: ``val_size`` images drawn from the training batches,
        seeded by ``seed``; the test split is ``test_batch``.
    dtype : dtype, default float32
        A floating dtype for the images.
    normalize : bool, default True
        Normalise every split by the training split's per-channel mean and std.

    Returns
    -------
    Dataset

    Raises
    ------
    FileNotFoundError
        For a missing directory or file, naming the expected files and where to get them.
    ValueError
        For a malformed or refused file (naming it) or a ``val_size`` out of range.
    TypeError
        For a ``val_size`` that is no int, or a dtype that is not floating.

    Examples
    --------
    >>> import os, pickle, tempfile
    >>> import numpy as np
    >>> from fastconv.data import CIFAR10_FILES, load_cifar10
    >>> batch = {"data": np.zeros((4, 3072), np.uint8), "labels": [0, 1, 2, 3]}
    >>> meta = {"label_names": [f"class {i}" for i in range(10)]}
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     for name in CIFAR10_FILES:
    ...         with open(os.path.join(tmp, name), "wb") as f:
    ...             pickle.dump(meta if name == "batches.meta" else batch, f, protocol=2)
    ...     load_cifar10(tmp, val_size=4).summary()
    'cifar10: 16 train / 4 val / 4 test images of 3x32x32, 10 classes'
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


LOADERS: dict[str, Callable[..., Dataset]] = {"digits": load_digits, "mnist": load_mnist,
                                              "cifar10": load_cifar10}


def load_dataset(name: str, path: str | os.PathLike[str] | None = None,
                 **kwargs: Any) -> Dataset:
    """Load dataset ``name`` by its loader in :data:`LOADERS`.

    Parameters
    ----------
    name : str
        'digits', 'mnist' or 'cifar10'.
    path : str or os.PathLike, optional
        The data directory, which mnist and cifar10 need (digits ships with scikit-learn).
    **kwargs
        The loader's other arguments (``val_size``, ``seed``, ``dtype``, ``normalize``, ...).

    Returns
    -------
    Dataset

    Raises
    ------
    ValueError
        For an unknown name, or mnist/cifar10 without ``path``; and whatever the loader raises.

    Examples
    --------
    >>> from fastconv.data import load_dataset
    >>> load_dataset("digits", val_fraction=0.5, test_fraction=0.25).num_classes
    10
    """
    if name not in LOADERS:
        raise ValueError(f"unknown dataset {name!r}; choose one of {', '.join(LOADERS)}")
    if name == "digits":
        return load_digits(**kwargs)
    if path is None:
        raise ValueError(f"dataset {name!r} needs a data directory (the path argument)")
    return LOADERS[name](path, **kwargs)
