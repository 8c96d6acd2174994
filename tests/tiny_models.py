"""A tiny real model and the sampler call the tests share (`from tiny_models import ...`)."""

from __future__ import annotations

import numpy as np
import pymc as pm

TINY = {"draws": 30, "tune": 30, "chains": 1, "random_seed": 1, "progressbar": False}


def tiny_model(name: str = "tiny", shift: float = 0.0) -> pm.Model:
    """Normal mean/scale model with a pm.Data covariate, rebuilt identically on every call."""
    rng = np.random.default_rng(7)
    x = rng.normal(size=20)
    y = 0.5 + 1.5 * x + rng.normal(size=20) + shift
    with pm.Model(name=name, coords={"obs": np.arange(20)}) as model:
        xd = pm.Data("x", x, dims="obs")
        a = pm.Normal("a", 0.0, 2.0)
        b = pm.Normal("b", 0.0, 2.0)
        sigma = pm.HalfNormal("sigma", 1.0)
        pm.Normal("y", a + b * xd, sigma, observed=y, dims="obs")
    return model
