"""Check a backend (NumPyro, or nutpie) against posteriordb's gold-standard reference posteriors.

For every parameter of five posteriors (validation/posteriordb/README.md): the posterior mean
must be within ``--z`` (default 4) Monte Carlo standard errors of the reference mean, the MCSE
being ArviZ's ``mcse`` of our own run, and the posterior sd within ``--sd-tol`` (default 10 %) of
the reference sd. Prints one JSON document; exits 1 if any parameter fails.

    python validation/validate_posteriordb.py [--draws 1000 --tune 1000 --chains 4 --seed 1]
    python validation/validate_posteriordb.py --backend nutpie
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pymc as pm

HERE = Path(__file__).resolve().parent / "posteriordb"


def _data(name: str) -> dict[str, Any]:
    return json.loads((HERE / f"{name}.data.json").read_text())


def kidiq() -> pm.Model:
    d = _data("kidiq")
    with pm.Model() as model:
        beta = pm.Flat("beta", shape=2)
        sigma = pm.HalfCauchy("sigma", 2.5)
        mu = beta[0] + beta[1] * np.asarray(d["mom_iq"], dtype=float)
        pm.Normal("kid_score", mu, sigma, observed=np.asarray(d["kid_score"], dtype=float))
    return model


def mesquite() -> pm.Model:
    d = {k: np.asarray(v, dtype=float) for k, v in _data("mesquite").items() if k != "N"}
    columns = [
        np.ones_like(d["weight"]),
        np.log(d["diam1"]),
        np.log(d["diam2"]),
        np.log(d["canopy_height"]),
        np.log(d["total_height"]),
        np.log(d["density"]),
        d["group"],
    ]
    with pm.Model() as model:
        beta = pm.Flat("beta", shape=7)
        sigma = pm.HalfFlat("sigma")
        mu = pm.math.dot(np.stack(columns, axis=1), beta)
        pm.Normal("log_weight", mu, sigma, observed=np.log(d["weight"]))
    return model


def earnings() -> pm.Model:
    d = {k: np.asarray(v, dtype=float) for k, v in _data("earnings").items() if k != "N"}
    z = (d["height"] - d["height"].mean()) / d["height"].std(ddof=1)
    male = d["male"]
    with pm.Model() as model:
        beta = pm.Flat("beta", shape=4)
        sigma = pm.HalfFlat("sigma")
        mu = beta[0] + beta[1] * z + beta[2] * male + beta[3] * z * male
        pm.Normal("log_earn", mu, sigma, observed=np.log(d["earn"]))
    return model


def sblrc() -> pm.Model:
    d = _data("sblrc")
    with pm.Model() as model:
        beta = pm.Normal("beta", 0.0, 10.0, shape=int(d["D"]))
        sigma = pm.HalfNormal("sigma", 10.0)
        mu = pm.math.dot(np.asarray(d["X"], dtype=float), beta)
        pm.Normal("y", mu, sigma, observed=np.asarray(d["y"], dtype=float))
    return model


def low_dim_gauss_mix() -> pm.Model:
    y = np.asarray(_data("low_dim_gauss_mix")["y"], dtype=float)
    with pm.Model() as model:
        mu = pm.Normal(
            "mu",
            0.0,
            2.0,
            shape=2,
            transform=pm.distributions.transforms.ordered,
            initval=np.array([-1.0, 1.0]),
        )
        sigma = pm.HalfNormal("sigma", 2.0, shape=2)
        theta = pm.Beta("theta", 5.0, 5.0)
        weights = pm.math.stack([theta, 1.0 - theta])
        pm.NormalMixture("y", w=weights, mu=mu, sigma=sigma, observed=y)
    return model


#: posteriordb name -> PyMC model builder.
POSTERIORS: dict[str, Callable[[], pm.Model]] = {
    "kidiq-kidscore_momiq": kidiq,
    "mesquite-logmesquite": mesquite,
    "earnings-logearn_interaction_z": earnings,
    "sblrc-blr": sblrc,
    "low_dim_gauss_mix-low_dim_gauss_mix": low_dim_gauss_mix,
}


def _our_name(reference_name: str) -> tuple[str, tuple[int, ...]]:
    """``beta[2]`` -> ``("beta", (1,))``; ``sigma`` -> ``("sigma", ())``."""
    if "[" not in reference_name:
        return reference_name, ()
    base, index = reference_name[:-1].split("[")
    return base, tuple(int(i) - 1 for i in index.split(","))


def sample_backend(
    model: pm.Model,
    draws: int,
    tune: int,
    chains: int,
    seed: int,
    backend: str = "numpyro",
    device: str = "cpu",
):
    """Sample through ``backend`` directly (no cache in between)."""
    import pymc.sampling.mcmc as mcmc

    from cloudcache.backends.registry import get_backend
    from cloudcache.calls.request import normalize_sample_call

    kwargs = {"draws": draws, "tune": tune, "chains": chains, "random_seed": seed}
    request = normalize_sample_call(mcmc.sample, (), {**kwargs, "model": model, "quiet": True})
    return get_backend(backend).sample(model, request, device=device, pymc_sample=mcmc.sample)


def compare_with_reference(
    name: str, tree: Any, z_max: float = 4.0, sd_tol: float = 0.10
) -> dict[str, Any]:
    """Compare every parameter of a sampled ``tree`` with posterior ``name``'s reference."""
    from cloudcache.compat.arviz import mean_mcse

    reference = json.loads((HERE / "reference_posteriors.json").read_text())[name]["params"]
    posterior = tree.posterior.to_dataset()
    mcse = mean_mcse(posterior)
    params = {}
    for ref_name, ref in reference.items():
        var, index = _our_name(ref_name)
        values = posterior[var].values[(..., *index)]
        mean, sd = float(values.mean()), float(values.std(ddof=1))
        se = float(np.asarray(mcse[var].values)[index])
        z = abs(mean - ref["mean"]) / se
        sd_err = abs(sd - ref["sd"]) / ref["sd"]
        params[ref_name] = {
            "mean": round(mean, 6),
            "ref_mean": ref["mean"],
            "mcse": round(se, 6),
            "z": round(z, 3),
            "sd": round(sd, 6),
            "ref_sd": ref["sd"],
            "sd_rel_err": round(sd_err, 4),
            "ok": bool(z <= z_max and sd_err <= sd_tol),
        }
    return {
        "ok": all(p["ok"] for p in params.values()),
        "divergences": int(tree.sample_stats["diverging"].sum()),
        "params": params,
    }


