"""The restricted reader of one CIFAR-10 python batch (:func:`load_cifar_pickle`).

An original batch is a pickled dict: a uint8 ``data`` array (10000x3072), a list of 10000
int ``labels``, a list of 10000 bytes ``filenames`` and a ``batch_label``
(``batches.meta``: a list of ten ``label_names`` and two ints). Nothing in the file is
trusted, in three ways:

- no code runs: :class:`_CifarUnpickler` resolves no global from the file; the few names a
  batch refers to map to inert stand-ins, made afresh for every load and refusing BUILD, so
  a crafted file can neither run code nor change an object that outlives its load;
- time and memory follow what the file stores: pickle shares references (its memo), so a few
  bytes can name one object from many places. :class:`_Materialiser` turns each object into
  a real one once, keeps shared references shared, and caps the nesting, the node count of
  the fully expanded tree and the array bytes by what a real batch holds;
- arrays are rebuilt from their recorded state only for plain numeric dtypes.
"""

from __future__ import annotations

import math
import os
import pickle
from typing import Any

import numpy as np

_SIMPLE_DTYPES = {"u1", "i1", "b1", "u2", "i2", "u4", "i4", "u8", "i8", "f4", "f8"}
# A real batch nests three levels (a dict of lists of items); eight admit variants and keep
# the recursive walk far from Python's recursion limit (a reference cycle ends here too).
_MAX_DEPTH = 8
# A real batch is about 20,010 objects with every reference counted (4 keys, 10,000 labels,
# 10,000 filenames); five times that admits variants and bounds whatever walks the result
# (np.asarray on the labels expands lists that the file shares).
_MAX_NODES = 100_000
# numpy 1.x, which wrote the original files, allows 32 dimensions; refusing more before the
# size product keeps that product cheap.
_MAX_NDIM = 32


def _shown(value):
    """A short str/bytes value's repr for an error message; anything else by its type.

    The repr of a crafted list is no answer: a tree of shared references prints for hours.
    """
    if isinstance(value, (str, bytes)) and len(value) <= 40:
        return repr(value)
    return f"of type {type(value).__name__}"


class _StandIn:
    """Base of what :meth:`_CifarUnpickler.find_class` hands out, named by ``name``.

    No instance dict, and BUILD (which calls ``__setstate__``) is refused, so a crafted
    pickle cannot set an attribute on one.
    """

    __slots__ = ()
    name = "a stand-in"

    def __setstate__(self, state):
        raise pickle.UnpicklingError(f"refused to set the state of {self.name}: an original "
                                     "CIFAR-10 batch sets the state of arrays and dtypes only")


class _Ndarray(_StandIn):
    """``numpy.ndarray``: only ever passed to ``_reconstruct`` as the class to make."""

    __slots__ = ()
    name = "numpy.ndarray"


class _ArrayStub:
    """What ``_reconstruct`` yields: BUILD records the array's state here, checked later."""

    def __init__(self):
        self.state = None

    def __setstate__(self, state):
        self.state = state


class _Reconstruct(_StandIn):
    """``numpy.core.multiarray._reconstruct``: a fresh :class:`_ArrayStub` for BUILD to fill."""

    __slots__ = ("_ndarray",)
    name = "numpy.core.multiarray._reconstruct"

    def __init__(self, ndarray):
        self._ndarray = ndarray

    def __call__(self, cls, shape, typecode):
        if cls is not self._ndarray:
            raise pickle.UnpicklingError("_reconstruct called with something other than ndarray")
        return _ArrayStub()


class _DtypeStub:
    """What ``numpy.dtype(...)`` yields here: the type string and, after BUILD, its state."""

    def __init__(self, descr):
        self.descr = descr
        self.state = None

    def __setstate__(self, state):
        self.state = state


class _Dtype(_StandIn):
    """``numpy.dtype``: a :class:`_DtypeStub` for a plain numeric type string, else refused."""

    __slots__ = ()
    name = "numpy.dtype"

    def __call__(self, descr, align=False, copy=False):
        # checked before anything is decoded: the memo can hand one huge object to many calls
        if isinstance(descr, bytes) and len(descr) == 2:
            descr = descr.decode("latin-1")
        if not (isinstance(descr, str) and descr in _SIMPLE_DTYPES):
            raise pickle.UnpicklingError(f"refused array dtype {_shown(descr)}")
        return _DtypeStub(descr)


