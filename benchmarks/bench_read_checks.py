"""The cost of a read's safety checks: ``decode_entry`` against a plain ``load_datatree``.

Usage: python benchmarks/bench_read_checks.py [--repeats N]

Writes an entry shaped like the radon posterior (4 chains x 2000 draws, ~100 variables,
~12.6 MB), then alternates the two reads of the same file in one process (both after the
NetCDF library's first-open cost) and prints the medians and their ratio as JSON. The
difference is the regular-file check, the header check (both keys, no outside references,
declared sizes) and the two checksums.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import tempfile
import time
from pathlib import Path

import h5py
import numpy as np
import xarray as xr

from cloudcache.stores.format.entryfile import checked_entry_file
from cloudcache.stores.format.inspection import check_header
from cloudcache.stores.format.netcdf import ENGINE, decode_entry, encode_entry

KEY = "ab" * 16


def radon_shaped() -> xr.DataTree:
    rng = np.random.default_rng(0)
    dims = ("chain", "draw", "county")
    posterior = xr.Dataset({f"v{i}": (dims, rng.normal(size=(4, 2000, 2))) for i in range(90)})
    stats = xr.Dataset({f"s{i}": (dims[:2], rng.normal(size=(4, 2000))) for i in range(15)})
    return xr.DataTree.from_dict({"/posterior": posterior, "/sample_stats": stats})


def median_ms(action, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        action()
        times.append(time.perf_counter() - started)
    return 1000 * statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=15)
    repeats = parser.parse_args().repeats

    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "entry.nc"
        path.write_bytes(encode_entry(radon_shaped(), KEY, {}))
        size = path.stat().st_size

        def plain() -> None:
            xr.load_datatree(path, engine=ENGINE)

        def checked() -> None:
            decode_entry(str(path), KEY)

        def header_only() -> None:
            real, length = checked_entry_file(str(path))
            with h5py.File(real, "r") as handle:
                check_header(handle, KEY, length)

        for action in (plain, checked, header_only):
            action()  # first-open costs
        plain_ms, checked_ms = [], []
        for _ in range(3):
            plain_ms.append(median_ms(plain, repeats))
            checked_ms.append(median_ms(checked, repeats))
        header_ms = median_ms(header_only, repeats)
    result = {
        "entry_bytes": size,
        "load_datatree_ms": round(min(plain_ms), 2),
        "decode_entry_ms": round(min(checked_ms), 2),
        "ratio": round(min(checked_ms) / min(plain_ms), 3),
        "file_and_header_checks_ms": round(header_ms, 2),
        "machine": f"{platform.machine()}, Python {platform.python_version()}",
    }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
