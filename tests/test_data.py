"""Datasets: real file formats written by the tests themselves, splits, normalisation, errors.

Crafted files too: each is refused, in time and memory bounded by what it stores, without
changing any object that outlives its load.
"""

import codecs
import contextlib
import copy
import gzip
import inspect
import os
import pickle
import re
import struct
import tracemalloc

import numpy as np
import pytest

from fastconv import data


# ----------------------------------------------------------------------------- writers

def write_idx(path, array, compress=False):
    """Write an unsigned-byte IDX file as in the original MNIST distribution."""
    array = np.asarray(array, dtype=np.uint8)
    header = bytes([0, 0, 0x08, array.ndim]) + struct.pack(f">{array.ndim}i", *array.shape)
    payload = header + array.tobytes()
    opener = gzip.open if compress else open
    with opener(path, "wb") as f:
        f.write(payload)


def write_mnist(directory, n_train=40, n_test=12, compress=False, seed=0):
    rng = np.random.default_rng(seed)
    arrays = {
        "train_images": rng.integers(0, 256, (n_train, 28, 28)),
        "train_labels": np.arange(n_train) % 10,
        "test_images": rng.integers(0, 256, (n_test, 28, 28)),
        "test_labels": (np.arange(n_test) * 3) % 10,
    }
    suffix = ".gz" if compress else ""
    for key, name in data.MNIST_FILES.items():
        write_idx(os.path.join(directory, name + suffix), arrays[key], compress)
    return arrays


class Py2Pickler(pickle._Pickler):
    """Writes str and bytes as BINSTRING, as Python 2's cPickle did for the CIFAR-10 files."""

    dispatch = dict(pickle._Pickler.dispatch)

    def save_py2_string(self, obj):
        raw = obj.encode("latin-1") if isinstance(obj, str) else obj
        if len(raw) < 256:
            self.write(pickle.SHORT_BINSTRING + bytes([len(raw)]) + raw)
        else:
            self.write(pickle.BINSTRING + struct.pack("<i", len(raw)) + raw)
        self.memoize(obj)

    dispatch[str] = save_py2_string
    dispatch[bytes] = save_py2_string


def py2_pickle(obj):
    import io
    buf = io.BytesIO()
    Py2Pickler(buf, protocol=2).dump(obj)
    # numpy 1.x (which wrote the original files) lived in numpy.core, not numpy._core
    return buf.getvalue().replace(b"numpy._core.multiarray\n", b"numpy.core.multiarray\n")


def write_cifar(directory, n_per_batch=4, seed=0):
    rng = np.random.default_rng(seed)
    os.makedirs(directory, exist_ok=True)
    written = {}
    for name in data.CIFAR10_FILES[:-1]:
        pixels = rng.integers(0, 256, (n_per_batch, 3072)).astype(np.uint8)
        labels = [int(v) for v in rng.integers(0, 10, n_per_batch)]
        batch = {b"batch_label": b"training batch", b"labels": labels, b"data": pixels,
                 b"filenames": [b"img_%d.png" % i for i in range(n_per_batch)]}
        with open(os.path.join(directory, name), "wb") as f:
            f.write(py2_pickle(batch))
        written[name] = (pixels, labels)
    meta = {b"label_names": [b"airplane", b"automobile", b"bird", b"cat", b"deer", b"dog",
                             b"frog", b"horse", b"ship", b"truck"],
            b"num_cases_per_batch": n_per_batch, b"num_vis": 3072}
    with open(os.path.join(directory, "batches.meta"), "wb") as f:
        f.write(py2_pickle(meta))
    return written


# ----------------------------------------------------------------------------- digits

