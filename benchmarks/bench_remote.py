"""Remote execution and shared-cache figures, printed as JSON.

1. Dispatch overhead of a miss through a Dask LocalCluster (one worker process) versus the
   same miss in-process: same model (eight schools), same seed, PyMC backend. The overhead is
   the remote wall time minus the worker's own sampling time (both after one warm-up run, so
   neither side pays first-import or first-compile costs).
2. A cache hit read from an S3 (moto) server on loopback versus a hit from a local directory
   (the file layer only, no memory layer in front).
3. The result's trip as NetCDF bytes (worker encodes, caller decodes), per engine, for a radon
   posterior (nutpie's sample_stats: the most variables of any backend).

Run: python benchmarks/bench_remote.py  (needs distributed, s3fs, moto[server])
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

import xarray as xr

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

REPEATS = 5
SAMPLE = {"draws": 500, "tune": 500, "chains": 2, "cores": 1, "progressbar": False}


def timed_miss(model: Any, executor: Any, seed: int) -> tuple[float, float]:
    """(wall seconds, sampling seconds as recorded) of one miss."""
    import pymc as pm

    import cloudcache as cc

    started = time.perf_counter()
    with cc.cloud(model, cache=False, backend="pymc", executor=executor, quiet=True) as run:
        pm.sample(random_seed=seed, **SAMPLE)
    return time.perf_counter() - started, run.last.sampling_seconds


def bench_dispatch() -> dict[str, Any]:
    import distributed

    from cloudcache.demo.models import eight_schools_model

    model = eight_schools_model()
    cluster = distributed.LocalCluster(
        n_workers=1, threads_per_worker=1, processes=True, dashboard_address=None
    )
    client = distributed.Client(cluster, set_as_default=False)
    try:
        timed_miss(model, None, 0)
        timed_miss(model, client, 0)  # worker imports PyMC and compiles once
        local = [timed_miss(model, None, seed)[0] for seed in range(1, REPEATS + 1)]
        remote = []
        worker_seconds = []
        for seed in range(1, REPEATS + 1):
            wall, _ = timed_miss(model, client, seed)
            remote.append(wall)
            worker_seconds.append(_worker_seconds(client))
    finally:
        client.close()
        cluster.close()
    overhead = [r - w for r, w in zip(remote, worker_seconds, strict=True)]
    return {
        "model": "eight_schools, pymc NUTS, 2 chains x (500 tune + 500 draws), cores=1",
        "in_process_miss_s": _summary(local),
        "local_cluster_miss_s": _summary(remote),
        "worker_run_s": _summary(worker_seconds),
        "dispatch_overhead_s": _summary(overhead),
        "remote_minus_in_process_s": round(statistics.median(remote) - statistics.median(local), 3),
    }


def _worker_seconds(client: Any) -> float:
    """The worker's own time for the last run (from its ``done`` event)."""
    done = []
    for topic, events in client.get_events().items():
        if topic.startswith("cloudcache-"):
            done.extend(m["seconds"] for _, m in events if m.get("stage") == "done")
    return float(done[-1]) if done else float("nan")


def bench_shared_hit() -> dict[str, Any]:
    import pymc as pm
    from fixtures_s3 import make_bucket, start_moto

    from cloudcache.demo.models import radon_model
    from cloudcache.stores import EntryRef, FileStore
    from cloudcache.stores.base import Entry

    model = radon_model()
    with model:
        tree = pm.sample(
            1000, tune=200, chains=2, cores=1, random_seed=1, progressbar=False, nuts_sampler="pymc"
        )
    server = start_moto()
    try:
        bucket = make_bucket(server)
        s3 = FileStore(f"s3://{bucket}/bench", server.storage_options())
        disk = FileStore(tempfile.mkdtemp(prefix="cc-bench-"))
        ref = EntryRef("0123456789abcdef" * 2, "radon", "draws1000_tune200_chains2")
        for store in (s3, disk):
            store.put(ref, Entry(tree, {"sampling_seconds": 1.0}))
        size = len(s3.fs.cat_file(s3.path_of(ref)))
        results = {}
        for name, store in (("s3_moto_hit_s", s3), ("local_disk_hit_s", disk)):
            store.get(ref)
            times = []
            for _ in range(REPEATS * 2):
                started = time.perf_counter()
                assert store.get(ref) is not None
                times.append(time.perf_counter() - started)
            results[name] = _summary(times)
    finally:
        server.stop()
    return {"entry": f"radon posterior, 2 x 1000 draws, {size / 1e6:.1f} MB NetCDF", **results}


def bench_result_codec() -> dict[str, Any]:
    import pymc as pm

    import cloudcache as cc
    from cloudcache.demo.models import radon_model
    from cloudcache.executors.remote_task import ENGINES, result_engine, tree_to_bytes
    from cloudcache.stores.files import without_dask_locks

    with cc.cloud(radon_model(), cache=False, backend="nutpie", quiet=True):
        tree = pm.sample(draws=500, tune=500, chains=2, progressbar=False, random_seed=1)
    results: dict[str, Any] = {"used": result_engine(), "bytes": len(tree_to_bytes(tree))}
    for engine in ENGINES:
        encode, decode = [], []
        for _ in range(REPEATS * 2):
            started = time.perf_counter()
            with without_dask_locks():
                payload = bytes(tree.to_netcdf(engine=engine))
            encode.append(time.perf_counter() - started)
            started = time.perf_counter()
            with xr.open_datatree(payload, engine=engine) as opened:
                opened.load()
            decode.append(time.perf_counter() - started)
        results[engine] = {"encode_s": _summary(encode), "decode_s": _summary(decode)}
    return {"entry": "radon posterior (nutpie), 2 x 500 draws", **results}


def _summary(values: list[float]) -> dict[str, float]:
    return {
        "median": round(statistics.median(values), 4),
        "min": round(min(values), 4),
        "max": round(max(values), 4),
    }


def main() -> None:
    warnings.simplefilter("ignore")
    import logging

    logging.getLogger("pymc").setLevel(logging.ERROR)
    logging.getLogger("distributed").setLevel(logging.ERROR)
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    report = {
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
        },
        "remote_dispatch": bench_dispatch(),
        "shared_cache_hit": bench_shared_hit(),
        "result_codec": bench_result_codec(),
    }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
