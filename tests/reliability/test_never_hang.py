"""Issue 10, guarantees 1-2: a read never hangs on, or reaches outside, an entry.

Special files (FIFO, socket, device) and links out of the root at an entry's path are damaged
entries, found without opening them for reading. Entries whose variables keep their data
elsewhere (HDF5 external storage, external links, virtual datasets) are refused from the
header, before any data is read, whether they come from a local file or object-store bytes.
Every read runs in a forked child with a deadline, so a regression fails instead of hanging.
"""

from __future__ import annotations

import os
import socket
import stat
import tempfile
from collections.abc import Callable
from pathlib import Path

import h5netcdf
import h5py
import pytest
import xarray as xr
from forked import call_in_fork
from reliability_workers import sample_kwargs, tiny_model

import cloudcache as cc
from cloudcache.errors import CorruptEntry
from cloudcache.stores.base import Entry, EntryRef
from cloudcache.stores.files import FileStore
from cloudcache.stores.format.netcdf import decode_entry

KEY = "fedcba9876543210" * 2
REF = EntryRef(key=KEY, slug="planted", label="draws30_tune30_chains2")
#: Seconds a read may take before the test calls it a hang (a clean read takes well under 5).
HANG = 30.0


def _problems(root: str) -> tuple[bool, list[str]]:
    found = FileStore(root).lookup(REF)
    return found.entry is not None, list(found.problems)


def _fifo(path: Path) -> None:
    os.mkfifo(path)


def _socket(path: Path) -> None:
    short = Path(tempfile.mkdtemp(dir="/tmp")) / "s"  # AF_UNIX paths are limited to ~108 bytes
    with socket.socket(socket.AF_UNIX) as server:
        server.bind(str(short))
        server.listen(1)
        short.rename(path)  # the socket file itself now sits at the entry's path


def _device(path: Path) -> None:
    try:
        os.mknod(path, stat.S_IFCHR | 0o600, os.makedev(1, 5))  # like /dev/zero
    except PermissionError:
        pytest.skip("this machine does not allow creating device nodes")


SPECIAL = {"FIFO": _fifo, "socket": _socket, "character device": _device}


@pytest.mark.parametrize("make", SPECIAL.values(), ids=SPECIAL.keys())
def test_special_file_at_an_entry_path_is_damaged_not_a_hang(
    make: Callable[[Path], None], tmp_path: Path
) -> None:
    root = tmp_path / "c"
    path = Path(FileStore(root).path_of(REF))
    path.parent.mkdir(parents=True)
    make(path)
    hit, problems = call_in_fork(_problems, str(root), timeout=HANG)
    assert not hit
    assert len(problems) == 1 and "damaged cache entry" in problems[0], problems
    assert "not a regular file" in problems[0], problems


def test_link_out_of_the_root_is_damaged(tiny_tree: xr.DataTree, tmp_path: Path) -> None:
    outside = tmp_path / "elsewhere.nc"
    FileStore(tmp_path / "other").put(REF, Entry(tiny_tree))
    outside.write_bytes(Path(FileStore(tmp_path / "other").path_of(REF)).read_bytes())
    root = tmp_path / "cache"
    path = Path(FileStore(root).path_of(REF))
    path.parent.mkdir(parents=True)
    path.symlink_to(outside)  # a valid entry for this key, but not inside the cache
    hit, problems = call_in_fork(_problems, str(root), timeout=HANG)
    assert not hit and "outside the cache root" in problems[0], problems

    path.unlink()
    (path.parent).rmdir()
    path.parent.symlink_to(outside.parent / "other" / "planted")  # the model folder itself
    hit, problems = call_in_fork(_problems, str(root), timeout=HANG)
    assert not hit and "outside the cache root" in problems[0], problems


