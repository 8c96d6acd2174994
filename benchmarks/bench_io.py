"""Entry reads and writes against their floors, in fresh processes. Prints one JSON object.

Usage: python benchmarks/bench_io.py [--sizes 10 200 1500] [--processes N]

For each entry size (MB; a posterior shaped like radon's, 4 chains x 2000 draws, ~100
variables, plus sample stats), side by side in fresh processes:

- **disk hit**: ``FileStore.lookup`` (regular-file check, header check, netCDF4 load, both
  checksums) against ``xarray.load_datatree(path, engine="netcdf4")`` of the same file, in the
  same process after the NetCDF libraries' first-open cost, alternating which goes first from
  one process to the next; wall and CPU (``process_time``) ratios, medians over processes.
- **peak memory of a hit**: the rise of the process's peak resident memory (``VmHWM``, reset
  first) over its resident memory before the read, one read per process, as a fraction of
  the file.
- **write**: ``FileStore.put`` (checksums, netCDF4 streaming to a temporary file, fsync,
  rename) against ``tree.to_netcdf(path, engine="netcdf4")`` (no fsync) in the same fresh
  process, alternating which goes first, each after ``os.sync()`` (a write right after
  another would wait on the other's dirty pages); and the rise of each write's peak resident
  memory, as a fraction of the entry.
- **memory tier**: a memory hit back to back (``TieredStore.lookup``, memory in front of a
  directory), and the memory a miss's ``put`` adds beyond the tree itself once every array
  of both trees has been read (proportional set size, which counts a page shared by two
  mappings once; after ``malloc_trim``).

Ratios are the robust figures when other jobs share the machine; the load average is printed.

``--prefault``: on a virtual machine whose free memory goes back to the host (free page
reporting), the read that first touches fresh memory can spend seconds of system time in the
kernel's page zeroing (the host backs each page anew): at 1.5 GB that swings either read by
1-5 s whichever it is. With the flag, each timed read comes right after a scratch array of
1.1x the file is filled and freed, so both reads reuse memory the host has just backed.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile

PRELUDE = """
import json, os, resource, sys, time
import numpy as np, xarray as xr
from cloudcache.stores import FileStore, MemoryStore, TieredStore
from cloudcache.stores.base import Entry, EntryRef

KEY = "c0ffee" * 5 + "ab"
REF = EntryRef(KEY, "bench", "draws2000_tune1000_chains4")

def resident():
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")

def reset_peak():
    with open("/proc/self/clear_refs", "w") as clear:
        clear.write("5")  # Linux: the peak resident size (VmHWM) starts again from now

def peak():
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024

def tree_of(megabytes):
    rng = np.random.default_rng(0)
    width = max(1, round(megabytes * 1e6 / (8 * 4 * 2000 * 90)))
    dims = ("chain", "draw", "item")
    posterior = xr.Dataset(
        {f"v{i}": (dims, rng.normal(size=(4, 2000, width))) for i in range(90)},
        coords={"chain": np.arange(4), "draw": np.arange(2000), "item": np.arange(width)},
        attrs={"created_at": "2026-12-06T06:00:00", "inference_library": "pymc"},
    )
    stats = xr.Dataset(
        {f"s{i}": (dims[:2], rng.normal(size=(4, 2000))) for i in range(14)}
        | {"diverging": (dims[:2], np.zeros((4, 2000), dtype=bool))},
        coords={"chain": np.arange(4), "draw": np.arange(2000)},
    )
    return xr.DataTree.from_dict({"/posterior": posterior, "/sample_stats": stats})

def warm(folder):
    small = tree_of(0.01)
    small.to_netcdf(os.path.join(folder, "warm.nc"), engine="netcdf4")
    xr.load_datatree(os.path.join(folder, "warm.nc"), engine="netcdf4")
    store = FileStore(os.path.join(folder, "warm"))
    store.put(REF, Entry(small, {}))
    store.lookup(REF)

