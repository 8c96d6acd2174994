"""Remote sampling on a real Dask LocalCluster (separate worker process)."""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from pathlib import Path

import pymc as pm
import pytest
import xarray as xr
from pymc_results import group
from same_draws import assert_pymc_draws_close
from tiny_models import TINY, tiny_model

import cloudcache as cc
from cloudcache.errors import NoSuitableWorker, WorkerDied, WorkerVersionMismatch
from cloudcache.executors.dask import DaskExecutor, scheduler_workers
from cloudcache.executors.remote_task import (
    ENGINES,
    installed_versions,
    result_engine,
    tree_from_bytes,
    tree_to_bytes,
)

distributed = pytest.importorskip("distributed")

LONG = {**TINY, "draws": 200_000, "tune": 500}  # would keep the worker busy for minutes


@pytest.fixture(scope="module")
def client():
    cluster = distributed.LocalCluster(
        n_workers=1, threads_per_worker=1, processes=True, dashboard_address=None
    )
    client = distributed.Client(cluster, set_as_default=False)
    yield client
    client.close()
    cluster.close()


def entries(root: Path) -> list[Path]:
    return sorted(root.rglob("*.nc"))


def executing(client) -> int:
    """Tasks running in worker threads right now (cancelled ones included)."""
    counts = client.run(lambda dask_worker: dask_worker.state.executing_count)
    return sum(counts.values())


def wait_until_idle(client, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while executing(client) and time.monotonic() < deadline:
        time.sleep(0.2)
    return executing(client) == 0


def test_miss_on_the_cluster_then_hit_locally(client, tmp_path, capfd):
    model = tiny_model()
    address = client.scheduler.address
    with cc.cloud(model, cache=tmp_path, backend="pymc", executor=address, timeout=120) as run:
        remote = pm.sample(**TINY)
    assert run.last.hit is False and Path(run.last.location).is_file()
    err = capfd.readouterr().err
    assert "remote run started on tcp://" in err and "remote run done on tcp://" in err

    with cc.cloud(model, cache=tmp_path, backend="pymc", quiet=True) as run:
        again = pm.sample(**TINY)
    assert run.last.hit is True
    assert group(again, "posterior").equals(group(remote, "posterior"))

    with cc.cloud(model, cache=False, backend="pymc", quiet=True):
        local = pm.sample(**TINY)  # same model and seed here: PyMC's draws up to the last bits
    assert_pymc_draws_close(local, remote)


def test_version_mismatch_is_refused_before_submitting(client, tmp_path):
    expected = {**installed_versions(), "pymc": "0.0.1"}
    executor = DaskExecutor(client, expected_versions=expected)
    with (
        pytest.raises(WorkerVersionMismatch, match=r"pymc .* \(caller has 0\.0\.1\)"),
        cc.cloud(tiny_model(), cache=tmp_path, backend="pymc", executor=executor, quiet=True),
    ):
        pm.sample(**TINY)
    assert entries(tmp_path) == []
    assert not any(client.processing().values())


@pytest.fixture
def worker_with_other_version(client, tmp_path):
    """Make the real worker report another installed version of one library (a fake
    ``<name>-0.0.1.dist-info`` first on its ``sys.path``), as after an upgrade on one side."""

    def install(directory: str, name: str) -> None:
        from cloudcache.util import versions

        os.makedirs(os.path.join(directory, f"{name}-0.0.1.dist-info"), exist_ok=True)
        sys.path.insert(0, directory)
        versions.dist_info_versions.cache_clear()
        versions.installed_version.cache_clear()

    def remove(directory: str) -> None:
        from cloudcache.util import versions

        while directory in sys.path:
            sys.path.remove(directory)
        versions.dist_info_versions.cache_clear()
        versions.installed_version.cache_clear()

    directory = str(tmp_path / "fake" / "site-packages")
    yield lambda name: client.run(install, directory, name)
    client.run(remove, directory)


@pytest.mark.parametrize(("backend", "library"), [("nutpie", "numba"), ("numpyro", "jaxlib")])
def test_every_library_of_the_key_is_checked_on_the_worker(
    client, tmp_path, worker_with_other_version, backend, library
):
    """Issue 20.5: a nutpie key names numba, a NumPyro key jaxlib: a worker with another
    version of either is refused before anything is sent (nothing stored under our versions)."""
    pytest.importorskip(backend)
    worker_with_other_version(library)
    cache = tmp_path / "cache"
    with (
        pytest.raises(WorkerVersionMismatch, match=rf"{library} 0\.0\.1 \(caller has "),
        cc.cloud(
            tiny_model(), cache=cache, backend=backend, executor=client, timeout=60, quiet=True
        ),
    ):
        pm.sample(**TINY)
    assert entries(cache) == []
    assert not any(client.processing().values())


def test_missing_gpu_resource_is_refused_at_once(client, tmp_path):
    started = time.monotonic()
    with (
        pytest.raises(NoSuitableWorker, match="GPU=1"),
        cc.cloud(
            tiny_model(), cache=tmp_path, backend="pymc", device="gpu", executor=client, quiet=True
        ),
    ):
        pm.sample(**TINY)
    assert time.monotonic() - started < 5
    assert entries(tmp_path) == []


def test_timeout_cancels_the_remote_run(client, tmp_path):
    started = time.monotonic()
    with (
        pytest.raises(TimeoutError, match="timeout=3 s"),
        cc.cloud(
            tiny_model(), cache=tmp_path, backend="pymc", executor=client, timeout=3, quiet=True
        ),
    ):
        pm.sample(**LONG)
    assert time.monotonic() - started < 10
    assert entries(tmp_path) == []
    assert wait_until_idle(client, 30)  # the worker aborts the cancelled run


def test_worker_killed_mid_run_raises_and_caches_nothing(client, tmp_path):
    (pid,) = client.run(os.getpid).values()

    def kill_when_running() -> None:
        deadline = time.monotonic() + 60
        while not any(client.processing().values()) and time.monotonic() < deadline:
            time.sleep(0.1)
        time.sleep(1.0)
        os.kill(pid, signal.SIGKILL)

    killer = threading.Thread(target=kill_when_running, daemon=True)
    killer.start()
    started = time.monotonic()
    with (
        pytest.raises(WorkerDied, match="nothing was cached"),
        cc.cloud(
            tiny_model(), cache=tmp_path, backend="pymc", executor=client, timeout=120, quiet=True
        ),
    ):
        pm.sample(**LONG)
    assert time.monotonic() - started < 60
    killer.join()
    assert entries(tmp_path) == []
    client.wait_for_workers(1, timeout=60)  # the nanny restarts it for later users


def test_missing_dask_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "distributed", None)
    with pytest.raises(ImportError, match=r"cloudcache\[dask\]"):
        cc.cloud(tiny_model(), executor="tcp://127.0.0.1:8786")


