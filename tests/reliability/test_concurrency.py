"""Guarantee 3: 8 processes on one key and 8 on different keys share one directory at once.

Every process must get the correct posterior, no file may be torn, nobody may deadlock, and
the waiting is bounded. With the store's single-flight lock only one process samples the
shared key; the other seven wait and read its entry.
"""

from __future__ import annotations

import time
import warnings
from pathlib import Path

import xarray as xr
from reliability_figures import record_trials, trials
from reliability_workers import Zygote, posterior_checksum, sample_tiny
from same_draws import assert_pymc_draws_close

from cloudcache.stores.format.layout import is_entry_name
from cloudcache.stores.format.netcdf import KEY_ATTR, decode_entry

PROCESSES = 8
SHARED_SEED = 21
TIMEOUT = 240.0


def test_sixteen_processes_on_one_directory(zygote: Zygote, tmp_path: Path) -> None:
    rounds = trials(1)
    worst_wait = 0.0
    for round_number in range(rounds):
        root = tmp_path / f"cache-{round_number}"
        start_at = time.time() + 2.0  # all workers call pm.sample at the same moment
        shared = [
            zygote.fork("sample", tmp_path, cache=str(root), seed=SHARED_SEED, start_at=start_at)
            for _ in range(PROCESSES)
        ]
        separate = [
            zygote.fork("sample", tmp_path, cache=str(root), seed=100 + i, start_at=start_at)
            for i in range(PROCESSES)
        ]
        shared_results = [worker.result(TIMEOUT) for worker in shared]
        separate_results = [worker.result(TIMEOUT) for worker in separate]
        everyone = shared_results + separate_results
        worst_wait = max(worst_wait, max(r["finished"] - r["started"] for r in everyone))

        # every process got the right posterior: the one entry of the shared key (exactly),
        # which is PyMC's posterior for that seed (up to PyMC's cross-process tolerance)
        assert len({r["posterior"] for r in shared_results}) == 1
        assert_pymc_draws_close(shared_results[0]["values"], sample_tiny(SHARED_SEED))
        assert len({r["key"] for r in shared_results}) == 1
        assert len({r["key"] for r in separate_results}) == PROCESSES
        assert all(not r["cloudcache_warnings"] for r in everyone), everyone
        # single flight: one process sampled the shared key, the others read its entry
        assert sum(not r["hit"] for r in shared_results) == 1, shared_results
        assert all(not r["hit"] for r in separate_results)

        # no torn files, no temp files, one entry per key holding that key's posterior
        entries = sorted(root.rglob("*.nc"))
        assert len(entries) == PROCESSES + 1
        assert not list(root.rglob("*.tmp"))
        by_key = {r["key"]: r["posterior"] for r in everyone}
        for path in entries:
            assert is_entry_name(path.name)
            key = str(xr.load_datatree(path, engine="h5netcdf").attrs[KEY_ATTR])
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                tree, _ = decode_entry(str(path), key)
            assert not caught
            assert posterior_checksum(tree) == by_key[key]
    assert worst_wait < TIMEOUT
    record_trials(
        "concurrency",
        "8 processes on one key + 8 on different keys",
        rounds,
        0,
        processes=2 * PROCESSES,
        slowest_call_seconds=round(worst_wait, 1),
    )
