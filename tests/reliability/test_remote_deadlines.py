"""Remote runs never hang: a silent scheduler and a frozen worker each give a clear error.

A real socket on loopback that accepts TCP and never speaks stands for a hung scheduler or a
stale SSH tunnel, a closed loopback port for a scheduler that is not running; a real
LocalCluster worker process stopped with SIGSTOP stands for a frozen worker (the scheduler
keeps it for minutes, so Dask alone would wait that long), one killed with SIGKILL for a dead
one. Issue 21.5: each is reported within the deadline docs/remote.md names, with
``timeout=None`` too (connect 5 s, a dead worker ~1 s, a frozen one 10 s).
"""

from __future__ import annotations

import os
import signal
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pymc as pm
import pytest
from reliability_figures import record_trials
from tiny_models import TINY, tiny_model

import cloudcache as cc
from cloudcache.errors import SchedulerUnreachable, WorkerDied, WorkerStalled
from cloudcache.executors.dask import CONNECT_TIMEOUT, STALL_TIMEOUT, DaskExecutor

distributed = pytest.importorskip("distributed")

#: Generous bound on any call that must fail at a deadline (it used to hang for minutes).
BOUND_SECONDS = 60.0
LONG = {**TINY, "draws": 200_000, "tune": 500}  # would keep the worker busy for minutes
#: Slack on a documented deadline for the call around it (cloud(), the key) on a loaded machine.
SLACK = 2.0


@pytest.fixture
def silent_address() -> Iterator[str]:
    """``tcp://127.0.0.1:<port>`` of a socket that accepts every connection and never answers."""
    server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    server.bind(("127.0.0.1", 0))
    server.listen(16)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept_forever() -> None:
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                connection, _ = server.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            held.append(connection)

    acceptor = threading.Thread(target=accept_forever, daemon=True)
    acceptor.start()
    yield f"tcp://127.0.0.1:{server.getsockname()[1]}"
    stop.set()
    acceptor.join(5)
    for connection in held:
        connection.close()
    server.close()


def call_bounded(function: Any) -> tuple[BaseException | None, float]:
    """Run ``function`` in a thread; fail the test if it has not returned in BOUND_SECONDS."""
    outcome: list[BaseException | None] = []

    def run() -> None:
        try:
            function()
        except BaseException as error:  # the error is the outcome under test
            outcome.append(error)
        else:
            outcome.append(None)

    started = time.monotonic()
    worker = threading.Thread(target=run, daemon=True)
    worker.start()
    worker.join(BOUND_SECONDS)
    assert not worker.is_alive(), f"still blocked after {BOUND_SECONDS:g} s"
    return outcome[0], time.monotonic() - started


def test_silent_scheduler_fails_within_the_timeout(silent_address: str, tmp_path: Path) -> None:
    def sample() -> None:
        with cc.cloud(
            tiny_model(), cache=tmp_path, backend="pymc", executor=silent_address, timeout=3
        ):
            pm.sample(**TINY)

    error, seconds = call_bounded(sample)
    assert isinstance(error, SchedulerUnreachable), error
    assert isinstance(error, TimeoutError)
    assert f"executor={silent_address!r}" in str(error) and "within 3 s" in str(error)
    assert not list(tmp_path.rglob("*.nc"))
    record_trials(
        "remote deadlines", "scheduler accepts TCP, never speaks", 1, 0, seconds=round(seconds, 1)
    )


@pytest.fixture(scope="module")
def cluster_client() -> Iterator[Any]:
    cluster = distributed.LocalCluster(
        n_workers=1, threads_per_worker=1, processes=True, dashboard_address=None
    )
    client = distributed.Client(cluster, set_as_default=False)
    yield client
    client.close()
    cluster.close()


