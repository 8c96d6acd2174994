"""Small, realistic models with data generated from a fixed seed (nothing is downloaded)."""

from __future__ import annotations

import numpy as np
import pymc as pm

RADON_COUNTIES = 85
RADON_OBSERVATIONS = 919


def radon_data(seed: int = 20240611) -> dict[str, np.ndarray]:
    """Radon-shaped data: 919 homes in 85 counties, a floor indicator, log radon levels."""
    rng = np.random.default_rng(seed)
    county = np.sort(rng.integers(0, RADON_COUNTIES, RADON_OBSERVATIONS))
    floor = rng.binomial(1, 0.17, RADON_OBSERVATIONS).astype("float64")
    county_effect = rng.normal(1.35, 0.32, RADON_COUNTIES)
    log_radon = county_effect[county] - 0.66 * floor + rng.normal(0, 0.73, RADON_OBSERVATIONS)
    return {"county": county, "floor": floor, "log_radon": log_radon}


def radon_model(
    data: dict[str, np.ndarray] | None = None, name: str = "radon", keep_mu: bool = False
) -> pm.Model:
    """Varying-intercept radon model (non-centred), with ``floor`` as ``pm.Data``.

    ``keep_mu=True`` stores the linear predictor as a deterministic over all 919 homes, which
    makes a 4 x 2000 posterior about 60 MB (the large-entry case of the benchmarks).
    """
    data = radon_data() if data is None else data
    coords = {"county": np.arange(RADON_COUNTIES), "obs": np.arange(len(data["log_radon"]))}
    with pm.Model(coords=coords, name=name) as model:
        floor = pm.Data("floor", data["floor"], dims="obs")
        mu_a = pm.Normal("mu_a", 0.0, 10.0)
        sigma_a = pm.HalfNormal("sigma_a", 5.0)
        z_a = pm.Normal("z_a", 0.0, 1.0, dims="county")
        a = pm.Deterministic("a", mu_a + sigma_a * z_a, dims="county")
        b = pm.Normal("b", 0.0, 10.0)
        sigma = pm.HalfNormal("sigma", 5.0)
        mu = a[data["county"]] + b * floor
        if keep_mu:
            mu = pm.Deterministic("mu", mu, dims="obs")
        pm.Normal("log_radon", mu, sigma, observed=data["log_radon"], dims="obs")
    return model


def eight_schools_model(name: str = "eight_schools") -> pm.Model:
    """The classic eight-schools hierarchical model (Rubin 1981), non-centred."""
    effects = np.array([28.0, 8.0, -3.0, 7.0, -1.0, 1.0, 18.0, 12.0])
    sigmas = np.array([15.0, 10.0, 16.0, 11.0, 9.0, 11.0, 10.0, 18.0])
    with pm.Model(coords={"school": np.arange(8)}, name=name) as model:
        mu = pm.Normal("mu", 0.0, 5.0)
        tau = pm.HalfCauchy("tau", 5.0)
        theta_tilde = pm.Normal("theta_tilde", 0.0, 1.0, dims="school")
        theta = pm.Deterministic("theta", mu + tau * theta_tilde, dims="school")
        pm.Normal("y", theta, sigmas, observed=effects, dims="school")
    return model


def varying_slopes_model(n_obs: int, groups: int = 100, seed: int = 5) -> pm.Model:
    """Varying intercepts and slopes over ``groups`` (index gathers); ``x``, ``y`` are ``pm.Data``.

    At ``n_obs=100_000`` it is the large model of the backend benchmarks and of the auto rule.
    """
    rng = np.random.default_rng(seed)
    group = rng.integers(0, groups, n_obs)
    x = rng.normal(size=n_obs)
    a, b = rng.normal(1.0, 0.5, groups), rng.normal(-0.5, 0.3, groups)
    y = a[group] + b[group] * x + rng.normal(0, 1.0, n_obs)
    with pm.Model(coords={"group": np.arange(groups)}, name=f"slopes{n_obs}") as model:
        xd = pm.Data("x", x)
        yd = pm.Data("y", y)
        mu_a, mu_b = pm.Normal("mu_a", 0, 5), pm.Normal("mu_b", 0, 5)
        sd_a, sd_b = pm.HalfNormal("sd_a", 2), pm.HalfNormal("sd_b", 2)
        za = pm.Normal("za", 0, 1, dims="group")
        zb = pm.Normal("zb", 0, 1, dims="group")
        sigma = pm.HalfNormal("sigma", 2)
        mu = (mu_a + sd_a * za)[group] + (mu_b + sd_b * zb)[group] * xd
        pm.Normal("obs", mu, sigma, observed=yd)
    return model
