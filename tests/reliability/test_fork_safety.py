"""Guarantee 10: a fork child never hangs on what it inherited (a JAX runtime, a lock held by
another thread, another thread's block); it samples or says at once to use ``spawn``.

Every fork here is real and runs under a hard deadline: a hang fails the test, it never hangs
the suite.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pymc as pm
import pytest
from forked import call_in_fork
from reliability_figures import record_trials
from reliability_workers import sample_kwargs, tiny_model

import cloudcache as cc
from cloudcache.backends.numpyro.fork_guard import FORK_REFUSAL
from cloudcache.calls import dispatch as patch
from cloudcache.stores.locking import single_flight
from cloudcache.util.forks import ForkSafeLock

#: These tests fork a multi-threaded process on purpose.
pytestmark = pytest.mark.filterwarnings(
    "ignore:This process .* is multi-threaded:DeprecationWarning"
)

HERE = Path(__file__).resolve().parent
ORIGINAL_SAMPLE = pm.sample

#: Seconds the whole NumPyro-then-Pool scenario may take (it took ~25 s on 2 busy cores).
SCENARIO_DEADLINE = 300.0


def run_with_deadline(arguments: list[str], deadline: float) -> str:
    """Run a script in its own process group; kill the whole group (pool workers included) at
    ``deadline`` and fail, so a hang in any of its processes fails the test."""
    process = subprocess.Popen(
        [sys.executable, *arguments],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        stdout, stderr = process.communicate(timeout=deadline)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.communicate()
        pytest.fail(f"{arguments[0]} still ran after {deadline:g} s: a fork child hung")
    finally:
        if process.poll() is None:  # pragma: no cover - only after an error above
            os.killpg(process.pid, signal.SIGKILL)
    assert process.returncode == 0, stderr[-4000:]
    return stdout.strip().splitlines()[-1]


def test_a_pool_forked_after_a_numpyro_miss_samples_and_never_hangs(tmp_path: Path) -> None:
    """The reported hang: a process samples a NumPyro miss (JAX starts), then forks a Pool whose
    workers sample through the same cache. JAX cannot run in those children, so NumPyro refuses
    there at once (saying to use spawn) and PyMC's sampler answers; single flight still holds."""
    cache = str(tmp_path / "cache")
    seeds = [1, 2, 2, 3]
    script = [str(HERE / "fork_after_miss.py"), cache, *map(str, seeds)]
    outcome: dict[str, Any] = json.loads(run_with_deadline(script, SCENARIO_DEADLINE))

    assert outcome["parent_before"]["backend"] == "numpyro"
    assert outcome["parent_after"]["backend"] == "numpyro"  # the parent is unaffected
    assert outcome["parent_before"]["jax_inherited"] is False
    workers = outcome["workers"]
    assert [call["seed"] for call in workers] == seeds
    for call in workers:
        assert call["jax_inherited"] is True
        assert call["backend"] == "pymc"
        assert FORK_REFUSAL in call["reason"] and "'spawn'" in call["reason"]
    same_seed = [call for call in workers if call["seed"] == 2]
    assert sorted(call["hit"] for call in same_seed) == [False, True]  # sampled once
    assert same_seed[0]["checksum"] == same_seed[1]["checksum"]
    assert outcome["prewarm"] == FORK_REFUSAL  # compiles nothing, says why
    record_trials(
        "fork safety",
        "Pool(fork) of 2 after a NumPyro miss, 4 calls",
        len(workers),
        0,
        slowest_worker_call_s=round(max(call["seconds"] for call in workers), 2),
    )


def _sample_in_a_child() -> tuple[bool, str]:
    with cc.cloud(tiny_model("child"), cache=False, backend="pymc", quiet=True) as run:
        pm.sample(**sample_kwargs(5))
    assert run.last is not None
    return run.last.hit, run.last.backend


