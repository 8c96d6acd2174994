"""The ``cloudcache`` command line on real entries: local directories and ``memory://``."""

from __future__ import annotations

import inspect
import json
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

import cli_entries
import fixtures_s3
import fsspec
import pytest
from cli_entries import predictive_cache, sampled_cache
from click.testing import CliRunner

from cloudcache.cli import app
from cloudcache.stores.maintenance import headers
from cloudcache.stores.maintenance.catalog import Catalog, CatalogEntry
from cloudcache.stores.maintenance.pruning import select_for_pruning

DAY = 86400.0
#: Libraries a command that reads only metadata must not import (they cost seconds).
HEAVY = ("xarray", "pandas", "pymc", "pytensor", "scipy", "typer", "rich", "netCDF4", "h5netcdf")

s3_server = fixtures_s3.s3_server


@pytest.fixture(scope="module")
def cache():
    return sampled_cache()


@pytest.fixture
def copy(cache, tmp_path) -> Path:
    """A private copy of the sampled cache for destructive tests."""
    return cache.copy(tmp_path / "cache")


def invoke(*arguments: str, input: str | None = None):
    return CliRunner().invoke(app, [str(a) for a in arguments], input=input)


def entry_files(root: Path) -> list[Path]:
    return sorted(root.glob("*/*.nc"))


def run_cli(*arguments: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "cloudcache", *map(str, arguments)],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, **(env or {})},
    )


# -- ls / show --------------------------------------------------------------------------
def test_ls_table_lists_every_entry(cache):
    result = invoke("ls", "--cache", cache.root)
    assert result.exit_code == 0, result.output
    for prefix in cache.prefixes.values():
        assert prefix in result.output
    assert "30/30/1" in result.output and "40/30/1" in result.output
    assert "pymc" in result.output


def test_ls_json_rows_carry_metadata(cache):
    result = invoke("ls", "-c", cache.root, "--json", "--model", "tiny")
    rows = json.loads(result.stdout)
    assert {row["prefix"] for row in rows} == {
        cache.prefixes[role] for role in ("base", "data", "draws", "prior")
    }
    row = next(r for r in rows if r["prefix"] == cache.prefixes["draws"])
    assert (row["model"], row["draws"], row["tune"], row["chains"]) == ("tiny", 40, 30, 1)
    assert row["backend"] == "pymc" and row["size"] > 0 and row["sampling_seconds"] > 0
    assert row["key"].startswith(row["prefix"]) and row["error"] is None


def test_show_prints_the_full_metadata_record(cache):
    result = invoke("show", cache.prefixes["data"][:8], "-c", cache.root)
    record = json.loads(result.stdout)
    assert record["key"].startswith(cache.prefixes["data"])
    assert set(record["components"]) >= {"graph", "data", "coords", "request", "versions"}
    assert record["request"]["draws"] == 30 and record["checksum"]


def test_show_unknown_prefix_exits_1_and_bad_prefix_exits_2(cache):
    assert invoke("show", "0000", "-c", cache.root).exit_code == 1
    result = invoke("show", "xyz!", "-c", cache.root)
    assert result.exit_code == 2 and "KEY_PREFIX" in result.output


def test_show_ambiguous_prefix_exits_1(copy):
    original = entry_files(copy)[0]
    prefix = original.name[-19:-3]
    twin_prefix = prefix[:14] + ("ee" if prefix.endswith("ff") else "ff")
    original.with_name(original.name.replace(prefix, twin_prefix)).write_bytes(
        original.read_bytes()
    )
    result = invoke("show", prefix[:14], "-c", copy)
    assert result.exit_code == 1 and "ambiguous" in result.output
    assert invoke("show", prefix, "-c", copy).exit_code == 0


