"""Worker processes for the fault-injection tests (run by path; not a test module).

A *zygote* imports PyMC and cloudcache once, then forks one real worker process per request,
so dozens of SIGKILL trials or 16 concurrent samplers cost a fork each instead of a
second-long interpreter start. Each worker runs one task below, writes its outcome as JSON to
``result_path`` and exits; stdout/stderr go to ``log_path``.
"""

from __future__ import annotations

import json
import os
import resource
import signal
import subprocess
import sys
import time
import traceback
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pymc as pm
import xarray as xr
import xxhash

import cloudcache as cc
from cloudcache.stores.base import EntryRef
from cloudcache.stores.files import FileStore
from cloudcache.stores.format.netcdf import tree_checksum

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # tests/, when run by path
from same_draws import posterior_values

TINY_DRAWS = {"draws": 30, "tune": 30, "chains": 2}


# -- shared by tests and workers -------------------------------------------------------------
def tiny_model(name: str = "tiny") -> pm.Model:
    """A two-parameter model that samples in well under a second."""
    with pm.Model(name=name) as model:
        mu = pm.Normal("mu", 0.0, 1.0)
        sigma = pm.HalfNormal("sigma", 1.0)
        pm.Normal("y", mu, sigma, observed=np.array([0.3, -0.1, 0.8, 0.4, -0.5]))
    return model


def sample_kwargs(seed: int) -> dict[str, Any]:
    """Tiny, deterministic ``pm.sample`` arguments (sequential chains, no progress bar)."""
    return {
        **TINY_DRAWS,
        "cores": 1,
        "random_seed": seed,
        "progressbar": False,
        "compute_convergence_checks": False,
    }


def sample_tiny(seed: int) -> xr.DataTree:
    """A real posterior of :func:`tiny_model` from PyMC's own sampler."""
    model = tiny_model()
    return pm.sample(model=model, nuts_sampler="pymc", **sample_kwargs(seed))


def posterior_checksum(tree: xr.DataTree) -> str:
    """Checksum of the posterior group only (sample_stats hold wall-clock timings)."""
    return tree_checksum(tree["posterior"])


def crash_key(slot: int) -> str:
    """The full key the crash writer uses for ``slot``."""
    return xxhash.xxh3_128_hexdigest(f"crash-slot-{slot}".encode())


def crash_ref(slot: int) -> EntryRef:
    return EntryRef(key=crash_key(slot), slug="crash", label=f"slot{slot}")


def marked_tree(tree: xr.DataTree, marker: int, big_values: int) -> xr.DataTree:
    """``tree`` plus a ``marker`` scalar and a large array derived from it (checkable content)."""
    marked = tree.copy(deep=False)
    posterior = marked["posterior"].to_dataset(inherit=False)
    posterior["marker"] = xr.DataArray(np.int64(marker))
    posterior["big"] = xr.DataArray(expected_big(marker, big_values), dims=["big_dim"])
    marked["posterior"] = xr.DataTree(posterior)
    return marked


def expected_big(marker: int, big_values: int) -> np.ndarray:
    return np.random.default_rng(marker).standard_normal(big_values)


# -- tasks (run inside a forked worker) ------------------------------------------------------
def task_write_loop(
    root: str, tree_path: str, slots: int, big_values: int, first_marker: int, ready_path: str
) -> dict[str, Any]:
    """Put entries through the real FileStore forever (until SIGKILL), cycling ``slots`` keys."""
    store = FileStore(root)
    base = xr.load_datatree(tree_path, engine="h5netcdf")
    marker = first_marker
    while True:
        slot = marker % slots
        store.put(crash_ref(slot), cc.stores.Entry(marked_tree(base, marker, big_values), {}))
        if marker == first_marker:
            Path(ready_path).touch()
        marker += 1


def task_session_loop(root: str, first_seed: int, ready_path: str) -> dict[str, Any]:
    """Sample new seeds through a real ``cloud()`` session writing to ``root`` (until SIGKILL)."""
    model = tiny_model()
    seed = first_seed
    with cc.cloud(model, cache=FileStore(root), backend="pymc", quiet=True):
        while True:
            pm.sample(**sample_kwargs(seed))
            if seed == first_seed:
                Path(ready_path).touch()
            seed += 1


def task_sample(
    cache: str,
    seed: int,
    model_name: str = "tiny",
    fsize_limit: int | None = None,
    storage_options: dict[str, Any] | None = None,
    start_at: float | None = None,
) -> dict[str, Any]:
    """One ``pm.sample`` in a ``cloud()`` block; report hit/miss, checksum and warnings."""
    if fsize_limit is not None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # writes past the limit fail with EFBIG
        resource.setrlimit(resource.RLIMIT_FSIZE, (fsize_limit, fsize_limit))
    model = tiny_model(model_name)
    if start_at is not None:
        time.sleep(max(0.0, start_at - time.time()))
    started = time.time()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with cc.cloud(
            model, cache=cache, backend="pymc", quiet=True, storage_options=storage_options
        ) as run:
            tree = pm.sample(**sample_kwargs(seed))
    record = run.last
    return {
        "hit": record.hit,
        "location": record.location,
        "key": record.key,
        "posterior": posterior_checksum(tree),
        "values": posterior_values(tree),
        "draws": int(tree["posterior"].sizes["draw"]),
        "started": started,
        "finished": time.time(),
        "warnings": [
            str(w.message) for w in caught if issubclass(w.category, RuntimeWarning | UserWarning)
        ],
        "cloudcache_warnings": [str(w.message) for w in caught if "cloudcache" in str(w.message)],
    }


