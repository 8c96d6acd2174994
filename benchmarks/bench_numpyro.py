"""Benchmarks of the NumPyro backend; each prints one JSON document.

    python benchmarks/bench_numpyro.py repeat   [--reps 3]   # 1. repeat miss, new seed, vs PyMC
    python benchmarks/bench_numpyro.py set_data              # 2. new same-shaped data: compile s
    python benchmarks/bench_numpyro.py fresh    [--reps 2]   # 3. first miss, fresh process
    python benchmarks/bench_numpyro.py cpu                   # 4. wall and ESS/s vs PyMC's NUTS
    python benchmarks/bench_numpyro.py memory   [--reps 50]  # 5. RSS over repeated misses
    python benchmarks/bench_numpyro.py layouts               # CPU chain layouts compared

Timings are wall-clock on whatever the machine is doing; ``cpu_s`` (process CPU time) is
reported next to wall time where contention would distort it.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
RADON = {"draws": 2000, "tune": 1000, "chains": 4}


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _ours(model, **kwargs):
    import pymc.sampling.mcmc as mcmc

    from cloudcache.backends.numpyro.backend import NumpyroBackend
    from cloudcache.calls.request import normalize_sample_call

    kwargs = {"progressbar": False, "compute_convergence_checks": False, **kwargs}
    request = normalize_sample_call(mcmc.sample, (), {**kwargs, "model": model})
    return NumpyroBackend().sample(model, request, device="cpu", pymc_sample=mcmc.sample)


def _timed(fn, *args, **kwargs) -> tuple[Any, float, float]:
    wall, cpu = time.perf_counter(), _cpu()
    out = fn(*args, **kwargs)
    return out, time.perf_counter() - wall, _cpu() - cpu


def _min_ess(tree) -> float:
    import arviz_stats

    ess = arviz_stats.ess(tree.posterior.to_dataset())
    return float(ess.to_dataarray().min())


def bench_repeat(reps: int) -> dict[str, Any]:
    import pymc.sampling.mcmc as mcmc

    from cloudcache.demo.models import radon_model

    model = radon_model()
    _, first, _ = _timed(_ours, model, random_seed=0, **RADON)
    ours = [_timed(_ours, model, random_seed=1 + i, **RADON)[1:] for i in range(reps)]
    theirs = []
    for i in range(reps):
        kwargs = {**RADON, "random_seed": 1 + i, "progressbar": False}
        _, wall, cpu = _timed(
            mcmc.sample,
            model=model,
            nuts_sampler="numpyro",
            compute_convergence_checks=False,
            **kwargs,
        )
        theirs.append((wall, cpu))
    ours_wall = statistics.median(w for w, _ in ours)
    theirs_wall = statistics.median(w for w, _ in theirs)
    return {
        "benchmark": "repeat miss, new seed, radon 4x2000",
        "ours_first_call_s": round(first, 2),
        "ours_repeat_wall_s": [round(w, 2) for w, _ in ours],
        "ours_repeat_cpu_s": [round(c, 2) for _, c in ours],
        "pymc_numpyro_wall_s": [round(w, 2) for w, _ in theirs],
        "pymc_numpyro_cpu_s": [round(c, 2) for _, c in theirs],
        "ratio_median_wall": round(ours_wall / theirs_wall, 3),
        "ratio_median_cpu": round(
            statistics.median(c for _, c in ours) / statistics.median(c for _, c in theirs), 3
        ),
    }


def bench_set_data() -> dict[str, Any]:
    import jax
    import pymc as pm

    from cloudcache.backends.numpyro.runner import KERNELS
    from cloudcache.demo.models import radon_data, radon_model

    events: list[float] = []

    def listener(event: str, duration: float, **_: Any) -> None:
        if event == "/jax/core/compile/backend_compile_duration":
            events.append(duration)

    model = radon_model()
    _ours(model, random_seed=0, **RADON)
    jax.monitoring.register_event_duration_secs_listener(listener)
    before = KERNELS.compile_seconds
    other = radon_data(seed=99)
    with model:
        pm.set_data({"floor": other["floor"]})
    _, wall_set, _ = _timed(_ours, model, random_seed=0, **RADON)
    rebuilt = radon_model(data=other)  # new observed array and county index, same shapes
    _, wall_rebuilt, _ = _timed(_ours, rebuilt, random_seed=0, **RADON)
    return {
        "benchmark": "new same-shaped data (pm.set_data; rebuilt model with new arrays)",
        "runner_compile_s": round(KERNELS.compile_seconds - before, 3),
        "xla_compilations": len(events),
        "xla_compile_s": round(sum(events), 3),
        "wall_set_data_s": round(wall_set, 2),
        "wall_rebuilt_model_s": round(wall_rebuilt, 2),
    }


_FRESH = """
import time, json
t0 = time.perf_counter()
import sys; sys.path.insert(0, {bench!r})
from bench_numpyro import _ours
from cloudcache.demo.models import radon_model
model = radon_model()
t1 = time.perf_counter()
_ours(model, random_seed=1, draws=2000, tune=1000, chains=4)
t2 = time.perf_counter()
print(json.dumps({{"imports_and_model_s": t1 - t0, "first_miss_s": t2 - t1}}))
"""


def _fresh_process(cache_dir: str) -> dict[str, float]:
    env = {**os.environ, "CLOUDCACHE_JAX_CACHE_DIR": cache_dir, "PYTHONPATH": str(REPO)}
    start = time.perf_counter()
    out = subprocess.run(
        [sys.executable, "-c", _FRESH.format(bench=str(REPO / "benchmarks"))],
        capture_output=True,
        text=True,
        env=env,
        check=True,
    )
    result = json.loads(out.stdout.strip().splitlines()[-1])
    result["process_s"] = time.perf_counter() - start
    return result


def bench_fresh(reps: int) -> dict[str, Any]:
    cold, warm = [], []
    for _ in range(reps):
        with tempfile.TemporaryDirectory() as cache:
            cold.append(_fresh_process(cache))
            warm.append(_fresh_process(cache))
    first_cold = statistics.median(r["first_miss_s"] for r in cold)
    first_warm = statistics.median(r["first_miss_s"] for r in warm)
    proc_cold = statistics.median(r["process_s"] for r in cold)
    proc_warm = statistics.median(r["process_s"] for r in warm)
    return {
        "benchmark": "first miss in a fresh process, radon 4x2000, cold vs warm JAX cache",
        "cold": [{k: round(v, 2) for k, v in r.items()} for r in cold],
        "warm": [{k: round(v, 2) for k, v in r.items()} for r in warm],
        "ratio_first_miss": round(first_warm / first_cold, 3),
        "ratio_whole_process": round(proc_warm / proc_cold, 3),
    }


def hierarchical_model(n_obs: int = 100_000, groups: int = 100):
    """Varying intercepts and slopes, ``n_obs`` observations (data generated, fixed seed)."""
    import numpy as np
    import pymc as pm

    rng = np.random.default_rng(5)
    group = rng.integers(0, groups, n_obs)
    x = rng.normal(size=n_obs)
    a, b = rng.normal(1.0, 0.5, groups), rng.normal(-0.5, 0.3, groups)
    y = a[group] + b[group] * x + rng.normal(0, 1.0, n_obs)
    with pm.Model(coords={"group": np.arange(groups)}) as model:
        xd = pm.Data("x", x)
        mu_a, mu_b = pm.Normal("mu_a", 0, 5), pm.Normal("mu_b", 0, 5)
        sd_a, sd_b = pm.HalfNormal("sd_a", 2), pm.HalfNormal("sd_b", 2)
        za = pm.Normal("za", 0, 1, dims="group")
        zb = pm.Normal("zb", 0, 1, dims="group")
        sigma = pm.HalfNormal("sigma", 2)
        mu = (mu_a + sd_a * za)[group] + (mu_b + sd_b * zb)[group] * xd
        pm.Normal("y", mu, sigma, observed=y)
    return model


def bench_cpu(draws: int, tune: int) -> dict[str, Any]:
    import pymc.sampling.mcmc as mcmc

    from cloudcache.demo.models import radon_model

    results = {}
    for name, build in (("radon", radon_model), ("hierarchical_1e5", hierarchical_model)):
        model = build()
        settings = {"draws": draws, "tune": tune, "chains": 4}
        _, first, _ = _timed(_ours, model, random_seed=0, **settings)
        ours, wall, cpu = _timed(_ours, model, random_seed=1, **settings)
        pymc, pwall, pcpu = _timed(
            mcmc.sample,
            model=model,
            nuts_sampler="pymc",
            cores=2,
            random_seed=1,
            progressbar=False,
            compute_convergence_checks=False,
            **settings,
        )
        ess, pess = _min_ess(ours), _min_ess(pymc)
        results[name] = {
            "ours_first_call_s": round(first, 2),
            "ours_wall_s": round(wall, 2),
            "ours_min_ess": round(ess),
            "ours_ess_per_s": round(ess / wall, 1),
            "pymc_wall_s": round(pwall, 2),
            "pymc_min_ess": round(pess),
            "pymc_ess_per_s": round(pess / pwall, 1),
            "ours_layout": ours.posterior.attrs["cloudcache_device"],
            "note": "pymc wall includes its own compilation and process start-up of workers",
            "ours_cpu_s_this_process": round(cpu, 2),
            "pymc_cpu_s_this_process_only": round(pcpu, 2),
        }
    return {"benchmark": f"CPU speed, 4 chains x {draws} (+{tune} tune)", **results}


def bench_memory(reps: int) -> dict[str, Any]:
    import gc

    import psutil

    from cloudcache.demo.models import radon_model

    model = radon_model()
    process = psutil.Process()
    rss = []
    for i in range(reps):
        _ours(model, random_seed=100 + i, draws=1000, tune=500, chains=4)
        gc.collect()
        rss.append(process.memory_info().rss / 2**20)
    return {
        "benchmark": f"{reps} misses with new seeds, radon 4x1000, RSS in MiB",
        "rss_after_call_1": round(rss[0], 1),
        "rss_after_call_5": round(rss[min(4, reps - 1)], 1),
        "rss_after_last": round(rss[-1], 1),
        "growth_5_to_last_mib": round(rss[-1] - rss[min(4, reps - 1)], 1),
        "rss_series": [round(r, 1) for r in rss],
    }


def bench_layouts(reps: int) -> dict[str, Any]:
    import jax
    import pymc.sampling.mcmc as mcmc

    from cloudcache.backends.numpyro.backend import plan_request, prepare_run, run_prepared
    from cloudcache.backends.numpyro.devices import ChainLayout
    from cloudcache.calls.request import normalize_sample_call
    from cloudcache.demo.models import radon_model

    cpus = jax.devices("cpu")
    layouts = {
        "1 device, 4 chains vectorized": ChainLayout("cpu", tuple(cpus[:1]), True),
        "1 device, 4 chains sequential": ChainLayout("cpu", tuple(cpus[:1]), False),
        "2 devices, 2 chains vectorized each": ChainLayout("cpu", tuple(cpus[:2]), True),
        "2 devices, 2 chains sequential each": ChainLayout("cpu", tuple(cpus[:2]), False),
    }
    out: dict[str, Any] = {"benchmark": "CPU chain layouts", "devices": len(cpus)}
    for model_name, build in (("radon", radon_model), ("hierarchical_1e5", hierarchical_model)):
        model = build()
        settings = RADON if model_name == "radon" else {"draws": 1000, "tune": 1000, "chains": 4}
        for name, layout in layouts.items():
            row: dict[str, Any] = {}
            for i in range(reps + 1):
                request = normalize_sample_call(
                    mcmc.sample,
                    (),
                    {
                        **settings,
                        "model": model,
                        "random_seed": i,
                        "compute_convergence_checks": False,
                    },
                )
                wall, cpu = time.perf_counter(), _cpu()
                run = prepare_run(model, plan_request(request), i, "cpu", layout=layout)
                tree = run_prepared(model, run)
                wall, cpu = time.perf_counter() - wall, _cpu() - cpu
                if i == 0:
                    row["first_call_s"] = round(wall, 2)
                else:
                    row.setdefault("wall_s", []).append(round(wall, 2))
                    row.setdefault("cpu_s", []).append(round(cpu, 2))
                    row.setdefault("min_ess", []).append(round(_min_ess(tree)))
            out[f"{model_name}: {name}"] = row
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument(
        "which", choices=["repeat", "set_data", "fresh", "cpu", "memory", "layouts"]
    )
    parser.add_argument("--reps", type=int, default=None)
    parser.add_argument("--draws", type=int, default=2000)
    parser.add_argument("--tune", type=int, default=1000)
    args = parser.parse_args()
    if args.which == "repeat":
        result = bench_repeat(args.reps or 3)
    elif args.which == "set_data":
        result = bench_set_data()
    elif args.which == "fresh":
        result = bench_fresh(args.reps or 2)
    elif args.which == "cpu":
        result = bench_cpu(args.draws, args.tune)
    elif args.which == "memory":
        result = bench_memory(args.reps or 50)
    else:
        result = bench_layouts(args.reps or 2)
    result["load_average"] = [round(x, 2) for x in os.getloadavg()]
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
