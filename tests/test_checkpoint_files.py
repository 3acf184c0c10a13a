"""Files written safely and checkpoint files read without trusting them (fastconv.checkpoint).

Writes: every file fastconv keeps (a checkpoint, a run's history.json) goes
through one atomic writer, so two writers at once, a symlinked file and a
failed write are each tested for both. Reads: crafted .npz files, a few bytes
each, whose entries are undefined, forged or truncated, are refused before
their data is read, and without allocating what they claim.
"""

import io
import json
import os
import pathlib
import struct
import threading
import tracemalloc
import zipfile

import numpy as np
import pytest
from numpy.lib import format as npy

from fastconv import runs
from fastconv.checkpoint import CheckpointError, load_arrays, save_arrays

# ----------------------------------------------------------------- crafted files


def npy_bytes(shape, dtype, data):
    """A .npy file's bytes: a version 1.0 header for ``shape`` and ``dtype``, then ``data``."""
    header = io.BytesIO()
    npy.write_array_header_1_0(header, {"descr": npy.dtype_to_descr(np.dtype(dtype)),
                                        "fortran_order": False, "shape": shape})
    return header.getvalue() + data


def write_npz(path, members, compression=zipfile.ZIP_STORED):
    """A zip of ``{member name: bytes}``, as numpy.savez lays one out."""
    with zipfile.ZipFile(path, "w", compression) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return path


def patch_central_directory(path, field_offset, value):
    """Overwrite a 4-byte field of the first central directory record (the sizes zipfile uses)."""
    raw = bytearray(path.read_bytes())
    at = raw.index(b"PK\x01\x02") + field_offset
    raw[at:at + 4] = struct.pack("<I", value)
    path.write_bytes(bytes(raw))


COMPRESSED_SIZE, UNCOMPRESSED_SIZE = 20, 24  # offsets in a central directory record


def peak_allocation(fn):
    """``fn()``'s CheckpointError and the most memory traced while it ran, in bytes."""
    tracemalloc.start()
    try:
        with pytest.raises(CheckpointError) as refused:
            fn()
        return refused.value, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


SMALL = 1 << 20  # what refusing a crafted file may allocate at most


# ----------------------------------------------------------------- reading

@pytest.mark.parametrize("member", ["extra.npy", "meta/a/b.npy", "optim/0.W.npy",
                                    "history/lr.npy", "model/0.W"])
def test_an_entry_the_format_does_not_define_is_refused_unread(tmp_path, member):
    """A small file with a large deflated extra entry was read whole: all of it allocated."""
    path = tmp_path / "c.npz"
    save_arrays(path, {"format": np.array("fastconv-solver-checkpoint-1"),
                       "model/0.W": np.ones((6, 4), np.float32)})
    size = 32 << 20
    with zipfile.ZipFile(path, "a", zipfile.ZIP_DEFLATED) as archive, \
            archive.open(member, "w") as f:
        f.write(npy_bytes((size,), np.uint8, b""))
        for _ in range(size >> 20):
            f.write(bytes(1 << 20))
    assert path.stat().st_size < size // 100
    error, peak = peak_allocation(lambda: load_arrays(path))
    assert str(error).startswith(f"{path} is not a fastconv Solver checkpoint")
    assert f"entry {member!r}" in str(error) and "refused unread" in str(error)
    assert peak < SMALL


def test_a_header_claiming_terabytes_is_refused_before_allocating(tmp_path):
    """A few bytes claiming a 7 TiB array ended in a bare MemoryError."""
    path = write_npz(tmp_path / "c.npz",
                     {"model/0.W.npy": npy_bytes((7 << 37,), np.float64, bytes(16))})
    error, peak = peak_allocation(lambda: load_arrays(path))
    assert str(error).startswith(f"{path}: entry 'model/0.W' is corrupt or truncated")
    assert f"{7 << 40} bytes of data; the entry holds 16" in str(error)
    assert peak < SMALL


