"""Shared fixtures for the fault-injection tests: a real tiny posterior, trial counts, figures.

Trial counts are modest by default (CI); ``scripts/reliability_full.py`` raises them through
``CLOUDCACHE_RELIABILITY_SCALE`` and collects the figures every test reports through
:func:`record_trials` into the JSON file named by ``CLOUDCACHE_RELIABILITY_REPORT``.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import xarray as xr

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import reliability_workers as workers  # noqa: E402

SCALE = float(os.environ.get("CLOUDCACHE_RELIABILITY_SCALE", "1"))
REPORT = os.environ.get("CLOUDCACHE_RELIABILITY_REPORT")


def trials(ci_count: int) -> int:
    """``ci_count`` scaled by ``CLOUDCACHE_RELIABILITY_SCALE`` (the full run uses a larger one)."""
    return max(1, round(ci_count * SCALE))


def record_trials(guarantee: str, case: str, count: int, failures: int, **figures: object) -> None:
    """Append one line of figures for docs/reliability.md (only when a report file is set)."""
    if not REPORT:
        return
    line = {"guarantee": guarantee, "case": case, "trials": count, "failures": failures}
    line.update(figures)
    with open(REPORT, "a", encoding="utf-8") as handle:
        handle.write(json.dumps(line) + "\n")


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