# -- rm / clear -------------------------------------------------------------------------
def test_rm_removes_only_the_named_entry(cache, copy):
    result = invoke("rm", cache.prefixes["prior"], "-c", copy)
    assert result.exit_code == 0, result.output
    names = " ".join(p.name for p in entry_files(copy))
    assert cache.prefixes["prior"] not in names and cache.prefixes["base"] in names
    assert len(entry_files(copy)) == 4


def test_rm_unknown_prefix_exits_1_and_still_removes_the_others(cache, copy):
    result = invoke("rm", "0000", cache.prefixes["base"], "-c", copy)
    assert result.exit_code == 1
    assert len(entry_files(copy)) == 4


def test_clear_asks_and_refusal_removes_nothing(copy):
    result = invoke("clear", "-c", copy, input="n\n")
    assert result.exit_code == 1
    assert len(entry_files(copy)) == 5


def test_clear_yes_removes_entries_only(copy, tmp_path):
    (copy / "tiny" / "notes.txt").write_text("mine")
    outside = tmp_path / "outside"
    outside.mkdir()
    target = outside / entry_files(copy)[0].name
    target.write_bytes(entry_files(copy)[0].read_bytes())
    (copy / "linked").symlink_to(outside, target_is_directory=True)
    (copy / "tiny" / ("link-" + "a" * 16 + ".nc")).symlink_to(target)

    listed = json.loads(invoke("ls", "-c", copy, "--json").stdout)
    assert len(listed) == 5  # neither symlink is listed

    result = invoke("clear", "-c", copy, "--yes")
    assert result.exit_code == 0, result.output
    remaining = [p for p in entry_files(copy) if p.parent.name != "linked"]
    assert [p.name for p in remaining] == ["link-" + "a" * 16 + ".nc"]
    assert remaining[0].is_symlink()
    assert (copy / "tiny" / "notes.txt").read_text() == "mine"
    assert target.exists()


# -- prune ------------------------------------------------------------------------------
def _age_files(root: Path, days_by_prefix: dict[str, float]) -> None:
    now = time.time()
    for path in entry_files(root):
        days = days_by_prefix.get(path.name[-19:-3], 0.0)
        os.utime(path, (now - days * DAY, now - days * DAY))


def test_prune_older_than_and_dry_run(cache, copy):
    _age_files(copy, {cache.prefixes["base"]: 40, cache.prefixes["data"]: 31})
    dry = invoke("prune", "-c", copy, "--older-than", "30d", "--dry-run")
    assert dry.exit_code == 0 and len(entry_files(copy)) == 5
    assert dry.output.count("would remove") == 2
    result = invoke("prune", "-c", copy, "--older-than", "30d")
    assert result.exit_code == 0
    names = " ".join(p.name for p in entry_files(copy))
    assert cache.prefixes["base"] not in names and cache.prefixes["data"] not in names
    assert len(entry_files(copy)) == 3


def test_prune_keep_removes_least_recently_used(cache, copy):
    ages = {prefix: float(i + 1) for i, prefix in enumerate(cache.prefixes.values())}
    _age_files(copy, ages)
    result = invoke("prune", "-c", copy, "--keep", "2", "--json")
    assert result.exit_code == 0
    kept = {p.name[-19:-3] for p in entry_files(copy)}
    assert kept == {cache.prefixes["base"], cache.prefixes["data"]}  # the two youngest
    assert len(json.loads(result.stdout)["removed"]) == 3


def test_prune_max_size(copy):
    sizes = [p.stat().st_size for p in entry_files(copy)]
    result = invoke("prune", "-c", copy, "--max-size", f"{max(sizes) + 1}B")
    assert result.exit_code == 0
    assert len(entry_files(copy)) == 1


def test_prune_needs_a_limit_and_valid_units(copy):
    assert invoke("prune", "-c", copy).exit_code == 2
    result = invoke("prune", "-c", copy, "--older-than", "30 fortnights")
    assert result.exit_code == 2 and "--older-than" in result.output
    assert len(entry_files(copy)) == 5