class _CodecsEncode(_StandIn):
    """``_codecs.encode(text, "latin1")``: how Python 3 writes bytes at pickle protocol 2.

    One result per text object: the memo can pass one long text to many calls, and each
    call would otherwise make another copy of it.
    """

    __slots__ = ("_made",)
    name = "_codecs.encode"

    def __init__(self):
        self._made = {}  # id(text) -> (text, its bytes); holding the text keeps its id its own

    def __call__(self, text, encoding):
        if not (isinstance(encoding, str) and encoding in ("latin1", "latin-1")
                and isinstance(text, str)):
            raise pickle.UnpicklingError(f"refused _codecs.encode with encoding {_shown(encoding)}")
        if id(text) not in self._made:
            self._made[id(text)] = (text, text.encode("latin-1"))
        return self._made[id(text)][1]


class _CifarUnpickler(pickle.Unpickler):
    """Unpickler for CIFAR-10 batches: dicts, lists, bytes, ints and plain numeric arrays.

    ``find_class`` returns only this load's stand-ins for the globals a batch refers to; any
    other global (for example ``os.system`` planted through ``__reduce__``) is refused before
    it is looked up.
    """

    def __init__(self, file):
        super().__init__(file, encoding="bytes")
        ndarray = _Ndarray()
        reconstruct = _Reconstruct(ndarray)
        self._globals = {
            ("numpy.core.multiarray", "_reconstruct"): reconstruct,
            ("numpy._core.multiarray", "_reconstruct"): reconstruct,
            ("numpy", "ndarray"): ndarray,
            ("numpy", "dtype"): _Dtype(),
            ("_codecs", "encode"): _CodecsEncode(),  # bytes in a protocol-2 pickle by Python 3
        }

    def find_class(self, module, name):
        try:
            return self._globals[(module, name)]
        except KeyError:
            raise pickle.UnpicklingError(
                f"refused to load global {module}.{name}: an original CIFAR-10 batch holds only "
                "dicts, lists, bytes and uint8 arrays") from None


def _array_parts(stub):
    """(raw data, dtype, shape, order) of a recorded array state, every field checked."""
    try:
        _version, shape, dtype_stub, fortran, raw = stub.state
        if not isinstance(dtype_stub, _DtypeStub):
            raise TypeError("not a dtype")
        byteorder = dtype_stub.state[1] if dtype_stub.state else "|"
        if isinstance(byteorder, bytes):
            byteorder = byteorder.decode("ascii")
        ndim = len(shape)
    except (TypeError, ValueError, AttributeError, IndexError):
        raise pickle.UnpicklingError("malformed ndarray state") from None
    if byteorder not in "<>|=":
        raise pickle.UnpicklingError(f"refused array dtype {dtype_stub.descr!r}")
    if ndim > _MAX_NDIM:
        raise pickle.UnpicklingError(f"refused an array of {ndim} dimensions (at most "
                                     f"{_MAX_NDIM})")
    dtype = np.dtype(dtype_stub.descr).newbyteorder(byteorder if byteorder != "|" else "=")
    shape = tuple(int(s) for s in shape)
    # a str holds the data one latin-1 character per byte, so len() is the byte count
    if not isinstance(raw, (bytes, str)) or len(raw) != math.prod(shape) * dtype.itemsize:
        raise pickle.UnpicklingError(f"array data does not match shape {shape} and dtype {dtype}")
    return raw, dtype, shape, "F" if fortran else "C"


