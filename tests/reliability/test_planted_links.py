"""Issue 21.1: nothing the cache does follows a symbolic link out of its root.

A neighbour with write access to a shared cache plants real symbolic links where the cache
creates, touches or deletes something: a last-used marker (pointing at a file outside, or
dangling), the marker's folder, the whole ``.locks`` tree, a lock file, a model folder, a marker
that ``rm`` removes. Every case checks the outside world afterwards: no file outside the root
was created, changed or deleted; the link was reported (a warning) and left alone; the call
still returned its result.
"""

from __future__ import annotations

import os
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import pymc as pm
import pytest
import xarray as xr
from click.testing import CliRunner
from reliability_figures import record_trials
from reliability_workers import sample_kwargs, tiny_model

import cloudcache as cc
from cloudcache.cli import app
from cloudcache.errors import PlantedLink, StoreError
from cloudcache.stores import nofollow
from cloudcache.stores.base import Entry, EntryRef
from cloudcache.stores.files import FileStore
from cloudcache.stores.format.layout import relative_path
from cloudcache.stores.locking import LOCK_DIRECTORY, lock_path
from cloudcache.stores.maintenance.catalog import Catalog
from cloudcache.stores.resolve import process_memory_store
from cloudcache.stores.usage import marker_path

REF = EntryRef(key="c3" * 16, slug="linked", label="draws30_tune30_chains2")
LONG_AGO = 1_000_000_000.0  # 2001: any touch of the outside file would move it


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    """A folder outside the cache root holding a file that must never change."""
    folder = tmp_path / "outside"
    folder.mkdir()
    victim = folder / "victim"
    victim.write_text("not the cache's")
    os.utime(victim, (LONG_AGO, LONG_AGO))
    return folder


def _untouched(outside: Path, allowed: set[str] | None = None) -> None:
    names = {path.name for path in outside.iterdir()}
    assert names == (allowed or {"victim"}), names
    victim = outside / "victim"
    assert victim.read_text() == "not the cache's"
    assert victim.stat().st_mtime == LONG_AGO


