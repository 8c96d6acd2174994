"""The store contract: the same tests against every store cloudcache ships.

A local directory, an fsspec ``memory://`` store, S3 on a real moto server, and the tiered
memory + directory store a ``cache="path"`` session uses. Each must: miss cleanly, return what
was put (content and metadata), let a newer put win, report damage as a problem (never as a
hit), and offer every optional feature of the :class:`~cloudcache.stores.base.Store` base.
"""

from __future__ import annotations

import contextlib
import uuid
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import fixtures_s3
import numpy as np
import pytest
import xarray as xr

from cloudcache.stores.base import Entry, EntryRef, Lookup, Store
from cloudcache.stores.files import FileStore
from cloudcache.stores.format.netcdf import tree_checksum
from cloudcache.stores.memory import MemoryStore
from cloudcache.stores.tiered import TieredStore

s3_server = fixtures_s3.s3_server


@dataclass
class Subject:
    """A store under test and a way to damage what it keeps on its durable tier."""

    store: Store
    files: FileStore


def _local(tmp_path: Path, request: Any) -> Subject:
    store = FileStore(tmp_path / "cache")
    return Subject(store, store)


def _memory_fs(tmp_path: Path, request: Any) -> Subject:
    store = FileStore(f"memory://contract-{uuid.uuid4().hex[:8]}/c")
    return Subject(store, store)


def _s3(tmp_path: Path, request: Any) -> Subject:
    server = request.getfixturevalue("s3_server")
    store = FileStore(f"s3://{fixtures_s3.make_bucket(server)}/c", server.storage_options())
    return Subject(store, store)


def _tiered(tmp_path: Path, request: Any) -> Subject:
    files = FileStore(tmp_path / "cache")
    return Subject(TieredStore([MemoryStore(), files]), files)


KINDS: dict[str, Callable[[Path, Any], Subject]] = {
    "directory": _local,
    "memory-fsspec": _memory_fs,
    "s3-moto": _s3,
    "tiered": _tiered,
}


@pytest.fixture(params=KINDS.values(), ids=KINDS.keys())
def subject(request: Any, tmp_path: Path) -> Subject:
    return request.param(tmp_path, request)


@pytest.fixture(scope="module")
def tree() -> xr.DataTree:
    rng = np.random.default_rng(7)
    posterior = xr.Dataset(
        {"mu": (("chain", "draw"), rng.normal(size=(2, 20)))},
        coords={"chain": [0, 1], "draw": np.arange(20)},
    )
    return xr.DataTree.from_dict({"/posterior": posterior})


def _ref(tag: str = "a") -> EntryRef:
    return EntryRef(key=(tag * 32)[:32], slug="contract", label="draws20_tune0_chains2")


def test_is_a_store_with_every_feature(subject: Subject) -> None:
    store = subject.store
    assert isinstance(store, Store) and isinstance(store.description, str)
    with store.single_flight(_ref()) as held:
        assert held in (True, False)
    store.record_use(_ref())  # recording use of a missing entry is harmless
    assert store.last_used(_ref()) is None
    assert all(isinstance(ref, EntryRef) for ref in store.entry_refs())


def test_a_miss_is_clean(subject: Subject) -> None:
    assert subject.store.lookup(_ref()) == Lookup(None, ())
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert subject.store.get(_ref()) is None


def test_what_was_put_comes_back(subject: Subject, tree: xr.DataTree) -> None:
    store = subject.store
    location = store.put(_ref(), Entry(tree, {"note": "first"}))
    assert isinstance(location, str) and location
    found = store.lookup(_ref(), timeout=30)
    assert found.problems == () and found.entry is not None
    assert tree_checksum(found.entry.tree) == tree_checksum(tree)
    assert found.entry.metadata["note"] == "first"
    assert store.lookup(_ref("b")).entry is None  # another key is still a miss
    listed = list(store.entry_refs())
    assert listed in ([], [_ref()])  # a store lists exactly its entries, or declines to list
    assert list(subject.files.entry_refs()) == [_ref()]
    used = store.last_used(_ref())
    assert used is None or used > 0


