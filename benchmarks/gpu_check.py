"""The GPU check: one self-contained run that proves a miss on a GPU (issue 26).

On the lent GPU machine (no network; JAX with CUDA, NumPyro, xarray, h5py and fsspec installed,
PyMC and friends carried as wheels, see docs/backends.md#checking-a-gpu)::

    python3 benchmarks/gpu_check.py --wheels .whl --out "$OUT"

Here, on the CPU, the same script with the same steps (what CI and a developer run before the
one GPU call, so that call cannot fail on set-up)::

    python benchmarks/gpu_check.py --cpu [--quick]

Steps, each recorded in one JSON document (printed, and written to ``--out/gpu_check.json``):

1. ``environment``: Python, library versions, JAX's devices.
2. ``references``: the five posteriordb posteriors through ``cloud(backend="auto")`` (no cache):
   which backend and device ``auto`` chose, and every parameter within ``--z`` MCSE of the
   reference mean and 10 % of its sd.
3. ``scaling``: a varying-slopes model at each ``--sizes`` observation count, 4 chains
   vectorised on the device: first call (compile + sample) and a repeat (new seed), compile
   seconds apart, minimum bulk ESS per sampling second.
4. ``reuse``: a new seed and new same-shaped data (``pm.set_data``) on a compiled model:
   how many new compilations (must be zero).
5. ``determinism``: the same call twice: identical draws or not (XLA's GPU scatter-add is not
   deterministic by default; this says whether our exactness claims hold on the card).
6. ``hits``: the scaled result stored on disk, then a memory hit and a disk hit after the memory
   tier is cleared, with their seconds.
7. ``nutpie`` (``--cpu`` only, when nutpie is installed): the same scaling model sampled with
   nutpie on this machine's CPU, the comparison the GPU figures are read against.

Exit status 0 when every check passed (references within tolerance, ``auto`` on the expected
device, zero recompilations, hits served), 1 otherwise.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
#: Where carried wheels are installed on the GPU machine (never into its system Python).
SITE = Path(tempfile.gettempdir()) / "cloudcache-gpu-site"
#: Set in the re-executed process, so the install happens once.
INSTALLED_ENV = "CLOUDCACHE_GPU_CHECK_INSTALLED"


def install_wheels(wheels: Path) -> None:
    """Install every wheel in ``wheels`` into :data:`SITE` and re-run this script over it."""
    if os.environ.get(INSTALLED_ENV):
        return
    found = sorted(wheels.glob("*.whl"))
    if not found:
        raise SystemExit(f"--wheels {wheels}: no .whl files there")
    command = [sys.executable, "-m", "pip", "install", "-q", "--no-index", "--no-deps"]
    command += ["--no-compile", "--no-cache-dir", "--upgrade", "--target", str(SITE)]
    subprocess.run([*command, *map(str, found)], check=True)
    path = os.pathsep.join(filter(None, [str(SITE), str(REPO), os.environ.get("PYTHONPATH")]))
    env = {**os.environ, "PYTHONPATH": path, INSTALLED_ENV: "1"}
    os.execve(sys.executable, [sys.executable, *sys.argv], env)


def environment(device: str) -> dict[str, Any]:
    import jax

    from cloudcache.util.versions import installed_version

    names = ["pymc", "pytensor", "jax", "jaxlib", "numpyro", "xarray", "netcdf4", "nutpie"]
    return {
        "python": platform.python_version(),
        "machine": platform.machine(),
        "cpus": os.cpu_count(),
        "asked_device": device,
        "jax_devices": [str(d) for d in jax.devices()],
        "jax_backend": jax.default_backend(),
        "versions": {name: installed_version(name) for name in names},
    }


def sample_through_cloud(model: Any, device: str, seed: int, settings: dict[str, Any], **cloud):
    """One ``pm.sample`` inside ``cloud()``: (tree, record, wall seconds)."""
    import pymc as pm

    import cloudcache as cc

    start = time.perf_counter()
    with cc.cloud(model, device=device, quiet=True, **{"cache": False, **cloud}) as run:
        tree = pm.sample(random_seed=seed, **settings)
    return tree, run.last, time.perf_counter() - start


def used_device(tree: Any, record: Any) -> str:
    """What ran the chains: the numpyro backend's layout ("gpux1-vectorized"), else the backend."""
    for node in (tree, tree["posterior"]):
        if "cloudcache_device" in node.attrs:
            return str(node.attrs["cloudcache_device"])
    return record.backend


