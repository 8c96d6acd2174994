"""Object storage through fsspec against a real S3-speaking server (moto) on loopback."""

from __future__ import annotations

import io
import json
import socket
import subprocess
import sys
import threading
import time
import warnings
from pathlib import Path
from typing import Any

import fixtures_s3
import pymc as pm
import pytest
import xarray as xr
from fixtures_s3 import free_port, make_bucket, start_moto
from pymc_results import group, group_names, result_checksum
from same_draws import assert_pymc_draws_close
from tiny_models import TINY, tiny_model

import cloudcache as cc
from cloudcache.executors import LocalExecutor
from cloudcache.stores import Entry, EntryRef, FileStore, MemoryStore, TieredStore
from cloudcache.stores.files import with_default_options
from cloudcache.stores.format.netcdf import KEY_ATTR, tree_checksum

TESTS = Path(__file__).parent
s3_server = fixtures_s3.s3_server
s3_bucket = fixtures_s3.s3_bucket

SECOND_PROCESS = """
import json, sys
sys.path.insert(0, {tests!r})
import pymc as pm
from tiny_models import TINY, tiny_model
import cloudcache as cc
from pymc_results import result_checksum
with cc.cloud(tiny_model(), cache={url!r}, storage_options={options!r}, backend="pymc",
              quiet=True) as run:
    tree = pm.sample(**TINY)
print(json.dumps({{"hit": run.last.hit, "location": run.last.location,
                  "checksum": result_checksum(tree)}}))
"""


def sample_with(cache: Any, **options: Any) -> tuple[xr.DataTree, cc.Session]:
    with cc.cloud(tiny_model(), cache=cache, backend="pymc", quiet=True, **options) as run:
        tree = pm.sample(**TINY)
    return tree, run


def raw_s3(server: Any) -> Any:
    import s3fs

    return s3fs.S3FileSystem(skip_instance_cache=True, **server.storage_options())


def test_s3_miss_writes_a_readable_entry_that_another_process_hits(s3_server, s3_bucket):
    url = f"s3://{s3_bucket}/team/cache"
    options = s3_server.storage_options()
    tree, run = sample_with(url, storage_options=options)
    assert run.last.hit is False
    name = f"draws{TINY['draws']}_tune{TINY['tune']}_chains{TINY['chains']}-{run.last.key[:16]}.nc"
    assert run.last.location == f"{url}/tiny/{name}"

    # The object is a plain NetCDF file any xarray user can open, with the key in its attrs.
    payload = raw_s3(s3_server).cat_file(f"{s3_bucket}/team/cache/tiny/{name}")
    with xr.open_datatree(io.BytesIO(payload), engine="h5netcdf") as opened:
        assert opened.attrs[KEY_ATTR] == run.last.key
        xr.testing.assert_equal(opened.posterior.to_dataset(), group(tree, "posterior"))

    script = SECOND_PROCESS.format(tests=str(TESTS), url=url, options=options)
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=300, check=True
    )
    answer = json.loads(done.stdout.strip().splitlines()[-1])
    expected = {"hit": True, "location": run.last.location, "checksum": result_checksum(tree)}
    assert answer == expected


