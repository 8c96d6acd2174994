"""The command line keeps its promises against hostile caches (docs/cli.md, "Safety").

Real entries (sampled once), rewritten the way a careless or hostile neighbour would: symbolic
links in the destination of ``sync``, rich markup and terminal escape sequences in metadata,
non-finite numbers and odd types, timestamps past year 9999, an entry this user cannot read,
a dead object-store endpoint, and reads that must not count as use for ``prune``.
"""

from __future__ import annotations

import json
import os
import pickle
import pwd
import select
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import h5py
import pytest
from cli_entries import sampled_cache
from click.testing import CliRunner
from fixtures_s3 import free_port
from reliability_figures import record_trials

from cloudcache.cli import app
from cloudcache.stores.format.netcdf import METADATA_ATTR

DAY = 86400.0
#: Seconds a forked child may take before the test fails instead of hanging.
CHILD_SECONDS = 120.0
ESCAPE = "\x1b[2J\x1b]0;owned\x07"  # clear the screen, set the terminal title


def invoke(*arguments: object) -> Any:
    return CliRunner().invoke(app, [str(a) for a in arguments])


def entry_files(root: Path) -> list[Path]:
    return sorted(root.glob("*/*.nc"))


def strict_json(text: str) -> Any:
    """Parse ``text`` as strict JSON (no NaN/Infinity)."""

    def refuse(constant: str) -> None:
        raise ValueError(f"not strict JSON: {constant}")

    return json.loads(text, parse_constant=refuse)


def rewrite_metadata(path: Path, change: Callable[[dict[str, Any]], Any]) -> None:
    """Replace the entry's metadata record with ``change(record)`` (a dict or any JSON text)."""
    with h5py.File(path, "r+") as handle:
        record = json.loads(handle.attrs[METADATA_ATTR])
        new = change(record)
        handle.attrs[METADATA_ATTR] = new if isinstance(new, str) else json.dumps(new)


@pytest.fixture
def copy(tmp_path: Path) -> Path:
    return sampled_cache().copy(tmp_path / "cache")


def by_prefix(root: Path, prefix: str) -> Path:
    return next(path for path in entry_files(root) if prefix in path.name)


