"""Core cache latencies: memory and disk hits (same and fresh process), the xarray floor, keys.

Prints one JSON object. Usage: python benchmarks/bench_core.py [--repeats N]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np
import pymc as pm
import xarray as xr

import cloudcache as cc
from cloudcache.backends.pymc import PymcBackend
from cloudcache.demo_models import radon_model
from cloudcache.fingerprint import compute_key
from cloudcache.request import normalize_sample_call
from cloudcache.stores.resolve import process_memory_store

CALL = {"draws": 2000, "tune": 1000, "chains": 4, "random_seed": 1, "progressbar": False}

FRESH_HIT = """
import time, json, sys
started = time.perf_counter()
import pymc as pm, cloudcache as cc
from cloudcache.demo_models import radon_model
model = radon_model(keep_mu={keep_mu})
with cc.cloud(model, cache={cache!r}, backend="pymc", quiet=True) as run:
    pm.sample(**{call!r})
print(json.dumps({{"hit": run.last.hit, "seconds": run.last.seconds}}))
"""

FRESH_FLOOR = """
import time, json
import xarray as xr
started = time.perf_counter()
xr.load_datatree({path!r}, engine="h5netcdf")
print(json.dumps({{"seconds": time.perf_counter() - started}}))
"""


def median_seconds(action, repeats: int, pause: float = 0.0) -> float:
    """Median wall time of ``action``; ``pause`` seconds (untimed) between calls, as between
    two runs of a notebook cell, let the memory store's background copy finish."""
    times = []
    for _ in range(repeats):
        time.sleep(pause)
        started = time.perf_counter()
        action()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def cached_call(model: pm.Model, cache: str) -> cc.Session:
    with cc.cloud(model, cache=cache, backend="pymc", quiet=True) as run:
        pm.sample(**CALL)
    return run


def fresh(code: str) -> dict:
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def entry_case(name: str, keep_mu: bool, cache: str, repeats: int) -> dict:
    model = radon_model(keep_mu=keep_mu)
    miss = cached_call(model, cache)
    path = miss.last.location
    size_mb = os.path.getsize(path) / 1e6

    def memory_hit() -> None:
        assert cached_call(model, cache).last.location == "memory"

    def disk_hit() -> None:
        process_memory_store().clear()
        assert cached_call(model, cache).last.location == path

    memory = median_seconds(memory_hit, repeats, pause=0.3)
    memory_back_to_back = median_seconds(memory_hit, repeats)
    disk = median_seconds(disk_hit, repeats, pause=0.3)
    disk_back_to_back = median_seconds(disk_hit, repeats)
    floor = median_seconds(lambda: xr.load_datatree(path, engine="h5netcdf"), repeats, pause=0.3)
    fresh_hits = [
        fresh(FRESH_HIT.format(keep_mu=keep_mu, cache=cache, call=CALL)) for _ in range(3)
    ]
    fresh_floor = [fresh(FRESH_FLOOR.format(path=path)) for _ in range(3)]
    fresh_hit = statistics.median(h["seconds"] for h in fresh_hits)
    fresh_floor_s = statistics.median(f["seconds"] for f in fresh_floor)
    return {
        "entry": name,
        "entry_mb": round(size_mb, 1),
        "sampling_seconds": round(miss.last.sampling_seconds, 2),
        "memory_hit_ms": round(memory * 1000, 2),
        "memory_hit_back_to_back_ms": round(memory_back_to_back * 1000, 2),
        "disk_hit_ms": round(disk * 1000, 2),
        "disk_hit_back_to_back_ms": round(disk_back_to_back * 1000, 2),
        "xarray_floor_ms": round(floor * 1000, 2),
        "disk_hit_over_floor": round(disk / floor, 3),
        "fresh_process_disk_hit_ms": round(fresh_hit * 1000, 1),
        "fresh_process_floor_ms": round(fresh_floor_s * 1000, 1),
        "fresh_hit_over_floor": round(fresh_hit / fresh_floor_s, 3),
    }


def key_times(repeats: int) -> dict:
    from pymc.sampling.mcmc import sample as pymc_sample

    request = normalize_sample_call(pymc_sample, (), dict(CALL))
    versions = PymcBackend().library_versions()
    radon = radon_model()
    radon_key = median_seconds(lambda: compute_key(radon, request, "pymc", versions), repeats)
    big = np.random.default_rng(0).normal(size=10_000_000)
    with pm.Model() as large:
        x = pm.Data("x", big)
        mu = pm.Normal("mu")
        pm.Normal("y", mu, 1.0, observed=x)
    large_key = median_seconds(lambda: compute_key(large, request, "pymc", versions), repeats)
    return {
        "key_radon_ms": round(radon_key * 1000, 2),
        "key_1e7_points_ms": round(large_key * 1000, 1),
        "data_hash_gb_per_s": round(big.nbytes / large_key / 1e9, 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=15)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as cache:
        cases = [
            entry_case("radon 4x2000", False, cache, args.repeats),
            entry_case("radon 4x2000 + mu[919]", True, cache, args.repeats),
        ]
    result = {
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
        f"Python {platform.python_version()}",
        "cases": cases,
        **key_times(args.repeats),
    }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
