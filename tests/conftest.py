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

import pymc as pm  # noqa: E402
import pytest  # noqa: E402
import xarray as xr  # noqa: E402
from tiny_models import TINY, tiny_model  # noqa: E402

from cloudcache.pymc_compat import as_tree  # noqa: E402
from cloudcache.stores.resolve import process_memory_store  # noqa: E402


@pytest.fixture(autouse=True)
def _isolated_memory_cache():
    """Every test starts with an empty process-wide memory store."""
    process_memory_store().clear()
    yield
    process_memory_store().clear()


@pytest.fixture(scope="session")
def sampled_tree() -> xr.DataTree:
    """One real posterior from PyMC's sampler, sampled once per test session, as a DataTree."""
    return as_tree(pm.sample(model=tiny_model(), nuts_sampler="pymc", **TINY))
