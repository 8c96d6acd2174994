"""A process that samples a real NumPyro miss, then forks a ``multiprocessing.Pool`` whose
workers use the same cache (run by path by ``test_fork_safety.py``; not a test module).

Prints one JSON line: the parent's calls before and after the pool, and what every worker call
did. ``test_fork_safety.py`` kills the whole process group at its deadline, so a hang fails the
test instead of the suite.
"""

from __future__ import annotations

import json
import multiprocessing
import sys
import time
from pathlib import Path
from typing import Any

import pymc as pm

sys.path.insert(0, str(Path(__file__).resolve().parent))
from reliability_workers import TINY_DRAWS, posterior_checksum, sample_kwargs, tiny_model

import cloudcache as cc
from cloudcache.compat.jax import backends_initialized, started_before_fork


def sample_here(cache: str, seed: int) -> dict[str, Any]:
    """One ``pm.sample`` through ``cloud(backend="numpyro")``: what it did, and its draws."""
    started = time.monotonic()
    with cc.cloud(tiny_model(), cache=cache, backend="numpyro", quiet=True) as run:
        tree = pm.sample(**sample_kwargs(seed))
    record = run.last
    assert record is not None
    return {
        "seed": seed,
        "hit": record.hit,
        "backend": record.backend,
        "reason": record.reason,
        "checksum": posterior_checksum(tree),
        "seconds": time.monotonic() - started,
        "jax_inherited": started_before_fork(),
    }


def worker_call(arguments: tuple[str, int]) -> dict[str, Any]:
    return sample_here(*arguments)


def worker_prewarm(_: object) -> str | None:
    return cc.prewarm(tiny_model(), **TINY_DRAWS).fallback


def main(cache: str, seeds: list[int]) -> None:
    parent_before = sample_here(cache, 1)
    assert backends_initialized(), "the parent's miss did not start JAX"
    with multiprocessing.get_context("fork").Pool(2) as pool:
        workers = pool.map(worker_call, [(cache, seed) for seed in seeds], chunksize=1)
        prewarm = pool.apply(worker_prewarm, (None,))
    parent_after = sample_here(cache, 4)  # the parent itself still samples with NumPyro
    print(
        json.dumps(
            {
                "parent_before": parent_before,
                "parent_after": parent_after,
                "workers": workers,
                "prewarm": prewarm,
            }
        ),
        flush=True,
    )


if __name__ == "__main__":
    main(sys.argv[1], [int(seed) for seed in sys.argv[2:]])
