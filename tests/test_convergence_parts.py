"""PyMC's convergence checks over parts of a large posterior, in threads: the parts hold every
checked value once, and their merged warnings are the very list one call over the whole
posterior gives. Real PyMC checks on a real model's posterior layout (draws made up so that
each warning fires where the test wants it)."""

from __future__ import annotations

import numpy as np
import pymc as pm
import pytest
import xarray as xr

from cloudcache.backends.numpyro.convergence import merged_warnings, posterior_parts
from cloudcache.compat.pymc import as_pymc_result

COUNTIES = 40


def county_model() -> pm.Model:
    with pm.Model(coords={"county": np.arange(COUNTIES)}) as model:
        mu = pm.Normal("mu")
        sigma = pm.HalfNormal("sigma")
        z = pm.Normal("z", dims="county")
        pm.Deterministic("a", mu + sigma * z, dims="county")
        pm.Normal("y", mu + sigma * z[np.arange(COUNTIES) % COUNTIES], 1.0, observed=np.zeros(40))
    return model


def autoregressive(rng: np.random.Generator, rho: float, shape: tuple[int, int]) -> np.ndarray:
    """Chains of an AR(1) process with unit variance (correlated draws: a small ESS)."""
    noise = rng.normal(size=shape)
    out = np.empty(shape)
    out[:, 0] = noise[:, 0]
    for t in range(1, shape[1]):
        out[:, t] = rho * out[:, t - 1] + np.sqrt(1 - rho**2) * noise[:, t]
    return out


def posterior_tree(*, seed: int, rho: float, offset: float, divergences: int) -> xr.DataTree:
    """4 chains x 1,000 draws: county 0 an AR(1) of ``rho`` (small ESS), county 39's chains
    ``offset`` apart (r-hat), ``divergences`` divergent draws."""
    rng = np.random.default_rng(seed)
    chains, draws = 4, 1000
    z = rng.normal(size=(chains, draws, COUNTIES))
    z[:, :, 39] += np.arange(chains)[:, None] * offset
    if rho:
        z[:, :, 0] = autoregressive(rng, rho, (chains, draws))
    diverging = np.zeros((chains, draws), dtype=bool)
    diverging[0, :divergences] = True
    posterior = xr.Dataset(
        {
            "mu": (("chain", "draw"), rng.normal(size=(chains, draws))),
            "sigma": (("chain", "draw"), np.abs(rng.normal(size=(chains, draws)))),
            "z": (("chain", "draw", "county"), z),
            "a": (("chain", "draw", "county"), z * 2.0),
        },
        coords={
            "chain": np.arange(chains),
            "draw": np.arange(draws),
            "county": np.arange(COUNTIES),
        },
    )
    stats = xr.Dataset(
        {
            "diverging": (("chain", "draw"), diverging),
            "reached_max_treedepth": (("chain", "draw"), np.zeros((chains, draws), dtype=bool)),
        },
        coords={"chain": np.arange(chains), "draw": np.arange(draws)},
    )
    return xr.DataTree.from_dict({"posterior": posterior, "sample_stats": stats})


def described(found: list) -> list[tuple]:
    return [(w.kind, w.message, w.level) for w in found]


@pytest.mark.parametrize(
    ("case", "differ"),
    [
        # the first part warns of the ESS alone, the second of r-hat then ESS: merged, r-hat
        # comes first (as over the whole posterior), not in the order the parts were listed
        ({"seed": 2, "rho": 0.85, "offset": 0.3, "divergences": 3}, True),
        ({"seed": 0, "rho": 0.0, "offset": 0.0, "divergences": 1}, False),
        ({"seed": 0, "rho": 0.0, "offset": 0.0, "divergences": 0}, False),
    ],
    ids=["ess-first-rhat-second", "divergence-only", "no-warning"],
)
def test_the_parts_give_the_warnings_of_the_whole_posterior(case: dict, differ: bool) -> None:
    from pymc.stats.convergence import run_convergence_checks

    model = county_model()
    tree = posterior_tree(**case)
    parts = posterior_parts(tree, model, 2, minimum=0)
    assert len(parts) == 2
    whole = run_convergence_checks(as_pymc_result(tree), model)
    of_parts = [run_convergence_checks(as_pymc_result(part), model) for part in parts]
    assert (described(of_parts[0]) != described(of_parts[1])) is differ
    assert described(merged_warnings(of_parts)) == described(whole)


def test_every_checked_value_is_in_exactly_one_part() -> None:
    model = county_model()
    tree = posterior_tree(seed=0, rho=0.0, offset=0.0, divergences=0)
    for count in (2, 3, 4):
        parts = posterior_parts(tree, model, count, minimum=0)
        seen: dict[str, list] = {"mu": [], "sigma": [], "z": []}
        for part in parts:
            posterior = part["posterior"]
            assert "a" not in posterior.data_vars  # a deterministic: not checked, not carried
            assert part["sample_stats"]["diverging"].shape == (4, 1000)
            for name in posterior.data_vars:
                seen[name].extend(np.atleast_1d(posterior[name].coords.get("county", [None])))
        assert seen["mu"] == [None] and seen["sigma"] == [None]
        assert sorted(seen["z"]) == list(range(COUNTIES))


def test_small_posteriors_are_checked_whole() -> None:
    model = county_model()
    tree = posterior_tree(seed=0, rho=0.0, offset=0.0, divergences=0)
    assert posterior_parts(tree, model, 2) == [tree]  # 4 x 1,000 x 42 values: below the minimum
    assert posterior_parts(tree, model, 1, minimum=0) == [tree]
