"""Resumable NumPyro misses: the cost of checkpoints and the time a resumed call takes.

    python benchmarks/bench_resume.py [--draws 40000] [--repeats 3]

Prints one JSON document:

``checkpoint_cost``: one process, the same call (eight schools, 4 chains) with the default
checkpoint interval, with checkpoints at every chunk boundary (``CLOUDCACHE_CHECKPOINT_SECONDS=0``,
the most a run ever saves) and with none, alternating, medians of ``--repeats``: the ratios are
what checkpointing costs.

``resume``: fresh processes, as a user meets it. An uninterrupted call (its wall time ``full``,
start-up included), then the same call killed at 60 % of ``full`` and made again in a fresh
process (``resumed``); the draws of the resumed call are compared with the uninterrupted ones.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

CHILD = """
import json, sys, time, warnings
warnings.simplefilter("ignore")
import pymc as pm
import cloudcache as cc
from cloudcache.demo.models import eight_schools_model

root, draws, repeats = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
call = dict(draws=draws, tune=1000, chains=4, random_seed=7, progressbar=False)
model = eight_schools_model()
if repeats:  # the checkpoint-cost section: one process, alternating settings
    import os
    times = {"every_chunk": [], "default": [], "none": []}
    for _ in range(repeats):
        for setting, value in (("every_chunk", "0"), ("default", ""), ("none", "off")):
            os.environ["CLOUDCACHE_CHECKPOINT_SECONDS"] = value
            with cc.cloud(model, cache=root, quiet=True, overwrite=True, backend="numpyro"):
                start = time.perf_counter()
                pm.sample(**call)
                times[setting].append(time.perf_counter() - start)
    print(json.dumps(times))
else:
    with cc.cloud(model, cache=root, quiet=True, backend="numpyro") as run:
        tree = pm.sample(**call)
    first = sorted(tree["posterior"].data_vars)[0]
    print(json.dumps({"mu": tree["posterior"][first].values.ravel()[-50:].tolist(),
                      "resumed": run.last.metadata.get("resumed")}))
"""


def _child(root: str, draws: int, repeats: int, env: dict[str, str]) -> list[str]:
    return [sys.executable, "-c", CHILD, root, str(draws), str(repeats)]


def checkpoint_cost(draws: int, repeats: int) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as root:
        done = subprocess.run(
            _child(root, draws, repeats, {}), capture_output=True, text=True, check=True
        )
    times = json.loads(done.stdout.strip().splitlines()[-1])
    every, none = float(np.median(times["every_chunk"])), float(np.median(times["none"]))
    default = float(np.median(times["default"]))
    return {
        "none_s": round(none, 3),
        "default_interval_s": round(default, 3),
        "default_ratio": round(default / none, 3),
        "every_chunk_s": round(every, 3),
        "every_chunk_ratio": round(every / none, 3),
    }


def resume(draws: int) -> dict[str, object]:
    env = dict(os.environ)
    with tempfile.TemporaryDirectory() as reference, tempfile.TemporaryDirectory() as root:
        start = time.perf_counter()
        done = subprocess.run(
            _child(reference, draws, 0, env), capture_output=True, text=True, check=True, env=env
        )
        full = time.perf_counter() - start
        expected = json.loads(done.stdout.strip().splitlines()[-1])["mu"]
        process = subprocess.Popen(
            _child(root, draws, 0, env), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        time.sleep(0.6 * full)
        os.kill(process.pid, signal.SIGKILL)
        process.wait()
        checkpoints = list(Path(root, ".resume").rglob("state.npz"))
        start = time.perf_counter()
        done = subprocess.run(
            _child(root, draws, 0, env), capture_output=True, text=True, check=True, env=env
        )
        resumed = time.perf_counter() - start
        answer = json.loads(done.stdout.strip().splitlines()[-1])
    return {
        "full_s": round(full, 2),
        "killed_at_s": round(0.6 * full, 2),
        "checkpoint_found": bool(checkpoints),
        "resumed_s": round(resumed, 2),
        "ratio": round(resumed / full, 3),
        "resumed": answer["resumed"],
        "bit_identical": answer["mu"] == expected,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--draws", type=int, default=40_000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    print(
        json.dumps(
            {
                "machine": f"{platform.machine()}, {os.cpu_count()} cores",
                "checkpoint_cost": checkpoint_cost(args.draws, args.repeats),
                "resume": resume(args.draws),
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
