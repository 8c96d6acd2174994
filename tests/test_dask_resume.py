"""A NumPyro run on a real Dask LocalCluster worker, killed with SIGKILL mid-run, resumed.

The workers run on this machine, so they see the caller's cache folder (proved by a nonce they
read back) and save checkpoints into it; with an object-store cache (a real S3-speaking server
on loopback) they save them into the store itself, and keep the final state a request for more
draws is extended from. The reference is an uninterrupted remote run of the same call into
another cache folder; draws and sample stats are compared exactly.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path
from typing import Any

import fixtures_s3
import numpy as np
import pymc as pm
import pytest

import cloudcache as cc
from cloudcache.calls.request import normalize_sample_call
from cloudcache.errors import WorkerDied
from cloudcache.executors.dask import DaskExecutor
from cloudcache.executors.remote_task import sample_on_worker, tree_from_bytes
from cloudcache.executors.run_storage import RunStorage, offer_storage
from cloudcache.executors.shared_folder import SharedFolder, offer, seen_here, withdraw
from cloudcache.stores import FileStore
from cloudcache.stores.checkpoints import RESUME_DIR, STATE_FILE, CheckpointFolder
from cloudcache.stores.final_states import EXTEND_DIR, FinalStates
from cloudcache.stores.object_checkpoints import ObjectFolder

distributed = pytest.importorskip("distributed")
pytest.importorskip("numpyro")

s3_server = fixtures_s3.s3_server
s3_bucket = fixtures_s3.s3_bucket

#: Long enough to be killed after its first checkpoint (a second or two on a worker here).
CALL = {"draws": 6000, "tune": 200, "chains": 2, "random_seed": 11, "progressbar": False}


def eight_schools() -> pm.Model:
    with pm.Model() as model:
        mu = pm.Normal("mu", 0, 5)
        tau = pm.HalfCauchy("tau", 5)
        theta = pm.Normal("theta", mu, tau, shape=8)
        sigma = np.array([15.0, 10, 16, 11, 9, 11, 10, 18])
        observed = np.array([28.0, 8, -3, 7, -1, 1, 18, 12])
        pm.Normal("y", theta, sigma, observed=observed)
    return model


@pytest.fixture(scope="module")
def client():
    """Two worker processes that checkpoint at every chunk boundary (quick to kill after one)."""
    cluster = distributed.LocalCluster(
        n_workers=2,
        threads_per_worker=1,
        processes=True,
        dashboard_address=None,
        env={"CLOUDCACHE_CHECKPOINT_SECONDS": "0"},
    )
    client = distributed.Client(cluster, set_as_default=False)
    yield client
    client.close()
    cluster.close()


def sample(cache: Path | FileStore, executor: Any) -> tuple[Any, Any]:
    with cc.cloud(eight_schools(), cache=cache, backend="numpyro", executor=executor) as run:
        tree = pm.sample(**CALL)
    return tree, run.last


@pytest.fixture(scope="module")
def uninterrupted(client, tmp_path_factory: pytest.TempPathFactory) -> Any:
    tree, last = sample(tmp_path_factory.mktemp("reference"), client)
    assert "resumed" not in last.metadata
    return tree


def state_files(cache: Path) -> list[Path]:
    return list((cache / RESUME_DIR).rglob("state.npz")) if (cache / RESUME_DIR).exists() else []


def kill_after_first_checkpoint(client, cache: Path | Any) -> threading.Thread:
    """A thread that SIGKILLs the worker running the sample once its checkpoint exists in the
    ``cache`` folder (or once ``cache()`` says so)."""
    pids = client.run(os.getpid)
    killed: list[str] = []
    saved = cache if callable(cache) else lambda: bool(state_files(cache))

    def kill() -> None:
        deadline = time.monotonic() + 120
        while not saved() and time.monotonic() < deadline:
            time.sleep(0.01)
        running = [
            worker
            for worker, keys in client.processing().items()
            if any(str(key).startswith("cloudcache-sample-") for key in keys)
        ]
        for worker in running:
            os.kill(pids[worker], signal.SIGKILL)
            killed.append(worker)

    thread = threading.Thread(target=kill, daemon=True)
    thread.killed = killed  # type: ignore[attr-defined]
    thread.start()
    return thread


def assert_same_draws(tree: Any, reference: Any) -> None:
    for group in ("posterior", "sample_stats"):
        ours, theirs = tree[group].to_dataset(), reference[group].to_dataset()
        assert set(ours.data_vars) == set(theirs.data_vars)
        for name in theirs.data_vars:
            assert np.array_equal(ours[name].values, theirs[name].values), f"{group}.{name}"


def test_a_killed_worker_is_resumed_on_another_with_identical_draws(
    client, tmp_path, uninterrupted, capfd
):
    client.wait_for_workers(2, timeout=120)
    killer = kill_after_first_checkpoint(client, tmp_path)
    tree, last = sample(tmp_path, client)
    killer.join(timeout=60)
    assert len(killer.killed) == 1, "the run finished before its worker could be killed"
    err = capfd.readouterr().err
    assert f"worker {killer.killed[0]} died; resuming on worker tcp://" in err
    assert last.metadata["resumed"].startswith("resumed at ")
    assert last.metadata["resumed"].endswith(f" of {CALL['draws']:,} draws")
    assert_same_draws(tree, uninterrupted)
    assert Path(last.location).is_file()
    assert not state_files(tmp_path), "the checkpoint is removed once the result is stored"
    assert not list((tmp_path / RESUME_DIR).rglob("*")), "no probe is left behind"
    assert list((tmp_path / EXTEND_DIR).rglob("draws-*.npz")), "the worker kept its final state"


def test_a_plain_rerun_after_the_worker_died_resumes(client, tmp_path, uninterrupted):
    client.wait_for_workers(2, timeout=120)
    killer = kill_after_first_checkpoint(client, tmp_path)
    with pytest.raises(WorkerDied, match=r"nothing was cached.*last checkpoint is kept"):
        sample(tmp_path, DaskExecutor(client, resumes=0))
    killer.join(timeout=60)
    assert not list(tmp_path.rglob("*.nc"))
    assert state_files(tmp_path)

    tree, last = sample(tmp_path, client)  # a new cell execution
    assert last.metadata["resumed"].startswith("resumed at ")
    assert_same_draws(tree, uninterrupted)


def test_a_worker_reads_the_folder_only_with_the_callers_nonce(tmp_path):
    folder = CheckpointFolder(str(tmp_path / "cache"), f"{RESUME_DIR}/model/key")
    shared = offer(folder)
    assert shared is not None
    seen = seen_here(shared)
    assert seen is not None and seen.path == folder.path

    other = SharedFolder(shared.root, shared.relative, shared.probe, "0" * len(shared.nonce))
    assert seen_here(other) is None
    elsewhere = SharedFolder(str(tmp_path / "elsewhere"), shared.relative, shared.probe, "x")
    assert seen_here(elsewhere) is None
    assert not (tmp_path / "elsewhere").exists(), "a worker that cannot see it creates nothing"

    probe = Path(shared.path) / shared.probe
    target = tmp_path / "planted"
    target.write_text(shared.nonce)
    probe.unlink()
    probe.symlink_to(target)
    assert seen_here(shared) is None, "a link is never followed"
    probe.unlink()
    withdraw(shared)
    assert not (tmp_path / "cache" / RESUME_DIR / "model").exists()


def test_a_worker_that_does_not_read_the_nonce_keeps_no_checkpoint(client, tmp_path):
    """The worker's own path: a probe whose nonce differs from the one sent (as a worker on
    another machine would read another file, or none) runs the whole sample without
    checkpoints and writes nothing into the folder."""
    import cloudpickle

    client.wait_for_workers(2, timeout=120)
    folder = CheckpointFolder(str(tmp_path), f"{RESUME_DIR}/model/key")
    shared = offer(folder)
    assert shared is not None
    foreign = SharedFolder(shared.root, shared.relative, shared.probe, "f" * len(shared.nonce))
    call = {**CALL, "draws": 1000}
    payload = cloudpickle.dumps((eight_schools(), normalize_sample_call(pm.sample, (), call)))
    topic = "cloudcache-test-foreign-nonce"
    storage = RunStorage(probe=foreign)
    future = client.submit(sample_on_worker, payload, "numpyro", "cpu", topic, storage, pure=False)
    tree = tree_from_bytes(future.result(timeout=120))
    assert tree["posterior"].sizes["draw"] == 1000
    assert sorted(p.name for p in Path(shared.path).iterdir()) == [shared.probe]
    started = [m for _, m in client.get_events(topic) if m.get("stage") == "started"]
    assert started and started[0]["checkpoints"] is False
    withdraw(shared)
    assert not (tmp_path / RESUME_DIR / "model").exists()


def test_a_worker_keeps_checkpoints_and_final_states_in_an_object_store(
    client, s3_server, s3_bucket, uninterrupted, capfd
):
    """The worker reaches the team's bucket itself: killed mid-run, the run resumes on the other
    worker from the checkpoint objects, bit-identically; the finished run's final state is an
    object, so a request for more draws samples only the extra ones."""
    import s3fs

    client.wait_for_workers(2, timeout=120)
    fs = s3fs.S3FileSystem(skip_instance_cache=True, **s3_server.storage_options())
    prefix = f"{s3_bucket}/team"

    def objects(folder: str) -> list[str]:
        fs.invalidate_cache()
        return fs.find(f"{prefix}/{folder}")

    store = FileStore(f"s3://{prefix}", s3_server.storage_options())
    killer = kill_after_first_checkpoint(
        client, lambda: any(name.endswith(f"/{STATE_FILE}") for name in objects(RESUME_DIR))
    )
    tree, last = sample(store, client)
    killer.join(timeout=60)
    assert len(killer.killed) == 1, "the run finished before its worker could be killed"
    assert f"worker {killer.killed[0]} died; resuming on worker tcp://" in capfd.readouterr().err
    assert last.metadata["resumed"].startswith("resumed at ")
    assert_same_draws(tree, uninterrupted)
    assert not objects(RESUME_DIR), "the checkpoint is removed once the result is stored"
    assert [name.rsplit("/", 1)[-1] for name in objects(EXTEND_DIR)] == ["draws-000006000.npz"]

    more = {**CALL, "draws": CALL["draws"] + 500}
    with cc.cloud(eight_schools(), cache=store, backend="numpyro", executor=client) as run:
        longer = pm.sample(**more)
    assert run.last.metadata["extended"] == "extended 6,000 -> 6,500 draws"
    for group in ("posterior", "sample_stats"):
        for name, values in uninterrupted[group].to_dataset().data_vars.items():
            prefix_draws = longer[group][name].isel(draw=slice(0, CALL["draws"])).values
            assert np.array_equal(prefix_draws, values.values), f"{group}.{name}"
    assert [name.rsplit("/", 1)[-1] for name in objects(EXTEND_DIR)] == ["draws-000006500.npz"]


def test_an_object_store_travels_to_the_worker_only_when_it_can_be_pickled():
    """The store's folders go with the task as they are; a filesystem that cannot be pickled
    (here: a lock among its options) leaves the remote run without checkpoints, never failing
    its submission."""
    import fsspec

    def folders(fs: Any) -> tuple[CheckpointFolder, FinalStates]:
        relative = f"{RESUME_DIR}/model/key"
        storage = ObjectFolder(fs, "/team", relative, "memory://team")
        finals = ObjectFolder(fs, "/team", f"{EXTEND_DIR}/model/run", "memory://team")
        return CheckpointFolder("/team", relative, storage), FinalStates("/team", "x", finals)

    folder, finals = folders(fsspec.filesystem("memory", skip_instance_cache=True))
    storage = offer_storage(folder, finals)
    assert storage is not None and storage.checkpoints is folder
    assert storage.final_states is finals and not storage.needs_probe
    assert folder.touched, "the caller clears what the worker may have saved"

    guarded = fsspec.filesystem("memory", skip_instance_cache=True, guard=threading.Lock())
    folder, finals = folders(guarded)
    assert offer_storage(folder, finals) is None
    assert not folder.touched
