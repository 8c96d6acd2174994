"""The command line against its floors, each side in a fresh process (prints one JSON object).

Issue 22.4's targets, measured side by side, alternating which side runs first, medians:

- ``cloudcache --help`` and ``cloudcache ls`` on a small cache (5 entries): <= 0.3 s wall;
  the floor beside them is a bare ``python -c pass``; ``ls`` is also set beside a script that
  reads the same 5 files' root attributes with ``h5py.File`` (its physical floor: importing
  h5py and NumPy is most of it).
- ``cloudcache ls`` on many local entries (default 2,000) <= 1.3x a script that reads the
  same files' two root attributes with ``h5py.File`` (the physical floor of a listing).
- ``cloudcache verify`` <= 1.3x per entry a script that loads every entry with
  ``xarray.load_datatree(path, engine="netcdf4")``.
- ``cloudcache ls`` on an S3 bucket (a moto server on loopback, in its own process) against
  the same listing read one entry after another through h5py file objects, as the command
  did before it read object-store entries concurrently: straight to the server, and through
  a proxy that holds each request 20 ms (a real store's round trip; on loopback the server's
  own CPU time, not waiting, is what a listing costs).

One tiny entry (2 chains x 200 draws) is sampled with PyMC and copied, each copy re-stamped
with its own key (arrays and checksums stay valid), so every listed entry is real.

    python benchmarks/bench_cli.py [--entries 2000] [--verify-entries 40] [--s3-entries 300]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import secrets
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

TARGET_SECONDS = 0.3
TARGET_RATIO = 1.3

HDF5_FLOOR = """
import sys, h5py
from pathlib import Path
count = 0
for path in sorted(Path(sys.argv[1]).glob("*/*.nc")):
    with h5py.File(path, "r") as handle:
        handle.attrs.get("cloudcache_key"), handle.attrs.get("cloudcache_metadata")
    count += 1
print(count)
"""

NETCDF4_FLOOR = """
import sys, xarray
from pathlib import Path
count = 0
for path in sorted(Path(sys.argv[1]).glob("*/*.nc")):
    xarray.load_datatree(path, engine="netcdf4")
    count += 1
print(count)
"""

S3_SEQUENTIAL_FLOOR = """
import json, sys, fsspec, h5py
fs, root = fsspec.core.url_to_fs(sys.argv[1], **json.loads(sys.argv[2]))
count = 0
for folder in fs.ls(root):
    for path in fs.ls(folder):
        with fs.open(path, "rb") as source, h5py.File(source, "r") as handle:
            handle.attrs.get("cloudcache_key"), handle.attrs.get("cloudcache_metadata")
        count += 1
print(count)
"""


def sample_one(root: Path) -> Path:
    """One real entry, sampled with PyMC through cloudcache."""
    import numpy as np
    import pymc as pm

    import cloudcache as cc

    with pm.Model(name="bench") as model:
        mu = pm.Normal("mu", 0.0, 1.0)
        pm.Normal("y", mu, 1.0, observed=np.linspace(-1.0, 1.0, 50))
    with cc.cloud(model, cache=str(root), backend="pymc", quiet=True):
        pm.sample(200, tune=200, chains=2, cores=1, random_seed=1, progressbar=False)
    return next(root.glob("*/*.nc"))


def restamp_copies(original: Path, target: Path, count: int) -> None:
    """``count`` entries under ``target``: copies of ``original``, each with its own key."""
    import h5py
    import xarray as xr

    from cloudcache.stores.format.netcdf import KEY_ATTR, METADATA_ATTR, attrs_checksum

    with xr.open_datatree(original, engine="h5netcdf") as tree:
        tree = tree.load()
    metadata = json.loads(tree.attrs[METADATA_ATTR])
    label = original.name.rsplit("-", 1)[0]
    folder = target / original.parent.name
    folder.mkdir(parents=True, exist_ok=True)
    for _ in range(count):
        key = secrets.token_hex(16)
        copy = folder / f"{label}-{key[:16]}.nc"
        shutil.copyfile(original, copy)
        with h5py.File(copy, "r+") as handle:
            handle.attrs[KEY_ATTR] = key
            record = dict(metadata, key=key)
            record["attrs_checksum"] = attrs_checksum(tree, record)
            handle.attrs[METADATA_ATTR] = json.dumps(record, sort_keys=True)


def run_once(command: list[str]) -> tuple[float, float]:
    """Wall and CPU seconds (user + system) of one fresh process (it must succeed)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    subprocess.run(command, check=True, capture_output=True)
    elapsed = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return elapsed, cpu


