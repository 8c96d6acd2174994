"""Guarantee 4: when storage fails, the sampled result is returned with exactly one warning.

Read-only and full file systems are real tmpfs mounts (the tests run as root here); where
``mount`` is refused the read-only case falls back to permissions and the full-disk case is
still covered by a real ``RLIMIT_FSIZE`` in a worker process.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import threading
import time
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pymc as pm
import pytest
import xarray as xr
from reliability_figures import record_trials
from reliability_workers import Zygote, posterior_checksum, sample_kwargs, sample_tiny, tiny_model
from same_draws import assert_pymc_draws_close

import cloudcache as cc
from cloudcache.stores.files import FileStore


def _sample(cache: Any, seed: int, **options: Any) -> tuple[xr.DataTree, Any, list[str]]:
    """One real ``pm.sample`` in a ``cloud()`` block; returns (tree, record, our warnings)."""
    model = tiny_model()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with cc.cloud(model, cache=cache, backend="pymc", quiet=True, **options) as run:
            tree = pm.sample(**sample_kwargs(seed))
    messages = [str(w.message) for w in caught if str(w.message).startswith("cloudcache")]
    return tree, run.last, messages


@pytest.fixture(scope="module")
def reference() -> dict[int, xr.DataTree]:
    """The posteriors PyMC produces for the seeds used here, without any cache."""
    return {seed: sample_tiny(seed) for seed in (11, 12)}


def _mount_tmpfs(path: Path, size: str, *extra: str) -> bool:
    path.mkdir(parents=True, exist_ok=True)
    options = ",".join([f"size={size}", *extra])
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(path)], check=False)
    return done.returncode == 0


def _unmount(path: Path) -> None:
    subprocess.run(["umount", "-l", str(path)], check=False)


@pytest.fixture
def read_only_dir(tmp_path: Path) -> Iterator[tuple[Path, str]]:
    """A directory writes fail in: a read-only tmpfs, or (without mount) mode 0555."""
    path = tmp_path / "ro"
    if _mount_tmpfs(path, "4m", "ro"):
        yield path, "read-only tmpfs mount"
        _unmount(path)
        return
    if os.geteuid() == 0:
        pytest.skip("mount refused and root ignores permissions: no read-only directory")
    path.chmod(0o555)
    yield path, "chmod 0555"
    path.chmod(0o755)


@pytest.fixture
def full_disk(tmp_path: Path) -> Iterator[Path]:
    """A 16 KiB tmpfs: smaller than any entry, so every write runs out of space."""
    path = tmp_path / "full"
    if not _mount_tmpfs(path, "16k"):
        pytest.skip("mount refused; the RLIMIT_FSIZE test covers a full disk")
    yield path
    _unmount(path)


def _assert_returned_with_one_warning(
    tree: xr.DataTree, record: Any, messages: list[str], expected: xr.DataTree, *needles: str
) -> None:
    assert_pymc_draws_close(tree, expected)
    assert record is not None and not record.hit
    assert len(messages) == 1, messages
    for needle in needles:
        assert needle in messages[0], messages


def test_read_only_directory(read_only_dir: tuple[Path, str], reference: dict) -> None:
    root, how = read_only_dir
    tree, record, messages = _sample(FileStore(root), 11)
    _assert_returned_with_one_warning(tree, record, messages, reference[11], "could not store")
    assert record.location == "uncached"
    assert not any(root.rglob("*")), "nothing may be left in a read-only directory"
    record_trials("failing storage", f"read-only directory ({how})", 1, 0)


def test_read_only_directory_still_serves_hits(tmp_path: Path, reference: dict) -> None:
    root = tmp_path / "ro-with-entry"
    if not _mount_tmpfs(root, "4m"):
        pytest.skip("mount refused")
    try:
        stored, _, _ = _sample(FileStore(root), 12)
        subprocess.run(["mount", "-o", "remount,ro", str(root)], check=True)
        tree, record, messages = _sample(FileStore(root), 12)
        assert record.hit and not messages
        assert posterior_checksum(tree) == posterior_checksum(stored)  # the stored bytes
        assert_pymc_draws_close(tree, reference[12])
    finally:
        _unmount(root)


def test_full_disk(full_disk: Path, reference: dict) -> None:
    tree, record, messages = _sample(FileStore(full_disk), 11)
    _assert_returned_with_one_warning(tree, record, messages, reference[11], "could not store")
    assert not [*full_disk.rglob("*.nc"), *full_disk.rglob("*.tmp")], "partial files left behind"
    record_trials("failing storage", "full disk (16 KiB tmpfs)", 1, 0)


def test_file_size_limit_in_a_worker(zygote: Zygote, tmp_path: Path, reference: dict) -> None:
    root = tmp_path / "limited"
    worker = zygote.fork("sample", tmp_path, cache=str(root), seed=11, fsize_limit=8192)
    outcome = worker.result(timeout=180)
    assert_pymc_draws_close(outcome["values"], reference[11])  # sampled in another process
    assert not outcome["hit"] and outcome["location"] == "uncached"
    assert len(outcome["cloudcache_warnings"]) == 1, outcome["cloudcache_warnings"]
    assert "could not store" in outcome["cloudcache_warnings"][0]
    assert not list(root.rglob("*.nc")) and not list(root.rglob("*.tmp"))
    record_trials("failing storage", "RLIMIT_FSIZE 8 KiB (worker process)", 1, 0)


def test_directory_removed_between_calls(tmp_path: Path, reference: dict) -> None:
    root = tmp_path / "vanishing"
    store = FileStore(root)
    _sample(store, 11)
    shutil.rmtree(root)
    tree, record, messages = _sample(store, 12)  # the directory is simply made again
    assert not messages
    assert_pymc_draws_close(tree, reference[12])
    assert Path(record.location).exists()
    tree, record, messages = _sample(store, 11)  # its entry went with the directory: a miss
    assert not record.hit and not messages
    assert_pymc_draws_close(tree, reference[11])


def test_directory_replaced_by_a_file(tmp_path: Path, reference: dict) -> None:
    root = tmp_path / "was-a-dir"
    store = FileStore(root)
    _sample(store, 11)
    shutil.rmtree(root)
    root.write_text("not a directory")
    tree, record, messages = _sample(store, 11)
    _assert_returned_with_one_warning(tree, record, messages, reference[11])


def test_directory_removed_while_writing(tmp_path: Path, reference: dict) -> None:
    """A thread deletes the cache directory over and over while calls sample and write."""
    root = tmp_path / "churn"
    store = FileStore(root)
    stop = threading.Event()

    def remove_forever() -> None:
        while not stop.is_set():
            shutil.rmtree(root, ignore_errors=True)
            time.sleep(0.001)

    remover = threading.Thread(target=remove_forever, daemon=True)
    remover.start()
    calls = 0
    try:
        for _ in range(3):
            for seed in (11, 12):
                tree, _, messages = _sample(store, seed)
                assert_pymc_draws_close(tree, reference[seed])
                assert len(messages) <= 1, messages
                calls += 1
    finally:
        stop.set()
        remover.join()
    record_trials("failing storage", "directory removed in a loop during calls", calls, 0)


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]  # closed again when the block ends


def test_unreachable_object_store(reference: dict[int, str]) -> None:
    pytest.importorskip("s3fs")
    options = {
        "endpoint_url": f"http://127.0.0.1:{_closed_port()}",
        "key": "test",
        "secret": "test",
        "client_kwargs": {"region_name": "us-east-1"},
        "config_kwargs": {"connect_timeout": 1, "read_timeout": 1, "retries": {"max_attempts": 1}},
        "skip_instance_cache": True,
    }
    started = time.monotonic()
    tree, record, messages = _sample("s3://bucket/cache", 11, storage_options=options)
    elapsed = time.monotonic() - started
    _assert_returned_with_one_warning(tree, record, messages, reference[11])
    assert "127.0.0.1" in messages[0] or "s3://" in messages[0], messages
    assert elapsed < 60, f"an unreachable store held the call for {elapsed:.0f} s"
    record_trials("failing storage", "unreachable S3 endpoint", 1, 0, seconds=round(elapsed, 1))