def test_digits_splits_are_disjoint_deterministic_and_normalised():
    pytest.importorskip("sklearn")
    a = data.load_digits(seed=3)
    b = data.load_digits(seed=3)
    c = data.load_digits(seed=4)
    assert a.X_train.shape[1:] == (1, 8, 8) and a.X_train.dtype == np.float32
    assert len(a.y_train) + len(a.y_val) + len(a.y_test) == 1797
    assert len(a.y_test) == round(0.2 * 1797) and len(a.y_val) == round(0.1 * 1797)
    np.testing.assert_array_equal(a.X_test, b.X_test)
    assert not np.array_equal(a.y_test, c.y_test)
    assert abs(float(a.X_train.mean())) < 1e-5 and abs(float(a.X_train.std()) - 1) < 1e-4
    # the splits are disjoint pieces of sklearn's data: undo the normalisation and match rows
    from sklearn.datasets import load_digits
    raw = load_digits().images.reshape(1797, -1)
    def rows(x):
        return {tuple(np.rint(r).astype(int)) for r in
                (x.astype(np.float64) * a.std[0] + a.mean[0]).reshape(len(x), -1)}
    train, test = rows(a.X_train), rows(a.X_test)
    assert train | test <= {tuple(r) for r in raw.astype(int)}
    assert a.num_classes == 10 and a.y_train.dtype == np.int64
    assert set(a.as_dict()) == {"X_train", "y_train", "X_val", "y_val", "X_test", "y_test"}


def test_digits_bad_fractions():
    with pytest.raises(ValueError, match="val_fraction"):
        data.load_digits(val_fraction=1.5)
    with pytest.raises(ValueError, match="val_fraction \\+ test_fraction"):
        data.load_digits(val_fraction=0.5, test_fraction=0.5)


# ----------------------------------------------------------------------------- MNIST

@pytest.mark.parametrize("compress", [False, True])
def test_mnist_reads_original_idx_files(tmp_path, compress):
    arrays = write_mnist(tmp_path, compress=compress)
    ds = data.load_mnist(str(tmp_path), val_size=10, normalize=False, dtype=np.float64)
    assert ds.X_train.shape == (30, 1, 28, 28) and ds.X_val.shape == (10, 1, 28, 28)
    np.testing.assert_array_equal(ds.X_test[:, 0], arrays["test_images"])
    np.testing.assert_array_equal(ds.y_test, arrays["test_labels"])
    # train + val are a permutation of the training file, labels travelling with images
    x = np.concatenate([ds.X_train, ds.X_val])[:, 0].reshape(40, -1)
    y = np.concatenate([ds.y_train, ds.y_val])
    original = {tuple(r): l for r, l in zip(arrays["train_images"].reshape(40, -1), arrays["train_labels"])}
    assert {tuple(r.astype(int)): l for r, l in zip(x, y)} == original


def test_mnist_normalisation_uses_training_statistics(tmp_path):
    write_mnist(tmp_path)
    ds = data.load_mnist(str(tmp_path), val_size=5)
    assert abs(float(ds.X_train.mean())) < 1e-5
    assert abs(float(ds.X_train.astype(np.float64).std()) - 1) < 1e-4
    assert ds.mean.shape == (1,) and ds.std.shape == (1,)


