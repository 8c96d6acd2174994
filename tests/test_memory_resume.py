"""A memory-only cache (``cache=True``, the default) keeps its runs' partial state in the process.

A notebook's kernel interrupt (a real SIGINT) stops a NumPyro miss after saving it in memory;
running the same call again in the same process resumes it, and a request for more draws is
extended, both bit-identical to an uninterrupted run (``overwrite=True``, same process). The
in-memory folders are bounded by bytes and dropped whole.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import warnings

import numpy as np
import pymc as pm
import pytest
from resume_runs import EIGHT_SCHOOLS
from test_extend import CALL, _assert_identical, eight_schools

import cloudcache as cc
from cloudcache.stores.checkpoints import STATE_FILE
from cloudcache.stores.memory import MemoryStore
from cloudcache.stores.memory_folders import MemoryFolders

#: Interrupted by a thread of the process itself once the first checkpoint is in memory; the
#: same call then runs again, and once more with ``overwrite=True`` as the reference.
SCRIPT = EIGHT_SCHOOLS + textwrap.dedent(
    """
    import os, signal, threading, time
    from cloudcache.stores.resolve import process_memory_store

    call = {"draws": 40000, "tune": 200, "chains": 2, "random_seed": 11, "progressbar": False}
    store = process_memory_store()

    def interrupt_once_saved():
        deadline = time.monotonic() + 300
        while store.partial.nbytes == 0 and time.monotonic() < deadline:
            time.sleep(0.005)
        os.kill(os.getpid(), signal.SIGINT)

    threading.Thread(target=interrupt_once_saved, daemon=True).start()
    try:
        with cc.cloud(m, backend="numpyro", quiet=True):
            pm.sample(**call)
        interrupted = False
    except KeyboardInterrupt:
        interrupted = True
    kept = store.partial.nbytes
    with cc.cloud(m, backend="numpyro", quiet=True) as run:
        resumed = pm.sample(**call)
    with cc.cloud(m, backend="numpyro", quiet=True, overwrite=True) as again:
        reference = pm.sample(**call)
    same = all(
        np.array_equal(resumed[group][name].values, reference[group][name].values)
        for group in ("posterior", "sample_stats")
        for name in reference[group].data_vars
    )
    print(json.dumps({
        "interrupted": interrupted,
        "kept": kept,
        "resumed": run.last.metadata.get("resumed"),
        "reference_resumed": again.last.metadata.get("resumed"),
        "same": same,
    }))
    """
)


def test_a_kernel_interrupt_keeps_the_run_in_memory_and_the_next_call_resumes_it() -> None:
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT],
        capture_output=True,
        text=True,
        timeout=600,
        check=True,
        env={**os.environ, "CLOUDCACHE_CHECKPOINT_SECONDS": "0"},
    )
    answer = json.loads(done.stdout.strip().splitlines()[-1])
    assert answer["interrupted"], "the run finished before the interrupt reached it"
    assert answer["kept"] > 0
    assert answer["resumed"] and answer["resumed"].startswith("resumed at "), done.stderr
    assert answer["reference_resumed"] is None  # overwrite=True samples from the start
    assert answer["same"], "the resumed draws differ from an uninterrupted run's"


def _sample(*, draws: int, overwrite: bool = False) -> tuple[object, dict]:
    with (
        warnings.catch_warnings(),
        cc.cloud(
            eight_schools(), cache=True, backend="numpyro", quiet=True, overwrite=overwrite
        ) as run,
    ):
        warnings.simplefilter("ignore")
        tree = pm.sample(**{**CALL, "draws": draws, "random_seed": 23})
    return tree, run.last.metadata


def test_a_memory_cache_extends_a_run_for_more_draws() -> None:
    _, shorter = _sample(draws=150)
    assert "extended" not in shorter
    longer, metadata = _sample(draws=300)
    assert metadata["extended"] == "extended 150 -> 300 draws"
    reference, fresh = _sample(draws=300, overwrite=True)
    assert "extended" not in fresh
    _assert_identical(longer, reference)


def test_memory_folders_are_bounded_and_dropped_whole() -> None:
    folders = MemoryFolders(max_bytes=250)
    first, second = folders.folder("a"), folders.folder("b")
    first.write("draws-1.npz", b"x" * 100)
    first.write(STATE_FILE, b"y" * 50)
    second.write("draws-1.npz", b"z" * 100)
    assert folders.nbytes == 250 and sorted(first.names()) == ["draws-1.npz", STATE_FILE]
    second.write(STATE_FILE, b"w" * 50)  # over the bound: the least recently written folder goes
    assert first.names() == [] and folders.nbytes == 150
    assert first.written_at(STATE_FILE) is None and second.written_at(STATE_FILE) is not None
    with pytest.raises(FileNotFoundError), first.archive(STATE_FILE):
        pass
    second.write("big.npz", b"v" * 1000)  # one folder alone stays, whatever its size
    assert sorted(second.names()) == ["big.npz", "draws-1.npz", STATE_FILE]
    second.remove_all()
    assert folders.nbytes == 0


def test_a_memory_store_without_room_keeps_no_partial_state() -> None:
    from cloudcache.stores import EntryRef

    ref = EntryRef("a" * 64, "model", "label")
    assert MemoryStore(0).checkpoint_folder(ref) is None
    assert MemoryStore(0).final_states(ref, "b" * 64) is None
    store = MemoryStore(1 << 20)
    folder = store.checkpoint_folder(ref)
    assert folder is not None and folder.path == "memory:.resume/model/" + "a" * 32
    folder.save(5, [np.arange(3.0)], {"value_0": np.ones((2, 5))}, 0, {"tune": 0})
    assert folder.load({"tune": 0}) is not None
    store.clear()
    assert store.partial.nbytes == 0 and folder.load({"tune": 0}) is None
