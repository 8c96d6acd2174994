"""Time to compute a cache key: radon-shaped model and large data. Prints one JSON object.

``radon_repeat_ms``: a repeated call on the same model (structure memoised, every array,
shared value and Python callable re-hashed). ``radon_first_ms``: the first call on a freshly
built model (structure walk included). ``large_gb_per_s``: key throughput on a model holding
a large numpy covariate (a graph constant) and a large ``pm.Data`` value.

Usage: python benchmarks/bench_key.py [--repeat N] [--megabytes M]
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from collections.abc import Callable

import numpy as np
import pymc as pm

from cloudcache.calls.request import normalize_sample_call
from cloudcache.demo.models import radon_model
from cloudcache.fingerprint import compute_key

REQUEST = normalize_sample_call(pm.sample, (), {"draws": 1000, "chains": 4, "random_seed": 1})
VERSIONS = {"pymc": pm.__version__}


def key_seconds(model: pm.Model) -> float:
    started = time.perf_counter()
    compute_key(model, REQUEST, "pymc", VERSIONS)
    return time.perf_counter() - started


def best_median(measure: Callable[[], float], repeat: int) -> float:
    return statistics.median(measure() for _ in range(repeat))


def large_model(megabytes: int) -> pm.Model:
    n = megabytes * 1024 * 1024 // 8 // 2
    rng = np.random.default_rng(0)
    covariate, data = rng.normal(size=n), rng.normal(size=n)
    with pm.Model() as model:
        x = pm.Data("x", data)
        b = pm.Normal("b")
        pm.Deterministic("mu", b * x + covariate)
    return model


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=300)
    parser.add_argument("--megabytes", type=int, default=512)
    args = parser.parse_args()

    radon = radon_model()
    key_seconds(radon)
    repeat_ms = best_median(lambda: key_seconds(radon), args.repeat) * 1000
    first_ms = best_median(lambda: key_seconds(radon_model()), 10) * 1000

    large = large_model(args.megabytes)
    key_seconds(large)
    large_s = best_median(lambda: key_seconds(large), 5)
    print(
        json.dumps(
            {
                "benchmark": "key",
                "machine": f"{platform.machine()}, Python {platform.python_version()}",
                "pymc": pm.__version__,
                "radon_repeat_ms": round(repeat_ms, 3),
                "radon_first_ms": round(first_ms, 2),
                "large_megabytes": args.megabytes,
                "large_seconds": round(large_s, 4),
                "large_gb_per_s": round(args.megabytes / 1024 / large_s, 2),
            }
        )
    )


if __name__ == "__main__":
    main()
