"""Backends side by side in one process; each section prints one JSON document.

    python benchmarks/bench_backends.py table     [--n-obs 100000]  # repeat / new-data misses
    python benchmarks/bench_backends.py fresh     [--n-obs 100000]  # first miss, fresh process
    python benchmarks/bench_backends.py calibrate                   # the auto rule's threshold
    python benchmarks/bench_backends.py remote                      # steady miss on a worker
    python benchmarks/bench_backends.py floor     [--n-obs 0] [--who ...]  # repeat miss, phases

``fresh --new-structure``: every process adds a prior no process had before (a ``Potential``
with a random scale), so nothing compiled for that structure is on disk: the first miss of a
new structure (the shared libraries' own caches, PyTensor's per-op code, stay warm).

``floor`` (issue 27): a repeat miss (new seed, the structure compiled in this process) through
``cloud()`` per backend against nutpie compiled once (``nutpie.compile_pymc_model`` once,
``nutpie.sample`` per seed), plain ``pm.sample()`` and ``pm.sample(nuts_sampler="nutpie")``;
medians of ``--reps`` rounds, the contenders' order rotated every round, one seed per round
for all (nutpie compiled once gets the seed ``pm.sample`` derives, so every nutpie row of a
round draws the same values: equal ESS, the time alone differs). Each ``cloud()`` miss
is split into phases timed around the real code (wall and process CPU seconds): the key, the
backend's prepare (kernel cache lookup, start points; nutpie: the compiled model with the
data), the sampler itself (NumPyro: ``init`` + the chunked ``step`` calls + ``outputs``;
nutpie: ``nutpie.sample``), the conversion to a DataTree, the entry write (``cloud_*_disk``
rows, a disk cache) and the rest (plan, announce, metadata).

``table``: radon (919 observations) and a varying intercepts + slopes model, each sampled with
the default ``cloud()`` (``backend="auto"``), ``pm.sample(nuts_sampler="nutpie")`` and PyMC's
NUTS: a repeat miss (new seed, after one warm-up call) and a new-data miss (``pm.set_data`` with
new same-shaped values), with the minimum bulk ESS of every row. ``--draws/--tune/--chains``
default to the issue's 1000/1000/4. Timings are wall-clock on a shared machine.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]


def _models(n_obs: int) -> dict[str, tuple[Any, str, Any]]:
    """name -> (model, data name to replace, new same-shaped values)."""
    import numpy as np

    from cloudcache.demo.models import radon_model, varying_slopes_model

    radon = radon_model()
    slopes = varying_slopes_model(n_obs)
    rng = np.random.default_rng(99)
    return {
        "radon": (radon, "floor", rng.binomial(1, 0.3, 919).astype("float64")),
        f"slopes_{n_obs}": (slopes, "x", rng.normal(size=n_obs)),
    }


def _min_ess(tree: Any) -> float:
    import arviz_stats

    ess = arviz_stats.ess(tree.posterior.to_dataset())
    return round(float(ess.to_dataarray().min()), 1)


def _ours(model: Any, settings: dict[str, Any], seed: int, backend: str = "auto") -> Any:
    import pymc as pm

    import cloudcache as cc

    with cc.cloud(model, cache=False, quiet=True, backend=backend) as run:
        tree = pm.sample(random_seed=seed, **settings)
    tree.attrs["chosen"] = run.last.backend
    return tree


def _pymc(model: Any, settings: dict[str, Any], seed: int, sampler: str) -> Any:
    import pymc as pm

    return pm.sample(model=model, random_seed=seed, nuts_sampler=sampler, **settings)


def _cpu() -> float:
    """CPU seconds of this process, all threads (fairer than wall time on a loaded machine)."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _row(fn: Any, *args: Any) -> dict[str, Any]:
    start, cpu = time.perf_counter(), _cpu()
    tree = fn(*args)
    row = {
        "seconds": round(time.perf_counter() - start, 3),
        "cpu_s": round(_cpu() - cpu, 3),
        "min_ess": _min_ess(tree),
    }
    if "chosen" in tree.attrs:
        row["backend"] = tree.attrs["chosen"]
    return row


def _settings(args: argparse.Namespace) -> dict[str, Any]:
    return {
        "draws": args.draws,
        "tune": args.tune,
        "chains": args.chains,
        "progressbar": False,
        "compute_convergence_checks": False,
    }