def side_by_side(ours: list[str], floor: list[str], repeats: int) -> dict[str, float]:
    """Medians of ``ours`` and ``floor`` (wall and CPU), alternating which one runs first.

    CPU time is given beside wall time because the machine is shared: under load a process
    waits for a core, which wall time counts and CPU time does not.
    """
    times: dict[str, list[tuple[float, float]]] = {"ours": [], "floor": []}
    run_once(ours), run_once(floor)  # warm the page cache for both
    for repeat in range(repeats):
        order = [("ours", ours), ("floor", floor)]
        for name, command in order if repeat % 2 == 0 else order[::-1]:
            times[name].append(run_once(command))

    def median(name: str, index: int) -> float:
        return statistics.median(sample[index] for sample in times[name])

    return {
        "seconds": round(median("ours", 0), 3),
        "floor_seconds": round(median("floor", 0), 3),
        "ratio": round(median("ours", 0) / median("floor", 0), 3),
        "cpu_seconds": round(median("ours", 1), 3),
        "floor_cpu_seconds": round(median("floor", 1), 3),
        "cpu_ratio": round(median("ours", 1) / median("floor", 1), 3),
        "runs": repeats,
    }


class LatencyProxy:
    """A TCP proxy on loopback that holds every client-to-server chunk ``delay`` seconds:
    each request pays a network round trip, as it would against a real object store."""

    def __init__(self, target_port: int, delay: float):
        self.target_port, self.delay = target_port, delay
        self.port = 0
        self.loop = asyncio.new_event_loop()
        ready = threading.Event()
        threading.Thread(target=self._serve, args=(ready,), daemon=True).start()
        ready.wait(30)

    def _serve(self, ready: threading.Event) -> None:
        asyncio.set_event_loop(self.loop)
        server = self.loop.run_until_complete(asyncio.start_server(self._handle, "127.0.0.1", 0))
        self.port = server.sockets[0].getsockname()[1]
        ready.set()
        self.loop.run_forever()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        upstream_reader, upstream_writer = await asyncio.open_connection(
            "127.0.0.1", self.target_port
        )

        async def pipe(source: asyncio.StreamReader, target: asyncio.StreamWriter, delay: float):
            try:
                while data := await source.read(1 << 16):
                    if delay:
                        await asyncio.sleep(delay)
                    target.write(data)
                    await target.drain()
            except ConnectionError:
                pass
            finally:
                target.close()

        await asyncio.gather(
            pipe(reader, upstream_writer, self.delay), pipe(upstream_reader, writer, 0.0)
        )

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)