def test_frozen_worker_is_noticed_and_nothing_is_cached(
    cluster_client: Any, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    (pid,) = cluster_client.run(os.getpid).values()
    stopped = threading.Event()

    def freeze_when_running() -> None:
        deadline = time.monotonic() + 60
        while not any(cluster_client.processing().values()) and time.monotonic() < deadline:
            time.sleep(0.1)
        time.sleep(1.0)
        os.kill(pid, signal.SIGSTOP)
        stopped.set()

    executor = DaskExecutor(cluster_client, stall_timeout=5)

    def sample() -> None:
        with cc.cloud(tiny_model(), cache=tmp_path, backend="pymc", executor=executor, quiet=True):
            pm.sample(**LONG)

    freezer = threading.Thread(target=freeze_when_running, daemon=True)
    freezer.start()
    try:
        error, seconds = call_bounded(sample)
    finally:
        freezer.join(70)
        if stopped.is_set():
            os.kill(pid, signal.SIGCONT)
    assert stopped.is_set(), "the worker never started the run"
    assert isinstance(error, WorkerStalled), error
    assert "no heartbeat and no progress for 5 s" in str(error) and "nothing was cached" in str(
        error
    )
    assert not list(tmp_path.rglob("*.nc"))
    assert "remote run" not in capfd.readouterr().err
    record_trials(
        "remote deadlines", "worker frozen with SIGSTOP mid-run", 1, 0, seconds=round(seconds, 1)
    )


def test_worker_frozen_before_the_call_is_refused_in_time(
    cluster_client: Any, tmp_path: Path
) -> None:
    (pid,) = cluster_client.run(os.getpid).values()
    executor = DaskExecutor(cluster_client, stall_timeout=5)

    def sample() -> None:
        with cc.cloud(tiny_model(), cache=tmp_path, backend="pymc", executor=executor, quiet=True):
            pm.sample(**TINY)

    os.kill(pid, signal.SIGSTOP)
    try:
        error, seconds = call_bounded(sample)
    finally:
        os.kill(pid, signal.SIGCONT)
    assert isinstance(error, WorkerStalled), error
    assert "no answer within 5 s" in str(error)
    assert not list(tmp_path.rglob("*.nc"))
    record_trials(
        "remote deadlines", "worker frozen before the call", 1, 0, seconds=round(seconds, 1)
    )


def test_refused_scheduler_port_fails_at_once(tmp_path: Path) -> None:
    with socket.socket() as probe:  # a loopback port nothing listens on
        probe.bind(("127.0.0.1", 0))
        address = f"tcp://127.0.0.1:{probe.getsockname()[1]}"

    def sample() -> None:
        with cc.cloud(tiny_model(), cache=tmp_path, backend="pymc", executor=address):
            pm.sample(**TINY)

    error, seconds = call_bounded(sample)
    assert isinstance(error, SchedulerUnreachable), error
    assert "refused" in str(error) and f"executor={address!r}" in str(error)
    assert seconds < SLACK, f"a refused port took {seconds:.1f} s to report"
    assert not list(tmp_path.rglob("*.nc"))


def test_silent_scheduler_fails_within_the_connect_deadline_without_timeout(
    silent_address: str, tmp_path: Path
) -> None:
    def sample() -> None:
        with cc.cloud(tiny_model(), cache=tmp_path, backend="pymc", executor=silent_address):
            pm.sample(**TINY)

    error, seconds = call_bounded(sample)
    assert isinstance(error, SchedulerUnreachable), error
    assert f"within {CONNECT_TIMEOUT:g} s" in str(error)
    assert CONNECT_TIMEOUT - 0.5 <= seconds < CONNECT_TIMEOUT + SLACK, seconds
    record_trials(
        "remote deadlines", "silent scheduler, timeout=None", 1, 0, seconds=round(seconds, 1)
    )


def run_and_signal(client: Any, tmp_path: Path, signum: int) -> tuple[BaseException | None, float]:
    """Sample LONG on the cluster's worker with ``timeout=None`` and the default deadlines;
    send ``signum`` to the worker once it runs; the outcome and its seconds after the signal."""
    (pid,) = client.run(os.getpid).values()
    signalled: list[float] = []

    def signal_when_running() -> None:
        deadline = time.monotonic() + 60
        while not any(client.processing().values()) and time.monotonic() < deadline:
            time.sleep(0.1)
        time.sleep(1.0)
        os.kill(pid, signum)
        signalled.append(time.monotonic())

    def sample() -> None:
        with cc.cloud(tiny_model(), cache=tmp_path, backend="pymc", executor=client, quiet=True):
            pm.sample(**LONG)

    sender = threading.Thread(target=signal_when_running, daemon=True)
    sender.start()
    try:
        error, _ = call_bounded(sample)
    finally:
        sender.join(70)
        if signalled and signum == signal.SIGSTOP:
            os.kill(pid, signal.SIGCONT)
    assert signalled, "the worker never started the run"
    assert not list(tmp_path.rglob("*.nc"))
    return error, time.monotonic() - signalled[0]


def test_frozen_worker_is_noticed_at_the_default_deadline_with_timeout_none(
    cluster_client: Any, tmp_path: Path
) -> None:
    error, seconds = run_and_signal(cluster_client, tmp_path, signal.SIGSTOP)
    assert isinstance(error, WorkerStalled), error
    assert f"no progress for {STALL_TIMEOUT:g} s" in str(error)
    assert seconds < STALL_TIMEOUT + SLACK, f"noticed {seconds:.1f} s after SIGSTOP"
    assert seconds < 12.0, "docs/remote.md promises a frozen worker is noticed within 10 s"
    record_trials("remote deadlines", "SIGSTOP, timeout=None", 1, 0, seconds=round(seconds, 1))


def test_killed_worker_is_noticed_within_two_seconds_with_timeout_none(
    cluster_client: Any, tmp_path: Path
) -> None:
    error, seconds = run_and_signal(cluster_client, tmp_path, signal.SIGKILL)
    assert isinstance(error, WorkerDied), error
    assert seconds < 2.0, f"noticed {seconds:.1f} s after SIGKILL"
    cluster_client.wait_for_workers(1, timeout=60)  # the nanny restarts it
    record_trials("remote deadlines", "SIGKILL, timeout=None", 1, 0, seconds=round(seconds, 1))


def test_worker_killed_during_the_version_check_is_noticed_at_once(
    cluster_client: Any, tmp_path: Path
) -> None:
    """The check before submitting waits on the worker too: its death ends the wait at once."""
    cluster_client.wait_for_workers(1, timeout=60)
    (pid,) = cluster_client.run(os.getpid).values()
    os.kill(pid, signal.SIGSTOP)  # the version check now waits for an answer
    killed: list[float] = []

    def kill_soon() -> None:
        time.sleep(1.5)
        os.kill(pid, signal.SIGKILL)
        killed.append(time.monotonic())

    def sample() -> None:
        with cc.cloud(tiny_model(), cache=tmp_path, backend="pymc", executor=cluster_client):
            pm.sample(**TINY)

    killer = threading.Thread(target=kill_soon, daemon=True)
    killer.start()
    error, _ = call_bounded(sample)
    killer.join(10)
    assert isinstance(error, WorkerDied), error
    seconds = time.monotonic() - killed[0]
    assert seconds < 2.0, f"noticed {seconds:.1f} s after SIGKILL"
    assert not list(tmp_path.rglob("*.nc"))
    cluster_client.wait_for_workers(1, timeout=60)
