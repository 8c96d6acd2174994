"""Core cache latencies: memory hits back to back, fresh-process disk hits against the xarray
floor, and the key. Prints one JSON object.

Usage: python benchmarks/bench_core.py [--repeats N] [--processes N]

The fair floor for a disk hit is a plain ``xarray.load_datatree(path, engine="netcdf4")`` (the
fastest reader) of the same file in the same fresh process, *after* the NetCDF library has
paid its first-open cost: each fresh process first writes and reads an unrelated small tree
(two groups), then times the cached ``pm.sample`` call (the whole ``with cloud(...)`` block,
default backend) and ``load_datatree`` of the entry's file, alternating which goes first from
one process to the next. Wall-clock ratios are the target; the same ratios in CPU time
(``process_time``) are printed too, as they hold up better when other jobs share the machine.
The one-off import of the session modules on first use of ``cc.cloud`` is reported apart.

``first_use``: what a new process meets with nothing warmed (a script or a fresh kernel that
imports PyMC, builds the model and re-runs a cached call): the whole ``with cloud(...)`` block
of the hit, first use of cloudcache, xarray and netCDF4 included, against the fastest plain
read in its own fresh process after ``import pymc``, also from cold (importing netCDF4 and
reading every variable of the file into NumPy arrays), and against ``xarray.load_datatree``
there. Whether the hit imported any part of Dask (installed with the ``dask`` extra) is
reported.
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
from collections.abc import Callable

import numpy as np
import pymc as pm

import cloudcache as cc
from cloudcache.backends.pymc import PymcBackend
from cloudcache.calls.request import normalize_sample_call
from cloudcache.demo.models import radon_model
from cloudcache.fingerprint import compute_key

CALL = {"draws": 2000, "tune": 1000, "chains": 4, "random_seed": 1, "progressbar": False}

FRESH_HIT = """
import json, sys, time
import numpy as np, pymc as pm, xarray as xr
import cloudcache as cc
from cloudcache.demo.models import radon_model

# The NetCDF library's first-open cost, paid on an unrelated small tree of the same shape.
rng = np.random.default_rng(0)
def group():
    return xr.Dataset(
        {{name: (("chain", "draw"), rng.normal(size=(2, 5))) for name in "abc"}},
        coords={{"chain": [0, 1], "draw": np.arange(5)}},
        attrs={{"created": "today"}},
    )
xr.DataTree.from_dict({{"posterior": group(), "sample_stats": group()}}).to_netcdf(
    {warm!r}, engine="netcdf4"
)
xr.load_datatree({warm!r}, engine="netcdf4")

model = radon_model(keep_mu={keep_mu})
started = time.perf_counter()
cloud = cc.cloud  # imports the session modules (PyMC is imported already)
imports = time.perf_counter() - started

def hit():
    started, cpu = time.perf_counter(), time.process_time()
    with cloud(model, cache={cache!r}, quiet=True) as run:
        pm.sample(**{call!r})
    assert run.last.hit and run.last.location.endswith(".nc"), run.last
    return time.perf_counter() - started, time.process_time() - cpu, run.last.location

def floor(path):
    started, cpu = time.perf_counter(), time.process_time()
    xr.load_datatree(path, engine="netcdf4")
    return time.perf_counter() - started, time.process_time() - cpu

if {hit_first}:
    hit_s, hit_cpu, path = hit()
    floor_s, floor_cpu = floor(path)
else:
    floor_s, floor_cpu = floor({path!r})
    hit_s, hit_cpu, path = hit()
loaded = sorted(name for name in ("jax", "numpyro", "nutpie") if name in sys.modules)
print(json.dumps({{
    "hit_s": hit_s, "floor_s": floor_s, "hit_cpu_s": hit_cpu, "floor_cpu_s": floor_cpu,
    "imports_s": imports, "loaded": loaded,
}}))
"""


FIRST_HIT = """
import json, sys, time
import pymc as pm
import cloudcache as cc
from cloudcache.demo.models import radon_model

model = radon_model(keep_mu={keep_mu})
started = time.perf_counter()
with cc.cloud(model, cache={cache!r}, quiet=True) as run:
    pm.sample(**{call!r})
seconds = time.perf_counter() - started
assert run.last.hit and run.last.location.endswith(".nc"), run.last
print(json.dumps({{"seconds": seconds, "dask": "dask" in sys.modules}}))
"""

FIRST_FLOOR = """
import json, sys, time
import pymc

started = time.perf_counter()
if {by_hand}:
    import netCDF4

    def read(group):
        for variable in group.variables.values():
            variable[...]
        for child in group.groups.values():
            read(child)

    with netCDF4.Dataset({path!r}) as root:
        read(root)