TASKS: dict[str, Callable[..., dict[str, Any]]] = {
    "write_loop": task_write_loop,
    "session_loop": task_session_loop,
    "sample": task_sample,
}


# -- the zygote ------------------------------------------------------------------------------
def _run_child(request: dict[str, Any]) -> None:
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    log = os.open(request["log_path"], os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    os.dup2(log, 1)
    os.dup2(log, 2)
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    code = 0
    try:
        outcome = {"ok": True, **TASKS[request["task"]](**request["args"])}
    except BaseException:
        outcome = {"ok": False, "error": traceback.format_exc()}
        code = 1
    with open(request["result_path"] + ".part", "w", encoding="utf-8") as handle:
        json.dump(outcome, handle)
    os.replace(request["result_path"] + ".part", request["result_path"])
    sys.stdout.flush()
    os._exit(code)


def zygote_main() -> None:
    """Read one JSON request per line; fork a worker for each and answer with its pid."""
    sample_tiny(seed=0)  # warm PyMC's compile cache once so workers start fast
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # the kernel reaps finished workers
    print(json.dumps({"ready": os.getpid()}), flush=True)
    for line in sys.stdin:
        request = json.loads(line)
        pid = os.fork()
        if pid == 0:
            _run_child(request)
        print(json.dumps({"pid": pid}), flush=True)


class Zygote:
    """Test-side handle of a zygote process."""

    def __init__(self, process: subprocess.Popen[str]) -> None:
        self.process = process
        self.children: list[int] = []
        self._counter = 0

    @classmethod
    def start(cls) -> Zygote:
        process = subprocess.Popen(
            [sys.executable, __file__, "zygote"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            bufsize=1,
        )
        assert process.stdout is not None
        first = process.stdout.readline()
        if not first:
            raise RuntimeError("the zygote process died during start-up")
        json.loads(first)
        return cls(process)

    def fork(self, task: str, workdir: Path, **args: Any) -> Worker:
        """Start ``task`` in a new forked process; results and logs go to ``workdir``."""
        assert self.process.stdin is not None and self.process.stdout is not None
        self._counter += 1
        stem = workdir / f"worker-{self._counter}"
        request = {
            "task": task,
            "args": args,
            "result_path": f"{stem}.json",
            "log_path": f"{stem}.log",
        }
        self.process.stdin.write(json.dumps(request) + "\n")
        self.process.stdin.flush()
        pid = json.loads(self.process.stdout.readline())["pid"]
        self.children.append(pid)
        return Worker(pid, Path(f"{stem}.json"), Path(f"{stem}.log"))

    def close(self) -> None:
        for pid in self.children:
            if is_alive(pid):
                os.kill(pid, signal.SIGKILL)
        if self.process.stdin is not None:
            self.process.stdin.close()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


class Worker:
    """One forked worker: its pid, result file and log."""

    def __init__(self, pid: int, result_path: Path, log_path: Path) -> None:
        self.pid = pid
        self.result_path = result_path
        self.log_path = log_path

    def kill(self) -> None:
        os.kill(self.pid, signal.SIGKILL)
        wait_until(lambda: not is_alive(self.pid), timeout=10)

    def result(self, timeout: float) -> dict[str, Any]:
        """Wait for the worker's JSON outcome (fails with the worker's log on error/timeout)."""
        if not wait_until(self.result_path.exists, timeout=timeout):
            if is_alive(self.pid):
                os.kill(self.pid, signal.SIGKILL)
            raise TimeoutError(f"worker {self.pid} gave no result in {timeout} s:\n{self.log()}")
        outcome = json.loads(self.result_path.read_text())
        if not outcome["ok"]:
            raise RuntimeError(f"worker {self.pid} failed:\n{outcome['error']}\n{self.log()}")
        return outcome

    def log(self) -> str:
        return self.log_path.read_text()[-4000:] if self.log_path.exists() else ""


def is_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie still answers kill(0); treat it as gone
        with open(f"/proc/{pid}/stat", encoding="ascii") as handle:
            return handle.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False


def wait_until(condition: Callable[[], bool], timeout: float, interval: float = 0.01) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(interval)
    return condition()


if __name__ == "__main__":
    if sys.argv[1:] == ["zygote"]:
        zygote_main()
    else:
        raise SystemExit("usage: reliability_workers.py zygote")