def test_select_for_pruning_applies_every_limit_lru_first():
    now = 1_000_000.0

    def entry(name: str, size: int, days: float) -> CatalogEntry:
        stamp = now - days * DAY
        return CatalogEntry(name, "m", "l", name, size, stamp)

    entries = [entry("a", 10, 50), entry("b", 10, 5), entry("c", 30, 1), entry("d", 10, 0)]
    pick = lambda **limits: [e.path for e in select_for_pruning(entries, now=now, **limits)]  # noqa: E731
    assert pick(max_size=None, older_than=30 * DAY, keep=None) == ["a"]
    assert pick(max_size=40, older_than=None, keep=None) == ["a", "b"]
    assert pick(max_size=None, older_than=None, keep=1) == ["a", "b", "c"]
    assert pick(max_size=100, older_than=None, keep=10) == []


# -- verify -----------------------------------------------------------------------------
def test_verify_finds_damaged_misnamed_and_stray_files(cache, copy):
    files = entry_files(copy)
    truncated = files[0]
    truncated.write_bytes(truncated.read_bytes()[:2000])
    misnamed = files[1].with_name(files[1].name[:-19] + "0123456789abcdef.nc")
    files[1].rename(misnamed)
    stale = copy / "tiny" / f".draws1_tune1_chains1-{'b' * 16}.nc.x1y2.tmp"
    stale.write_bytes(b"partial")
    os.utime(stale, (time.time() - 120, time.time() - 120))
    fresh = copy / "tiny" / f".draws1_tune1_chains1-{'c' * 16}.nc.z3.tmp"
    fresh.write_bytes(b"being written")

    result = invoke("verify", "-c", copy, "--json")
    assert result.exit_code == 1
    report = json.loads(result.stdout)
    assert report["checked"] == 5
    broken = {Path(row["path"]).name for row in report["problems"]}
    assert broken == {truncated.name, misnamed.name, stale.name}

    fixed = invoke("verify", "-c", copy, "--fix")
    assert fixed.exit_code == 0, fixed.output
    assert not truncated.exists() and not misnamed.exists() and not stale.exists()
    assert fresh.exists() and len(entry_files(copy)) == 3
    assert invoke("verify", "-c", copy).exit_code == 0


# -- sync -------------------------------------------------------------------------------
def test_sync_local_to_memory_and_back(cache, tmp_path):
    bucket = f"memory://team-{uuid.uuid4().hex[:8]}/cache"
    dry = invoke("sync", cache.root, bucket, "--dry-run")
    assert dry.exit_code == 0 and dry.stdout.count("would copy") == 5
    assert json.loads(invoke("ls", "-c", bucket, "--json").stdout) == []

    assert invoke("sync", cache.root, bucket).exit_code == 0
    assert len(json.loads(invoke("ls", "-c", bucket, "--json").stdout)) == 5
    again = invoke("sync", cache.root, bucket)
    assert "copied 0 entries" in again.output

    # Pull one model back into an empty laptop cache, verify it, then read it with xarray.
    laptop = tmp_path / "laptop"
    result = invoke("sync", bucket, laptop, "--model", "other")
    assert result.exit_code == 0, result.output
    assert [p.parent.name for p in entry_files(laptop)] == ["other"]
    assert invoke("verify", "-c", laptop).exit_code == 0
    fs, _ = fsspec.core.url_to_fs(bucket)
    assert invoke("clear", "-c", bucket, "--yes").exit_code == 0
    assert fs.find(bucket) == []


def test_sync_skips_broken_entries_and_exits_1(cache, copy, tmp_path):
    damaged = next(p for p in entry_files(copy) if cache.prefixes["draws"] in p.name)
    damaged.write_bytes(damaged.read_bytes()[:-500])
    result = invoke("sync", copy, tmp_path / "dst")
    assert result.exit_code == 1 and "skipped" in result.output
    assert len(entry_files(tmp_path / "dst")) == 4