def test_a_newer_put_wins(subject: Subject, tree: xr.DataTree) -> None:
    store = subject.store
    store.put(_ref(), Entry(tree, {"note": "first"}))
    changed = tree.copy(deep=True)
    changed["posterior"]["mu"] = changed["posterior"]["mu"] + 1.0
    store.put(_ref(), Entry(changed, {"note": "second"}))
    found = store.lookup(_ref())
    assert found.entry is not None and found.entry.metadata["note"] == "second"
    assert tree_checksum(found.entry.tree) == tree_checksum(changed)


def test_a_hit_cannot_change_the_store(subject: Subject, tree: xr.DataTree) -> None:
    store = subject.store
    store.put(_ref(), Entry(tree, {}))
    first = store.lookup(_ref()).entry
    assert first is not None
    with contextlib.suppress(ValueError):  # read-only results refuse the change outright
        first.tree["posterior"]["mu"].values[0, 0] = 1e9
    again = store.lookup(_ref()).entry
    assert again is not None and tree_checksum(again.tree) == tree_checksum(tree)


def test_damage_is_a_problem_never_a_hit(subject: Subject, tree: xr.DataTree) -> None:
    durable = subject.files
    durable.put(_ref(), Entry(tree, {}))
    path = durable.path_of(_ref())
    whole = durable.fs.cat_file(path)
    durable.fs.pipe_file(path, whole[: len(whole) // 2])
    found = subject.store.lookup(_ref())
    assert found.entry is None
    assert len(found.problems) == 1 and "damaged cache entry" in found.problems[0]
    with pytest.warns(RuntimeWarning, match="damaged cache entry"):
        assert subject.store.get(_ref()) is None  # get() keeps warning, for direct callers


def test_memory_store_conforms() -> None:
    """The plain memory store (no durable tier) has the same features and defaults."""
    store = MemoryStore()
    assert isinstance(store, Store)
    assert store.lookup(_ref()) == Lookup(None, ())
    with store.single_flight(_ref()) as held:
        assert held is False


# -- the memory tier keeps no second copy of a miss's draws -----------------------------------
def proportional_memory() -> int:
    """This process's proportional set size (shared pages divided among their mappings) of its
    own memory: anonymous mappings and memory files (``memfd``), not the mapped libraries,
    whose share moves whenever another process mapping them starts or ends (under load that
    moved the total by more than this test's margin)."""
    total, counted = 0, False
    with open("/proc/self/smaps") as smaps:
        for line in smaps:
            fields = line.split()
            if "-" in fields[0] and ":" not in fields[0]:  # a mapping's header line
                path = fields[5] if len(fields) > 5 else ""
                counted = path in ("", "[heap]") or path.startswith("/memfd:")
            elif counted and fields[0] == "Pss:":
                total += int(fields[1]) * 1024
    return total


def large_tree() -> xr.DataTree:
    rng = np.random.default_rng(5)
    posterior = xr.Dataset(
        {f"v{i}": (("chain", "draw", "item"), rng.normal(size=(4, 1000, 200))) for i in range(8)},
        coords={"chain": np.arange(4), "draw": np.arange(1000)},
    )
    stats = xr.Dataset({"lp": (("chain", "draw"), rng.normal(size=(4, 1000)))})
    return xr.DataTree.from_dict({"/posterior": posterior, "/sample_stats": stats})


def touch(tree: xr.DataTree) -> float:
    return float(
        sum(v.values.sum() for node in tree.subtree for v in node.dataset.data_vars.values())
    )


@pytest.mark.skipif(
    not Path("/proc/self/smaps").exists() or not hasattr(__import__("os"), "memfd_create"),
    reason="Linux only (memfd_create, smaps)",
)
def test_a_miss_kept_in_memory_costs_no_second_copy() -> None:
    tree = large_tree()  # ~51 MB
    before_sum, size = touch(tree), tree.nbytes
    before = proportional_memory()
    store = MemoryStore()
    store.put(_ref(), Entry(tree, {}))
    found = store.lookup(_ref()).entry
    assert found is not None
    assert touch(found.tree) == before_sum == touch(tree)  # every page of both trees read
    assert proportional_memory() - before < 0.2 * size  # a deep copy would add ~1.0x
    tree["posterior"]["v0"].values[:] = 7.0  # the caller's tree stays writable, and its own
    again = store.lookup(_ref()).entry
    assert again is not None and not np.any(again.tree["posterior"]["v0"].values == 7.0)
    assert touch(again.tree) == before_sum
    with pytest.raises(ValueError, match="read-only"):
        again.tree["posterior"]["v1"].values[0, 0, 0] = 1.0
