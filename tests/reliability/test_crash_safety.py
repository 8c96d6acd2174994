"""Guarantee 1: a writer killed with SIGKILL at a random moment never leaves an entry a read serves.

Real worker processes write through the real ``FileStore.put`` (and through a real sampling
session) in a loop; the test kills them at random times and then reads every entry back.
"""

from __future__ import annotations

import os
import random
import subprocess
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import xarray as xr
from reliability_figures import record_trials, trials
from reliability_workers import (
    Zygote,
    crash_ref,
    expected_big,
    sample_tiny,
    tiny_model,
    wait_until,
)
from same_draws import assert_pymc_draws_close

from cloudcache.stores.files import FileStore
from cloudcache.stores.format.layout import is_entry_name
from cloudcache.stores.format.netcdf import KEY_ATTR, decode_entry

SLOTS = 3
BIG_VALUES = 150_000  # ~1.2 MB per entry, so kills regularly land inside a write


def _check_store(root: Path, verified: set[tuple[int, int, int]]) -> tuple[int, int]:
    """Read back every slot not verified before; return (entries read, stray temp files).

    Every entry a read serves must hold exactly the data written for its own key.
    """
    store = FileStore(root)
    served = 0
    for slot in range(SLOTS):
        path = Path(store.path_of(crash_ref(slot)))
        try:
            stat = path.stat()
        except FileNotFoundError:
            continue
        identity = (stat.st_ino, stat.st_mtime_ns, stat.st_size)
        if identity in verified:
            continue
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            entry = store.get(crash_ref(slot))
        assert not caught, [str(w.message) for w in caught]
        assert entry is not None
        posterior = entry.tree["posterior"].to_dataset()
        marker = int(posterior["marker"])
        assert marker % SLOTS == slot, "an entry holds another key's data"
        np.testing.assert_array_equal(posterior["big"].values, expected_big(marker, BIG_VALUES))
        verified.add(identity)
        served += 1
    temps = [p for p in root.rglob("*") if p.is_file() and not p.name.endswith(".nc")]
    for temp in temps:
        assert not is_entry_name(temp.name), f"temp file {temp.name} looks like an entry"
    for path in root.rglob("*.nc"):
        assert is_entry_name(path.name), f"unexpected .nc file {path.name}"
    return served, len(temps)


def _temp_names(root: Path) -> set[str]:
    """Temp files under ``root``; names are random, so a new write's temp is a new name."""
    return {name for _, _, names in os.walk(root) for name in names if name.endswith(".tmp")}


def test_killed_filestore_writer_never_leaves_a_served_bad_entry(
    zygote: Zygote, tiny_tree_file: Path, tmp_path: Path
) -> None:
    root = tmp_path / "cache"
    count = trials(12)
    rng = random.Random(20240601)
    verified: set[tuple[int, int, int]] = set()
    served_total = 0
    kills_leaving_temp = 0
    for trial in range(count):
        ready = tmp_path / f"ready-{trial}"
        left_by_earlier_kills = _temp_names(root)
        worker = zygote.fork(
            "write_loop",
            tmp_path,
            root=str(root),
            tree_path=str(tiny_tree_file),
            slots=SLOTS,
            big_values=BIG_VALUES,
            first_marker=trial * 1000,
            ready_path=str(ready),
        )
        assert wait_until(ready.exists, timeout=60), worker.log()
        if trial % 2:  # a uniformly random moment of the write loop
            time.sleep(rng.uniform(0.0, 0.8))
        else:  # a random moment inside a file write that starts after this point
            seen = _temp_names(root)  # (the write in progress now, if any, is not waited for)
            assert wait_until(lambda seen=seen: bool(_temp_names(root) - seen), 30, 0.0005)
            time.sleep(rng.uniform(0.0, 0.003))
        worker.kill()
        served, _ = _check_store(root, verified)
        served_total += served
        kills_leaving_temp += bool(_temp_names(root) - left_by_earlier_kills)
    assert kills_leaving_temp >= 1, "no kill landed inside a write: the test proved nothing"
    _verify_fix_removes_only_temp_files(root)
    record_trials(
        "crash safety",
        "FileStore.put loop, SIGKILL",
        count,
        0,
        kills_leaving_a_temp_file=kills_leaving_temp,
        entries_verified=served_total,
    )


def test_killed_sampling_session_never_leaves_a_served_bad_entry(
    zygote: Zygote, tmp_path: Path
) -> None:
    root = tmp_path / "cache"
    count = trials(3)
    rng = random.Random(7)
    expected: dict[int, str] = {}
    for trial in range(count):
        ready = tmp_path / f"ready-{trial}"
        first_seed = 100 * (trial + 1)
        worker = zygote.fork(
            "session_loop", tmp_path, root=str(root), first_seed=first_seed, ready_path=str(ready)
        )
        assert wait_until(ready.exists, timeout=120), worker.log()
        time.sleep(rng.uniform(0.0, 1.0))
        worker.kill()
        for path in root.rglob("*.nc"):
            opened = xr.load_datatree(path, engine="h5netcdf")
            key = str(opened.attrs[KEY_ATTR])
            assert path.name.endswith(f"-{key[:16]}.nc")
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                tree, _ = decode_entry(str(path), key)  # raises on a torn or mismatched file
            assert not caught, [str(w.message) for w in caught]
            assert tree["posterior"].sizes["draw"] == 30
        expected[first_seed] = ""
    # A later session answers the first seed of every trial from the cache with the exact
    # posterior PyMC produces for that seed.
    import pymc as pm
    from reliability_workers import sample_kwargs

    import cloudcache as cc

    model = tiny_model()
    for seed in list(expected)[:2]:
        with cc.cloud(model, cache=FileStore(root), backend="pymc", quiet=True) as run:
            tree = pm.sample(**sample_kwargs(seed))
        assert run.last is not None and run.last.hit
        assert_pymc_draws_close(tree, sample_tiny(seed))  # sampled in another process
    record_trials("crash safety", "sampling session loop, SIGKILL", count, 0)


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "cloudcache", *args],
        capture_output=True,
        text=True,
        timeout=120,
    )


def _verify_fix_removes_only_temp_files(root: Path) -> None:
    """``cloudcache verify`` reports the killed writers' temp files and ``--fix`` removes them."""
    temps = [p for p in root.rglob("*.tmp")]
    entries_before = sorted(p.name for p in root.rglob("*.nc"))
    an_hour_ago = time.time() - 3600  # older than any writer that could still be running
    for temp in temps:
        os.utime(temp, (an_hour_ago, an_hour_ago))
    report = _cli("verify", "--cache", str(root))
    assert report.returncode == 1, report
    assert all(temp.name in report.stdout for temp in temps), report.stdout
    fixed = _cli("verify", "--cache", str(root), "--fix")
    assert fixed.returncode == 0, fixed
    assert not list(root.rglob("*.tmp"))
    assert sorted(p.name for p in root.rglob("*.nc")) == entries_before
    assert _cli("verify", "--cache", str(root)).returncode == 0
