"""Resumable NumPyro misses: the cost of checkpoints, the time a resumed or extended call takes.

    python benchmarks/bench_resume.py [--draws 40000] [--repeats 3] [--extend-draws 2000]

Prints one JSON document:

``checkpoint_cost``: one process, the same call (``--model``, 4 chains) with the default
checkpoint interval, with checkpoints at every chunk boundary (``CLOUDCACHE_CHECKPOINT_SECONDS=0``,
the most a run ever saves) and with none, alternating, medians of ``--repeats``: the ratios are
what checkpointing costs.

``resume``: fresh processes, as a user meets it. An untimed call first (a new structure's
programs are compiled and kept once), then an uninterrupted call (its wall time ``full``,
start-up included), then the same call killed at 60 % of ``full`` and made again in a fresh
process (``resumed``); the draws of the resumed call are compared with the uninterrupted ones.

``extend``: fresh processes. ``draws=--extend-draws`` is stored, then twice as many draws are
asked for in a fresh process (``extended``: it samples only the extra draws) and, in another
fresh process and cache folder, the same larger call from scratch (``fresh``); wall times
include start-up and compilation, the two orders alternate (``--repeats``), each timed process
has its own cold JAX compilation cache (``cold``) or both find their programs in a shared,
already filled one (``warm``). Every variable and stat of the two results is compared exactly.

``extend_in_process``: one process with the default memory-only cache (``cache=True``), as in a
notebook: after an untimed call (compilation), each repeat stores ``draws=--extend-draws`` for
a new seed, then times ``pm.sample`` of twice as many draws for that seed (``extended``) and
for another new seed (``fresh``: no shorter run of it is stored), alternating which goes
first; the extended result is compared exactly with an ``overwrite=True`` run of its call.
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
import os
from cloudcache.demo import models

root, draws, repeats = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
call = dict(draws=draws, tune=1000, chains=4, random_seed=7, progressbar=False)
name = os.environ.get("BENCH_RESUME_MODEL", "eight_schools")
if name.startswith("slopes"):  # slopes<N>: varying slopes over N observations
    model = models.varying_slopes_model(int(name[len("slopes"):]))
else:
    model = getattr(models, name + "_model")()
if repeats:  # the checkpoint-cost section: one process, alternating settings
    times = {"every_chunk": [], "default": [], "none": []}
    settings = [("every_chunk", "0"), ("default", ""), ("none", "off")]
    # one untimed call first: compilation and imports are not a setting's cost
    with cc.cloud(model, cache=root, quiet=True, overwrite=True, backend="numpyro"):
        pm.sample(**call)
    for repeat in range(repeats):
        # rotated each repeat: a run pays for the pages the run before it left to write out
        for setting, value in settings[repeat % 3 :] + settings[: repeat % 3]:
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
    import hashlib
    digest = hashlib.sha256()
    for group in ("posterior", "sample_stats"):
        for name in sorted(tree[group].data_vars):
            digest.update(name.encode() + tree[group][name].values.tobytes())
    print(json.dumps({"mu": tree["posterior"][first].values.ravel()[-50:].tolist(),
                      "digest": digest.hexdigest(),
                      "resumed": run.last.metadata.get("resumed"),
                      "extended": run.last.metadata.get("extended")}))
"""


IN_PROCESS = """
import hashlib, json, sys, time, warnings
warnings.simplefilter("ignore")
import pymc as pm
import cloudcache as cc
import os
from cloudcache.demo import models

draws, repeats = int(sys.argv[1]), int(sys.argv[2])
name = os.environ.get("BENCH_RESUME_MODEL", "eight_schools")
if name.startswith("slopes"):
    model = models.varying_slopes_model(int(name[len("slopes"):]))
else:
    model = getattr(models, name + "_model")()

def sample(count, seed, overwrite=False):
    with cc.cloud(model, quiet=True, backend="numpyro", overwrite=overwrite) as run:
        start = time.perf_counter()
        tree = pm.sample(draws=count, tune=1000, chains=4, random_seed=seed, progressbar=False)
        seconds = time.perf_counter() - start
    digest = hashlib.sha256()
    for group in ("posterior", "sample_stats"):
        for var in sorted(tree[group].data_vars):
            digest.update(var.encode() + tree[group][var].values.tobytes())
    return seconds, digest.hexdigest(), run.last.metadata.get("extended")

sample(2 * draws, 1)  # compiles the programs (untimed)
times = {"extended": [], "fresh": []}
said, identical = set(), []
for repeat in range(repeats):
    seed = 100 + 2 * repeat
    sample(draws, seed)
    order = ("extended", "fresh") if repeat % 2 == 0 else ("fresh", "extended")
    for which in order:
        seconds, digest, extended = sample(2 * draws, seed if which == "extended" else seed + 1)
        times[which].append(seconds)
        if which == "extended":
            said.add(str(extended))
            identical.append(digest == sample(2 * draws, seed, overwrite=True)[1])
print(json.dumps({**times, "said": sorted(said), "identical": all(identical)}))
"""


