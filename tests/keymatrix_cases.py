"""Key-matrix worker: run named cases against one disk cache in a fresh process.

Usage: python keymatrix_cases.py CACHE_DIR CASE [CASE ...]; prints one JSON line per case:
``{"case", "hit", "key", "draws", "chains", "fingerprint"}`` where ``fingerprint`` is a digest of
the returned posterior's values (to prove a miss returned a new posterior).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from typing import Any

import numpy as np
import pymc as pm
import pymc.sampling
import pymc.sampling.mcmc

import cloudcache as cc
from cloudcache.compat.pymc import as_tree
from cloudcache.stores.format.netcdf import tree_checksum

BASE_CALL: dict[str, Any] = {
    "draws": 25,
    "tune": 25,
    "chains": 1,
    "random_seed": 11,
    "progressbar": False,
}

#: Globals read by the base model's user code (a CustomDist logp and a Potential helper).
SCALE = 1.0
STRENGTH = 1.0
Z = np.array([0.3, -0.2, 0.1, 0.4])


def soft_logp(value: Any, mu: Any) -> Any:
    """User code inside the model: keyed by its bytecode, closure and the globals it reads."""
    return -0.5 * ((value - mu) / SCALE) ** 2


def penalty(b: Any) -> Any:
    """A helper that builds the model's Potential term."""
    return -0.01 * STRENGTH * b**2


def with_global(name: str, value: float, action: Callable[[], Any]) -> Callable[[], Any]:
    """``action`` run while this module's global ``name`` is ``value`` (restored afterwards)."""

    def run() -> Any:
        module = sys.modules[__name__]
        before = getattr(module, name)
        setattr(module, name, value)
        try:
            return action()
        finally:
            setattr(module, name, before)

    return run


def build(**change: Any) -> pm.Model:
    """The base model; keyword arguments change exactly one thing."""
    rng = np.random.default_rng(3)
    n = 24
    x = rng.normal(size=n)
    w = rng.normal(size=n)
    group = np.arange(n) % 3
    y = 1.0 + 2.0 * x + 0.5 * w + rng.normal(size=n)
    y = change.get("y", lambda v: v)(y)
    w = change.get("w", lambda v: v)(w)
    group = change.get("group", lambda v: v)(group)
    groups = change.get("coords", ["a", "b", "c"])
    check_bounds = change.get("check_bounds", True)
    coords = {"group": groups, "obs": list(range(n))}
    with pm.Model(coords=coords, check_bounds=check_bounds) as model:
        xd = pm.Data("x", x)
        alpha = pm.Normal("alpha", 0.0, change.get("prior_sd", 1.0), dims="group")
        beta = pm.Normal("beta", 0.0, 1.0, initval=change.get("initval"))
        transform = change.get("sigma_transform")
        replaced = {"transform": transform, "default_transform": None} if transform else {}
        sigma = pm.HalfNormal("sigma", 1.0, **replaced)
        expr = alpha[group] + beta * xd + 0.5 * w
        if change.get("deterministic"):
            expr = alpha[group] + beta * xd + 0.25 * w
        mu = pm.Deterministic("mu", expr, dims=change.get("mu_dims", "obs"))
        if change.get("student"):
            pm.StudentT("y", nu=5, mu=mu, sigma=sigma, observed=y)
        else:
            pm.Normal("y", mu, sigma, observed=y)
        pm.CustomDist("z", beta, logp=soft_logp, observed=Z)
        pm.Potential("soft", penalty(beta))
    return model


def base_sample() -> Any:
    return pm.sample(**BASE_CALL)


def call(**overrides: Any) -> Callable[[], Any]:
    return lambda: pm.sample(**{**BASE_CALL, **overrides})


def set_data_then_sample(values: np.ndarray) -> Callable[[], Any]:
    def run() -> Any:
        pm.set_data({"x": values})
        return base_sample()

    return run


_X = np.random.default_rng(3).normal(size=24)

#: Arrays a case's model holds by reference, so the case can edit them in place.
_HELD: dict[str, np.ndarray] = {}


def _hold(name: str) -> Callable[[np.ndarray], np.ndarray]:
    def keep(values: np.ndarray) -> np.ndarray:
        _HELD[name] = values
        return values

    return keep


def _rotate_groups(group: np.ndarray) -> None:
    group[:] = (group + 1) % 3


def edit_in_place_then_sample(name: str, edit: Callable[[np.ndarray], None]) -> Callable[[], Any]:
    """Sample (a hit on the base entry), edit the held array in place, sample again."""

    def run() -> Any:
        base_sample()
        edit(_HELD[name])
        return base_sample()

    return run