def bench_table(args: argparse.Namespace) -> dict[str, Any]:
    import pymc as pm

    settings = _settings(args)
    rows: dict[str, Any] = {}
    for name, (model, data_name, new_values) in _models(args.n_obs).items():
        contenders = {
            "cloud_default": lambda m, s, seed: _ours(m, s, seed),
            "pymc_nutpie": lambda m, s, seed: _pymc(m, s, seed, "nutpie"),
            "pymc_nuts": lambda m, s, seed: _pymc(m, s, seed, "pymc"),
        }
        result: dict[str, Any] = {}
        for label, fn in contenders.items():
            first = _row(fn, model, settings, 1)  # compiles (ours: once per process)
            repeat = _row(fn, model, settings, 2)
            result[label] = {"first_call": first, "repeat_miss": repeat}
        old = model[data_name].get_value()
        with model:
            pm.set_data({data_name: new_values})
        for label in ("cloud_default", "pymc_nutpie"):
            result[label]["new_data_miss"] = _row(contenders[label], model, settings, 3)
        with model:
            pm.set_data({data_name: old})
        nutpie_repeat = result["pymc_nutpie"]["repeat_miss"]["seconds"]
        result["ratios_vs_nutpie"] = {
            "repeat_miss": round(
                result["cloud_default"]["repeat_miss"]["seconds"] / nutpie_repeat, 2
            ),
            "new_data_miss": round(
                result["cloud_default"]["new_data_miss"]["seconds"]
                / result["pymc_nutpie"]["new_data_miss"]["seconds"],
                2,
            ),
            "min_ess": round(
                result["cloud_default"]["repeat_miss"]["min_ess"]
                / result["pymc_nutpie"]["repeat_miss"]["min_ess"],
                2,
            ),
        }
        rows[name] = result
    return {"settings": settings, "machine": _machine(), "models": rows}


_FRESH = """
import json, sys
sys.path.insert(0, {bench!r})
from bench_backends import _models, _ours, _pymc, _row
settings = json.loads({settings!r})
model = _models({n_obs})[{name!r}][0]
if {new_structure!r}:  # a changed prior: a structure no cache has seen (a unique constant)
    import random
    import pymc as pm
    with model:
        free = model.free_RVs[0]
        pm.Potential("changed_prior", -0.5 * (free / (10.0 + random.random())) ** 2)
who = {who!r}
if who == "pymc_nutpie":
    row = _row(_pymc, model, settings, 7, "nutpie")
else:
    row = _row(_ours, model, settings, 7, {{"cloud_default": "auto"}}.get(who, who[6:]))
print(json.dumps(row))
"""

#: ``fresh`` contenders: ``cloud_<backend>`` is ``cloud(backend=...)``, ``cloud_default`` auto.
FRESH_CONTENDERS = ("cloud_default", "cloud_numpyro", "cloud_nutpie", "pymc_nutpie")


def bench_fresh(args: argparse.Namespace) -> dict[str, Any]:
    """First miss of a fresh process (after imports), caches warm from an earlier process."""
    settings = json.dumps(_settings(args))
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    results: dict[str, Any] = {}
    names = [name for name in ("radon", f"slopes_{args.n_obs}") if name.startswith(args.only)]
    chosen = [who for who in FRESH_CONTENDERS if who.startswith(tuple(args.who))]
    for name in names:
        runs: dict[str, list[dict[str, Any]]] = {who: [] for who in chosen}
        for _ in range(1 + args.reps):  # the first round warms the persistent caches
            for who in runs:  # alternated, so all see the same machine load
                code = _FRESH.format(
                    bench=str(REPO / "benchmarks"),
                    settings=settings,
                    n_obs=args.n_obs,
                    name=name,
                    who=who,
                    new_structure=args.new_structure,
                )
                done = subprocess.run(
                    [sys.executable, "-c", code], env=env, capture_output=True, text=True
                )
                if done.returncode:
                    raise RuntimeError(done.stderr[-2000:])
                runs[who].append(json.loads(done.stdout.strip().splitlines()[-1]))
        result: dict[str, Any] = {
            who: {"cold": rows[0], "warm_caches": _medians(rows[1:])} for who, rows in runs.items()
        }
        base = "pymc_nutpie" if "pymc_nutpie" in runs else chosen[-1]
        result["ratio_warm_caches_vs_" + base] = {
            who: {
                "wall": round(
                    result[who]["warm_caches"]["seconds"] / result[base]["warm_caches"]["seconds"],
                    2,
                ),
                "cpu": round(
                    result[who]["warm_caches"]["cpu_s"] / result[base]["warm_caches"]["cpu_s"], 2
                ),
            }
            for who in chosen
            if who != base
        }
        results[name] = result
    return {"settings": _settings(args), "machine": _machine(), "first_miss_in_process": results}