def check_posterior(
    name: str,
    draws: int = 1000,
    tune: int = 1000,
    chains: int = 4,
    seed: int = 1,
    z_max: float = 4.0,
    sd_tol: float = 0.10,
    backend: str = "numpyro",
    device: str = "cpu",
) -> dict[str, Any]:
    """Sample one posterior and compare every parameter with its reference."""
    start = time.perf_counter()
    tree = sample_backend(POSTERIORS[name](), draws, tune, chains, seed, backend, device)
    seconds = time.perf_counter() - start
    return {"seconds": round(seconds, 2), **compare_with_reference(name, tree, z_max, sd_tol)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--draws", type=int, default=1000)
    parser.add_argument("--tune", type=int, default=1000)
    parser.add_argument("--chains", type=int, default=4)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--z", type=float, default=4.0)
    parser.add_argument("--sd-tol", type=float, default=0.10)
    parser.add_argument("--only", nargs="*", choices=sorted(POSTERIORS), default=None)
    parser.add_argument("--backend", choices=["numpyro", "nutpie"], default="numpyro")
    args = parser.parse_args(argv)
    results = {
        name: check_posterior(
            name, args.draws, args.tune, args.chains, args.seed, args.z, args.sd_tol, args.backend
        )
        for name in (args.only or POSTERIORS)
    }
    summary = {
        "settings": {
            "backend": args.backend,
            "draws": args.draws,
            "tune": args.tune,
            "chains": args.chains,
            "seed": args.seed,
            "z_max": args.z,
            "sd_tol": args.sd_tol,
        },
        "ok": all(r["ok"] for r in results.values()),
        "posteriors": results,
    }
    print(json.dumps(summary, indent=1))
    return 0 if summary["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
