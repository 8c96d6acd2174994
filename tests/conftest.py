"""Shared fixtures: tiny real models, one real sampled tree, isolated caches, a shared JAX cache."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

# One persistent JAX compilation cache for the whole test run (and its subprocesses), set before
# anything imports jax.
_JAX_CACHE = Path(tempfile.gettempdir()) / "cloudcache-test-jax-cache"
os.environ.setdefault("CLOUDCACHE_JAX_CACHE_DIR", str(_JAX_CACHE))
os.environ.setdefault("PYTENSOR_FLAGS", "")

import numpy as np  # noqa: E402
import pymc as pm  # noqa: E402
import pytest  # noqa: E402
import xarray as xr  # noqa: E402

from cloudcache.stores.resolve import process_memory_store  # noqa: E402

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


@pytest.fixture(autouse=True)
def _isolated_memory_cache():
    """Every test starts with an empty process-wide memory store."""
    process_memory_store().clear()
    yield
    process_memory_store().clear()


@pytest.fixture(scope="session")
def sampled_tree() -> xr.DataTree:
    """One real posterior from PyMC's sampler, sampled once per test session."""
    return pm.sample(model=tiny_model(), nuts_sampler="pymc", **TINY)
