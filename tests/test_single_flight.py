"""Single flight on a shared directory: many processes miss on one key, exactly one samples."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pymc as pm
import pytest
from filelock import FileLock
from tiny_models import TINY, tiny_model

import cloudcache as cc
from cloudcache.stores import EntryRef, FileStore, MemoryStore, TieredStore
from cloudcache.stores.format.layout import is_entry_name
from cloudcache.stores.locking import LOCK_DIRECTORY, lock_path

TESTS = Path(__file__).parent
PROCESSES = 4
DRAWS = {**TINY, "draws": 300, "tune": 300}

RACER = """
import json, os, sys, time
sys.path.insert(0, {tests!r})
import pymc as pm
from tiny_models import tiny_model
import cloudcache as cc
model = tiny_model()
go = {go!r}
while not os.path.exists(go):  # every process is ready before any of them samples
    time.sleep(0.01)
with cc.cloud(model, cache={cache!r}, backend="pymc", quiet=True) as run:
    tree = pm.sample(**{draws!r})
print(json.dumps({{"hit": run.last.hit, "location": run.last.location,
                  "mu": tree.posterior["tiny::a"].values.ravel().tolist()}}))
"""


def test_processes_missing_together_sample_once(tmp_path):
    cache, go = tmp_path / "cache", tmp_path / "go"
    script = RACER.format(tests=str(TESTS), go=str(go), cache=str(cache), draws=DRAWS)
    racers = [
        subprocess.Popen(
            [sys.executable, "-c", script],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(PROCESSES)
    ]
    time.sleep(1.0)
    go.touch()
    answers = []
    for racer in racers:
        out, err = racer.communicate(timeout=300)
        assert racer.returncode == 0, err[-2000:]
        answers.append(json.loads(out.strip().splitlines()[-1]))

    assert sorted(a["hit"] for a in answers) == [False] + [True] * (PROCESSES - 1)
    assert len({json.dumps(a["mu"]) for a in answers}) == 1
    assert len({a["location"] for a in answers}) == 1

    files = [p for p in cache.rglob("*") if p.is_file()]
    entries = [p for p in files if is_entry_name(p.name)]
    locks = [p for p in files if LOCK_DIRECTORY in p.relative_to(cache).parts]
    assert len(entries) == 1 and str(entries[0]) == answers[0]["location"]
    assert sorted(files) == sorted(entries + locks)  # no temp files, nothing else
    assert all(not is_entry_name(p.name) for p in locks)


def _store(root: Path, lock_timeout: float) -> TieredStore:
    return TieredStore([MemoryStore(), FileStore(root, lock_timeout=lock_timeout)])


def test_waiter_samples_itself_after_the_lock_timeout(tmp_path):
    model = tiny_model()
    with cc.cloud(model, cache=_store(tmp_path, 30), backend="pymc", quiet=True) as run:
        pm.sample(**TINY)
    ref = EntryRef(run.last.key, "tiny", run.last.metadata["label"])
    Path(run.last.location).unlink()

    with FileLock(lock_path(tmp_path, ref)):  # another process is "sampling" and never ends
        started = time.monotonic()
        with (
            pytest.warns(RuntimeWarning, match="sampling here as well"),
            cc.cloud(model, cache=_store(tmp_path, 0.5), backend="pymc", quiet=True) as run,
        ):
            pm.sample(**TINY)
        assert 0.5 <= time.monotonic() - started < 30
    assert run.last.hit is False and Path(run.last.location).is_file()


def test_a_lock_held_by_a_killed_process_does_not_block(tmp_path):
    ref = EntryRef("cd" * 16, "tiny", "draws30_tune30_chains1")
    path = lock_path(tmp_path, ref)
    path.parent.mkdir(parents=True, exist_ok=True)
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time; from filelock import FileLock; "
            f"FileLock({str(path)!r}).acquire(); print('held', flush=True); time.sleep(600)",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert holder.stdout.readline().strip() == "held"
    store = FileStore(tmp_path, lock_timeout=60)
    os.kill(holder.pid, signal.SIGKILL)
    holder.wait(timeout=30)
    started = time.monotonic()
    with store.single_flight(ref) as held:
        assert held is True
    assert time.monotonic() - started < 5


def test_object_stores_have_no_lock(tmp_path):
    store = FileStore(f"memory:///single-flight-{time.time_ns()}")
    with store.single_flight(EntryRef("ef" * 16, "m", "l")) as held:
        assert held is False
    assert not store.fs.exists(f"{store.root}/{LOCK_DIRECTORY}")