def test_catalog_lists_memory_urls_without_reading_arrays(cache):
    bucket = f"memory://ls-{uuid.uuid4().hex[:8]}"
    invoke("sync", cache.root, bucket)
    entries = Catalog(bucket).entries()
    assert {e.prefix for e in entries} == set(cache.prefixes.values())
    assert all(e.key and not e.error and e.metadata["model"] in {"tiny", "other"} for e in entries)


# -- real subprocesses ------------------------------------------------------------------
def test_subprocess_ls_uses_cloudcache_dir(cache):
    result = run_cli("ls", "--json", env={"CLOUDCACHE_DIR": str(cache.root)})
    assert result.returncode == 0, result.stderr
    assert len(json.loads(result.stdout)) == 5


def test_subprocess_exit_codes(copy):
    entry_files(copy)[0].write_bytes(b"not a netcdf file")
    command = [sys.executable, "-m", "cloudcache"]
    # Started together: each process pays the library start-up once, in parallel.
    usage = subprocess.Popen([*command, "prune", "-c", str(copy)], stderr=subprocess.PIPE)
    broken = subprocess.Popen(
        [*command, "verify", "-c", str(copy)], stdout=subprocess.PIPE, text=True
    )
    assert usage.wait(timeout=120) == 2
    out, _ = broken.communicate(timeout=120)
    assert broken.returncode == 1 and "BROKEN" in out


# -- start-up: no heavy imports for metadata commands -------------------------------------
def imported_modules(*arguments: str, returncode: int = 0) -> set[str]:
    """Top-level modules a fresh ``python -m cloudcache ...`` imports (``-X importtime``)."""
    done = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "cloudcache", *map(str, arguments)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == returncode, done.stderr[-2000:]
    lines = [line for line in done.stderr.splitlines() if line.startswith("import time:")]
    return {line.rsplit("|", 1)[1].strip().split(".")[0] for line in lines[1:]}


def test_help_imports_only_click():
    modules = imported_modules("--help")
    assert "click" in modules
    assert not modules & {*HEAVY, "h5py", "numpy", "fsspec"}, modules & {*HEAVY, "h5py"}


@pytest.mark.parametrize(
    ("command", "returncode"),
    [(["ls"], 0), (["ls", "--json"], 0), (["show", "BASE"], 0), (["rm", "0000"], 1)],
)
def test_metadata_commands_import_no_array_library(cache, copy, command, returncode):
    arguments = [a.replace("BASE", cache.prefixes["base"]) for a in command]
    modules = imported_modules(*arguments, "-c", copy, returncode=returncode)
    assert "h5py" in modules
    assert not modules & set(HEAVY), modules & set(HEAVY)


@pytest.mark.parametrize(
    ("command", "returncode"),
    [
        (["ls"], 0),
        (["ls", "--json"], 0),
        (["ls", "--partial"], 0),
        (["show", "BASE"], 0),
        (["rm", "0000"], 1),
        (["prune", "--keep", "100", "--dry-run"], 0),
        (["clear", "--yes"], 0),
    ],
)
def test_local_caches_are_read_without_fsspec(cache, copy, command, returncode):
    """A local directory is listed and read with the operating system's own calls: fsspec
    (with asyncio and its scan of entry points) is for URLs only."""
    arguments = [a.replace("BASE", cache.prefixes["base"]) for a in command]
    modules = imported_modules(*arguments, "-c", copy, returncode=returncode)
    assert "cloudcache" in modules
    assert not modules & {"fsspec", "asyncio"}, modules & {"fsspec", "asyncio"}


