"""NumPyro checkpoints in an object store, against a real S3-speaking server (moto) on loopback.

A real sampling process with an ``s3://`` cache is killed with SIGKILL once its first
checkpoint object exists; the same call in a fresh process resumes from it and returns draws
bit-identical to an uninterrupted run, and the checkpoint's objects are gone once the result is
stored. A torn checkpoint object is ignored with a warning (the run starts over); ``ls
--partial``, ``rm`` and ``clear`` list and remove object-store checkpoints. A finished run keeps
its final state as an object too: another process's request for more draws samples only the
extra ones and returns the draws of a fresh run of the larger request.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import time
from typing import Any

import fixtures_s3
import numpy as np
import pytest
from click.testing import CliRunner
from fixtures_s3 import free_port
from resume_runs import kill_when, run_sampling, sampling_command

from cloudcache.cli import app
from cloudcache.stores import EntryRef, FileStore
from cloudcache.stores.checkpoints import RESUME_DIR, STATE_FILE, CheckpointUnreachable
from cloudcache.stores.final_states import EXTEND_DIR

s3_server = fixtures_s3.s3_server
s3_bucket = fixtures_s3.s3_bucket

#: A run long enough to be killed after its first checkpoint (about a second of sampling).
CALL = {"draws": 4000, "tune": 200, "chains": 2, "random_seed": 11, "progressbar": False}


def _command(url: str, server: Any) -> list[str]:
    return sampling_command(url, CALL, server.storage_options())


def _run(url: str, server: Any, env: dict[str, str], **call: Any) -> tuple[dict, str]:
    return run_sampling(url, {**CALL, **call}, env, server.storage_options())


def _s3(server: Any) -> Any:
    import s3fs

    return s3fs.S3FileSystem(skip_instance_cache=True, **server.storage_options())


def _objects(fs: Any, prefix: str) -> list[str]:
    """Every object below ``<prefix>/.resume`` (listed afresh)."""
    fs.invalidate_cache()
    return fs.find(f"{prefix}/{RESUME_DIR}")


@pytest.fixture(scope="module")
def env() -> dict[str, str]:
    """Checkpoint at every chunk boundary (the interval is tunable; 0 makes tests quick)."""
    return {**os.environ, "CLOUDCACHE_CHECKPOINT_SECONDS": "0"}


@pytest.fixture(scope="module")
def uninterrupted(s3_server: Any, env: dict[str, str]) -> dict:
    bucket = fixtures_s3.make_bucket(s3_server)
    answer, _ = _run(f"s3://{bucket}/reference", s3_server, env)
    assert answer["resumed"] is None and answer["hit"] is False
    assert not _objects(_s3(s3_server), f"{bucket}/reference"), "checkpoints are removed"
    return answer


def test_a_killed_run_resumes_from_its_object_store_checkpoint_bit_identically(
    s3_server: Any, s3_bucket: str, env: dict[str, str], uninterrupted: dict
) -> None:
    url, prefix, fs = f"s3://{s3_bucket}/team", f"{s3_bucket}/team", _s3(s3_server)
    process = subprocess.Popen(
        _command(url, s3_server), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    kill_when(process, lambda: any(n.endswith(f"/{STATE_FILE}") for n in _objects(fs, prefix)))
    assert process.returncode == -signal.SIGKILL, "the run finished before it could be killed"
    fs.invalidate_cache()
    assert not [name for name in fs.find(prefix) if name.endswith(".nc")], "no entry stored"
    saved = _objects(fs, prefix)
    assert any(name.endswith(f"/{STATE_FILE}") for name in saved), "the checkpoint survives"

    # ``ls --partial`` lists it, with the storage options given as -o KEY=VALUE.
    listed = CliRunner().invoke(app, ["ls", "--partial", "--json", "-c", url, *_cli(s3_server)])
    assert listed.exit_code == 0, listed.output
    rows = json.loads(listed.stdout)
    assert [row["status"] for row in rows] == ["ok"] and rows[0]["chains"] == 2
    assert rows[0]["prefix"] == uninterrupted["key"][:32]

    resumed, _ = _run(url, s3_server, env)
    assert resumed["resumed"] and resumed["resumed"].startswith("resumed at ")
    assert resumed["key"] == uninterrupted["key"]
    for name in ("mu", "theta", "lp"):
        assert np.array_equal(np.asarray(resumed[name]), np.asarray(uninterrupted[name]))
    assert resumed["lp"] == uninterrupted["lp"]  # exactly, as JSON floats
    assert not _objects(fs, prefix), "the checkpoint is removed once the result is stored"
    assert _run(url, s3_server, env)[0]["hit"]


def test_a_torn_object_checkpoint_is_ignored_with_a_warning_and_the_run_starts_over(
    s3_server: Any, s3_bucket: str, env: dict[str, str], uninterrupted: dict
) -> None:
    slug = uninterrupted["location"].rsplit("/", 2)[-2]
    folder = f"{s3_bucket}/torn/{RESUME_DIR}/{slug}/{uninterrupted['key'][:32]}"
    fs = _s3(s3_server)
    fs.pipe_file(f"{folder}/{STATE_FILE}", b"PK\x03\x04 a torn archive")
    answer, stderr = _run(f"s3://{s3_bucket}/torn", s3_server, env)
    assert answer["resumed"] is None
    assert answer["lp"] == uninterrupted["lp"] and answer["theta"] == uninterrupted["theta"]
    assert "ignoring the checkpoint" in stderr and "it cannot be read" in stderr
    assert "Traceback" not in stderr
    assert not _objects(fs, f"{s3_bucket}/torn")


def test_a_run_stored_in_an_object_store_is_extended_by_another_process(
    s3_server: Any, s3_bucket: str, env: dict[str, str], uninterrupted: dict
) -> None:
    url, prefix, fs = f"s3://{s3_bucket}/longer", f"{s3_bucket}/longer", _s3(s3_server)
    shorter, _ = _run(url, s3_server, env, draws=1000)
    assert shorter["extended"] is None and not shorter["hit"]
    fs.invalidate_cache()
    kept = fs.find(f"{prefix}/{EXTEND_DIR}")
    assert [name.rsplit("/", 1)[-1] for name in kept] == ["draws-000001000.npz"]

    longer, stderr = _run(url, s3_server, env)  # draws=4000, in a fresh process
    assert longer["extended"] == "extended 1,000 -> 4,000 draws", stderr
    assert longer["key"] == uninterrupted["key"]
    for name in ("mu", "theta", "lp"):
        assert np.array_equal(np.asarray(longer[name]), np.asarray(uninterrupted[name]))
    assert longer["lp"] == uninterrupted["lp"]  # exactly, as JSON floats
    fs.invalidate_cache()
    kept = fs.find(f"{prefix}/{EXTEND_DIR}")
    assert [name.rsplit("/", 1)[-1] for name in kept] == ["draws-000004000.npz"]

    # ``rm`` of the longer entry removes its final state; the shorter entry keeps nothing.
    removed = CliRunner().invoke(app, ["rm", longer["key"][:12], "-c", url, *_cli(s3_server)])
    assert removed.exit_code == 0, removed.output
    assert "removed its final state" in removed.output
    fs.invalidate_cache()
    assert not fs.find(f"{prefix}/{EXTEND_DIR}")


def test_object_final_states_keep_the_longest_run_and_never_serve_a_damaged_one(
    s3_server: Any, s3_bucket: str, caplog: pytest.LogCaptureFixture
) -> None:
    url, fs = f"s3://{s3_bucket}/finals", _s3(s3_server)
    store = FileStore(url, s3_server.storage_options())
    states = store.final_states(EntryRef("a" * 64, "model", "label"), "f" * 64)
    assert states.path.startswith(f"s3://{s3_bucket}/finals/{EXTEND_DIR}/model/")
    record = {"structure": "s", "chains": 2}

    def draws(count: int) -> dict[str, np.ndarray]:
        return {"value_0": np.full((2, count), float(count)), "stat_lp": np.zeros((2, count))}

    states.save(5, [np.arange(3.0)], draws(5), record)
    states.save(10, [np.arange(3.0)], draws(10), record)
    states.save(5, [np.arange(3.0)], draws(5), record)  # a longer run is kept: nothing written
    assert states.stored_draws() == [10]
    found = states.longest_up_to(20, record)
    assert found is not None and found.draws == 10
    assert np.array_equal(found.arrays["value_0"], draws(10)["value_0"])
    assert np.array_equal(found.state[0], np.arange(3.0))
    assert states.longest_up_to(9, record) is None  # only a longer run is kept

    with caplog.at_level(logging.WARNING, logger="cloudcache"):
        assert states.longest_up_to(20, {**record, "structure": "other"}) is None
    assert "not extending the stored run of 10 draws" in caplog.text
    assert "made by another run (structure)" in caplog.text

    fs.pipe_file(f"{states.storage.folder}/draws-000000010.npz", b"PK\x03\x04 a torn archive")
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="cloudcache"):
        assert states.longest_up_to(20, record) is None
    assert "it cannot be read" in caplog.text and "sampling all 20" in caplog.text

    cleared = CliRunner().invoke(app, ["clear", "--yes", "-c", url, *_cli(s3_server)])
    assert cleared.exit_code == 0, cleared.output
    assert "1 final-state file kept for extending runs" in cleared.output
    fs.invalidate_cache()
    assert not fs.find(f"{s3_bucket}/finals")


def _cli(server: Any) -> list[str]:
    options = server.storage_options()
    return [
        *("-o", f"key={options['key']}", "-o", f"secret={options['secret']}"),
        *("-o", f"client_kwargs={json.dumps(options['client_kwargs'])}"),
    ]


def _record() -> dict[str, Any]:
    return {"tune": 100, "draws": 1000, "chains": 2, "structure": "s"}


def _checkpoint(store: FileStore, key: str, segments: int = 2) -> Any:
    """A checkpoint of ``segments`` segments of 5 draws each, saved through the store."""
    folder = store.checkpoint_folder(EntryRef(key, "model", "label"))
    for n in range(segments):
        draws = {"value_0": np.full((2, 5), float(n)), "stat_lp": np.zeros((2, 5))}
        folder.save(100 + 5 * (n + 1), [np.arange(3.0)], draws, 5 * n, _record())
    return folder


def test_object_checkpoints_save_load_and_ignore_damaged_ones(
    s3_server: Any, s3_bucket: str, caplog: pytest.LogCaptureFixture
) -> None:
    store = FileStore(f"s3://{s3_bucket}/unit", s3_server.storage_options())
    fs = _s3(s3_server)
    folder = _checkpoint(store, "a" * 64)
    assert not folder.is_local and folder.path.startswith(f"s3://{s3_bucket}/unit/.resume/")
    names = sorted(name.rsplit("/", 1)[-1] for name in _objects(fs, f"{s3_bucket}/unit"))
    assert names == ["draws-000000000-000000005.npz", "draws-000000005-000000010.npz", STATE_FILE]

    again = store.checkpoint_folder(EntryRef("a" * 64, "model", "label"))
    saved = again.load(_record())
    assert saved is not None and saved.iteration == 110 and saved.age_seconds >= 0
    assert np.array_equal(saved.draws["value_0"][:, 5:], np.ones((2, 5)))
    assert saved.record["segments"] == names[:2]

    # A foreign record (another run structure) is ignored, said in one line, and removed.
    with caplog.at_level(logging.WARNING, logger="cloudcache"):
        assert again.load({**_record(), "structure": "other"}) is None
    assert "another run structure (structure)" in caplog.text
    assert not _objects(fs, f"{s3_bucket}/unit")

    # A checkpoint missing a segment (removed by another resumer's clean-up) is never served.
    folder = _checkpoint(store, "b" * 64)
    fs.rm_file(f"{folder.storage.folder}/draws-000000000-000000005.npz")
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="cloudcache"):
        assert store.checkpoint_folder(EntryRef("b" * 64, "model", "label")).load(_record()) is None
    assert "it cannot be read" in caplog.text
    assert not _objects(fs, f"{s3_bucket}/unit")


def test_a_refused_endpoint_fails_checkpoint_calls_fast_and_keeps_nothing_waiting(
    caplog: pytest.LogCaptureFixture,
) -> None:
    options = {
        "key": "testing",
        "secret": "testing",
        "client_kwargs": {"endpoint_url": f"http://127.0.0.1:{free_port()}"},
    }
    store = FileStore("s3://nobody-home/c", options)
    folder = store.checkpoint_folder(EntryRef("c" * 64, "model", "label"))
    started = time.monotonic()
    with pytest.raises(CheckpointUnreachable):
        folder.save(10, [np.arange(3.0)], {}, 0, _record())
    with caplog.at_level(logging.WARNING, logger="cloudcache"):
        assert folder.load(_record()) is None  # backed off: at once, and nothing removed
    assert "cannot read the checkpoint" in caplog.text and "starting over" in caplog.text
    folder.clear()  # never raises
    states = store.final_states(EntryRef("c" * 64, "model", "label"), "f" * 64)
    assert states.stored_draws() == []
    with pytest.raises(CheckpointUnreachable):
        states.save(10, [np.arange(3.0)], {"value_0": np.zeros((2, 10))}, _record())
    assert states.longest_up_to(20, _record()) is None
    states.clear()  # never raises
    assert time.monotonic() - started < 10


def test_rm_and_clear_remove_object_store_checkpoints(s3_server: Any, s3_bucket: str) -> None:
    url, prefix = f"s3://{s3_bucket}/maint", f"{s3_bucket}/maint"
    store = FileStore(url, s3_server.storage_options())
    fs = _s3(s3_server)
    _checkpoint(store, "d" * 64)
    _checkpoint(store, "e" * 64, segments=1)

    listed = CliRunner().invoke(app, ["ls", "--partial", "-c", url, *_cli(s3_server)])
    assert listed.exit_code == 0, listed.output
    assert "2 interrupted runs" in listed.output and "10 of 1,000 draws" in listed.output

    removed = CliRunner().invoke(app, ["rm", "dddd", "-c", url, *_cli(s3_server)])
    assert removed.exit_code == 0, removed.output
    assert "removed the checkpoint of an interrupted run" in removed.output
    left = _objects(fs, prefix)
    assert left and all(f"/{'e' * 32}/" in name for name in left)

    cleared = CliRunner().invoke(app, ["clear", "--yes", "-c", url, *_cli(s3_server)])
    assert cleared.exit_code == 0, cleared.output
    assert "1 checkpoint of an interrupted run" in cleared.output
    assert not _objects(fs, prefix)