def timed(action):
    started, cpu = time.perf_counter(), time.process_time()
    action()
    return time.perf_counter() - started, time.process_time() - cpu
"""

READ = (
    PRELUDE
    + """
folder, path, first, mode, prefault = sys.argv[1:5] + [int(sys.argv[5])]
warm(folder)
store = FileStore(os.path.join(folder, "store"))
def hit():
    assert store.lookup(REF).entry is not None
def floor():
    xr.load_datatree(path, engine="netcdf4")
if mode == "memory":
    action = hit if first == "hit" else floor
    reset_peak()
    before = resident()
    action()
    print(json.dumps({"op": first, "peak_rise": peak() - before}))
else:
    times = {}
    for action in [hit, floor] if first == "hit" else [floor, hit]:
        if prefault:  # memory the kernel has just had backed, for the read to reuse
            np.ones(prefault // 8).sum()
        times[action.__name__] = timed(action)
    print(json.dumps(times))
"""
)

WRITE = (
    PRELUDE
    + """
folder, megabytes, first = sys.argv[1], float(sys.argv[2]), sys.argv[3]
warm(folder)
tree = tree_of(megabytes)
store = FileStore(os.path.join(folder, f"written-{os.getpid()}"))  # a new entry, as a miss writes
def put():
    store.put(REF, Entry(tree, {"kind": "sample"}))
def floor():
    tree.to_netcdf(os.path.join(folder, f"plain-{os.getpid()}.nc"), engine="netcdf4")
result = {}
for action in [put, floor] if first == "put" else [floor, put]:
    os.sync()  # no earlier write's dirty pages left for this one to wait on
    reset_peak()
    before = resident()
    seconds = timed(action)
    result[action.__name__] = {"seconds": seconds, "peak_rise": peak() - before}
print(json.dumps(result))
"""
)

MEMORY_TIER = (
    PRELUDE
    + """
import ctypes, statistics
folder, megabytes = sys.argv[1], float(sys.argv[2])
warm(folder)
tree = tree_of(megabytes)

def proportional():
    ctypes.CDLL("libc.so.6").malloc_trim(0)  # freed heap pages back to the system first
    with open("/proc/self/smaps_rollup") as rollup:
        for line in rollup:
            if line.startswith("Pss:"):
                return int(line.split()[1]) * 1024

def touch(tree):
    return sum(float(v.values.sum()) for n in tree.subtree for v in n.dataset.data_vars.values())

memory = MemoryStore(4 * 1024**3)
tiers = TieredStore([memory, FileStore(os.path.join(folder, "tiered"))])
touch(tree)
before = proportional()
tiers.put(REF, Entry(tree, {}))
times = []
for _ in range(30):
    started = time.perf_counter()
    found = tiers.lookup(REF)
    times.append(time.perf_counter() - started)
    assert found.entry is not None and found.entry.location == "memory"
assert touch(found.entry.tree) == touch(tree)  # every page of both trees read
print(json.dumps({"memory_hit_ms": 1000 * statistics.median(times),
                  "miss_keeps_bytes": proportional() - before, "tree": int(tree.nbytes)}))
"""
)


def run(code: str, *args: object) -> dict:
    out = subprocess.run(
        [sys.executable, "-c", code, *map(str, args)], capture_output=True, text=True, check=False
    )
    if out.returncode:
        raise RuntimeError(out.stderr[-3000:])
    return json.loads(out.stdout.strip().splitlines()[-1])


def ratios(runs: list[dict], ours: str, floor: str) -> dict:
    wall = [r[ours][0] / r[floor][0] for r in runs]
    cpu = [r[ours][1] / r[floor][1] for r in runs]
    return {
        f"{ours}_ms": round(1000 * statistics.median(r[ours][0] for r in runs), 1),
        "floor_ms": round(1000 * statistics.median(r[floor][0] for r in runs), 1),
        "ratio_wall": round(statistics.median(wall), 3),
        "ratio_wall_all": [round(x, 3) for x in wall],
        "ratio_cpu": round(statistics.median(cpu), 3),
        "ratio_cpu_all": [round(x, 3) for x in cpu],
    }


def write_ratios(runs: list[dict]) -> dict:
    """Medians over processes of the write times and their ratio in each process."""
    wall = [r["put"]["seconds"][0] / r["floor"]["seconds"][0] for r in runs]
    cpu = [r["put"]["seconds"][1] / r["floor"]["seconds"][1] for r in runs]
    return {
        "put_ms": round(1000 * statistics.median(r["put"]["seconds"][0] for r in runs), 1),
        "floor_ms": round(1000 * statistics.median(r["floor"]["seconds"][0] for r in runs), 1),
        "ratio_wall": round(statistics.median(wall), 3),
        "ratio_wall_all": [round(x, 3) for x in wall],
        "ratio_cpu": round(statistics.median(cpu), 3),
        "ratio_cpu_all": [round(x, 3) for x in cpu],
    }


def _peak_rise(runs: list[dict], op: str) -> float:
    return statistics.median(r[op]["peak_rise"] for r in runs)


def size_case(megabytes: float, processes: int, prefault: bool = False) -> dict:
    with tempfile.TemporaryDirectory(prefix="bench-io-") as folder:
        # the entry every read process finds
        run(
            PRELUDE
            + "tree = tree_of(float(sys.argv[2]))\n"
            + "FileStore(os.path.join(sys.argv[1], 'store')).put(REF, Entry(tree, {}))\n"
            + "print(json.dumps({}))",
            folder,
            megabytes,
        )
        path = next(
            os.path.join(where, name)
            for where, _, names in os.walk(os.path.join(folder, "store"))
            for name in names
            if name.endswith(".nc")
        )
        size = os.path.getsize(path)
        order = [("hit", "floor"), ("floor", "hit")]
        scratch = int(1.1 * size) if prefault else 0
        reads = [
            run(READ, folder, path, order[i % 2][0], "time", scratch) for i in range(processes)
        ]
        read_peaks = {
            op: statistics.median(
                run(READ, folder, path, op, "memory", 0)["peak_rise"]
                for _ in range(max(1, processes // 2))
            )
            for op in ("hit", "floor")
        }
        writes = [run(WRITE, folder, megabytes, ("put", "floor")[i % 2]) for i in range(processes)]
        memory = run(MEMORY_TIER, folder, megabytes)
    return {
        "entry_mb": round(size / 1e6, 1),
        "prefault": prefault,
        "disk_hit": ratios(reads, "hit", "floor"),
        "hit_peak_rise_over_entry": round(read_peaks["hit"] / size, 3),
        "floor_peak_rise_over_entry": round(read_peaks["floor"] / size, 3),
        "write": write_ratios(writes),
        "put_peak_rise_over_entry": round(_peak_rise(writes, "put") / size, 3),
        "floor_write_peak_rise_over_entry": round(_peak_rise(writes, "floor") / size, 3),
        "memory_hit_ms": round(memory["memory_hit_ms"], 3),
        "memory_tier_keeps_over_entry": round(memory["miss_keeps_bytes"] / memory["tree"], 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", type=float, nargs="+", default=[10, 200])
    parser.add_argument("--processes", type=int, default=6)
    parser.add_argument(
        "--prefault",
        action="store_true",
        help="before each timed read, fill and free a scratch array 1.1x the file (see docstring)",
    )
    args = parser.parse_args()
    cases = [size_case(size, args.processes, args.prefault) for size in args.sizes]
    print(
        json.dumps(
            {
                "machine": f"{platform.machine()}, {os.cpu_count()} cores, Python "
                f"{platform.python_version()}, load average {os.getloadavg()[0]:.1f}",
                "cases": cases,
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
