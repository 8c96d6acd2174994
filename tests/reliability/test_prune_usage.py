"""Issue 10, guarantee 6 (store half): prune keeps its own record of use.

Only hits (and writes) count as use. Listing, showing and verifying entries read them, which
moves their access times, yet prune must still remove what nobody has *hit* for a month.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import pymc as pm
import xarray as xr
from click.testing import CliRunner
from reliability_workers import sample_kwargs, tiny_model

import cloudcache as cc
from cloudcache.cli import app
from cloudcache.stores.base import Entry, EntryRef
from cloudcache.stores.files import FileStore
from cloudcache.stores.format.layout import relative_path
from cloudcache.stores.memory import MemoryStore
from cloudcache.stores.tiered import TieredStore
from cloudcache.stores.usage import marker_path

DAY = 86400.0
HIT = EntryRef(key="a1" * 16, slug="used", label="draws30_tune30_chains2")
IDLE = EntryRef(key="b2" * 16, slug="used", label="draws30_tune30_chains2")


def _cli(*args: str) -> str:
    result = CliRunner().invoke(app, list(args))
    assert result.exit_code == 0, result.output
    return result.output


def test_reading_is_not_use_but_a_hit_is(tiny_tree: xr.DataTree, tmp_path: Path) -> None:
    store = FileStore(tmp_path)
    month_ago = time.time() - 40 * DAY
    for ref in (HIT, IDLE):
        store.put(ref, Entry(tiny_tree))
        os.utime(store.path_of(ref), (month_ago, month_ago))
    assert store.last_used(IDLE) == month_ago

    for command in (["ls"], ["verify"], ["show", IDLE.key[:8]], ["show", HIT.key[:8]]):
        _cli(*command, "--cache", str(tmp_path))
    assert store.last_used(IDLE) == month_ago  # reading is not use

    tiered = TieredStore([MemoryStore(), FileStore(tmp_path)])
    assert tiered.lookup(HIT).entry is not None  # a plain read is not use either
    assert store.last_used(HIT) == month_ago
    tiered.record_use(HIT)  # what a session does on a hit (memory or disk)
    assert store.last_used(HIT) > time.time() - DAY

    output = _cli("prune", "--cache", str(tmp_path), "--older-than", "30d")
    assert "removed" in output
    assert not Path(store.path_of(IDLE)).exists()
    assert Path(store.path_of(HIT)).exists()


def test_a_session_hit_is_use(tmp_path: Path) -> None:
    with cc.cloud(tiny_model(), cache=str(tmp_path), backend="pymc", quiet=True) as run:
        pm.sample(**sample_kwargs(6))
    month_ago = time.time() - 40 * DAY
    os.utime(run.last.location, (month_ago, month_ago))
    store = FileStore(tmp_path)
    ref = EntryRef(run.last.key, Path(run.last.location).parent.name, run.last.metadata["label"])
    assert store.last_used(ref) == month_ago
    with cc.cloud(tiny_model(), cache=str(tmp_path), backend="pymc", quiet=True) as again:
        pm.sample(**sample_kwargs(6))  # a memory hit in this process
    assert again.last.hit is True
    assert store.last_used(ref) > time.time() - DAY


def test_removing_an_entry_removes_its_marker(tiny_tree: xr.DataTree, tmp_path: Path) -> None:
    """A removed entry leaves no last-used marker behind (rm and prune)."""
    store = FileStore(tmp_path)
    store.put(HIT, Entry(tiny_tree))
    store.record_use(HIT)
    marker = marker_path(str(tmp_path), relative_path(HIT))
    assert Path(marker).exists()

    _cli("rm", HIT.key[:8], "--cache", str(tmp_path))
    assert not Path(store.path_of(HIT)).exists()
    assert not Path(marker).exists()