def extend_in_process(draws: int, repeats: int) -> dict[str, object]:
    """One process, ``cache=True``: ``2 * draws`` extended vs sampled fresh (module doc)."""
    done = subprocess.run(
        [sys.executable, "-c", IN_PROCESS, str(draws), str(repeats)],
        capture_output=True,
        text=True,
        check=True,
    )
    found = json.loads(done.stdout.strip().splitlines()[-1])
    extended, fresh = float(np.median(found["extended"])), float(np.median(found["fresh"]))
    return {
        "stored_draws": draws,
        "requested_draws": 2 * draws,
        "fresh_s": round(fresh, 3),
        "extended_s": round(extended, 3),
        "ratio": round(extended / fresh, 3),
        "extended": found["said"],
        "bit_identical": found["identical"],
    }


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
    with (
        tempfile.TemporaryDirectory() as untimed,
        tempfile.TemporaryDirectory() as reference,
        tempfile.TemporaryDirectory() as root,
    ):
        # Untimed: the programs of a new structure are compiled (and kept) once, so the timed
        # uninterrupted call loads them as the killed and the resumed call do.
        subprocess.run(_child(untimed, draws, 0, env), capture_output=True, check=True, env=env)
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


def _timed(root: str, draws: int, env: dict[str, str]) -> tuple[float, dict[str, object]]:
    start = time.perf_counter()
    done = subprocess.run(
        _child(root, draws, 0, env), capture_output=True, text=True, check=True, env=env
    )
    seconds = time.perf_counter() - start
    return seconds, json.loads(done.stdout.strip().splitlines()[-1])


#: The processes of one repeat of ``extend``, each with its own JAX cache when cold.
NAMES = ("short", "warmup", "extended", "fresh")


def _jax_env(jax_dir: str) -> dict[str, str]:
    return {**os.environ, "CLOUDCACHE_JAX_CACHE_DIR": jax_dir}


def extend(draws: int, repeats: int) -> dict[str, object]:
    """``draws`` stored, then ``2 * draws`` extended vs sampled fresh (see the module doc)."""
    figures: dict[str, object] = {}
    for mode in ("cold", "warm"):
        warm = mode == "warm"
        extended_s, fresh_s, identical, said = [], [], [], set()
        with tempfile.TemporaryDirectory() as shared_jax:
            for repeat in range(repeats):
                with tempfile.TemporaryDirectory() as work:
                    jax = {name: shared_jax if warm else f"{work}/jax-{name}" for name in NAMES}
                    _timed(f"{work}/cache", draws, _jax_env(jax["short"]))
                    if warm and repeat == 0:  # fill the shared JAX cache first
                        _timed(f"{work}/warmup", 2 * draws, _jax_env(jax["warmup"]))
                    order = ("extended", "fresh") if repeat % 2 == 0 else ("fresh", "extended")
                    results = {}
                    for which in order:
                        root = f"{work}/cache" if which == "extended" else f"{work}/fresh"
                        results[which] = _timed(root, 2 * draws, _jax_env(jax[which]))
                extended_s.append(results["extended"][0])
                fresh_s.append(results["fresh"][0])
                said.add(str(results["extended"][1]["extended"]))
                identical.append(results["extended"][1]["digest"] == results["fresh"][1]["digest"])
        extended, fresh = float(np.median(extended_s)), float(np.median(fresh_s))
        figures[mode] = {
            "fresh_s": round(fresh, 2),
            "extended_s": round(extended, 2),
            "ratio": round(extended / fresh, 3),
            "extended": sorted(said),
            "bit_identical": all(identical),
        }
    return {"stored_draws": draws, "requested_draws": 2 * draws, **figures}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--draws", type=int, default=40_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--extend-draws", type=int, default=2000)
    parser.add_argument(
        "--model",
        default="eight_schools",
        help="the model every section samples (cloudcache.demo.models): eight_schools, radon "
        "or slopes<N> (varying slopes over N observations)",
    )
    parser.add_argument(
        "--only",
        choices=("checkpoint_cost", "resume", "extend", "extend_in_process"),
        help="run one section",
    )
    args = parser.parse_args()
    os.environ["BENCH_RESUME_MODEL"] = args.model  # the children read it
    sections = {
        "checkpoint_cost": lambda: checkpoint_cost(args.draws, args.repeats),
        "resume": lambda: resume(args.draws),
        "extend": lambda: extend(args.extend_draws, args.repeats),
        "extend_in_process": lambda: extend_in_process(args.extend_draws, args.repeats),
    }
    figures = {"machine": f"{platform.machine()}, {os.cpu_count()} cores", "model": args.model}
    for name, section in sections.items():
        if args.only in (None, name):
            figures[name] = section()
    print(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