def bench_calibrate(args: argparse.Namespace) -> dict[str, Any]:
    """Repeat-miss seconds of numpyro and nutpie by number of observations."""
    from cloudcache.demo.models import varying_slopes_model

    settings = _settings(args)
    rows = {}
    for n_obs in args.sizes:
        model = varying_slopes_model(n_obs)
        row = {}
        for backend in ("numpyro", "nutpie"):
            _ours(model, settings, 1, backend)  # compile
            row[backend] = _row(_ours, model, settings, 2, backend)
        rows[str(n_obs)] = row
    return {"settings": settings, "machine": _machine(), "repeat_miss_by_size": rows}


def bench_remote(args: argparse.Namespace) -> dict[str, Any]:
    """Steady miss (new seed) on a one-worker LocalCluster vs in-process, per backend."""
    import distributed
    import pymc as pm

    import cloudcache as cc
    from cloudcache.demo.models import radon_model

    settings = {**_settings(args), "draws": 500, "tune": 500, "chains": 2}
    cluster = distributed.LocalCluster(
        n_workers=1, threads_per_worker=1, processes=True, dashboard_address=None
    )
    client = distributed.Client(cluster, set_as_default=False)
    results: dict[str, Any] = {}
    try:
        for backend in ("numpyro", "nutpie"):
            timings: dict[str, list[float]] = {"in_process": [], "local_cluster": []}
            worker: list[dict[str, float]] = []
            layouts: dict[str, str] = {}
            for seed in range(5):  # seed 0 compiles; 1-4 are steady misses
                # Alternated per seed, so both sides see the same machine load.
                for where, executor in (("in_process", None), ("local_cluster", client)):
                    model = radon_model()  # a new object, as a cloudpickled model would be
                    start = time.perf_counter()
                    with cc.cloud(
                        model, cache=False, quiet=True, backend=backend, executor=executor
                    ):
                        tree = pm.sample(random_seed=seed, **settings)
                    layouts[where] = str(tree.attrs.get("cloudcache_device", "cpu"))
                    if seed:
                        timings[where].append(round(time.perf_counter() - start, 3))
                        print(backend, where, timings[where][-1], file=sys.stderr, flush=True)
                        if executor is not None:
                            worker.append(_last_done_event(client))
            results[backend] = {
                **timings,
                "worker_phases_s": worker,
                "chain_layout": layouts,
                "remote_minus_in_process_s": round(
                    min(timings["local_cluster"]) - min(timings["in_process"]), 3
                ),
            }
    finally:
        with contextlib.suppress(Exception):  # a slow shutdown must not lose the figures
            client.close()
            cluster.close()
    return {"settings": settings, "machine": _machine(), "steady_miss_s": results}


def _last_done_event(client: Any) -> dict[str, float]:
    """The worker's own seconds per phase for the last remote run (its ``done`` event)."""
    done: list[tuple[float, dict[str, Any]]] = []
    for topic, events in client.get_events().items():
        if topic.startswith("cloudcache-"):
            done.extend(
                (when, message) for when, message in events if message.get("stage") == "done"
            )
    _, last = max(done, key=lambda event: event[0], default=(0.0, {}))
    return {name: value for name, value in last.items() if name.endswith("s") and name != "nbytes"}


#: (module, attribute, phase) timed in a ``floor`` miss; nested phases are not double counted.
_PHASES = (
    ("cloudcache.calls.path", "compute_key", "key"),
    ("cloudcache.backends.numpyro.backend", "prepare_run", "prepare"),
    ("cloudcache.backends.numpyro.chunked_run", "run_chunks", "sampler"),
    ("cloudcache.backends.numpyro.results", "build_datatree", "datatree"),
    ("cloudcache.backends.nutpie.backend", "compiled_model", "prepare"),
    ("nutpie", "sample", "sampler"),
    ("cloudcache.backends.nutpie.backend", "finished_result", "datatree"),
    ("cloudcache.calls.path:CachePath", "write", "write"),
)


