"""Cost of keying a posterior predictive by its trace's content. Prints one JSON object.

A posterior of ``chains x draws x size`` float64 (default 4 x 1000 x 10000, 320 MB) for a
model with one vector random variable ``w`` of that size. ``identity_ms``: the median time of
``trace_identity`` (the digest of every traced variable and coordinate). ``gb_per_s``: the
posterior's bytes over that time. ``predictive_key_ms``: the whole normalisation of a
``sample_posterior_predictive`` call (binding, seed, trace identity).

Usage: python benchmarks/bench_trace_identity.py [--repeat N] [--size S]
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time

import numpy as np
import pymc as pm
import xarray as xr

from cloudcache.calls.predictive import POSTERIOR, normalize_predictive_call
from cloudcache.calls.trace_content import trace_identity


def posterior_tree(chains: int, draws: int, size: int) -> xr.DataTree:
    values = np.random.default_rng(0).normal(size=(chains, draws, size))
    posterior = xr.Dataset(
        {"w": (("chain", "draw", "w_dim_0"), values)},
        coords={"chain": np.arange(chains), "draw": np.arange(draws)},
    )
    return xr.DataTree.from_dict({"/posterior": posterior})


def median_ms(measure, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        measure()
        times.append(time.perf_counter() - started)
    return 1e3 * statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--chains", type=int, default=4)
    parser.add_argument("--draws", type=int, default=1000)
    parser.add_argument("--size", type=int, default=10_000)
    options = parser.parse_args()
    with pm.Model() as model:
        pm.Normal("w", shape=options.size)
    tree = posterior_tree(options.chains, options.draws, options.size)
    nbytes = tree["posterior"]["w"].nbytes
    identity = median_ms(lambda: trace_identity(tree, model), options.repeat)
    call = median_ms(
        lambda: normalize_predictive_call(
            POSTERIOR, pm.sample_posterior_predictive, (tree,), {"random_seed": 1}, model
        ),
        options.repeat,
    )
    print(
        json.dumps(
            {
                "benchmark": "trace_identity",
                "posterior_shape": [options.chains, options.draws, options.size],
                "posterior_mb": round(nbytes / 1e6, 1),
                "identity_ms": round(identity, 2),
                "gb_per_s": round(nbytes / 1e9 / (identity / 1e3), 2),
                "predictive_key_ms": round(call, 2),
                "repeat": options.repeat,
                "python": platform.python_version(),
            }
        )
    )


if __name__ == "__main__":
    main()
