"""Cost of the hit audit (``cloud(..., audit=True)``) on a radon-shaped model; prints JSON.

The parent samples the radon-shaped model (85 groups, 919 observations; numpyro backend,
4 chains x 1000 draws) into a temporary disk cache, then runs two fresh processes that only
hit it: the first with an empty PyTensor compile directory (a machine's first audit of this
model: the log density is compiled from scratch), the second reusing that directory (a new
process on a machine that has audited the model before). Each process times

- its first disk hit without the audit (library start-up), then the first audit of the
  process (which compiles the model once for the process) and later audits (median),
- memory and disk hits with and without the audit (medians) through ``cloud(...)``.

    python benchmarks/bench_audit.py [--repeats 15]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

CALL = {"draws": 1000, "tune": 1000, "chains": 4, "random_seed": 1, "progressbar": False}


def timings(function: Callable[[], Any], repeats: int) -> list[float]:
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        function()
        times.append(time.perf_counter() - started)
    return times


def median_seconds(function: Callable[[], Any], repeats: int) -> float:
    return statistics.median(timings(function, repeats))


def _hit(model: Any, cache: str, audit: bool, *, from_disk: bool) -> float:
    import pymc as pm

    import cloudcache as cc
    from cloudcache.stores.resolve import process_memory_store

    if from_disk:
        process_memory_store().clear()
    started = time.perf_counter()
    with cc.cloud(model, cache=cache, backend="numpyro", quiet=True, audit=audit) as run:
        pm.sample(**CALL)
    elapsed = time.perf_counter() - started
    assert run.last is not None and run.last.hit and not run.last.audit, run.last
    expected = "memory" if not from_disk else ".nc"
    assert run.last.location.endswith(expected), run.last.location
    return elapsed


def child(cache: str, repeats: int) -> dict[str, float]:
    """The measurements of one fresh process (see the module docstring)."""
    import pymc as pm

    import cloudcache as cc
    from cloudcache.calls.audit import audit_failure
    from cloudcache.demo.models import radon_model

    model = radon_model()
    first_plain = _hit(model, cache, False, from_disk=True)
    with cc.cloud(model, cache=cache, backend="numpyro", quiet=True):
        tree = pm.sample(**CALL)  # a memory hit: the tree to audit directly
    started = time.perf_counter()
    assert audit_failure(model, tree) is None
    first_audit = time.perf_counter() - started
    audits = timings(lambda: audit_failure(model, tree), max(repeats, 31))
    disk_plain = median_seconds(lambda: _hit(model, cache, False, from_disk=True), repeats)
    disk_audit = median_seconds(lambda: _hit(model, cache, True, from_disk=True), repeats)
    memory_plain = median_seconds(lambda: _hit(model, cache, False, from_disk=False), repeats)
    memory_audit = median_seconds(lambda: _hit(model, cache, True, from_disk=False), repeats)
    return {
        "first_disk_hit_without_audit_s": round(first_plain, 4),
        "first_audit_in_process_s": round(first_audit, 4),
        "later_audit_median_s": round(statistics.median(audits), 5),
        "later_audit_min_s": round(min(audits), 5),
        "disk_hit_without_audit_s": round(disk_plain, 5),
        "disk_hit_with_audit_s": round(disk_audit, 5),
        "memory_hit_without_audit_s": round(memory_plain, 5),
        "memory_hit_with_audit_s": round(memory_audit, 5),
    }


def _fresh_process(cache: str, compiledir: Path, repeats: int) -> dict[str, float]:
    env = {**os.environ, "PYTENSOR_FLAGS": f"base_compiledir={compiledir}"}
    command = [sys.executable, __file__, "--child", cache, "--repeats", str(repeats)]
    done = subprocess.run(command, env=env, capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--child", metavar="CACHE", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.child, args.repeats)))
        return

    import pymc as pm

    import cloudcache as cc
    from cloudcache.demo.models import radon_model

    with tempfile.TemporaryDirectory() as scratch:
        cache, compiledir = str(Path(scratch) / "cache"), Path(scratch) / "pytensor"
        with cc.cloud(radon_model(), cache=cache, backend="numpyro", quiet=True) as run:
            pm.sample(**CALL)
        assert run.last is not None and not run.last.hit
        result = {
            "machine": "2 cores x86_64, 24 GB, no GPU, Python 3.12 (shared with other jobs)",
            "model": "radon-shaped: 85 groups, 919 observations, 5 free variables",
            "entry": "numpyro backend, 4 chains x 1000 draws",
            "draws_checked": 6,
            "repeats": args.repeats,
            "new_process_empty_compile_cache": _fresh_process(cache, compiledir, args.repeats),
            "new_process_warm_compile_cache": _fresh_process(cache, compiledir, args.repeats),
        }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