class _Phases:
    """Wall and CPU seconds spent in :data:`_PHASES` while active (patched for the benchmark)."""

    def __init__(self) -> None:
        import importlib

        self.seconds: dict[str, list[float]] = {}
        self.active = False
        for module_name, attribute, phase in _PHASES:
            module_name, _, class_name = module_name.partition(":")
            owner = importlib.import_module(module_name)
            if class_name:
                owner = getattr(owner, class_name)
            original = getattr(owner, attribute)
            setattr(owner, attribute, self._timed(original, phase))

    def _timed(self, function: Any, phase: str) -> Any:
        import functools

        @functools.wraps(function)
        def timed(*args: Any, **kwargs: Any) -> Any:
            if not self.active:
                return function(*args, **kwargs)
            start, cpu = time.perf_counter(), _cpu()
            try:
                return function(*args, **kwargs)
            finally:
                spent = self.seconds.setdefault(phase, [0.0, 0.0])
                spent[0] += time.perf_counter() - start
                spent[1] += _cpu() - cpu

        return timed

    def measure(self, fn: Any, *args: Any) -> tuple[Any, dict[str, list[float]]]:
        self.seconds, self.active = {}, True
        try:
            return fn(*args), self.seconds
        finally:
            self.active = False


def _steps(tree: Any) -> int:
    """Leapfrog steps of all chains (warm-up excluded: both samplers store draws only)."""
    return int(tree.sample_stats["n_steps"].sum())


def _floor_contenders(model: Any, settings: dict[str, Any], cache_dir: str) -> dict[str, Any]:
    """label -> ``fn(seed) -> DataTree`` for one model."""
    import nutpie
    import pymc as pm

    import cloudcache as cc
    from cloudcache.backends.nutpie.compiled import lifted_model
    from cloudcache.compat.nutpie import nutpie_seed

    compiled_once = nutpie.compile_pymc_model(lifted_model(model))

    def cloud(backend: str, disk: bool = False, **nuts: Any) -> Any:
        def call(seed: int) -> Any:
            extra = {"nuts": nuts} if nuts else {}
            cache = cache_dir if disk else False
            with cc.cloud(model, cache=cache, quiet=True, backend=backend) as run:
                tree = pm.sample(random_seed=seed, **settings, **extra)
            tree.attrs["chosen"] = run.last.backend
            return tree

        return call

    def nutpie_once(seed: int) -> Any:
        return nutpie.sample(
            compiled_once,
            draws=settings["draws"],
            tune=settings["tune"],
            chains=settings["chains"],
            seed=nutpie_seed(seed, settings["chains"]),  # pm.sample's: the same draws
            progress_bar=False,
        )

    return {
        "cloud_auto": cloud("auto"),
        "cloud_auto_disk": cloud("auto", disk=True),
        "cloud_numpyro": cloud("numpyro"),
        "cloud_numpyro_vectorized": cloud("numpyro", chain_method="vectorized"),
        "cloud_nutpie": cloud("nutpie"),
        "nutpie_compiled_once": nutpie_once,
        "pymc_default": lambda seed: pm.sample(model=model, random_seed=seed, **settings),
        "pymc_nutpie": lambda seed: _pymc(model, settings, seed, "nutpie"),
        "pymc_nuts": lambda seed: _pymc(model, settings, seed, "pymc"),
    }


def _floor_row(phases: _Phases, fn: Any, seed: int) -> dict[str, Any]:
    start, cpu = time.perf_counter(), _cpu()
    tree, spent = phases.measure(fn, seed)
    wall, used = time.perf_counter() - start, _cpu() - cpu
    steps = _steps(tree)
    row: dict[str, Any] = {
        "seconds": wall,
        "cpu_s": used,
        "min_ess": _min_ess(tree),
        "leapfrog_steps": steps,
        "us_per_step_cpu": 1e6 * spent.get("sampler", [0.0, used])[1] / max(steps, 1),
    }
    row.update({f"{phase}_s": w for phase, (w, _) in spent.items()})
    row.update({f"{phase}_cpu_s": c for phase, (_, c) in spent.items()})
    if spent:
        row["other_s"] = wall - sum(w for w, _ in spent.values())
    if "chosen" in tree.attrs:
        row["backend"] = tree.attrs["chosen"]
    return row