def test_bad_executor_names_the_choices():
    with pytest.raises(TypeError, match="executor must be None"):
        cc.cloud(tiny_model(), executor=42)


def test_results_travel_through_netcdf4_and_read_back_from_either_engine():
    """Workers encode with netCDF4 (fast); bytes written by either engine decode the same."""
    pytest.importorskip("netCDF4")
    with cc.cloud(tiny_model(), cache=False, backend="pymc", quiet=True):
        tree = pm.sample(**TINY)
    assert result_engine() == "netcdf4"
    payload = tree_to_bytes(tree)
    assert payload[:4] == b"\x89HDF"
    ours = tree_from_bytes(payload)
    assert ours.posterior.to_dataset().equals(tree.posterior.to_dataset())
    for engine in ENGINES:
        xr.testing.assert_identical(tree_from_bytes(bytes(tree.to_netcdf(engine=engine))), ours)
        with xr.open_datatree(payload, engine=engine) as opened:
            xr.testing.assert_identical(opened.load(), ours)


def test_worker_table_never_comes_back_empty_while_the_client_refreshes():
    """The client's periodic identity refresh lists no workers; polls must not see that."""
    import dask

    with (
        dask.config.set({"distributed.client.scheduler-info-interval": "1ms"}),
        distributed.LocalCluster(
            n_workers=1, threads_per_worker=1, processes=False, dashboard_address=None
        ) as cluster,
        distributed.Client(cluster, set_as_default=False) as client,
    ):
        sizes = [len(scheduler_workers(client, 30)) for _ in range(1000)]
    assert set(sizes) == {1}