else:
    import xarray as xr

    xr.load_datatree({path!r}, engine="netcdf4")
print(json.dumps({{"seconds": time.perf_counter() - started, "dask": "dask" in sys.modules}}))
"""


def first_use(keep_mu: bool, cache: str, path: str, processes: int) -> dict:
    """Fresh processes with nothing warmed: the hit against plain reads (see the module doc),
    the three interleaved."""
    hits, by_hand, xarray_reads = [], [], []
    for _ in range(processes):
        hits.append(fresh(FIRST_HIT.format(keep_mu=keep_mu, cache=cache, call=CALL)))
        by_hand.append(fresh(FIRST_FLOOR.format(by_hand=True, path=path)))
        xarray_reads.append(fresh(FIRST_FLOOR.format(by_hand=False, path=path)))

    def median_ms(runs: list[dict]) -> float:
        return round(statistics.median(run["seconds"] for run in runs) * 1000, 1)

    hit, floor = median_ms(hits), median_ms(by_hand)
    return {
        "hit_ms": hit,
        "netcdf4_by_hand_ms": floor,
        "load_datatree_ms": median_ms(xarray_reads),
        "hit_over_netcdf4_by_hand": round(hit / floor, 2),
        "hit_over_load_datatree": round(hit / median_ms(xarray_reads), 2),
        "hit_imported_dask": any(run["dask"] for run in hits),
        "load_datatree_imported_dask": any(run["dask"] for run in xarray_reads),
    }


def median_seconds(action: Callable[[], object], repeats: int) -> float:
    """Median wall time of ``action`` called back to back."""
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        action()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def cached_call(model: pm.Model, cache: object) -> cc.Session:
    with cc.cloud(model, cache=cache, quiet=True) as run:
        pm.sample(**CALL)
    return run


def fresh(code: str) -> dict:
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def entry_case(name: str, keep_mu: bool, cache: str, repeats: int, processes: int) -> dict:
    model = radon_model(keep_mu=keep_mu)
    tiers = cc.TieredStore([cc.MemoryStore(), cc.FileStore(cache)])
    miss = cached_call(model, tiers)  # written to memory and to the directory
    path = miss.last.location

    def memory_hit() -> None:
        assert cached_call(model, tiers).last.location == "memory"

    memory_back_to_back = median_seconds(memory_hit, repeats)
    warm = os.path.join(cache, "warm.nc")
    runs = [  # alternate which of the two reads the file first
        fresh(
            FRESH_HIT.format(
                keep_mu=keep_mu, cache=cache, call=CALL, warm=warm, path=path, hit_first=i % 2 == 0
            )
        )
        for i in range(processes)
    ]
    ratios = [run["hit_s"] / run["floor_s"] for run in runs]
    cpu_ratios = [run["hit_cpu_s"] / run["floor_cpu_s"] for run in runs]
    return {
        "entry": name,
        "entry_mb": round(os.path.getsize(path) / 1e6, 1),
        "backend": miss.last.backend,
        "sampling_seconds": round(miss.last.sampling_seconds, 2),
        "memory_hit_back_to_back_ms": round(memory_back_to_back * 1000, 2),
        "fresh_process_disk_hit_ms": round(statistics.median(r["hit_s"] for r in runs) * 1000, 1),
        "fresh_process_floor_ms": round(statistics.median(r["floor_s"] for r in runs) * 1000, 1),
        "fresh_hit_over_floor": round(statistics.median(ratios), 3),
        "fresh_hit_over_floor_all": [round(ratio, 3) for ratio in ratios],
        "fresh_hit_over_floor_cpu": round(statistics.median(cpu_ratios), 3),
        "fresh_hit_over_floor_cpu_all": [round(ratio, 3) for ratio in cpu_ratios],
        "session_import_ms": round(statistics.median(r["imports_s"] for r in runs) * 1000, 1),
        "modules_loaded_by_fresh_hit": sorted({m for run in runs for m in run["loaded"]}),
        "first_use": first_use(keep_mu, cache, path, processes),
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
        "key_radon_ms": round(radon_key * 1000, 3),
        "key_1e7_points_ms": round(large_key * 1000, 1),
        "data_hash_gb_per_s": round(big.nbytes / large_key / 1e9, 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--processes", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as cache:
        cases = [
            entry_case("radon 4x2000", False, cache, args.repeats, args.processes),
            entry_case("radon 4x2000 + mu[919]", True, cache, args.repeats, args.processes),
        ]
    result = {
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
        f"Python {platform.python_version()}, load average {os.getloadavg()[0]:.1f}",
        "cases": cases,
        **key_times(args.repeats),
    }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