def test_local_ls_in_a_fresh_process_lists_every_entry_without_fsspec(cache, copy):
    """The CLI's own entry point, run in a fresh interpreter: its listing is complete and
    fsspec was never imported."""
    code = (
        "import sys\n"
        "from cloudcache.cli.commands import main\n"
        f"sys.argv = ['cloudcache', 'ls', '--json', '-c', {str(copy)!r}]\n"
        "try:\n"
        "    main()\n"
        "except SystemExit as done:\n"
        "    assert not done.code, done.code\n"
        "print('fsspec' in sys.modules, 'asyncio' in sys.modules, 'h5py' in sys.modules)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True
    )
    listing, _, flags = done.stdout.rpartition("]\n")
    rows = json.loads(listing + "]")
    assert flags.split() == ["False", "False", "True"], done.stdout[-500:]
    assert sorted(row["prefix"] for row in rows) == sorted(cache.prefixes.values())
    assert not any(row["error"] for row in rows)


@pytest.mark.parametrize("spelling", ["cache", "./cache/", "~/cache", "a//b/../cache", "x:y"])
def test_a_directory_path_resolves_as_fsspecs_local_filesystem_resolves_it(
    spelling, tmp_path, monkeypatch
):
    """Reading a directory without fsspec changes no root: the same absolute path as before."""
    monkeypatch.chdir(tmp_path)
    fs, root = fsspec.core.url_to_fs(spelling)
    assert isinstance(fs, fsspec.implementations.local.LocalFileSystem)
    catalog = Catalog(spelling)
    assert catalog.is_local and catalog.object_fs is None
    assert catalog.root == os.path.abspath(os.path.expanduser(root))
    assert isinstance(catalog.fs, fsspec.implementations.local.LocalFileSystem)  # on request


def test_verify_in_a_fresh_process_never_imports_dask_array(cache, copy):
    """Loading entries builds xarray variables over arrays xarray never asks about Dask (the
    question imports dask.array: ~0.3 s of a fresh process)."""
    code = (
        "import sys\n"
        "from cloudcache.cli.commands import main\n"
        f"sys.argv = ['cloudcache', 'verify', '-c', {str(copy)!r}]\n"
        "try:\n"
        "    main()\n"
        "except SystemExit as done:\n"
        "    assert not done.code, done.code\n"
        "print('netCDF4' in sys.modules, 'dask.array' in sys.modules)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True
    )
    assert done.stdout.split() == ["True", "False"], done.stdout[-500:] + done.stderr[-2000:]
    assert f"checked {len(cache.prefixes)} entries" in done.stderr


def test_a_hit_in_a_fresh_process_imports_no_part_of_dask(cache):
    """With Dask installed (the dask extra), building a read entry's indexes through xarray's
    Dask check imported ``dask`` (~0.1 s of a small hit in a fresh process)."""
    pytest.importorskip("dask")
    model_code = inspect.getsource(cli_entries.small_model)
    code = (
        "import sys, warnings\n"
        "warnings.simplefilter('ignore')\n"
        "import numpy as np, pymc as pm\n"
        "import cloudcache as cc\n"
        f"{model_code}\n"
        f"with cc.cloud(small_model(), cache={str(cache.root)!r}, backend='pymc') as run:\n"
        f"    pm.sample(draws=30, **{cli_entries.DRAWS!r})\n"
        "print(run.last.hit, 'dask' in sys.modules)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=300, check=True
    )
    assert done.stdout.split() == ["True", "False"], done.stdout[-500:] + done.stderr[-2000:]


# -- English, missing caches, predictive entries, help ----------------------------------
def test_missing_cache_folder_is_an_error(tmp_path):
    missing = tmp_path / "nonexistent"
    for command in (
        ["ls"],
        ["ls", "--json"],
        ["verify"],
        ["prune", "--keep", "1"],
        ["clear", "-y"],
    ):
        result = invoke(*command, "--cache", missing)
        assert result.exit_code == 1, (command, result.output)
        assert f"no cache at {missing}: it does not exist" in result.output
    (tmp_path / "a-file").write_text("not a cache")
    result = invoke("ls", "-c", tmp_path / "a-file")
    assert result.exit_code == 1 and "is not a directory" in result.output
    done = run_cli("ls", "--cache", missing)
    assert done.returncode == 1 and "no cache at" in done.stderr and "Traceback" not in done.stderr
    assert not missing.exists()  # nothing was created by looking


