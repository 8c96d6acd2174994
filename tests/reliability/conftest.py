"""Shared fixtures for the fault-injection tests: a real tiny posterior, trial counts, figures.

Trial counts and figures live in ``reliability_figures`` (a uniquely named module: test
modules must not import ``conftest``, which is ambiguous next to tests/conftest.py).
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import xarray as xr

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import reliability_workers as workers  # noqa: E402


@pytest.fixture(scope="session")
def tiny_tree() -> xr.DataTree:
    """A real posterior from a real (tiny) PyMC run, produced once per test session."""
    return workers.sample_tiny(seed=1)


@pytest.fixture(scope="session")
def tiny_tree_file(tiny_tree: xr.DataTree, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``tiny_tree`` saved as a plain NetCDF file, for worker processes to load."""
    path = tmp_path_factory.mktemp("tree") / "tiny.nc"
    tiny_tree.to_netcdf(path, engine="h5netcdf")
    return path


@pytest.fixture(scope="module")
def zygote() -> Iterator[workers.Zygote]:
    """A process that imported cloudcache once and forks real worker processes on request."""
    process = workers.Zygote.start()
    try:
        yield process
    finally:
        process.close()