# -- sync -------------------------------------------------------------------------------
def test_sync_never_writes_through_a_symlinked_model_folder(copy: Path, tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    destination = tmp_path / "destination"
    destination.mkdir()
    (destination / "tiny").symlink_to(outside, target_is_directory=True)

    result = invoke("sync", copy, destination)
    assert result.exit_code == 1, result.output
    assert "symbolic link" in result.output
    assert list(outside.iterdir()) == []  # nothing written through the link
    assert [p.parent.name for p in entry_files(destination)] == ["other"]
    assert (destination / "tiny").is_symlink()
    record_trials("cli", "sync into a symlinked model folder", 1, 0)


def test_sync_never_reads_through_a_symlink_in_the_source(copy: Path, tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    shutil.copytree(copy / "other", elsewhere)
    (copy / "linked").symlink_to(elsewhere, target_is_directory=True)
    target = sorted(elsewhere.glob("*.nc"))[0]
    (copy / "tiny" / ("link-" + "a" * 16 + ".nc")).symlink_to(target)

    destination = tmp_path / "destination"
    result = invoke("sync", copy, destination)
    assert result.exit_code == 0, result.output
    copied = {p.relative_to(destination).as_posix() for p in entry_files(destination)}
    original = sampled_cache().root
    assert copied == {p.relative_to(original).as_posix() for p in entry_files(original)}
    assert not (destination / "linked").exists()


# -- ls / show / why on hostile metadata ----------------------------------------------------
def test_ls_show_why_print_hostile_metadata_as_plain_text(copy: Path) -> None:
    prefixes = sampled_cache().prefixes
    markup = by_prefix(copy, prefixes["base"])
    rewrite_metadata(
        markup,
        lambda record: {
            **record,
            "model": "[/oops]",
            "backend": f"pymc{ESCAPE}",
            "created": ["not", "a", "time"],
            "draws": {"nested": [1, 2]},
            "sampling_seconds": float("inf"),
        },
    )
    nan = by_prefix(copy, prefixes["data"])
    rewrite_metadata(nan, lambda record: {**record, "sampling_seconds": float("nan")})
    not_an_object = by_prefix(copy, prefixes["prior"])
    rewrite_metadata(not_an_object, lambda record: "[1, 2, 3]")

    table = invoke("ls", "-c", copy)
    assert table.exit_code == 0, table.output
    assert "[/oops]" in table.output
    assert "\x1b" not in table.output and "\x07" not in table.output
    assert "\\x1b[2J" in table.output
    assert prefixes["prior"] in table.output and "not a JSON object" in table.output
    assert "1 damaged" in table.output
    for role in ("draws", "other"):  # the untouched entries print as usual
        assert prefixes[role] in table.output

    rows = strict_json(invoke("ls", "-c", copy, "--json").stdout)
    assert len(rows) == 5
    row = next(r for r in rows if r["prefix"] == prefixes["base"])
    assert row["model"] == "[/oops]" and row["sampling_seconds"] == "inf"
    assert next(r for r in rows if r["prefix"] == prefixes["prior"])["status"] == "damaged"

    shown = invoke("show", prefixes["base"], "-c", copy)
    assert shown.exit_code == 0, shown.output
    assert "\x1b" not in shown.output
    assert strict_json(shown.stdout)["backend"] == f"pymc{ESCAPE}"  # escaped in JSON, intact

    for role in ("draws", "base"):  # a neighbour's odd record, or its own
        why = invoke("why", prefixes[role], "-c", copy)
        assert why.exit_code == 0, why.output
        assert "\x1b" not in why.output
        assert strict_json(invoke("why", prefixes[role], "-c", copy, "--json").stdout)
    record_trials("cli", "hostile metadata (markup, escapes, inf/nan, odd types)", 1, 0)


def test_why_survives_neighbours_of_unexpected_shape(copy: Path) -> None:
    prefixes = sampled_cache().prefixes
    shapes = {
        "data": lambda record: {**record, "components": ["graph", "data"]},
        "prior": lambda record: {**record, "components": {"request": [1], 3: None}},
        "draws": lambda record: {**record, "request": "draws=40", "components": None},
    }
    for role, change in shapes.items():
        rewrite_metadata(by_prefix(copy, prefixes[role]), change)
    result = invoke("why", prefixes["base"], "-c", copy)
    assert result.exit_code == 0, result.output
    assert result.output.startswith("why ")


@pytest.fixture
def far_future_dir(tmp_path: Path) -> Iterator[Path]:
    """A tmpfs (64-bit times) where an mtime past year 9999 can be set."""
    path = tmp_path / "far"
    path.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs", str(path)])
    if done.returncode != 0:
        pytest.skip("mount refused: this filesystem cannot hold a time past year 9999")
    yield path
    subprocess.run(["umount", "-l", str(path)], check=False)


def test_ls_survives_an_mtime_past_year_9999(far_future_dir: Path) -> None:
    root = far_future_dir / "cache"
    shutil.copytree(sampled_cache().root, root)
    far = 300_000_000_000.0  # year ~11476
    path = entry_files(root)[0]
    os.utime(path, (far, far))
    if os.stat(path).st_mtime < 253_402_300_800:
        pytest.skip("the filesystem clamped the time")
    assert invoke("ls", "-c", root).exit_code == 0
    rows = strict_json(invoke("ls", "-c", root, "--json").stdout)
    assert len(rows) == 5
    assert next(r for r in rows if r["path"] == str(path))["last_used"] is None
    record_trials("cli", "mtime past year 9999", 1, 0)


# -- prune --------------------------------------------------------------------------------
def test_reading_entries_is_not_use_for_prune(copy: Path) -> None:
    old = time.time() - 30 * DAY
    for path in entry_files(copy):
        os.utime(path, (old, old))
    prefix = sampled_cache().prefixes["base"]
    for arguments in (("ls",), ("ls", "--json"), ("show", prefix), ("why", prefix), ("verify",)):
        assert invoke(*arguments, "-c", copy).exit_code == 0
    result = invoke("prune", "-c", copy, "--older-than", "7d")
    assert result.exit_code == 0, result.output
    assert entry_files(copy) == []
    record_trials("cli", "ls/show/why/verify then prune --older-than", 1, 0)


# -- verify --fix and permissions -------------------------------------------------------------
def run_as(user: str, function: Callable[[], Any]) -> Any:
    """``function()`` in a forked child running as ``user``; its (picklable) result."""
    reader, writer = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: never return into pytest
        os.close(reader)
        try:
            record = pwd.getpwnam(user)
            os.setgroups([])
            os.setgid(record.pw_gid)
            os.setuid(record.pw_uid)
            outcome: Any = ("ok", function())
        except BaseException as error:
            outcome = ("error", repr(error))
        with os.fdopen(writer, "wb") as pipe:
            pickle.dump(outcome, pipe)
        os._exit(0)
    os.close(writer)
    with os.fdopen(reader, "rb") as pipe:
        ready, _, _ = select.select([pipe], [], [], CHILD_SECONDS)
        if not ready:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            raise AssertionError(f"the child running as {user} gave no answer in {CHILD_SECONDS} s")
        status, value = pickle.load(pipe)
    os.waitpid(pid, 0)
    assert status == "ok", value
    return value


def test_verify_fix_never_deletes_an_entry_it_cannot_read() -> None:
    if os.geteuid() != 0:
        pytest.skip("needs root to act as a second user")
    try:
        pwd.getpwnam("nobody")
    except KeyError:
        pytest.skip("no 'nobody' user")
    shared = Path(tempfile.mkdtemp(prefix="cloudcache-team-"))
    try:
        shared.chmod(0o755)
        root = sampled_cache().copy(shared / "cache")
        for folder in [root, *root.iterdir()]:
            folder.chmod(0o777)  # the teammate could delete anything here
        private = entry_files(root)[0]
        private.chmod(0o600)  # owned by root: the teammate cannot read it
        for path in entry_files(root)[1:]:
            path.chmod(0o644)
        invoke("verify", "-c", root)  # import everything while still root

        def verify_fix() -> tuple[int, str]:
            result = invoke("verify", "-c", root, "--fix", "--json")
            return result.exit_code, result.stdout

        code, output = run_as("nobody", verify_fix)
        assert private.exists(), "verify --fix deleted an entry it merely could not read"
        assert len(entry_files(root)) == 5
        report = strict_json(output)
        assert [Path(row["path"]).name for row in report["problems"]] == [private.name]
        assert report["problems"][0]["removed"] is False
        assert "not readable" in report["problems"][0]["problem"]
        assert code == 1
    finally:
        shutil.rmtree(shared, ignore_errors=True)
    record_trials("cli", "verify --fix as a second uid on an unreadable entry", 1, 0)


# -- object stores open exactly as the store does ----------------------------------------------
@pytest.fixture
def silent_endpoint() -> Iterator[str]:
    """``http://127.0.0.1:<port>`` of a socket that accepts connections and never answers."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(16)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                held.append(server.accept()[0])
            except TimeoutError:
                continue
            except OSError:
                return

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.getsockname()[1]}"
    stop.set()
    thread.join(5)
    for connection in held:
        connection.close()
    server.close()


@pytest.mark.parametrize("endpoint_kind", ["refused", "silent"])
def test_ls_on_a_dead_object_store_fails_fast_with_a_message(
    endpoint_kind: str, silent_endpoint: str
) -> None:
    endpoint = silent_endpoint if endpoint_kind == "silent" else f"http://127.0.0.1:{free_port()}"
    options = {"endpoint_url": endpoint, "region_name": "us-east-1"}
    started = time.monotonic()
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "cloudcache",
            "ls",
            "-c",
            "s3://team-bucket/cache",
            "-o",
            "key=testing",
            "-o",
            "secret=testing",
            "-o",
            f"client_kwargs={json.dumps(options)}",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    seconds = time.monotonic() - started
    assert done.returncode == 1, done.stderr
    assert "Traceback" not in done.stderr
    assert "cannot list s3://team-bucket/cache" in done.stderr
    assert seconds < 60, f"took {seconds:.0f} s"
    record_trials("cli", f"ls on a {endpoint_kind} S3 endpoint", 1, 0, seconds=round(seconds, 1))
