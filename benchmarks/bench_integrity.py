"""Cost of the integrity check on a disk hit; prints JSON.

A disk hit is ``FileStore.get``: open the ``.nc`` file, load every array, verify the stored key,
the content checksum (XXH3-128 over every array) and the attribute/metadata checksum. This
script times the whole hit and the verification alone, for entries of a few sizes shaped like
a real posterior (chain x draw x group arrays plus sample stats).

    python benchmarks/bench_integrity.py [--repeats 15]
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import xarray as xr

from cloudcache.stores.base import Entry, EntryRef
from cloudcache.stores.files import FileStore
from cloudcache.stores.format.netcdf import attrs_checksum, read_metadata, tree_checksum

SIZES = {
    "small (4x500, 10 groups)": (500, 10),
    "radon-like (4x1000, 85 groups)": (1000, 85),
    "large (4x2000, 400 groups)": (2000, 400),
}


def posterior_like(draws: int, groups: int, seed: int = 0) -> xr.DataTree:
    """A DataTree shaped like ``pm.sample`` output: posterior, sample_stats, observed_data."""
    rng = np.random.default_rng(seed)
    chains = 4
    coords = {"chain": np.arange(chains), "draw": np.arange(draws), "group": np.arange(groups)}
    posterior = xr.Dataset(
        {
            "alpha": (("chain", "draw", "group"), rng.standard_normal((chains, draws, groups))),
            "beta": (("chain", "draw"), rng.standard_normal((chains, draws))),
            "mu": (("chain", "draw", "group"), rng.standard_normal((chains, draws, groups))),
            "sigma": (("chain", "draw"), rng.random((chains, draws))),
        },
        coords=coords,
        attrs={"inference_library": "pymc", "sample_dims": ["chain", "draw"]},
    )
    stats = xr.Dataset(
        {
            name: (("chain", "draw"), rng.random((chains, draws)))
            for name in ("lp", "energy", "step_size", "tree_depth", "acceptance_rate", "n_steps")
        },
        coords={"chain": coords["chain"], "draw": coords["draw"]},
    )
    observed = xr.Dataset({"y": ("obs", rng.standard_normal(919))})
    return xr.DataTree.from_dict(
        {"posterior": posterior, "sample_stats": stats, "observed_data": observed}
    )


def median_seconds(function, repeats: int) -> float:  # type: ignore[no-untyped-def]
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        function()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def measure(draws: int, groups: int, repeats: int, directory: Path) -> dict[str, float]:
    store = FileStore(directory)
    ref = EntryRef(key="ab" * 16, slug="bench", label=f"draws{draws}_groups{groups}")
    store.put(ref, Entry(posterior_like(draws, groups), {"note": "benchmark"}))
    store.get(ref)  # warm the page cache and the libraries
    hit = median_seconds(lambda: store.get(ref), repeats)
    with xr.open_datatree(store.path_of(ref), engine="h5netcdf") as opened:
        loaded = opened.load()
    metadata = read_metadata(loaded)
    check = median_seconds(
        lambda: (tree_checksum(loaded), attrs_checksum(loaded, metadata)), repeats
    )
    return {
        "entry_mb": round(Path(store.path_of(ref)).stat().st_size / 1e6, 2),
        "disk_hit_ms": round(hit * 1000, 2),
        "integrity_check_ms": round(check * 1000, 2),
        "check_share_of_hit_percent": round(100 * check / hit, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=15)
    repeats = parser.parse_args().repeats
    with tempfile.TemporaryDirectory() as directory:
        results = {
            name: measure(draws, groups, repeats, Path(directory) / str(index))
            for index, (name, (draws, groups)) in enumerate(SIZES.items())
        }
    print(
        json.dumps(
            {"benchmark": "integrity_check", "repeats": repeats, "results": results}, indent=2
        )
    )


if __name__ == "__main__":
    main()