def test_a_truncated_entry_is_reported_as_truncated_not_as_pickled(tmp_path):
    path = write_npz(tmp_path / "c.npz", {"model/0.W.npy": npy_bytes((10,), np.float64,
                                                                     bytes(40))})
    with pytest.raises(CheckpointError, match=r"entry 'model/0.W' is corrupt or truncated") as e:
        load_arrays(path)
    assert "pickle" not in str(e.value)


FORGERIES = {  # name: (compression, central directory field, its forged value, error)
    "stored, claiming more than it stores": (
        zipfile.ZIP_STORED, UNCOMPRESSED_SIZE, lambda compressed, size: compressed + 1,
        "entry 'model/0.W' is corrupt .*more than its compression can produce"),
    "deflated, claiming more than deflate can produce": (
        zipfile.ZIP_DEFLATED, UNCOMPRESSED_SIZE, lambda compressed, size: compressed * 2000,
        "entry 'model/0.W' is corrupt .*more than its compression can produce"),
    "compressed data beyond the end of the file": (
        zipfile.ZIP_STORED, COMPRESSED_SIZE, lambda compressed, size: size + 1,
        "claim .* compressed bytes; the file has"),
    "bzip2, which numpy never writes": (
        zipfile.ZIP_BZIP2, None, None, "entry 'model/0.W' is compressed with zip method 12"),
}


@pytest.mark.parametrize("forgery", FORGERIES)
def test_zip_sizes_no_npz_writer_produces_are_refused_before_reading(tmp_path, forgery):
    compression, field, forged, match = FORGERIES[forgery]
    path = write_npz(tmp_path / "c.npz", {"model/0.W.npy": npy_bytes((4,), np.float64,
                                                                     bytes(32))}, compression)
    if field is not None:
        compressed = zipfile.ZipFile(path).infolist()[0].compress_size
        patch_central_directory(path, field, forged(compressed, path.stat().st_size))
    with pytest.raises(CheckpointError, match=match):
        load_arrays(path)


def test_a_checkpoint_written_by_save_arrays_reads_back_exactly(tmp_path):
    arrays = {"format": np.array("fastconv-solver-checkpoint-1"), "meta/epoch": np.int64(3),
              "model/0.W": np.arange(12, dtype=np.float32).reshape(3, 4),
              "optim/conv/1.W/m": np.asfortranarray(np.ones((2, 3))),
              "history/loss": np.array([2.5, 1.0]), "model/empty": np.zeros((0, 3))}
    path = tmp_path / "c.npz"
    save_arrays(path, arrays)
    loaded = load_arrays(path)
    assert sorted(loaded) == sorted(arrays)
    for name, value in arrays.items():
        assert loaded[name].dtype == value.dtype, name
        np.testing.assert_array_equal(loaded[name], value, err_msg=name)
    np.savez_compressed(path, **arrays)  # deflated entries read the same
    assert sorted(load_arrays(path)) == sorted(arrays)


def test_save_arrays_refuses_a_name_load_arrays_would_refuse(tmp_path):
    with pytest.raises(CheckpointError, match="entry 'W' is not one a Solver checkpoint defines"):
        save_arrays(tmp_path / "c.npz", {"W": np.zeros(3)})
    assert os.listdir(tmp_path) == []


# ----------------------------------------------------------------- writing

def _save_checkpoint(directory, value):
    save_arrays(directory / "c.npz", {"meta/epoch": np.int64(value)})
    return directory / "c.npz"


def _write_history(directory, value):
    return pathlib.Path(runs.write_history(directory, {"epoch": value}))


def _read(path):
    """The value a writer of WRITERS wrote to ``path``."""
    path = pathlib.Path(path)
    if path.suffix == ".npz":
        return int(load_arrays(path)["meta/epoch"])
    return json.loads(path.read_text())["epoch"]


WRITERS = {"save_arrays": _save_checkpoint, "write_history": _write_history}


