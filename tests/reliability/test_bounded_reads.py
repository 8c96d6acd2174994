"""Issue 10, guarantees 3-4: reads are bounded by the file, and both keys must match.

A 12 KB entry declaring a gigabyte of (unwritten, compressed) data is damaged, and finding
that out costs no more memory than the file: measured as the peak RSS growth of a fresh
process that reads it. An entry copied over another's path with its key attribute rewritten
is damaged too (the metadata record still names the old key), on a hit and in ``verify``.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import warnings
from pathlib import Path

import h5netcdf
import h5py
import pymc as pm
import xarray as xr
from reliability_figures import record_trials
from reliability_workers import sample_kwargs, tiny_model

import cloudcache as cc
from cloudcache.stores.base import Entry, EntryRef
from cloudcache.stores.files import FileStore
from cloudcache.stores.format.netcdf import KEY_ATTR
from cloudcache.stores.maintenance.catalog import Catalog

KEY = "0a1b2c3d4e5f6a7b" * 2
OTHER_KEY = "9f8e7d6c5b4a3f2e" * 2
REF = EntryRef(key=KEY, slug="bounded", label="draws30_tune30_chains2")
OTHER = EntryRef(key=OTHER_KEY, slug="bounded", label="draws30_tune30_chains2")
GIB = 1024**3

MEASURE = """
import json, resource, sys
from cloudcache.stores.base import EntryRef
from cloudcache.stores.files import FileStore
ref = EntryRef(*sys.argv[2:5])
store = FileStore(sys.argv[1])
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
found = store.lookup(ref)
after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"hit": found.entry is not None, "problems": list(found.problems),
                  "growth_kib": after - before}))
"""


def _declare_a_gibibyte(path: Path) -> None:
    """Add a 1 GiB float64 variable whose chunks are compressed and never written."""
    with h5netcdf.File(path, "a") as handle:
        group = handle["posterior"]
        group.dimensions["huge"] = GIB // 8
        group.create_variable("bomb", ("huge",), float, chunks=(2**22,), compression="gzip")


def test_entry_declaring_a_gibibyte_is_rejected_within_its_own_size(
    tiny_tree: xr.DataTree, tmp_path: Path
) -> None:
    store = FileStore(tmp_path / "cache")
    store.put(REF, Entry(tiny_tree))
    path = Path(store.path_of(REF))
    _declare_a_gibibyte(path)
    size = path.stat().st_size
    assert size < 1024**2, size

    done = subprocess.run(
        [sys.executable, "-c", MEASURE, str(tmp_path / "cache"), *REF.__dict__.values()],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    outcome = json.loads(done.stdout.strip().splitlines()[-1])
    assert not outcome["hit"]
    assert "declares" in outcome["problems"][0], outcome
    growth = outcome["growth_kib"] * 1024
    # Rejecting costs about the file's size; loading would have cost the declared gigabyte.
    assert growth < 64 * 1024**2, f"peak RSS grew by {growth / 1024**2:.0f} MiB"
    record_trials(
        "bounded reads",
        "1 GiB declared in a small entry",
        1,
        0,
        file_bytes=size,
        peak_rss_growth_bytes=growth,
    )


def test_limit_set_on_the_store_is_honoured(tiny_tree: xr.DataTree, tmp_path: Path) -> None:
    FileStore(tmp_path).put(REF, Entry(tiny_tree))
    assert FileStore(tmp_path).lookup(REF).entry is not None
    found = FileStore(tmp_path, max_entry_bytes=1024).lookup(REF)
    assert found.entry is None and "declares" in found.problems[0]


def test_rewritten_key_attribute_is_not_believed(tiny_tree: xr.DataTree, tmp_path: Path) -> None:
    store = FileStore(tmp_path / "cache")
    store.put(OTHER, Entry(tiny_tree, {"note": "the other posterior"}))
    path = Path(store.path_of(REF))
    path.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(store.path_of(OTHER), path)
    with h5py.File(path, "a") as handle:  # what a careless copy-and-fix would do
        del handle.attrs[KEY_ATTR]
        handle.attrs.create(KEY_ATTR, KEY, dtype=h5py.string_dtype())

    found = store.lookup(REF)
    assert found.entry is None
    assert "metadata record names key" in found.problems[0], found.problems

    catalog = Catalog(tmp_path / "cache")
    [planted] = [entry for entry in catalog.entries() if entry.prefix == KEY[:16]]
    assert planted.key == KEY  # the root attribute claims the right key...
    assert "metadata record names key" in catalog.verify(planted)  # ...verify does not believe it
    original = next(e for e in catalog.entries() if e.prefix == OTHER_KEY[:16])
    assert catalog.verify(original) == ""


def test_session_does_not_serve_a_rewritten_key(tmp_path: Path) -> None:
    with cc.cloud(tiny_model(), cache=str(tmp_path), backend="pymc", quiet=True) as run:
        pm.sample(**sample_kwargs(5))
    with cc.cloud(tiny_model("other"), cache=str(tmp_path), backend="pymc", quiet=True) as other:
        pm.sample(**sample_kwargs(5))
    mine, theirs = Path(run.last.location), Path(other.last.location)
    shutil.copyfile(theirs, mine)
    with h5py.File(mine, "a") as handle:
        del handle.attrs[KEY_ATTR]
        handle.attrs.create(KEY_ATTR, run.last.key, dtype=h5py.string_dtype())
    cc.stores.resolve.process_memory_store().clear()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with cc.cloud(tiny_model(), cache=str(tmp_path), backend="pymc", quiet=True) as again:
            pm.sample(**sample_kwargs(5))
    assert again.last.hit is False
    assert any("damaged cache entry" in str(w.message) for w in caught)