def test_mnist_missing_directory_and_files_say_what_is_expected(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist.*train-images-idx3-ubyte"):
        data.load_mnist(str(tmp_path / "nope"))
    write_mnist(tmp_path)
    os.remove(tmp_path / "t10k-labels-idx1-ubyte")
    with pytest.raises(FileNotFoundError, match="t10k-labels-idx1-ubyte.*yann.lecun.com"):
        data.load_mnist(str(tmp_path))


def test_mnist_malformed_files_are_named(tmp_path):
    write_mnist(tmp_path)
    bad = tmp_path / "train-images-idx3-ubyte"
    bad.write_bytes(b"PK\x03\x04 not an idx file")
    with pytest.raises(ValueError, match="train-images-idx3-ubyte.*magic.*get them from"):
        data.load_mnist(str(tmp_path))
    write_idx(bad, np.zeros((40, 28, 28)))
    bad.write_bytes(bad.read_bytes()[:-7])  # truncated
    with pytest.raises(ValueError, match="header says shape"):
        data.load_mnist(str(tmp_path))
    write_idx(bad, np.zeros((39, 28, 28)))  # one image short of the 40 labels
    with pytest.raises(ValueError, match="expected \\(N, H, W\\) images and N labels"):
        data.load_mnist(str(tmp_path))
    bad.write_bytes(bytes([0, 0, 8, 3]) + struct.pack(">3i", 40, -28, -28) + bytes(40 * 784))
    with pytest.raises(ValueError, match="negative dimension"):
        data.load_mnist(str(tmp_path))


@contextlib.contextmanager
def traced_peak():
    """A list that receives the peak of the Python memory traced while the block runs."""
    tracemalloc.start()
    peak = []
    try:
        yield peak
    finally:
        peak.append(tracemalloc.get_traced_memory()[1])
        tracemalloc.stop()


def write_idx_header_then(path, shape, n_zeros, compress):
    """An IDX header declaring ``shape``, then ``n_zeros`` zero bytes, written piece by piece."""
    header = bytes([0, 0, 0x08, len(shape)]) + struct.pack(f">{len(shape)}i", *shape)
    block = bytes(1 << 20)
    with (gzip.open(path, "wb", compresslevel=1) if compress else open(path, "wb")) as f:
        f.write(header)
        for start in range(0, n_zeros, len(block)):
            f.write(block[:n_zeros - start])


@pytest.mark.parametrize("compress", [True, False])
def test_idx_data_past_the_declared_size_is_never_read(tmp_path, compress):
    """1 byte declared, 32 MiB held (35 KiB gzipped): refused holding well under 1 MiB."""
    path = tmp_path / ("train-labels-idx1-ubyte" + (".gz" if compress else ""))
    write_idx_header_then(path, (1,), 32 << 20, compress)
    held = "more than 1 bytes" if compress else f"{32 << 20} bytes"
    message = f"{path}: header says shape (1,) (1 bytes) but the file holds {held} of data"
    with traced_peak() as peak, pytest.raises(ValueError, match=re.escape(message)):
        data.read_idx(str(path))
    assert peak[0] < 1 << 20


def test_idx_gzip_declaring_more_than_it_holds_costs_what_it_holds(tmp_path):
    path = tmp_path / "train-images-idx3-ubyte.gz"
    write_idx_header_then(path, (2**31 - 1,) * 3, 1000, compress=True)  # 2**93 bytes declared
    with traced_peak() as peak, pytest.raises(ValueError, match="holds 1000 bytes of data"):
        data.read_idx(str(path))
    assert peak[0] < 4 << 20


def test_idx_corrupt_gzip_stream_is_named(tmp_path):
    path = tmp_path / "train-labels-idx1-ubyte.gz"
    write_idx(path, np.arange(5000) % 10, compress=True)
    raw = bytearray(path.read_bytes())
    middle = len(raw) // 2
    raw[middle:middle + 8] = b"\xff" * 8  # inside the deflate data: zlib, not gzip, sees it
    path.write_bytes(bytes(raw))
    with pytest.raises(ValueError, match="train-labels-idx1-ubyte.gz is not a readable IDX file"):
        data.read_idx(str(path))


def test_mnist_test_images_of_another_size_are_refused_at_load_time(tmp_path):
    """They used to load, and a run failed in its final evaluation."""
    write_mnist(tmp_path)
    write_idx(tmp_path / "t10k-images-idx3-ubyte", np.zeros((12, 20, 20)))
    with pytest.raises(ValueError, match=r"holds \(28, 28\) images but t10k-images-idx3-ubyte "
                                         r"holds \(20, 20\)"):
        data.load_mnist(str(tmp_path))


def test_val_size_is_a_number_of_images(tmp_path):
    write_mnist(tmp_path)
    with pytest.raises(TypeError, match="val_size must be an int"):
        data.load_mnist(str(tmp_path), val_size=0.1)
    with pytest.raises(ValueError, match="val_size must be in \\[0, 40\\)"):
        data.load_mnist(str(tmp_path), val_size=40)


# ----------------------------------------------------------------------------- CIFAR-10

@pytest.mark.parametrize("nested", [False, True])
def test_cifar10_reads_python2_batches(tmp_path, nested):
    root = tmp_path / "cifar-10-batches-py" if nested else tmp_path
    written = write_cifar(str(root))
    ds = data.load_cifar10(str(tmp_path), val_size=6, normalize=False, dtype=np.float64)
    assert ds.classes[0] == "airplane" and ds.classes[-1] == "truck"
    assert ds.X_train.shape == (14, 3, 32, 32) and ds.X_val.shape == (6, 3, 32, 32)
    pixels, labels = written["test_batch"]
    np.testing.assert_array_equal(ds.X_test, pixels.reshape(4, 3, 32, 32))
    np.testing.assert_array_equal(ds.y_test, labels)
    train_pixels = np.concatenate([written[f"data_batch_{i}"][0] for i in range(1, 6)])
    got = np.concatenate([ds.X_train, ds.X_val]).reshape(20, -1)
    assert sorted(map(tuple, got.astype(int))) == sorted(map(tuple, train_pixels.astype(int)))


def test_cifar10_normalises_per_channel(tmp_path):
    write_cifar(str(tmp_path), n_per_batch=6)
    ds = data.load_cifar10(str(tmp_path), val_size=3)
    means = ds.X_train.astype(np.float64).mean(axis=(0, 2, 3))
    np.testing.assert_allclose(means, 0, atol=1e-5)
    assert ds.mean.shape == (3,) and ds.input_shape == (3, 32, 32)


def test_cifar10_accepts_python3_protocol2_pickles(tmp_path):
    # the same batches re-pickled by Python 3 at protocol 2 use _codecs.encode for bytes
    write_cifar(str(tmp_path))
    path = tmp_path / "data_batch_2"
    batch = data.load_cifar_pickle(str(path))
    path.write_bytes(pickle.dumps({k.encode(): v for k, v in batch.items()}, protocol=2))
    again = data.load_cifar_pickle(str(path))
    np.testing.assert_array_equal(again["data"], batch["data"])


class Exploit:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_cifar10_refuses_a_pickle_that_runs_code(tmp_path):
    write_cifar(str(tmp_path))
    marker = tmp_path / "pwned"
    evil = {b"data": np.zeros((1, 3072), np.uint8), b"labels": [Exploit(marker)]}
    (tmp_path / "data_batch_3").write_bytes(pickle.dumps(evil, protocol=2))
    with pytest.raises(ValueError, match="data_batch_3.*refused to load global (posix|os).system"):
        data.load_cifar10(str(tmp_path))
    assert not marker.exists()
    # protocol 4 (STACK_GLOBAL) goes through the same gate
    (tmp_path / "data_batch_3").write_bytes(pickle.dumps(evil, protocol=4))
    with pytest.raises(ValueError, match="refused to load global"):
        data.load_cifar10(str(tmp_path))
    assert not marker.exists()


def test_cifar10_refuses_object_arrays_and_bad_shapes(tmp_path):
    write_cifar(str(tmp_path))
    path = tmp_path / "data_batch_1"
    path.write_bytes(pickle.dumps({b"data": np.array([object()] * 2), b"labels": [0, 1]},
                                  protocol=2))
    with pytest.raises(ValueError, match="data_batch_1"):
        data.load_cifar10(str(tmp_path))
    path.write_bytes(py2_pickle({b"data": np.zeros((2, 100), np.uint8), b"labels": [0, 1]}))
    with pytest.raises(ValueError, match="expected 'data' uint8 \\(N, 3072\\)"):
        data.load_cifar10(str(tmp_path))
    path.write_bytes(b"garbage, not a pickle")
    with pytest.raises(ValueError, match="data_batch_1 is not an original CIFAR-10.*cs.toronto"):
        data.load_cifar10(str(tmp_path))


@pytest.mark.parametrize("labels, described", [
    ([0.0, 1.7], r"float64 \(2,\)"),  # used to be truncated to 0, 1
    (["cat", "dog"], r"\|S3 \(2,\)"), ([True, False], r"bool \(2,\)"), (5, "int"),
])
def test_cifar10_labels_must_be_a_list_of_ints(tmp_path, labels, described):
    write_cifar(str(tmp_path))
    (tmp_path / "data_batch_1").write_bytes(
        py2_pickle({b"data": np.zeros((2, 3072), np.uint8), b"labels": labels}))
    with pytest.raises(ValueError, match=f"data_batch_1: expected .* labels {described}"):
        data.load_cifar10(str(tmp_path))


def test_cifar10_ragged_labels_are_a_clear_error_naming_the_file(tmp_path):
    """NumPy's own error on a ragged list used to escape without the file's name."""
    write_cifar(str(tmp_path))
    (tmp_path / "data_batch_1").write_bytes(
        py2_pickle({b"data": np.zeros((2, 3072), np.uint8), b"labels": [1, [2, 3]]}))
    with pytest.raises(ValueError, match="data_batch_1: expected a list of N integer 'labels', "
                                         "got a list that is not one"):
        data.load_cifar10(str(tmp_path))


@pytest.mark.parametrize("opcode, protocol, length", [
    (b"\x8e", 4, 2**62),  # BINBYTES8: MemoryError from the unpickler's allocation
    (b"\x8d", 4, 2**62),  # BINUNICODE8
    (b"\x96", 5, 2**62),  # BYTEARRAY8
    (b"\x95", 4, 2**50),  # FRAME
    (b"\x8e", 4, 2**63),  # past the largest size: OverflowError
])
def test_cifar_a_declared_length_past_the_file_is_a_clear_error(tmp_path, opcode, protocol,
                                                                length):
    """A 14-byte file declaring a huge object used to raise a bare MemoryError."""
    path = tmp_path / "data_batch_1"
    path.write_bytes(bytes([0x80, protocol]) + opcode + struct.pack("<Q", length) + b"xx.")
    with pytest.raises(ValueError, match="data_batch_1 is not an original CIFAR-10 python "
                                         "batch: (it declares an object too large to allocate "
                                         ".* in a file of 14 bytes|pickle data was truncated)"):
        data.load_cifar_pickle(str(path))


def test_cifar10_deeply_nested_pickle_is_a_clear_error(tmp_path):
    write_cifar(str(tmp_path))
    depth = 200_000  # EMPTY_LIST pushed depth times, then APPENDed into each other
    nested = b"\x80\x02" + pickle.EMPTY_LIST * depth + pickle.APPEND * (depth - 1) + pickle.STOP
    (tmp_path / "data_batch_1").write_bytes(nested)
    with pytest.raises(ValueError, match="data_batch_1 is not an original CIFAR-10"):
        data.load_cifar10(str(tmp_path))


def nested_refs(levels, fan_out):
    """``levels`` lists, each of ``fan_out`` references to the one below, around [0]."""
    node = [0]
    for _ in range(levels):
        node = [node] * fan_out
    return node


@pytest.mark.parametrize("levels, fan_out, refusal", [
    (8, 10, "nests deeper than 8 levels"),  # 3.5 KiB naming 10**8 objects
    (5, 10, "holds more than 100000 objects"),  # just past the cap, shallow enough
    (3, 1000, "holds more than 100000 objects"),  # 10**9 objects three levels deep
])
def test_cifar_shared_reference_bombs_are_refused(tmp_path, levels, fan_out, refusal):
    path = tmp_path / "data_batch_1"
    path.write_bytes(pickle.dumps({b"data": np.zeros((1, 3072), np.uint8),
                                   b"labels": nested_refs(levels, fan_out)}, protocol=2))
    assert path.stat().st_size < 16 << 10
    with pytest.raises(ValueError, match=f"data_batch_1 is not an original CIFAR-10 python "
                                         f"batch: it {refusal}"):
        data.load_cifar_pickle(str(path))


def test_cifar_references_the_file_shares_stay_shared(tmp_path):
    shared = [b"a.png", b"b.png"]
    path = tmp_path / "data_batch_1"
    path.write_bytes(py2_pickle({b"data": np.zeros((2, 3072), np.uint8), b"labels": [0, 1],
                                 b"filenames": shared, b"again": shared}))
    batch = data.load_cifar_pickle(str(path))
    assert batch["filenames"] == [b"a.png", b"b.png"] and batch["again"] is batch["filenames"]


class Reduced:
    """Pickles as ``reduced`` (callable, args[, state]): the same objects at every use."""

    def __init__(self, *reduced):
        self.reduced = reduced

    def __reduce__(self):
        return self.reduced


def test_cifar_arrays_built_over_one_stored_buffer_are_refused(tmp_path):
    reduced = np.zeros(1 << 16, np.uint8).__reduce__()  # its state tuple holds the data
    path = tmp_path / "data_batch_1"
    path.write_bytes(pickle.dumps({b"data": np.zeros((1, 3072), np.uint8), b"labels": [0],
                                   b"extra": [Reduced(*reduced) for _ in range(64)]},
                                  protocol=2))
    assert path.stat().st_size < 100 << 10  # 64 KiB stored once, named by 64 arrays
    with traced_peak() as peak, pytest.raises(
            ValueError, match="data_batch_1 .*arrays hold more bytes than the file stores"):
        data.load_cifar_pickle(str(path))
    assert peak[0] < 2 << 20


def test_cifar_one_text_encoded_many_times_stays_one_bytes_object(tmp_path):
    """Python 3 writes protocol-2 bytes as _codecs.encode(text, "latin1"); here one stored
    1 MiB text is passed to 64 such calls."""
    def put(i, opcodes):
        return opcodes + pickle.BINPUT + bytes([i]) + pickle.POP
    call = (pickle.BINGET + b"\x00" + pickle.BINGET + b"\x01" + pickle.BINGET + b"\x02"
            + pickle.TUPLE2 + pickle.REDUCE)
    text = pickle.BINUNICODE + struct.pack("<I", 1 << 20) + b"x" * (1 << 20)
    latin1 = pickle.BINUNICODE + struct.pack("<I", 6) + b"latin1"
    path = tmp_path / "data_batch_1"
    path.write_bytes(b"\x80\x02" + put(0, b"c_codecs\nencode\n") + put(1, text) + put(2, latin1)
                     + pickle.EMPTY_DICT + pickle.SHORT_BINBYTES + b"\x09filenames"
                     + pickle.EMPTY_LIST + pickle.MARK + call * 64 + pickle.APPENDS
                     + pickle.SETITEM + pickle.STOP)
    with traced_peak() as peak:
        names = data.load_cifar_pickle(str(path))["filenames"]
    assert len(names) == 64 and names[0] == b"x" * (1 << 20) and names[0] is names[-1]
    assert peak[0] < 16 << 20


def test_cifar_array_of_thousands_of_dimensions_is_refused(tmp_path):
    reconstruct, args, (version, _, dtype, fortran, raw) = np.zeros(1, np.uint8).__reduce__()
    many = Reduced(reconstruct, args, (version, (2**62,) * 10_000, dtype, fortran, raw))
    path = tmp_path / "data_batch_1"
    path.write_bytes(pickle.dumps({b"data": many, b"labels": []}, protocol=2))
    with pytest.raises(ValueError, match="refused an array of 10000 dimensions"):
        data.load_cifar_pickle(str(path))


@pytest.mark.parametrize("crafted", [
    Reduced(codecs.encode, ("a", nested_refs(5, 10))),
    Reduced(*np.zeros(1, np.uint8).__reduce__()[:2],
            (1, (1,), Reduced(np.dtype, (nested_refs(5, 10),)), False, b"\0")),
], ids=["encoding", "dtype"])
def test_cifar_refusals_name_a_crafted_argument_by_its_type(tmp_path, crafted):
    """Its repr is no message: a tree of shared references (10**5 objects in 200 bytes)."""
    path = tmp_path / "data_batch_1"
    path.write_bytes(pickle.dumps({b"data": crafted, b"labels": []}, protocol=2))
    with pytest.raises(ValueError, match="refused .* of type list") as refused:
        data.load_cifar_pickle(str(path))
    assert len(str(refused.value)) < 500


STAND_IN_GLOBALS = [("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray",
                    "_reconstruct"), ("numpy", "ndarray"), ("numpy", "dtype"), ("_codecs", "encode")]


def module_level_state():
    """The attributes of every function, class and object that the CIFAR reader's modules
    define, at module level or as the values of a module-level dict."""
    modules = {data, inspect.getmodule(data.load_cifar_pickle)}
    state = []
    for module in modules:
        for value in vars(module).values():
            for obj in [value] + (list(value.values()) if isinstance(value, dict) else []):
                owner = obj if isinstance(obj, type) or callable(obj) else type(obj)
                if getattr(owner, "__module__", None) == module.__name__:
                    state.append((obj, dict(getattr(obj, "__dict__", {})),
                                  copy.copy(getattr(obj, "__defaults__", None)),
                                  copy.copy(getattr(obj, "__kwdefaults__", None))))
    return state


@pytest.mark.parametrize("module, name", STAND_IN_GLOBALS)
@pytest.mark.parametrize("state", [{"pwned": 1}, (None, {"pwned": 1})], ids=["dict", "slots"])
def test_cifar_build_on_a_stand_in_is_refused_and_changes_nothing(tmp_path, module, name, state):
    """BUILD with a dict (instance dict) or a (None, dict) pair (setattr) on each global a
    batch may name, then a valid batch."""
    batch = py2_pickle({b"data": np.zeros((1, 3072), np.uint8), b"labels": [0]})
    build = (f"c{module}\n{name}\n".encode() + pickle.dumps(state, protocol=2)[2:-1]
             + pickle.BUILD + pickle.POP)
    path = tmp_path / "data_batch_1"
    path.write_bytes(batch[:2] + build + batch[2:])
    before = module_level_state()
    with pytest.raises(ValueError, match="data_batch_1 is not an original CIFAR-10 python "
                                         "batch: refused to set the state of "):
        data.load_cifar_pickle(str(path))
    assert module_level_state() == before


def test_cifar10_missing_files_are_listed(tmp_path):
    write_cifar(str(tmp_path))
    os.remove(tmp_path / "batches.meta")
    os.remove(tmp_path / "data_batch_5")
    with pytest.raises(FileNotFoundError, match="data_batch_5, batches.meta not found.*cs.toronto.edu"):
        data.load_cifar10(str(tmp_path))
    with pytest.raises(FileNotFoundError, match="does not exist"):
        data.load_cifar10(str(tmp_path / "missing"))


def test_load_dataset_dispatch_and_errors(tmp_path):
    with pytest.raises(ValueError, match="unknown dataset 'svhn'"):
        data.load_dataset("svhn")
    with pytest.raises(ValueError, match="needs a data directory"):
        data.load_dataset("mnist")
    write_mnist(tmp_path)
    assert data.load_dataset("mnist", str(tmp_path), val_size=4).name == "mnist"