def _medians(runs: list[dict[str, Any]]) -> dict[str, Any]:
    import statistics

    medians: dict[str, Any] = {}
    for name in runs[0]:
        values = [run[name] for run in runs if name in run]
        numeric = not isinstance(values[0], str)
        medians[name] = round(statistics.median(values), 4) if numeric else values[0]
    medians["wall_runs"] = [round(run["seconds"], 3) for run in runs]
    medians["cpu_runs"] = [round(run["cpu_s"], 3) for run in runs]
    medians["min_ess_runs"] = [run["min_ess"] for run in runs]
    return medians


def _ratios(result: dict[str, Any], base_label: str) -> dict[str, Any]:
    base = result[base_label]
    return {
        label: {
            "wall": round(row["seconds"] / base["seconds"], 2),
            "cpu": round(row["cpu_s"] / base["cpu_s"], 2),
            "min_ess_per_s": round(
                (row["min_ess"] / row["seconds"]) / (base["min_ess"] / base["seconds"]), 2
            ),
        }
        for label, row in result.items()
        if label != base_label
    }


def bench_floor(args: argparse.Namespace) -> dict[str, Any]:
    """Repeat misses side by side, phase by phase (medians of ``--reps`` rotated rounds)."""
    import tempfile

    settings = _settings(args)
    phases = _Phases()
    cache_dir = tempfile.mkdtemp(prefix="bench-floor-")
    models = {name: entry[0] for name, entry in _models(args.n_obs or 1000).items()}
    if not args.n_obs:
        models = {"radon": models["radon"]}
    models = {name: model for name, model in models.items() if name.startswith(args.only)}
    results: dict[str, Any] = {}
    for name, model in models.items():
        contenders = {
            label: fn
            for label, fn in _floor_contenders(model, settings, cache_dir).items()
            if label.startswith(tuple(args.who))
        }
        for fn in contenders.values():
            fn(1)  # compiles (ours and nutpie's: once per process)
        rows: dict[str, list[dict[str, Any]]] = {label: [] for label in contenders}
        labels = list(contenders)
        for rep in range(args.reps):  # one seed per round for all: nutpie's rows draw alike
            for label in labels[rep % len(labels) :] + labels[: rep % len(labels)]:
                rows[label].append(_floor_row(phases, contenders[label], 101 + rep))
        result = {label: _medians(runs) for label, runs in rows.items()}
        if "nutpie_compiled_once" in result:
            result["ratios_vs_nutpie_compiled_once"] = _ratios(result, "nutpie_compiled_once")
        results[name] = result
    return {"settings": settings, "reps": args.reps, "machine": _machine(), "models": results}


def _machine() -> dict[str, Any]:
    return {
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "load_average": os.getloadavg()[0],
        "note": "shared machine: other jobs ran at the same time; compare cpu_s as well",
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("section", choices=["table", "fresh", "calibrate", "remote", "floor"])
    parser.add_argument("--n-obs", type=int, default=100_000)
    parser.add_argument("--draws", type=int, default=1000)
    parser.add_argument("--tune", type=int, default=1000)
    parser.add_argument("--chains", type=int, default=4)
    parser.add_argument("--sizes", type=int, nargs="+", default=[3_000, 10_000, 30_000])
    parser.add_argument(
        "--only", default="", help="fresh, floor: only models named so (radon, slopes)"
    )
    parser.add_argument(
        "--new-structure",
        action="store_true",
        help="fresh: every process samples a model structure never seen (a changed prior)",
    )
    parser.add_argument("--reps", type=int, default=3, help="floor, fresh: rounds (medians)")
    parser.add_argument(
        "--who", nargs="+", default=[""], help="floor, fresh: only contenders starting so"
    )
    args = parser.parse_args()
    sections = {
        "table": bench_table,
        "fresh": bench_fresh,
        "calibrate": bench_calibrate,
        "remote": bench_remote,
        "floor": bench_floor,
    }
    print(json.dumps(sections[args.section](args), indent=2))


if __name__ == "__main__":
    main()