def test_damaged_object_is_a_miss_and_gets_replaced(s3_server, s3_bucket):
    url = f"s3://{s3_bucket}/c"
    options = s3_server.storage_options()
    first, run = sample_with(url, storage_options=options)
    path = run.last.location.removeprefix("s3://")
    fs = raw_s3(s3_server)
    whole = fs.cat_file(path)
    fs.pipe_file(path, whole[: len(whole) // 2])  # a truncated object, as after a bad copy
    cc.stores.resolve.process_memory_store().clear()

    with pytest.warns(RuntimeWarning, match="damaged cache entry"):
        second, run = sample_with(url, storage_options=options)
    assert run.last.hit is False
    assert_pymc_draws_close(second, first)  # sampled again

    fresh = FileStore(url, options).get(EntryRef(run.last.key, "tiny", run.last.metadata["label"]))
    assert fresh is not None and tree_checksum(fresh.tree) == result_checksum(second)


class StopServerAfterSampling:
    """A real in-process executor, after which the S3 server goes away (mid-run)."""

    description = "local, then the S3 server stops"

    def __init__(self, server: Any) -> None:
        self.server = server

    def run(self, backend: Any, model: Any, request: Any, **options: Any) -> xr.DataTree:
        tree = LocalExecutor().run(backend, model, request, **options)
        self.server.stop()
        return tree


def test_server_going_away_mid_run_keeps_the_result_and_fails_fast():
    server = start_moto()
    bucket = make_bucket(server)
    url = f"s3://{bucket}/c"
    options = server.storage_options()
    with pytest.warns(RuntimeWarning, match="could not store the result"):
        tree, run = sample_with(
            url, storage_options=options, executor=StopServerAfterSampling(server)
        )
    assert run.last.hit is False and "posterior" in group_names(tree)
    assert run.last.seconds - run.last.sampling_seconds < 10

    # The server stays gone: the next miss warns on read, samples, and still returns a result.
    cc.stores.resolve.process_memory_store().clear()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        again, run = sample_with(url, storage_options=options)
    # One warning per call: the read failed, and the write was skipped for the same reason.
    assert [str(w.message) for w in caught if "cloudcache" in str(w.message)] == [
        next(str(w.message) for w in caught if "cache read failed" in str(w.message))
    ]
    assert run.last.hit is False and run.last.location == "uncached"
    assert_pymc_draws_close(again, tree)  # sampled again
    assert run.last.seconds - run.last.sampling_seconds < 10


def test_refused_endpoint_warns_and_samples_within_seconds():
    url = "s3://nobody-home/c"
    options = {
        "key": "testing",
        "secret": "testing",
        "client_kwargs": {"endpoint_url": f"http://127.0.0.1:{free_port()}"},
    }
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        tree, run = sample_with(url, storage_options=options)
    assert "cache read failed" in " ".join(str(w.message) for w in caught)
    assert "posterior" in group_names(tree) and run.last.location == "uncached"
    assert run.last.seconds - run.last.sampling_seconds < 8


def test_fail_fast_defaults_are_applied_and_user_settings_win():
    merged = with_default_options("s3", {"config_kwargs": {"read_timeout": 1}, "anon": True})
    assert merged["config_kwargs"]["read_timeout"] == 1
    assert merged["config_kwargs"]["connect_timeout"] == 3
    assert merged["config_kwargs"]["retries"] == {"max_attempts": 1, "mode": "standard"}
    assert merged["anon"] is True
    assert with_default_options("memory", {"x": 1}) == {"x": 1}

    # A server that accepts connections and never answers: bounded by the user's read_timeout.
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        options = {
            "key": "testing",
            "secret": "testing",
            "client_kwargs": {"endpoint_url": f"http://127.0.0.1:{silent.getsockname()[1]}"},
            "config_kwargs": {"read_timeout": 1, "connect_timeout": 1},
        }
        store = FileStore("s3://silent/c", options)
        started = time.monotonic()
        with pytest.raises(cc.stores.StoreError, match="cannot read"):
            store.get(EntryRef("0" * 32, "m", "draws1_tune1_chains1"))
        assert time.monotonic() - started < 8
        # Right after a failure the store is skipped instead of waiting again.
        started = time.monotonic()
        with pytest.raises(cc.stores.StoreError, match="skipping"):
            store.get(EntryRef("0" * 32, "m", "draws1_tune1_chains1"))
        assert time.monotonic() - started < 0.5


def test_concurrent_writers_last_complete_write_wins_and_readers_never_see_parts(
    s3_server, s3_bucket, sampled_tree
):
    url = f"s3://{s3_bucket}/race"
    options = s3_server.storage_options()
    ref = EntryRef("ab" * 16, "race", "draws30_tune30_chains1")
    writers = [FileStore(url, options), FileStore(url, dict(options, use_listings_cache=False))]
    reader = FileStore(url, options)
    assert not writers[0].single_flight(ref).__enter__()  # object stores have no lock
    writers[0].put(ref, Entry(sampled_tree, {"writer": "first"}))

    seen: list[str] = []
    problems: list[str] = []

    def write(index: int) -> None:
        for round_ in range(6):
            writers[index].put(ref, Entry(sampled_tree, {"writer": f"{index}-{round_}"}))

    def read() -> None:
        for _ in range(15):
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                entry = reader.get(ref)
            if entry is None or caught:
                problems.append(f"partial or missing entry: {[str(w.message) for w in caught]}")
            else:
                seen.append(entry.metadata["writer"])
                assert tree_checksum(entry.tree) == tree_checksum(sampled_tree)

    threads = [threading.Thread(target=write, args=(i,)) for i in (0, 1)]
    threads.append(threading.Thread(target=read))
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not problems
    assert len(seen) == 15 and all(w == "first" or w[0] in "01" for w in seen)
    final = reader.get(ref)
    assert final is not None and final.metadata["writer"] in ("0-5", "1-5")
    assert not raw_s3(s3_server).exists(f"{s3_bucket}/race/.locks")


def test_memory_and_file_urls_use_the_same_layout(tmp_path):
    memory_url = f"memory:///cc-{time.time_ns()}/cache"
    tree, run = sample_with(memory_url)
    assert run.last.location.startswith(f"{memory_url}/tiny/draws30_tune30_chains1-")
    ref = EntryRef(run.last.key, "tiny", "draws30_tune30_chains1")
    assert tree_checksum(FileStore(memory_url).get(ref).tree) == result_checksum(tree)

    store = TieredStore([MemoryStore(), FileStore(f"file://{tmp_path}")])
    _, run = sample_with(store)
    assert Path(run.last.location).is_file()
    assert Path(run.last.location).parent.parent == tmp_path


def test_missing_filesystem_names_the_extra_and_unknown_protocols_are_rejected():
    try:
        import gcsfs  # noqa: F401
    except ImportError:
        with pytest.raises(ImportError, match=r"cloudcache\[gcs\]"):
            cc.cloud(tiny_model(), cache="gs://bucket/prefix")
    with pytest.raises(ValueError, match="unknown storage protocol 'nope'"):
        cc.cloud(tiny_model(), cache="nope://bucket/prefix")