@pytest.mark.parametrize("writer", WRITERS)
def test_two_writers_at_once_each_leave_a_whole_file(tmp_path, monkeypatch, writer):
    """One temporary name per process (a checkpoint) or per file (history.json, so two
    ``fastconv train --out DIR`` at once) made the second writer's os.replace fail."""
    both_written = threading.Barrier(2, timeout=10)
    replace = os.replace

    def replace_when_both_have_written(src, dst):
        both_written.wait()
        replace(src, dst)

    monkeypatch.setattr(os, "replace", replace_when_both_have_written)
    errors = []

    def write(value):
        try:
            WRITERS[writer](tmp_path, value)
        except Exception as exc:  # reported by the main thread's assertion
            errors.append(exc)
            both_written.abort()

    threads = [threading.Thread(target=write, args=(value,)) for value in (1, 2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    path, = (tmp_path / name for name in os.listdir(tmp_path))  # no temporary left
    assert _read(path) in (1, 2)


@pytest.mark.parametrize("writer", WRITERS)
def test_a_symlinked_file_is_written_through_its_link(tmp_path, writer):
    """The link was replaced by a file, its target left stale."""
    first = WRITERS[writer](tmp_path, 1)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    target = elsewhere / first.name
    first.rename(target)
    first.symlink_to(target)
    WRITERS[writer](tmp_path, 2)
    assert first.is_symlink() and first.resolve() == target.resolve()
    assert _read(target) == 2
    assert sorted(os.listdir(tmp_path)) == sorted(["elsewhere", first.name])
    assert os.listdir(elsewhere) == [first.name]


def test_a_failed_write_keeps_the_previous_file_and_no_temporary(tmp_path):
    path = runs.write_history(tmp_path, {"epoch": 1})
    with pytest.raises(TypeError):
        runs.write_history(tmp_path, {"epoch": object()})
    assert os.listdir(tmp_path) == ["history.json"]
    from fastconv.checkpoint import atomic_file
    with pytest.raises(RuntimeError, match="interrupted"):
        with atomic_file(tmp_path / "history.json") as f:
            f.write(b"half a file")
            raise RuntimeError("interrupted")
    assert os.listdir(tmp_path) == ["history.json"]
    assert _read(path) == 1


def test_the_data_is_on_disk_before_it_replaces_the_file(tmp_path, monkeypatch):
    calls = []
    fsync, replace = os.fsync, os.replace
    monkeypatch.setattr(os, "fsync", lambda fd: calls.append("fsync") or fsync(fd))
    monkeypatch.setattr(os, "replace", lambda *a: calls.append("replace") or replace(*a))
    _save_checkpoint(tmp_path, 1)
    _write_history(tmp_path, 1)
    assert calls == ["fsync", "replace"] * 2


def test_a_new_file_gets_the_permissions_open_would_give_it(tmp_path):
    umask = os.umask(0o027)
    try:
        path = _save_checkpoint(tmp_path, 1)
    finally:
        os.umask(umask)
    assert path.stat().st_mode & 0o777 == 0o640


@pytest.mark.parametrize("entry", ["model/0.W", "best/0.W", "optim/0.W/m", "model/9.W"])
def test_a_solver_refuses_a_misfit_entry_before_reading_its_data(tmp_path, entry):
    """An entry named like the format but not fitting the model (a parameter of another shape,
    or of no parameter at all) was read whole before the resume refused it."""
    import fastconv.nn as nn
    from fastconv.train import FORMAT, Solver
    path = write_npz(tmp_path / "c.npz", {
        "format.npy": npy_bytes((), "<U28", FORMAT.ljust(28).encode("utf-32-le")[:28 * 4]),
        f"{entry}.npy": npy_bytes((1024, 1024), "<f8", bytes(8 << 20))})
    model = nn.mlp(6, 4, hidden_dims=(8,), seed=0)
    data = {"X_train": np.zeros((4, 6), np.float32), "y_train": np.zeros(4, np.int64),
            "X_val": np.zeros((2, 6), np.float32), "y_val": np.zeros(2, np.int64)}
    error, peak = peak_allocation(lambda: Solver(model, data, resume=path, progress=False,
                                                 verbose=False))
    assert "refused unread" in str(error) and entry.split("/")[1] in str(error)
    assert peak < SMALL
