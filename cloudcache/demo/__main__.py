"""The main demo: sample a radon-shaped model, then answer the same call from the disk cache.

Run with ``./dev demo`` (or ``python -m cloudcache.demo``). Options: ``--draws``, ``--cache``.
"""

from __future__ import annotations

import argparse
import tempfile
import time

import pymc as pm

import cloudcache as cc
from cloudcache.demo.models import radon_model
from cloudcache.stores.resolve import process_memory_store


def run_once(model: pm.Model, cache: str, draws: int, backend: str) -> tuple[cc.CallRecord, float]:
    started = time.perf_counter()
    with cc.cloud(model, cache=cache, backend=backend) as run:
        pm.sample(draws, tune=draws // 2, chains=4, random_seed=1, progressbar=False)
    assert run.last is not None
    return run.last, time.perf_counter() - started


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--draws", type=int, default=1000)
    parser.add_argument(
        "--cache", default=None, help="cache directory (default: a temporary one, removed after)"
    )
    parser.add_argument("--backend", default="numpyro", choices=["numpyro", "pymc"])
    args = parser.parse_args(argv)
    if args.cache:
        demo(args.cache, args.draws, args.backend)
        return
    with tempfile.TemporaryDirectory(prefix="cloudcache-demo-") as cache:
        demo(cache, args.draws, args.backend, note=" (a temporary folder, removed at the end)")


def demo(cache: str, draws: int, backend: str, note: str = "") -> None:
    """The three calls: a miss, a memory hit, a disk hit after a simulated restart."""
    model = radon_model()
    print(f"Radon model (85 counties, 919 homes); cache: {cache}{note}\n")
    first, first_seconds = run_once(model, cache, draws, backend)
    print(f"1. first call   : hit={first.hit}  {first_seconds:7.3f} s  -> {first.location}")
    second, second_seconds = run_once(model, cache, draws, backend)
    print(f"2. same call    : hit={second.hit}  {second_seconds:7.3f} s  from {second.location}")
    process_memory_store().clear()  # what a restarted notebook kernel sees
    third, third_seconds = run_once(radon_model(), cache, draws, backend)
    print(f"3. after restart: hit={third.hit}  {third_seconds:7.3f} s  from {third.location}")
    print(f"\nkey {first.key}; speed-up of a disk hit: {first_seconds / third_seconds:,.0f}x")


if __name__ == "__main__":
    main()
