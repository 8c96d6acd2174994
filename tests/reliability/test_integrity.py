"""Guarantee 2: damaged, mismatched or foreign files are detected on read, missed and replaced."""

from __future__ import annotations

import random
import shutil
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pymc as pm
import pytest
import xarray as xr
from reliability_figures import record_trials, trials
from reliability_workers import posterior_checksum, sample_kwargs, tiny_model
from same_draws import assert_pymc_draws_close

import cloudcache as cc
from cloudcache.stores.base import Entry, EntryRef
from cloudcache.stores.files import FileStore
from cloudcache.stores.format.netcdf import tree_checksum

REF = EntryRef(key="0123456789abcdef" * 2, slug="tiny", label="draws30_tune30_chains2")
OTHER = EntryRef(key="fedcba9876543210" * 2, slug="tiny", label="draws30_tune30_chains2")


def _read(store: FileStore, ref: EntryRef) -> tuple[Entry | None, list[str]]:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        entry = store.get(ref)
    return entry, [str(w.message) for w in caught if issubclass(w.category, RuntimeWarning)]


def _written(tmp_path: Path, tree: xr.DataTree) -> tuple[FileStore, Path]:
    store = FileStore(tmp_path / "cache")
    store.put(REF, Entry(tree, {"note": "original"}))
    return store, Path(store.path_of(REF))


def _truncate_to(fraction: float) -> Callable[[Path, xr.DataTree], None]:
    def damage(path: Path, tree: xr.DataTree) -> None:
        data = path.read_bytes()
        path.write_bytes(data[: int(len(data) * fraction)])

    return damage


def _key_of_another_entry(path: Path, tree: xr.DataTree) -> None:
    other = FileStore(path.parents[1])
    other.put(OTHER, Entry(tree, {}))
    shutil.copyfile(other.path_of(OTHER), path)


def _foreign_datatree(path: Path, tree: xr.DataTree) -> None:
    tree.to_netcdf(path, engine="h5netcdf")  # what ArviZ or xarray would write: no key


def _foreign_dataset(path: Path, tree: xr.DataTree) -> None:
    xr.Dataset({"x": ("i", np.arange(5.0))}, attrs={"title": "other tool"}).to_netcdf(
        path, engine="h5netcdf"
    )


def _not_netcdf(path: Path, tree: xr.DataTree) -> None:
    path.write_text("this is not a NetCDF file\n")


DAMAGES = {
    "empty": _truncate_to(0.0),
    "truncated to 10%": _truncate_to(0.1),
    "truncated to 50%": _truncate_to(0.5),
    "one byte short": _truncate_to(0.99999),
    "key of another entry": _key_of_another_entry,
    "foreign DataTree": _foreign_datatree,
    "foreign Dataset": _foreign_dataset,
    "not NetCDF": _not_netcdf,
}


@pytest.mark.parametrize("damage", DAMAGES.values(), ids=DAMAGES.keys())
def test_damaged_entry_is_a_miss_with_a_warning(
    damage: Callable[[Path, xr.DataTree], None], tiny_tree: xr.DataTree, tmp_path: Path
) -> None:
    store, path = _written(tmp_path, tiny_tree)
    damage(path, tiny_tree)
    entry, messages = _read(store, REF)
    assert entry is None
    assert len(messages) == 1 and "damaged cache entry" in messages[0], messages
    assert str(path) in messages[0]


def _array_offsets(data: bytes, tree: xr.DataTree) -> list[int]:
    """Byte offsets of the posterior draws inside the file (stored uncompressed)."""
    offsets = []
    for name in tree["posterior"].data_vars:
        raw = np.ascontiguousarray(tree["posterior"][name].values).tobytes()
        at = data.find(raw)
        assert at >= 0, f"{name} not found verbatim in the file"
        offsets += [at, at + len(raw) // 2, at + len(raw) - 1]
    return offsets


def test_flipped_byte_in_the_draws_is_always_detected(
    tiny_tree: xr.DataTree, tmp_path: Path
) -> None:
    store, path = _written(tmp_path, tiny_tree)
    clean = path.read_bytes()
    offsets = _array_offsets(clean, tiny_tree)
    for offset in offsets:
        damaged = bytearray(clean)
        damaged[offset] ^= 0x01
        path.write_bytes(bytes(damaged))
        entry, messages = _read(store, REF)
        assert entry is None, f"flipped byte at {offset} was served"
        assert len(messages) == 1 and "checksum" in messages[0], messages
    record_trials("integrity", "bit flip inside the draws", len(offsets), 0, detected=len(offsets))


def test_flipped_byte_anywhere_never_serves_different_content(
    tiny_tree: xr.DataTree, tmp_path: Path
) -> None:
    """Flip one random byte anywhere: the read is a miss with a warning, or bit-identical."""
    store, path = _written(tmp_path, tiny_tree)
    clean = path.read_bytes()
    expected = tree_checksum(tiny_tree)
    expected_attrs = {n.path: dict(n.attrs) for n in tiny_tree.subtree if n.path != "/"}
    rng = random.Random(99)
    count = trials(40)
    detected = 0
    for _ in range(count):
        offset = rng.randrange(len(clean))
        damaged = bytearray(clean)
        damaged[offset] ^= 1 << rng.randrange(8)
        path.write_bytes(bytes(damaged))
        entry, messages = _read(store, REF)
        if entry is None:
            assert len(messages) == 1, messages
            detected += 1
            continue
        assert not messages
        assert tree_checksum(entry.tree) == expected, f"byte {offset} changed the served data"
        served_attrs = {n.path: dict(n.attrs) for n in entry.tree.subtree if n.path != "/"}
        assert served_attrs.keys() == expected_attrs.keys()
        for group, attrs in expected_attrs.items():
            assert {k: str(v) for k, v in served_attrs[group].items()} == {
                k: str(v) for k, v in attrs.items()
            }, f"byte {offset} changed attributes of {group}"
        assert entry.metadata["note"] == "original"
    record_trials(
        "integrity",
        "bit flip at a random offset",
        count,
        0,
        detected=detected,
        harmless=count - detected,
    )


@pytest.mark.parametrize("damage", ["truncated to 50%", "key of another entry", "foreign DataTree"])
def test_session_replaces_a_damaged_entry(damage: str, tmp_path: Path) -> None:
    """A real session: damaged entry -> one warning, re-sampled, replaced; the next call hits."""
    root = tmp_path / "cache"
    model = tiny_model()
    with cc.cloud(model, cache=FileStore(root), backend="pymc", quiet=True) as run:
        first = pm.sample(**sample_kwargs(5))
    assert run.last is not None and not run.last.hit
    path = Path(run.last.location)
    DAMAGES[damage](path, first)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with cc.cloud(model, cache=FileStore(root), backend="pymc", quiet=True) as run:
            second = pm.sample(**sample_kwargs(5))
    messages = [
        (str(w.message), w.filename, w.lineno) for w in caught if "cloudcache" in str(w.message)
    ]
    assert len(messages) == 1 and "damaged" in messages[0][0], messages
    assert not run.last.hit
    assert_pymc_draws_close(second, first)  # sampled again
    with cc.cloud(model, cache=FileStore(root), backend="pymc", quiet=True) as run:
        third = pm.sample(**sample_kwargs(5))
    assert run.last.hit and run.last.location == str(path)
    assert posterior_checksum(third) == posterior_checksum(second)  # the replacement, exactly
    assert_pymc_draws_close(third, first)