def check_references(
    device: str, settings: dict[str, Any], names: list[str] | None, z_max: float, sd_tol: float
) -> dict[str, Any]:
    sys.path.insert(0, str(REPO / "validation"))
    from validate_posteriordb import POSTERIORS, compare_with_reference

    expected = "gpu" if device == "gpu" else ""
    results = {}
    for name in names or POSTERIORS:
        tree, record, seconds = sample_through_cloud(POSTERIORS[name](), "auto", 1, settings)
        compared = compare_with_reference(name, tree, z_max=z_max, sd_tol=sd_tol)
        where = used_device(tree, record)
        results[name] = {
            "backend": record.backend,
            "device": where,
            "on_expected_device": where.startswith(expected),
            "seconds": round(seconds, 2),
            **compared,
        }
    return {
        "ok": all(r["ok"] and r["on_expected_device"] for r in results.values()),
        "posteriors": results,
    }


def min_ess(tree: Any) -> float:
    from cloudcache.compat.arviz import bulk_ess

    return float(bulk_ess(tree.posterior.to_dataset()).to_dataarray().min())


def kernel_counts() -> tuple[int, float]:
    """(compilations, compile seconds) of the numpyro backend's compiled-program cache."""
    from cloudcache.backends.numpyro.runner import KERNELS

    return KERNELS.compilations, KERNELS.compile_seconds


def timed_numpyro(model: Any, device: str, seed: int, settings: dict[str, Any]) -> dict[str, Any]:
    compilations, compile_seconds = kernel_counts()
    tree, record, seconds = sample_through_cloud(model, device, seed, settings, backend="numpyro")
    now_compilations, now_compile_seconds = kernel_counts()
    compile_part = now_compile_seconds - compile_seconds
    sampling = max(seconds - compile_part, 1e-9)
    ess = min_ess(tree)
    return {
        "device": used_device(tree, record),
        "seconds": round(seconds, 3),
        "compile_seconds": round(compile_part, 3),
        "compilations": now_compilations - compilations,
        "min_ess": round(ess, 1),
        "ess_per_second": round(ess / sampling, 1),
    }


def check_scaling(device: str, sizes: list[int], settings: dict[str, Any]) -> dict[str, Any]:
    from cloudcache.demo.models import varying_slopes_model

    rows = {}
    for n_obs in sizes:
        model = varying_slopes_model(n_obs)
        first = timed_numpyro(model, device, 1, settings)
        repeat = timed_numpyro(model, device, 2, settings)
        rows[str(n_obs)] = {"first_call": first, "repeat_new_seed": repeat}
    return rows


def check_reuse(device: str, n_obs: int, settings: dict[str, Any]) -> dict[str, Any]:
    import numpy as np
    import pymc as pm

    from cloudcache.demo.models import varying_slopes_model

    model = varying_slopes_model(n_obs)
    timed_numpyro(model, device, 1, settings)  # compiles (or loads JAX's persistent cache)
    new_seed = timed_numpyro(model, device, 5, settings)
    rng = np.random.default_rng(3)
    with model:
        pm.set_data({"x": rng.normal(size=n_obs), "y": rng.normal(size=n_obs)})
    new_data = timed_numpyro(model, device, 5, settings)
    return {
        "ok": new_seed["compilations"] == 0 and new_data["compilations"] == 0,
        "new_seed": new_seed,
        "new_data": new_data,
    }


def check_determinism(device: str, n_obs: int, settings: dict[str, Any]) -> dict[str, Any]:
    import numpy as np

    from cloudcache.demo.models import varying_slopes_model

    model = varying_slopes_model(n_obs)
    trees = [
        sample_through_cloud(model, device, 11, settings, backend="numpyro")[0] for _ in range(2)
    ]
    first, second = (t.posterior.to_dataset() for t in trees)
    diffs = {
        name: float(np.max(np.abs(first[name].values - second[name].values)))
        for name in first.data_vars
    }
    return {"identical": all(d == 0.0 for d in diffs.values()), "max_abs_difference": diffs}


def check_hits(device: str, n_obs: int, settings: dict[str, Any]) -> dict[str, Any]:
    from cloudcache.demo.models import varying_slopes_model
    from cloudcache.stores.resolve import process_memory_store

    model = varying_slopes_model(n_obs)
    with tempfile.TemporaryDirectory() as root:
        rows = {}
        for label in ("miss", "memory_hit", "disk_hit"):
            if label == "disk_hit":
                process_memory_store().clear()
            _, record, seconds = sample_through_cloud(
                model, device, 21, settings, backend="numpyro", cache=root
            )
            rows[label] = {"hit": record.hit, "location": record.location, "seconds": seconds}
        size = sum(p.stat().st_size for p in Path(root).rglob("*.nc"))
    ok = not rows["miss"]["hit"] and rows["memory_hit"]["hit"] and rows["disk_hit"]["hit"]
    ok = ok and rows["disk_hit"]["location"] != "memory"
    return {"ok": bool(ok), "entry_mb": round(size / 1e6, 2), **rows}