class _Materialiser:
    """Real objects (dicts, lists, arrays) from what the unpickler built, within a batch's needs.

    Pickle shares references, so a few bytes can name one list from many places, and copying
    every reference costs the fully expanded tree (3.5 KiB of pickle expands to 10**8 nodes).
    Each object is turned into a real one once and shared as in the file; its expanded node
    count and nesting height are kept with it, so the caps cost one step per stored reference.
    """

    def __init__(self, data_budget):
        # id(obj) -> (real object, expanded node count, height); the unpickled root keeps
        # every obj alive for the whole walk, so no id is reused meanwhile
        self._done = {}
        # every array's bytes are stored in the file once (inline, or as the one text that
        # _codecs.encode turns into them), so together they fit in the file's size; more
        # means several arrays were built over one stored buffer
        self._data_left = data_budget

    def __call__(self, obj):
        return self._visit(obj, 1)[0]

    def _visit(self, obj, depth):
        if depth > _MAX_DEPTH:
            raise self._too_deep()
        if id(obj) not in self._done:
            self._done[id(obj)] = self._make(obj, depth)
        done = self._done[id(obj)]
        # only an object met again, deeper than where it was made, can fail here
        if depth - 1 + done[2] > _MAX_DEPTH:
            raise self._too_deep()
        return done

    @staticmethod
    def _too_deep():
        return pickle.UnpicklingError(f"it nests deeper than {_MAX_DEPTH} levels (a CIFAR-10 "
                                      "batch is a dict of lists)")

    def _make(self, obj, depth):
        """(real object, expanded node count, height) of an object met for the first time."""
        if isinstance(obj, _ArrayStub):
            return self._array(obj), 1, 1
        if isinstance(obj, dict):
            items = [(self._visit(k, depth + 1), self._visit(v, depth + 1))
                     for k, v in obj.items()]
            real = {k[0]: v[0] for k, v in items}
            parts = [part for item in items for part in item]
        elif isinstance(obj, (list, tuple)):
            parts = [self._visit(v, depth + 1) for v in obj]
            real = type(obj)(part[0] for part in parts)
        elif isinstance(obj, (_DtypeStub, _StandIn)):
            raise pickle.UnpicklingError("a bare numpy dtype/ndarray object at top level")
        else:
            return obj, 1, 1
        nodes = 1 + sum(part[1] for part in parts)
        if nodes > _MAX_NODES:
            raise pickle.UnpicklingError(
                f"it holds more than {_MAX_NODES} objects once shared references are counted "
                "(a CIFAR-10 batch holds about 20,000)")
        return real, nodes, 1 + max((part[2] for part in parts), default=0)

    def _array(self, stub):
        """The stub's array, its bytes charged to the data budget before they are copied."""
        raw, dtype, shape, order = _array_parts(stub)
        if len(raw) > self._data_left:
            raise pickle.UnpicklingError("its arrays hold more bytes than the file stores (they "
                                         "share one stored buffer)")
        self._data_left -= len(raw)
        if isinstance(raw, str):
            raw = raw.encode("latin-1")
        return np.frombuffer(raw, dtype=dtype).reshape(shape, order=order).copy()


def load_cifar_pickle(path: str | os.PathLike[str]) -> dict[Any, Any]:
    """Load one CIFAR-10 python batch through the restricted unpickler.

    Parameters
    ----------
    path : str or os.PathLike
        A batch file (``data_batch_1``, ``test_batch``, ``batches.meta``, ...).

    Returns
    -------
    dict
        The batch with ``str`` keys; references the file shares stay shared.

    Raises
    ------
    ValueError
        Naming the file, when it is not a pickle of the expected kind, refers to any global
        beyond the numpy array machinery, names more objects or array bytes than a batch
        holds, or declares an object too large to allocate; no code from the file runs.

    Examples
    --------
    >>> import os, pickle, tempfile
    >>> import numpy as np
    >>> with tempfile.TemporaryDirectory() as folder:
    ...     path = os.path.join(folder, "data_batch_1")
    ...     with open(path, "wb") as f:
    ...         pickle.dump({b"labels": [3, 8], b"data": np.zeros((2, 3072), np.uint8)}, f)
    ...     batch = load_cifar_pickle(path)
    >>> batch["labels"], batch["data"].shape
    ([3, 8], (2, 3072))
    """
    try:
        with open(path, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            materialise = _Materialiser(size)
            obj = materialise(_CifarUnpickler(f).load())
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, KeyError, IndexError,
            AttributeError) as exc:
        raise ValueError(f"{path} is not an original CIFAR-10 python batch: {exc}") from exc
    except (MemoryError, OverflowError) as exc:
        # The unpickler allocates a counted bytes, str or frame before reading it, so a few
        # bytes declaring a length of 2**40 end here rather than as "truncated"; a real
        # batch's largest object is its data, stored in full in the file.
        raise ValueError(f"{path} is not an original CIFAR-10 python batch: it declares an "
                         f"object too large to allocate ({type(exc).__name__}) in a file of "
                         f"{size} bytes") from exc
    if not isinstance(obj, dict):
        raise ValueError(f"{path} is not an original CIFAR-10 python batch: it holds a "
                         f"{type(obj).__name__}, not a dict")
    return {(k.decode("latin-1") if isinstance(k, bytes) else k): v for k, v in obj.items()}