def test_empty_existing_cache_lists_nothing_with_exit_0(tmp_path):
    result = invoke("ls", "-c", tmp_path)
    assert result.exit_code == 0 and "no entries" in result.output
    assert json.loads(invoke("ls", "-c", tmp_path, "--json").stdout) == []


def test_counts_read_as_english(cache, copy):
    keep = cache.prefixes["base"]
    for path in entry_files(copy):
        if keep not in path.name:
            path.unlink()
    listing = invoke("ls", "-c", copy)
    assert listing.exit_code == 0 and ": 1 entry," in listing.output
    checked = invoke("verify", "-c", copy)
    assert "checked 1 entry in" in checked.output and "no problems" in checked.output
    entry_files(copy)[0].write_bytes(b"not a netcdf file")
    broken = invoke("verify", "-c", copy)
    assert broken.exit_code == 1 and "checked 1 entry in" in broken.output
    assert ": 1 problem" in broken.output and "1 problems" not in broken.output
    pruned = invoke("prune", "-c", copy, "--keep", "0", "--dry-run")
    assert "(1 entry)" in pruned.output
    cleared = invoke("clear", "-c", copy, "--yes")
    assert cleared.exit_code == 0 and "removed 1 entry (" in cleared.output
    for result in (listing, checked, broken, pruned, cleared):
        assert "1 entries" not in result.output


def test_counts_of_several_entries(cache):
    result = invoke("ls", "-c", cache.root)
    assert ": 5 entries," in result.output
    assert "checked 5 entries in" in invoke("verify", "-c", cache.root).output


def test_predictive_entries_show_their_kind_and_no_tune():
    root = predictive_cache()
    table = invoke("ls", "-c", root)
    assert table.exit_code == 0, table.output
    lines = {line.split()[1]: line for line in table.output.splitlines()[3:] if line.strip()}
    assert "30/30/1" in lines["sample"]
    assert "prior predictive" in lines["prior"] and "25/-/1" in lines["prior"]
    assert "posterior predictive" in lines["posterior"] and "30/-/1" in lines["posterior"]
    assert "map_L-BFGS-B" in lines["find_MAP"]  # no draws/tune/chains: the entry's label
    assert "None" not in table.output
    rows = json.loads(invoke("ls", "-c", root, "--json").stdout)
    assert sorted(row["kind"] for row in rows) == [
        "find_MAP",
        "sample",
        "sample_posterior_predictive",
        "sample_prior_predictive",
    ]
    assert invoke("verify", "-c", root).exit_code == 0


def test_ls_table_columns_line_up(cache):
    lines = [line for line in invoke("ls", "-c", cache.root).output.splitlines() if line]
    header, rule, rows = lines[1], lines[2], lines[3:]
    assert header.split()[:2] == ["model", "kind"] and set(rule) <= {"-", " "}
    key_column = header.index("key")
    for row in rows:
        assert row[key_column:].strip() in cache.prefixes.values()


def test_help_is_clean():
    top = run_cli("--help")
    assert top.returncode == 0
    commands = ("ls", "show", "rm", "clear", "prune", "verify", "sync", "why")
    listed = top.stdout.split("Commands:", 1)[1]
    for command in commands:
        line = next(line for line in listed.splitlines() if line.strip().startswith(command + " "))
        assert not line.rstrip().endswith("..."), line  # descriptions never cut
    for command in commands:
        text = invoke(command, "--help").output
        assert text.startswith(f"Usage: cloudcache {command} [OPTIONS]")
        for artefact in ("<bool>", "UNSET", "Sentinel", "[default: None]"):
            assert artefact not in text, (command, artefact)
        description = text.split("Options:", 1)[0]
        assert "\n      " not in description, description  # no docstring indentation left
    assert invoke("ls", "--help").output.count("Print JSON for scripts.") == 1
    assert run_cli("--version").stdout.startswith("cloudcache, version ")
    bare = run_cli()
    assert bare.returncode == 0 and "Commands:" in bare.stdout  # a bare `cloudcache`: the help