def check_nutpie(sizes: list[int], settings: dict[str, Any]) -> dict[str, Any]:
    import pymc as pm

    from cloudcache.demo.models import varying_slopes_model

    rows = {}
    for n_obs in sizes:
        model = varying_slopes_model(n_obs)
        row = {}
        for label, seed in (("first_call", 1), ("repeat_new_seed", 2)):
            start = time.perf_counter()
            tree = pm.sample(model=model, nuts_sampler="nutpie", random_seed=seed, **settings)
            seconds = time.perf_counter() - start
            ess = min_ess(tree)
            row[label] = {
                "seconds": round(seconds, 3),
                "min_ess": round(ess, 1),
                "ess_per_second": round(ess / seconds, 1),
            }
        rows[str(n_obs)] = row
    return rows


def run_checks(args: argparse.Namespace) -> dict[str, Any]:
    device = "cpu" if args.cpu else "gpu"
    settings = {
        "draws": args.draws,
        "tune": args.tune,
        "chains": args.chains,
        "progressbar": False,
        "compute_convergence_checks": False,
    }
    small = min(args.sizes)
    report: dict[str, Any] = {"settings": settings}
    steps = {
        "references": lambda: check_references(
            device, settings, args.posteriors, args.z, args.sd_tol
        ),
        "scaling": lambda: check_scaling(device, args.sizes, settings),
        "reuse": lambda: check_reuse(device, small, settings),
        "determinism": lambda: check_determinism(device, small, settings),
        "hits": lambda: check_hits(device, small, settings),
    }
    if args.cpu and args.nutpie:
        steps["nutpie"] = lambda: check_nutpie(args.sizes, settings)
    started = time.perf_counter()
    for name, step in steps.items():
        start = time.perf_counter()
        if start - started > args.budget:
            report[name] = {"skipped": f"past --budget {args.budget} s"}
            continue
        try:
            report[name] = step()
        except Exception as error:  # one failing step must not hide the others' figures
            report[name] = {"ok": False, "error": f"{type(error).__name__}: {error}"}
        report[name]["step_seconds"] = round(time.perf_counter() - start, 2)
        print(f"gpu_check: {name} done in {report[name]['step_seconds']} s", file=sys.stderr)
        write(report, args.out)
    # JAX's devices are read last: reading them first would fix JAX's CPU device count before
    # cloudcache could ask for one device per core.
    report["environment"] = environment(device)
    checked = ("references", "reuse", "hits")
    report["ok"] = all(report[name].get("ok", False) for name in checked)
    return report


def write(report: dict[str, Any], out: Path | None) -> None:
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        (out / "gpu_check.json").write_text(json.dumps(report, indent=1))


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cpu", action="store_true", help="run every step on this CPU")
    parser.add_argument("--quick", action="store_true", help="tiny sizes (tests, set-up checks)")
    parser.add_argument("--wheels", type=Path, help="install these wheels first (GPU machine)")
    parser.add_argument("--out", type=Path, help="also write gpu_check.json here")
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--draws", type=int, default=1000)
    parser.add_argument("--tune", type=int, default=1000)
    parser.add_argument("--chains", type=int, default=4)
    parser.add_argument("--posteriors", nargs="+", help="only these posteriordb posteriors")
    parser.add_argument("--z", type=float, default=4.0, help="MCSE multiple for the references")
    parser.add_argument("--sd-tol", type=float, default=0.10, help="relative sd tolerance")
    parser.add_argument("--budget", type=float, default=420.0, help="skip steps after this")
    parser.add_argument("--no-nutpie", dest="nutpie", action="store_false")
    args = parser.parse_args(argv)
    if args.quick:
        # Short chains: the references are judged loosely (their MCSE is large anyway).
        args.sizes, args.draws, args.tune, args.chains = [2_000], 200, 200, 2
        args.sd_tol = 0.35
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    if args.wheels is not None:
        install_wheels(args.wheels)
    report = run_checks(args)
    write(report, args.out)
    print(json.dumps(report, indent=1))
    return 0 if report["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