def _session_miss_then_disk_hit(
    root: Path, plant: Callable[[EntryRef], None]
) -> tuple[bool, list[str]]:
    """A real session samples, ``plant(entry ref)`` runs, then a fresh disk hit; the warnings
    of both calls."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with cc.cloud(tiny_model(), cache=str(root), backend="pymc", quiet=True) as run:
            first = pm.sample(**sample_kwargs(7))
        ref = EntryRef(
            run.last.key, Path(run.last.location).parent.name, run.last.metadata["label"]
        )
        plant(ref)
        process_memory_store().clear()
        with cc.cloud(tiny_model(), cache=str(root), backend="pymc", quiet=True) as again:
            second = pm.sample(**sample_kwargs(7))
    assert first["posterior"].equals(second["posterior"])
    return bool(again.last.hit), [str(w.message) for w in caught if "cloudcache" in str(w.message)]


def test_a_hit_never_touches_a_file_a_marker_links_to(tmp_path: Path, outside: Path) -> None:
    root = tmp_path / "cache"

    def plant(ref: EntryRef) -> None:
        marker = Path(marker_path(str(root), relative_path(ref)))
        marker.parent.mkdir(parents=True, exist_ok=True)
        marker.symlink_to(outside / "victim")

    hit, messages = _session_miss_then_disk_hit(root, plant)
    assert hit
    _untouched(outside)  # before: os.utime followed the link and moved the victim's mtime
    assert len(messages) == 1 and "symbolic link" in messages[0], messages
    record_trials("planted links", "marker linking to a file outside", 1, 0)


def test_a_hit_never_creates_the_target_of_a_dangling_marker(tmp_path: Path, outside: Path) -> None:
    root = tmp_path / "cache"

    def plant(ref: EntryRef) -> None:
        marker = Path(marker_path(str(root), relative_path(ref)))
        marker.parent.mkdir(parents=True, exist_ok=True)
        marker.symlink_to(outside / "created-by-the-cache")

    hit, messages = _session_miss_then_disk_hit(root, plant)
    assert hit
    _untouched(outside)  # before: open(path, "ab") created outside/created-by-the-cache
    assert len(messages) == 1 and "symbolic link" in messages[0], messages


def test_a_linked_locks_tree_is_never_written_into(tmp_path: Path, outside: Path) -> None:
    """``.locks`` itself a link out: the miss's lock and the hit's marker both stay out of it."""
    root = tmp_path / "cache"
    root.mkdir()
    (root / LOCK_DIRECTORY).symlink_to(outside, target_is_directory=True)
    hit, messages = _session_miss_then_disk_hit(root, lambda ref: None)
    assert hit
    _untouched(outside)
    assert messages and all("symbolic link" in m for m in messages), messages


def test_a_linked_marker_folder_and_lock_file_are_ignored(
    tiny_tree: xr.DataTree, tmp_path: Path, outside: Path
) -> None:
    root = tmp_path / "cache"
    store = FileStore(root)
    store.put(REF, Entry(tiny_tree))
    marker_folder = Path(marker_path(str(root), relative_path(REF))).parent
    marker_folder.parent.mkdir(parents=True)
    marker_folder.symlink_to(outside, target_is_directory=True)
    lock = lock_path(str(root), REF)
    lock.parent.mkdir(parents=True)
    lock.symlink_to(outside / "lock-created-by-the-cache")

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        store.record_use(REF)
        with store.single_flight(REF) as held:
            assert held is False  # the planted lock is not used: sampled without it
    _untouched(outside)
    messages = [str(w.message) for w in caught]
    assert len(messages) == 2 and all("symbolic link" in m for m in messages), messages
    assert store.last_used(REF) is not None  # the entry's own time; the link is not read


def test_a_write_never_goes_through_a_linked_model_folder(
    tiny_tree: xr.DataTree, tmp_path: Path, outside: Path
) -> None:
    root = tmp_path / "cache"
    root.mkdir()
    (root / REF.slug).symlink_to(outside, target_is_directory=True)
    with pytest.raises(StoreError, match="symbolic link; never followed"):
        FileStore(root).put(REF, Entry(tiny_tree))
    _untouched(outside)


def test_removal_never_deletes_through_a_link(
    tiny_tree: xr.DataTree, tmp_path: Path, outside: Path
) -> None:
    """``rm`` removes a marker that is a link (the link, not its target), and a model folder
    swapped for a link after the listing deletes nothing outside."""
    root = tmp_path / "cache"
    store = FileStore(root)
    store.put(REF, Entry(tiny_tree))
    marker = Path(marker_path(str(root), relative_path(REF)))
    marker.parent.mkdir(parents=True)
    marker.symlink_to(outside / "victim")
    result = CliRunner().invoke(app, ["rm", REF.key[:8], "--cache", str(root)])
    assert result.exit_code == 0, result.output
    assert not marker.is_symlink() and not Path(store.path_of(REF)).exists()
    _untouched(outside)

    store.put(REF, Entry(tiny_tree))
    catalog = Catalog(store)
    [listed] = catalog.entries(with_metadata=False)
    folder = root / REF.slug
    (outside / Path(listed.path).name).write_bytes(b"outside twin")
    os.rename(folder, tmp_path / "moved-away")
    folder.symlink_to(outside, target_is_directory=True)  # swapped after the listing
    with pytest.raises(PlantedLink):
        catalog.remove(listed.path)
    _untouched(outside, {"victim", Path(listed.path).name})


def test_every_no_follow_operation_refuses_a_link_on_the_way(tmp_path: Path) -> None:
    """The one module every local change goes through: each operation, a real link."""
    root, elsewhere = tmp_path / "cache", tmp_path / "elsewhere"
    root.mkdir()
    elsewhere.mkdir()
    (root / "model").symlink_to(elsewhere, target_is_directory=True)
    operations = {
        "touch": lambda: nofollow.touch(str(root), "model/marker"),
        "write": lambda: nofollow.write_atomically(str(root), "model/entry.nc", b"x"),
        "remove": lambda: nofollow.remove(str(root), "model/entry.nc"),
        "make_folders": lambda: nofollow.make_folders(str(root), "model/sub"),
        "folder_contents": lambda: nofollow.folder_contents(str(root), "model"),
    }
    for name, operation in operations.items():
        with pytest.raises(PlantedLink):
            operation()
        assert list(elsewhere.iterdir()) == [], name
    assert nofollow.lstat(str(root), "model/entry.nc") is None
    started = time.time()
    nofollow.touch(str(root), "real/marker")  # the same calls work on real folders
    assert (root / "real" / "marker").stat().st_mtime >= started - 1


def test_a_marker_hard_linked_to_a_file_outside_is_not_touched(
    tmp_path: Path, outside: Path
) -> None:
    root = tmp_path / "cache"
    marker = Path(marker_path(str(root), relative_path(REF)))
    marker.parent.mkdir(parents=True)
    os.link(outside / "victim", marker)  # the same file under a second name inside the root
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        FileStore(root).record_use(REF)
    _untouched(outside)
    assert len(caught) == 1 and "hard link" in str(caught[0].message)