def s3_figures(entries: list[Path], repeats: int, latency_ms: float) -> dict[str, object]:
    """``ls`` of a moto S3 bucket holding ``entries``, against the sequential read: straight
    to the server on loopback, and through a proxy adding ``latency_ms`` per request."""
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
    import fsspec
    from fixtures_s3 import MotoServer, free_port, make_bucket

    # The server runs in its own process, so it does not share a core's GIL with the client.
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    server = MotoServer(process, f"http://127.0.0.1:{port}")
    proxy = None
    try:
        wait_for_port(port)
        options = server.storage_options()
        url = f"s3://{make_bucket(server)}/cache"
        fs = fsspec.filesystem("s3", **options)
        for path in entries:
            fs.pipe_file(f"{url}/{path.parent.name}/{path.name}", path.read_bytes())
        proxy = LatencyProxy(port, latency_ms / 1000)
        figures: dict[str, object] = {"entries": len(entries), "runs": repeats}
        for name, endpoint_port in (("loopback", port), (f"latency_{latency_ms:g}ms", proxy.port)):
            endpoint = {
                **options["client_kwargs"],
                "endpoint_url": f"http://127.0.0.1:{endpoint_port}",
            }
            reached = {**options, "client_kwargs": endpoint}
            cli = [sys.executable, "-m", "cloudcache", "ls", "--json", "-c", url]
            for option, value in reached.items():
                cli += ["-o", f"{option}={value if isinstance(value, str) else json.dumps(value)}"]
            listed = json.loads(subprocess.run(cli, check=True, capture_output=True).stdout)
            assert len(listed) == len(entries) and not any(row["error"] for row in listed)
            floor = [sys.executable, "-c", S3_SEQUENTIAL_FLOOR, url, json.dumps(reached)]
            measured = side_by_side(cli, floor, repeats)
            figures[name] = {
                "ls_json_seconds": measured["seconds"],
                "sequential_read_seconds": measured["floor_seconds"],
                "speedup": round(measured["floor_seconds"] / measured["seconds"], 2),
            }
        return figures
    finally:
        if proxy is not None:
            proxy.stop()
        process.terminate()
        process.wait(timeout=30)


def wait_for_port(port: int, seconds: float = 60.0) -> None:
    """Return once something listens on ``127.0.0.1:port``."""
    deadline = time.monotonic() + seconds
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--entries", type=int, default=2000)
    parser.add_argument("--verify-entries", type=int, default=40)
    parser.add_argument("--s3-entries", type=int, default=300, help="0 to skip the S3 part")
    parser.add_argument("--s3-latency-ms", type=float, default=20.0)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="cloudcache-bench-cli-"))
    cli = [sys.executable, "-m", "cloudcache"]
    try:
        original = sample_one(work / "sampled")
        caches = {
            "small": 5,
            "large": args.entries,
            "verify": args.verify_entries,
            "s3": args.s3_entries,
        }
        for name, count in caches.items():
            restamp_copies(original, work / name, count)
        bare = [sys.executable, "-c", "pass"]
        figures: dict[str, object] = {
            "entry_bytes": original.stat().st_size,
            "help": side_by_side([*cli, "--help"], bare, args.repeats),
            "ls_small": side_by_side([*cli, "ls", "-c", str(work / "small")], bare, args.repeats),
            "ls_small_vs_hdf5": side_by_side(
                [*cli, "ls", "-c", str(work / "small")],
                [sys.executable, "-c", HDF5_FLOOR, str(work / "small")],
                args.repeats,
            ),
        }
        hdf5_floor = [sys.executable, "-c", HDF5_FLOOR, str(work / "large")]
        figures["ls_large"] = {
            "entries": args.entries,
            "table": side_by_side(
                [*cli, "ls", "-c", str(work / "large")], hdf5_floor, args.repeats
            ),
            "json": side_by_side(
                [*cli, "ls", "--json", "-c", str(work / "large")], hdf5_floor, args.repeats
            ),
        }
        netcdf4_floor = [sys.executable, "-c", NETCDF4_FLOOR, str(work / "verify")]
        verify = side_by_side(
            [*cli, "verify", "-c", str(work / "verify")], netcdf4_floor, max(args.repeats // 2, 1)
        )
        count = args.verify_entries
        verify["entries"] = count
        for field in ("seconds", "floor_seconds", "cpu_seconds", "floor_cpu_seconds"):
            verify[f"{field}_per_entry"] = round(verify[field] / count, 4)
        figures["verify"] = verify
        if args.s3_entries:
            entries = sorted((work / "s3").glob("*/*.nc"))
            figures["ls_s3"] = s3_figures(entries, max(args.repeats // 2, 1), args.s3_latency_ms)
        figures["targets"] = {
            "help_and_small_ls_seconds": TARGET_SECONDS,
            "ls_large_and_verify_ratio": TARGET_RATIO,
        }
        figures["load_average_1min"] = round(os.getloadavg()[0], 2)
        figures["cpu_count"] = os.cpu_count()
        print(json.dumps(figures, indent=2))
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
