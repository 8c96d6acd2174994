"""How long `cloudcache ls` takes on a cache of 1,000 entries (local directory and memory://).

One tiny entry is sampled with PyMC, then copied 1,000 times with a fresh key stamped into each
copy's root attributes (the arrays and their checksum stay valid). Prints one JSON object.

    python benchmarks/bench_cli.py [--entries 1000]
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import h5py
import numpy as np
import pymc as pm
import xarray as xr
from typer.testing import CliRunner

import cloudcache as cc
from cloudcache.cli import app
from cloudcache.stores.format.netcdf import KEY_ATTR, METADATA_ATTR, attrs_checksum
from cloudcache.stores.maintenance.catalog import Catalog

VERIFY_SAMPLE = 50


def sample_one(root: Path) -> Path:
    with pm.Model(name="bench") as model:
        mu = pm.Normal("mu", 0.0, 1.0)
        pm.Normal("y", mu, 1.0, observed=np.linspace(-1.0, 1.0, 50))
    with cc.cloud(model, cache=str(root), backend="pymc", quiet=True):
        pm.sample(200, tune=200, chains=2, cores=1, random_seed=1, progressbar=False)
    return next(root.glob("*/*.nc"))


def restamp_copies(original: Path, count: int) -> None:
    """``count`` copies of ``original`` beside it, each with its own key in name and attrs."""
    with xr.open_datatree(original, engine="h5netcdf") as tree:
        tree = tree.load()
    metadata = json.loads(tree.attrs[METADATA_ATTR])
    label = original.name.rsplit("-", 1)[0]
    for _ in range(count - 1):
        key = secrets.token_hex(16)
        target = original.with_name(f"{label}-{key[:16]}.nc")
        shutil.copyfile(original, target)
        with h5py.File(target, "r+") as handle:
            handle.attrs[KEY_ATTR] = key
            record = dict(metadata, key=key)
            record["attrs_checksum"] = attrs_checksum(tree, record)
            handle.attrs[METADATA_ATTR] = json.dumps(record, sort_keys=True)


def timed(function, repeats: int = 3) -> float:
    best = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        function()
        best = min(best, time.perf_counter() - started)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--entries", type=int, default=1000)
    count = parser.parse_args().entries
    root = Path(tempfile.mkdtemp(prefix="cloudcache-bench-cli-")) / "cache"
    try:
        original = sample_one(root)
        restamp_copies(original, count)
        runner = CliRunner()

        def ls_local() -> None:
            result = runner.invoke(app, ["ls", "-c", str(root), "--json"])
            assert result.exit_code == 0 and len(json.loads(result.stdout)) == count

        def ls_table() -> None:
            assert runner.invoke(app, ["ls", "-c", str(root)]).exit_code == 0

        memory = Catalog("memory://bench/cache")
        for entry in Catalog(root).entries(with_metadata=False):
            memory.write_bytes(entry.relative_path, Path(entry.path).read_bytes())

        def ls_memory() -> None:
            entries = Catalog("memory://bench/cache").entries()
            assert len(entries) == count and not any(e.error for e in entries)

        started = time.perf_counter()
        process = subprocess.run(
            [sys.executable, "-m", "cloudcache", "ls", "--json", "-c", str(root)],
            capture_output=True,
            check=True,
        )
        subprocess_seconds = time.perf_counter() - started
        assert len(json.loads(process.stdout)) == count
        # verify loads every array (xarray), so it is timed per entry on a sample of entries.
        local = Catalog(root)
        sample = local.entries(with_metadata=False)[:VERIFY_SAMPLE]
        started = time.perf_counter()
        problems = [local.verify(entry) for entry in sample]
        assert not any(problems), problems[:3]
        verify_per_entry = (time.perf_counter() - started) / len(sample)
        figures = {
            "entries": count,
            "entry_bytes": original.stat().st_size,
            "ls_json_local_seconds": round(timed(ls_local), 3),
            "ls_table_local_seconds": round(timed(ls_table), 3),
            "catalog_memory_url_seconds": round(timed(ls_memory), 3),
            "ls_subprocess_wall_seconds": round(subprocess_seconds, 3),
            "verify_seconds_per_entry": round(verify_per_entry, 4),
            "load_average_1min": round(os.getloadavg()[0], 2),
            "cpu_count": os.cpu_count(),
        }
        print(json.dumps(figures, indent=2))
    finally:
        shutil.rmtree(root.parent, ignore_errors=True)


if __name__ == "__main__":
    main()