def test_fork_while_another_thread_samples() -> None:
    """A thread is inside a sampler run (holding the process's one sampling lock) when the main
    thread forks: the child's own miss must not wait for a lock whose holder it does not have."""
    holding, release = threading.Event(), threading.Event()
    errors: list[BaseException] = []

    def callback(**_: Any) -> None:
        holding.set()
        release.wait(timeout=120)

    def sampler() -> None:
        try:
            with cc.cloud(tiny_model(), cache=False, backend="pymc", quiet=True):
                pm.sample(callback=callback, **sample_kwargs(1))
        except BaseException as error:  # pragma: no cover - reported below
            errors.append(error)

    thread = threading.Thread(target=sampler)
    thread.start()
    try:
        assert holding.wait(timeout=120), "the sampler thread never started sampling"
        assert call_in_fork(_sample_in_a_child, timeout=120) == (False, "pymc")
    finally:
        release.set()
        thread.join(timeout=120)
    assert not errors
    assert pm.sample is ORIGINAL_SAMPLE


def _patch_state_in_a_child() -> dict[str, bool]:
    state = {
        "original": pm.sample is ORIGINAL_SAMPLE,
        "installed": patch.is_installed(),
        "sessions": bool(patch.active_sessions()),
    }
    with cc.cloud(tiny_model("child"), cache=False, backend="pymc", quiet=True):
        state["patched_inside"] = pm.sample is not ORIGINAL_SAMPLE
    state["original_after"] = pm.sample is ORIGINAL_SAMPLE and not patch.is_installed()
    return state


def test_a_fork_child_drops_the_blocks_of_threads_it_does_not_have() -> None:
    """Another thread's open block can never close in the child (that thread is not there), so
    the child starts with PyMC's own functions and patches only for its own blocks."""
    opened, release = threading.Event(), threading.Event()

    def holder() -> None:
        with cc.cloud(tiny_model(), cache=False, backend="pymc", quiet=True):
            opened.set()
            release.wait(timeout=120)

    thread = threading.Thread(target=holder)
    thread.start()
    try:
        assert opened.wait(timeout=60)
        state = call_in_fork(_patch_state_in_a_child, timeout=60)
    finally:
        release.set()
        thread.join(timeout=60)
    assert state == {
        "original": True,
        "installed": False,
        "sessions": False,
        "patched_inside": True,
        "original_after": True,
    }
    assert pm.sample is ORIGINAL_SAMPLE and not patch.is_installed()


def _hold_then_fork(path: str, child_pid: Any, ready: Any) -> None:
    """In a process of its own: a thread holds the single-flight lock, the main thread forks a
    child that lives on; then this process waits to be killed."""
    held = threading.Event()

    def holder() -> None:
        with single_flight(Path(path), 60.0, "the test's key"):
            held.set()
            threading.Event().wait(120)

    threading.Thread(target=holder, daemon=True).start()
    held.wait(60)
    pid = os.fork()
    if pid == 0:  # the grandchild: inherits everything, holds nothing, outlives its parent
        threading.Event().wait(120)
        os._exit(0)
    child_pid.value = pid
    ready.set()
    threading.Event().wait(120)


def test_a_killed_holder_frees_its_lock_although_its_fork_child_lives(tmp_path: Path) -> None:
    """A process holds a single-flight lock in one thread and forks; the holder is killed. The
    lock must be free at once: a child kept alive must not keep it through an inherited
    descriptor (other processes would wait for it up to the lock timeout, an hour)."""
    path = tmp_path / ".locks" / "model" / "entry.nc.lock"
    context = multiprocessing.get_context("fork")
    child_pid, ready = context.Value("i", 0), context.Event()
    holder = context.Process(target=_hold_then_fork, args=(str(path), child_pid, ready))
    holder.start()
    try:
        assert ready.wait(60), "the holder never forked"
        with (
            pytest.warns(RuntimeWarning, match="waited"),
            single_flight(path, 0.5, "the test's key") as held,
        ):
            assert not held  # held by the live holder
        holder.kill()
        holder.join(30)
        with single_flight(path, 10.0, "the test's key") as held:
            assert held  # its fork child, still alive, does not keep it
    finally:
        holder.kill()
        if child_pid.value:
            os.kill(child_pid.value, signal.SIGKILL)


SHARED_LOCK = ForkSafeLock()


def _lock_state_in_a_child() -> tuple[bool, bool]:
    held = not SHARED_LOCK.acquire(blocking=False)
    SHARED_LOCK.release()  # the forking thread goes on in the child and releases its own lock
    return held, SHARED_LOCK.acquire(blocking=False)


def test_the_forking_threads_own_lock_stays_held_in_the_child() -> None:
    with SHARED_LOCK:
        assert call_in_fork(_lock_state_in_a_child, timeout=60) == (True, True)
