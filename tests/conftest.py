"""Shared fixtures: tiny real models, one real sampled tree, isolated caches, a shared JAX cache."""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

# One persistent JAX compilation cache for the whole test run (and its subprocesses), set before
# anything imports jax; one per Python, as `./dev test` runs PyMC 5 and PyMC 6 side by side.
_PYTHON = f"{sys.version_info[0]}.{sys.version_info[1]}"
_JAX_CACHE = Path(tempfile.gettempdir()) / f"cloudcache-test-jax-cache-py{_PYTHON}"
os.environ.setdefault("CLOUDCACHE_JAX_CACHE_DIR", str(_JAX_CACHE))
os.environ.setdefault("PYTENSOR_FLAGS", "")

import pymc as pm  # noqa: E402
import pytest  # noqa: E402
import xarray as xr  # noqa: E402
from tiny_models import TINY, tiny_model  # noqa: E402

from cloudcache.compat.pymc import as_tree  # noqa: E402
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


#: The one list of what also runs on PyMC 5 / Python 3.11: test files and folders directly under
#: tests/. Their tests get the ``pymc5`` marker, and ``./dev test`` runs ``pytest -m pymc5`` in
#: ``.venv-pymc5`` after the full suite on PyMC 6. On PyMC 5 test_gallery.py runs its
#: ``PYMC5_CASES`` subset (about 2 minutes; all 28 models would take about 11).
PYMC5_TESTS = frozenset(
    {
        "test_key_matrix.py",
        "test_key_content.py",
        "mutation",
        "test_session.py",
        "test_predictive.py",
        "test_store_contract.py",
        "test_object_store.py",
        "test_single_flight.py",
        "test_entry_format.py",
        "test_numpyro_backend.py",
        "test_nutpie_backend.py",
        "test_validation.py",
        "test_notebooks.py",
        "test_cli.py",
        "test_audit.py",
        "test_pymc_versions.py",
        "test_gallery.py",
        "test_compat.py",
        "test_convergence_parts.py",
        "test_process_settings.py",
        "test_import_graph.py",
        "test_inference_calls.py",
        "test_extras_calls.py",
    }
)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "pymc5: also runs on PyMC 5 (see PYMC5_TESTS)")


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark the tests in PYMC5_TESTS ``pymc5`` (before ``-m`` selects)."""
    tests_dir = Path(__file__).parent
    for item in items:
        if not item.path.is_relative_to(tests_dir):
            continue
        if item.path.relative_to(tests_dir).parts[0] in PYMC5_TESTS:
            item.add_marker(pytest.mark.pymc5)