# name -> (model builder, sample call, backend)
CASES: dict[str, tuple[Callable[[], pm.Model], Callable[[], Any], str]] = {
    "base": (build, base_sample, "pymc"),
    # -- must hit ------------------------------------------------------------------------
    "hit_rebuild": (build, base_sample, "pymc"),
    "hit_positional_draws": (
        build,
        lambda: pm.sample(25, tune=25, chains=1, random_seed=11, progressbar=False),
        "pymc",
    ),
    "hit_keyword_order": (
        build,
        lambda: pm.sample(random_seed=11, progressbar=False, chains=1, tune=25, draws=25),
        "pymc",
    ),
    "hit_cosmetic_kwargs": (
        build,
        call(progressbar=True, quiet=True, cores=1, compute_convergence_checks=False, blas_cores=1),
        "pymc",
    ),
    "hit_compile_kwargs": (build, call(compile_kwargs={"mode": "FAST_RUN"}), "pymc"),
    "hit_numpy_integers": (
        build,
        call(draws=np.int64(25), tune=np.int32(25), chains=np.int64(1), random_seed=np.int64(11)),
        "pymc",
    ),
    "hit_defaults_spelled_out": (
        build,
        call(
            target_accept=0.8,
            init="auto",
            discard_tuned_samples=True,
            return_inferencedata=True,
            var_names=None,
            nuts_sampler_kwargs=None,
        ),
        "pymc",
    ),
    "hit_nuts_dict_default": (
        build,
        call(nuts={"target_accept": 0.8, "max_treedepth": 10}),
        "pymc",
    ),
    "hit_model_explicit": (
        build,
        lambda: pm.sample(model=pm.modelcontext(None), **BASE_CALL),
        "pymc",
    ),
    "hit_alias_sampling": (build, lambda: pymc.sampling.sample(**BASE_CALL), "pymc"),
    "hit_alias_mcmc": (build, lambda: pymc.sampling.mcmc.sample(**BASE_CALL), "pymc"),
    "hit_set_data_same_values": (build, set_data_then_sample(_X.copy()), "pymc"),
    "hit_coords_as_tuple": (lambda: build(coords=("a", "b", "c")), base_sample, "pymc"),
    "hit_seed_generator": (build, call(random_seed=np.random.default_rng(11)), "pymc"),
    "hit_target_accept_numpy": (build, call(target_accept=np.float64(0.8)), "pymc"),
    "hit_n_init_without_advi": (build, call(n_init=5000), "pymc"),
    "hit_nuts_sampler_names_backend": (build, call(nuts_sampler="pymc"), "pymc"),
    "hit_idata_kwargs_empty": (build, call(idata_kwargs={}), "pymc"),
    "hit_idata_kwargs_log_likelihood_false": (
        build,
        call(idata_kwargs={"log_likelihood": False}),
        "pymc",
    ),
    "hit_initvals_empty": (build, call(initvals={}), "pymc"),
    # -- must miss -----------------------------------------------------------------------
    "miss_observed_data": (lambda: build(y=lambda v: v + 3.0), base_sample, "pymc"),
    "miss_numpy_covariate": (lambda: build(w=lambda v: v * 2.0), base_sample, "pymc"),
    "miss_index_array": (lambda: build(group=lambda v: v[::-1].copy()), base_sample, "pymc"),
    "miss_set_data": (build, set_data_then_sample(_X + 1.0), "pymc"),
    "miss_prior_parameter": (lambda: build(prior_sd=2.0), base_sample, "pymc"),
    "miss_likelihood_family": (lambda: build(student=True), base_sample, "pymc"),
    "miss_deterministic": (lambda: build(deterministic=True), base_sample, "pymc"),
    "miss_coords_values": (lambda: build(coords=["x", "y", "z"]), base_sample, "pymc"),
    "miss_dims": (lambda: build(mu_dims=None), base_sample, "pymc"),
    "miss_draws": (build, call(draws=26), "pymc"),
    "miss_tune": (build, call(tune=26), "pymc"),
    "miss_chains": (build, call(chains=2), "pymc"),
    "miss_seed": (build, call(random_seed=12), "pymc"),
    "miss_target_accept": (build, call(target_accept=0.9), "pymc"),
    "miss_initvals": (build, call(initvals={"beta": 0.3}), "pymc"),
    "miss_model_initval": (lambda: build(initval=0.3), base_sample, "pymc"),
    "miss_var_names": (build, call(var_names=["alpha", "beta"]), "pymc"),
    "miss_backend": (build, base_sample, "numpyro"),
    "miss_custom_logp_global": (build, with_global("SCALE", 2.0, base_sample), "pymc"),
    "miss_potential_helper_global": (with_global("STRENGTH", 3.0, build), base_sample, "pymc"),
    "miss_check_bounds": (lambda: build(check_bounds=False), base_sample, "pymc"),
    "miss_interval_bounds": (
        lambda: build(sigma_transform=pm.distributions.transforms.Interval(0.0, 4.0)),
        base_sample,
        "pymc",
    ),
    "miss_index_array_edited_in_place": (
        lambda: build(group=_hold("group")),
        edit_in_place_then_sample("group", _rotate_groups),
        "pymc",
    ),
}


def run_case(cache_dir: str, name: str) -> dict[str, Any]:
    builder, sample, backend = CASES[name]
    model = builder()
    with cc.cloud(model, cache=cache_dir, backend=backend, quiet=True) as run:
        tree = sample()
    record = run.last
    assert record is not None
    posterior = as_tree(tree)["posterior"]  # PyMC 5 returns an InferenceData
    return {
        "case": name,
        "hit": record.hit,
        "key": record.key,
        "draws": int(posterior.sizes["draw"]),
        "chains": int(posterior.sizes["chain"]),
        "fingerprint": tree_checksum(posterior),
    }


def main(argv: list[str]) -> None:
    cache_dir, names = argv[0], argv[1:]
    for name in names:
        print(json.dumps(run_case(cache_dir, name)), flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