def test_session_with_a_fifo_entry_samples_with_one_warning(tmp_path: Path) -> None:
    def first_then_fifo() -> tuple[bool, list[str]]:
        import warnings

        import pymc as pm

        with cc.cloud(tiny_model(), cache=str(tmp_path), backend="pymc", quiet=True) as run:
            pm.sample(**sample_kwargs(3))
        location = Path(run.last.location)
        location.unlink()
        os.mkfifo(location)
        cc.stores.resolve.process_memory_store().clear()
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            with cc.cloud(tiny_model(), cache=str(tmp_path), backend="pymc", quiet=True) as run:
                tree = pm.sample(**sample_kwargs(3))
        messages = [str(w.message) for w in caught if "cloudcache" in str(w.message)]
        return ("posterior" in tree.children and not run.last.hit), messages

    sampled, messages = call_in_fork(first_then_fifo, timeout=240)
    assert sampled
    assert len(messages) == 1 and "FIFO" in messages[0], messages


# -- entries that reference data outside themselves -----------------------------------------
def _entry_file(tree: xr.DataTree, tmp_path: Path) -> Path:
    store = FileStore(tmp_path / "cache")
    store.put(REF, Entry(tree))
    return Path(store.path_of(REF))


def _add_external_storage(path: Path, target: Path) -> None:
    with h5netcdf.File(path, "a") as handle:
        group = handle["posterior"]
        group.dimensions["outside"] = 2
        group.create_variable("ext", ("outside",), float, external=[(str(target), 0, 16)])


def _add_external_link(path: Path, target: Path) -> None:
    with h5py.File(path, "a") as handle:
        handle["posterior"]["linked"] = h5py.ExternalLink(str(target), "/data")


def _add_virtual_dataset(path: Path, target: Path) -> None:
    layout = h5py.VirtualLayout(shape=(2,), dtype="f8")
    layout[:] = h5py.VirtualSource(str(target), "/data", shape=(2,))
    with h5py.File(path, "a") as handle:
        handle["posterior"].create_virtual_dataset("virtual", layout, fillvalue=0.0)


OUTSIDE = {
    "external storage": _add_external_storage,
    "external link": _add_external_link,
    "virtual dataset": _add_virtual_dataset,
}


def _decode_file(path: str) -> str:
    try:
        decode_entry(path, KEY)
    except CorruptEntry as error:
        return str(error)
    return ""


def _decode_bytes(path: str) -> str:
    try:
        decode_entry(Path(path).read_bytes(), KEY)
    except CorruptEntry as error:
        return str(error)
    return ""


@pytest.mark.parametrize("source", [_decode_file, _decode_bytes], ids=["file", "bytes"])
@pytest.mark.parametrize("plant", OUTSIDE.values(), ids=OUTSIDE.keys())
def test_references_outside_the_entry_are_refused_before_reading(
    plant: Callable[[Path, Path], None],
    source: Callable[[str], str],
    tiny_tree: xr.DataTree,
    tmp_path: Path,
) -> None:
    path = _entry_file(tiny_tree, tmp_path)
    if plant is _add_external_storage:
        target = tmp_path / "pipe"
        os.mkfifo(target)  # reading the variable would block forever
    else:
        target = tmp_path / "foreign.h5"
        with h5py.File(target, "w") as foreign:
            foreign["data"] = [1.0, 2.0]
    plant(path, target)
    problem = call_in_fork(source, str(path), timeout=HANG)
    assert problem, "an entry referencing outside data was accepted"
    words = {
        _add_external_storage: "external storage",
        _add_external_link: "external link",
        _add_virtual_dataset: "virtual dataset",
    }[plant]
    assert words in problem, problem


def test_object_store_bytes_with_external_storage_are_damaged(
    tiny_tree: xr.DataTree, tmp_path: Path
) -> None:
    """Through an fsspec store (``memory://``): the same refusal from bytes, no hang."""
    path = _entry_file(tiny_tree, tmp_path)
    target = tmp_path / "pipe"
    os.mkfifo(target)
    _add_external_storage(path, target)

    def read_through_memory_fs() -> tuple[bool, list[str]]:
        store = FileStore("memory://never-hang")
        store.fs.pipe_file(store.path_of(REF), path.read_bytes())
        found = store.lookup(REF)
        return found.entry is not None, list(found.problems)

    hit, problems = call_in_fork(read_through_memory_fs, timeout=HANG)
    assert not hit and "external storage" in problems[0], problems