# -- object stores: headers in concurrent rounds, verify concurrently -------------------
def test_remote_headers_match_local_reads_at_any_block_size(cache, monkeypatch):
    bucket = f"memory://heads-{uuid.uuid4().hex[:8]}"
    assert invoke("sync", cache.root, bucket).exit_code == 0
    fs, _ = fsspec.core.url_to_fs(bucket)
    local = {path.name: headers.read_local_header(str(path)) for path in entry_files(cache.root)}
    remote_files = [(path, fs.size(path)) for path in sorted(fs.find(bucket))]
    damaged = remote_files[0][0].replace(".nc", "").rsplit("-", 1)
    truncated = f"{damaged[0]}-{'d' * 16}.nc"
    fs.pipe_file(truncated, fs.cat_file(remote_files[0][0])[:3000])
    remote_files.append((truncated, 3000))
    for block in (1 << 16, 4096, 512):  # small blocks: several rounds of fetches
        monkeypatch.setattr(headers, "BLOCK_BYTES", block)
        found = headers.read_remote_headers(fs, remote_files)
        assert [found[i] for i in range(len(local))] == [
            local[path.rsplit("/", 1)[1]] for path, _ in remote_files[:-1]
        ]
        assert isinstance(found[-1], Exception)  # the truncated copy, reported, not raised


def test_verify_on_an_object_store_checks_every_entry(cache):
    bucket = f"memory://verify-{uuid.uuid4().hex[:8]}/cache"
    assert invoke("sync", cache.root, bucket).exit_code == 0
    fs, _ = fsspec.core.url_to_fs(bucket)
    victim = next(p for p in fs.find(bucket) if cache.prefixes["draws"] in p)
    payload = bytearray(fs.cat_file(victim))
    payload[-3000] ^= 0xFF  # one flipped byte inside the arrays: only the checksum sees it
    fs.pipe_file(victim, bytes(payload))
    report = json.loads(invoke("verify", "-c", bucket, "--json").stdout)
    assert report["checked"] == 5
    assert [Path(row["path"]).name for row in report["problems"]] == [Path(victim).name]
    fixed = invoke("verify", "-c", bucket, "--fix")
    assert fixed.exit_code == 0, fixed.output
    assert invoke("verify", "-c", bucket).exit_code == 0
    assert len(json.loads(invoke("ls", "-c", bucket, "--json").stdout)) == 4


def test_ls_on_s3_reads_every_entry(cache, s3_server):
    url = f"s3://{fixtures_s3.make_bucket(s3_server)}/cache"
    pairs = [
        f"{name}={value if isinstance(value, str) else json.dumps(value)}"
        for name, value in s3_server.storage_options().items()
    ]
    to_s3 = [word for pair in pairs for word in ("--destination-option", pair)]
    sync = invoke("sync", cache.root, url, *to_s3)
    assert sync.exit_code == 0, sync.output
    options = [word for pair in pairs for word in ("-o", pair)]
    done = run_cli("ls", "--json", "-c", url, *options)
    assert done.returncode == 0, done.stderr
    rows = json.loads(done.stdout)
    assert {row["prefix"] for row in rows} == set(cache.prefixes.values())
    assert all(row["key"].startswith(row["prefix"]) and row["error"] is None for row in rows)
    assert {row["model"] for row in rows} == {"tiny", "other"}
    table = run_cli("ls", "-c", url, *options)
    assert table.returncode == 0 and ": 5 entries," in table.stdout
