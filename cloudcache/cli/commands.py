"""``cloudcache``: list, inspect, verify, prune and sync cache entries from the command line.

Exit codes: 0 success; 1 problems found or nothing matched (a broken entry, an unknown or
ambiguous key prefix, a refused confirmation); 2 usage error (bad option or argument).
Works on local directories and fsspec URLs alike; only files named like cloudcache entries are
ever touched, and symbolic links are never followed. Everything printed from an entry (names,
metadata, errors) is shown as plain text: no rich markup, control characters escaped.
"""

from __future__ import annotations

import functools
import json
import math
import os
import re
import sys
import time
from collections.abc import Callable
from typing import Annotated, Any, ParamSpec, TypeVar

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from cloudcache.cli.units import format_size, parse_age, parse_size, printable
from cloudcache.errors import CorruptEntry, StoreError
from cloudcache.stores.maintenance.catalog import Catalog, CatalogEntry
from cloudcache.stores.maintenance.pruning import last_use_clock, select_for_pruning
from cloudcache.stores.resolve import default_directory
from cloudcache.ui.announce import format_age, format_seconds
from cloudcache.ui.explain import explain_stored

EXIT_OK = 0
EXIT_PROBLEMS = 1
EXIT_USAGE = 2
#: Temp files younger than this may belong to a writer that is still running.
STRAY_MIN_AGE_SECONDS = 60.0
MIN_PREFIX_LENGTH = 4

app = typer.Typer(
    name="cloudcache",
    help="Inspect and maintain a cloudcache cache (a local directory or an fsspec URL).",
    no_args_is_help=True,
    add_completion=False,
)

CacheOption = Annotated[
    str | None,
    typer.Option(
        "--cache",
        "-c",
        help="Cache directory or fsspec URL. Default: $CLOUDCACHE_DIR, else ./.cloudcache",
        show_default=False,
    ),
]
StorageOptions = Annotated[
    list[str] | None,
    typer.Option(
        "--option",
        "-o",
        help="fsspec storage option KEY=VALUE (VALUE may be JSON); repeatable.",
        show_default=False,
    ),
]
JsonFlag = Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")]


def _out() -> Console:
    # Wide when piped, so key prefixes and paths are never cut.
    return Console(width=None if sys.stdout.isatty() else 1000, highlight=False, soft_wrap=False)


def _err(message: str) -> None:
    typer.echo(printable(message), err=True)


def _echo(message: str) -> None:
    typer.echo(printable(message))


Params = ParamSpec("Params")
Result = TypeVar("Result")


def _store_errors_exit_1(
    command: Callable[Params, Result],
) -> Callable[Params, Result]:
    """A cache that cannot be listed or read (dead endpoint, permissions): a message, exit 1."""

    @functools.wraps(command)
    def guarded(*args: Params.args, **kwargs: Params.kwargs) -> Result:
        try:
            return command(*args, **kwargs)
        except StoreError as error:
            _err(f"cloudcache: {error}")
            raise typer.Exit(EXIT_PROBLEMS) from None

    return guarded


def _storage_options(items: list[str] | None) -> dict[str, Any]:
    options: dict[str, Any] = {}
    for item in items or []:
        name, sep, raw = item.partition("=")
        if not sep or not name:
            raise typer.BadParameter(f"expected KEY=VALUE, got {item!r}", param_hint="--option")
        try:
            options[name] = json.loads(raw)
        except ValueError:
            options[name] = raw
    return options


def _catalog(cache: str | None, options: list[str] | None, hint: str = "--cache") -> Catalog:
    location = cache if cache else os.fspath(default_directory())
    try:
        return Catalog(location, _storage_options(options))
    except (ImportError, ValueError, TypeError) as error:
        raise typer.BadParameter(f"cannot open {location!r}: {error}", param_hint=hint) from error


def _check_prefix(prefix: str) -> str:
    if not re.fullmatch(r"[0-9a-fA-F]+", prefix) or len(prefix) < MIN_PREFIX_LENGTH:
        raise typer.BadParameter(
            f"{prefix!r} is not a key prefix (at least {MIN_PREFIX_LENGTH} hex digits, "
            "as `cloudcache ls` shows)",
            param_hint="KEY_PREFIX",
        )
    return prefix.lower()


def _one_entry(catalog: Catalog, prefix: str) -> CatalogEntry:
    matches = catalog.find(_check_prefix(prefix))
    if not matches:
        _err(f"no entry with key prefix {prefix!r} in {catalog.location}")
        raise typer.Exit(EXIT_PROBLEMS)
    if len(matches) > 1:
        names = ", ".join(entry.relative_path for entry in matches)
        _err(f"key prefix {prefix!r} is ambiguous: {names}; type more digits")
        raise typer.Exit(EXIT_PROBLEMS)
    return matches[0]


def _saved(entry: CatalogEntry) -> str:
    seconds = entry.metadata.get("sampling_seconds")
    if isinstance(seconds, bool) or not isinstance(seconds, int | float):
        return "?"
    return format_seconds(float(seconds)) if math.isfinite(seconds) and seconds >= 0 else "?"


def _created(entry: CatalogEntry) -> str:
    created = entry.metadata.get("created")
    if not isinstance(created, str) or not created:
        return "?"
    return f"{created[:19].replace('T', ' ')} ({format_age(created)} ago)"


def _row(entry: CatalogEntry) -> list[Text]:
    """One ``ls`` row as plain text; an entry whose metadata cannot be shown is damaged."""
    if not entry.error:
        try:
            meta = entry.metadata
            shape = (
                f"{meta.get('draws')}/{meta.get('tune')}/{meta.get('chains')}"
                if meta
                else entry.label
            )
            cells = [
                meta.get("model", entry.slug),
                shape,
                meta.get("backend", "?"),
                _created(entry),
                format_size(entry.size),
                _saved(entry),
                entry.prefix,
            ]
            return [Text(printable(cell, 80)) for cell in cells]
        except Exception as error:  # any metadata shape or value: list the entry as damaged
            entry.damaged(f"metadata cannot be shown ({type(error).__name__}: {error})")
    problem = Text(printable(entry.error, 100), style="red")
    cells = [entry.slug, entry.label, "?", "", format_size(entry.size), "?", entry.prefix]
    row = [Text(printable(cell, 80)) for cell in cells]
    row[3] = problem
    return row


def _json_text(value: Any, *, sort_keys: bool = False) -> str:
    """Strict JSON (non-finite numbers and odd values as text), control characters escaped."""
    return json.dumps(_plain_json(value), indent=2, sort_keys=sort_keys, allow_nan=False)


def _plain_json(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(name): _plain_json(item) for name, item in value.items()}
    if isinstance(value, list | tuple):
        return [_plain_json(item) for item in value]
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if value is None or isinstance(value, str | int | float | bool):
        return value
    return printable(value)


def _json_row(entry: CatalogEntry) -> dict[str, Any]:
    """One ``ls --json`` row; values JSON cannot hold (Infinity, odd types) become text."""
    try:
        return _plain_json(entry.summary())
    except Exception as error:  # any metadata shape or value: list the entry as damaged
        entry.damaged(f"metadata cannot be shown ({type(error).__name__}: {error})")
        return {
            "key": entry.key or None,
            "prefix": entry.prefix,
            "model": entry.slug,
            "label": entry.label,
            "size": entry.size,
            "path": entry.path,
            "error": entry.error,
            "status": entry.status,
        }


# -- commands ---------------------------------------------------------------------------
@app.command("ls")
@_store_errors_exit_1
def list_entries(
    cache: CacheOption = None,
    option: StorageOptions = None,
    model: Annotated[str | None, typer.Option(help="Only this model (its folder name).")] = None,
    as_json: JsonFlag = False,
) -> None:
    """List entries: model, draws/tune/chains, backend, created, size, time saved, key."""
    catalog = _catalog(cache, option)
    entries = catalog.entries(slug=model)
    if as_json:
        typer.echo(_json_text([_json_row(entry) for entry in entries]))
        return
    if not entries:
        _err(f"no entries in {catalog.location}")
        return
    title = Text(printable(f"{catalog.location}: {len(entries)} entries"))
    table = Table(title=title, title_justify="left")
    for column in ("model", "draws/tune/chains", "backend", "created", "size", "saves", "key"):
        table.add_column(column, no_wrap=True, justify="right" if column == "size" else "left")
    for entry in entries:
        table.add_row(*_row(entry))
    total = sum(entry.size for entry in entries)
    damaged = sum(1 for entry in entries if entry.error)
    table.caption = f"total {format_size(total)}" + (f"; {damaged} damaged" if damaged else "")
    _out().print(table)


@app.command()
@_store_errors_exit_1
def show(
    key_prefix: Annotated[
        str, typer.Argument(metavar="KEY_PREFIX", help="Key prefix of the entry (from `ls`).")
    ],
    cache: CacheOption = None,
    option: StorageOptions = None,
) -> None:
    """Print the full metadata record of one entry as JSON."""
    catalog = _catalog(cache, option)
    entry = _one_entry(catalog, key_prefix)
    catalog.read_metadata([entry])
    if entry.error:
        _err(f"{catalog.url(entry.path)}: {entry.error}")
        raise typer.Exit(EXIT_PROBLEMS)
    record = {"path": catalog.url(entry.path), "size": entry.size, **entry.metadata}
    typer.echo(_json_text(record, sort_keys=True))


@app.command()
@_store_errors_exit_1
def rm(
    key_prefixes: Annotated[
        list[str],
        typer.Argument(metavar="KEY_PREFIX...", help="Key prefixes of entries to remove."),
    ],
    cache: CacheOption = None,
    option: StorageOptions = None,
) -> None:
    """Remove entries by key prefix (each prefix must name exactly one entry)."""
    catalog = _catalog(cache, option)
    prefixes = [_check_prefix(prefix) for prefix in key_prefixes]
    entries = catalog.entries(with_metadata=False)
    failed = False
    for prefix in prefixes:
        matches = [entry for entry in entries if entry.prefix.startswith(prefix[:16])]
        if len(prefix) > 16:
            catalog.read_metadata(matches)
            matches = [entry for entry in matches if entry.key.startswith(prefix)]
        if len(matches) != 1:
            problem = "no entry" if not matches else f"{len(matches)} entries (ambiguous)"
            _err(f"{prefix}: {problem} - nothing removed")
            failed = True
            continue
        catalog.remove(matches[0].path)
        _echo(f"removed {catalog.url(matches[0].path)}")
    if failed:
        raise typer.Exit(EXIT_PROBLEMS)


@app.command()
@_store_errors_exit_1
def clear(
    cache: CacheOption = None,
    option: StorageOptions = None,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
) -> None:
    """Remove every entry (and stray temp files) from the cache."""
    catalog = _catalog(cache, option)
    entries = catalog.entries(with_metadata=False)
    strays = catalog.stray_files()
    if not entries and not strays:
        _err(f"no entries in {catalog.location}")
        return
    total = format_size(sum(entry.size for entry in entries))
    question = f"Remove {len(entries)} entries ({total}) from {catalog.location}?"
    if not yes and not typer.confirm(question, default=False):
        _err("nothing removed")
        raise typer.Exit(EXIT_PROBLEMS)
    for path in [entry.path for entry in entries] + [stray.path for stray in strays]:
        catalog.remove(path)
    _echo(f"removed {len(entries)} entries ({total}) from {catalog.location}")


@app.command()
@_store_errors_exit_1
def prune(
    cache: CacheOption = None,
    option: StorageOptions = None,
    max_size: Annotated[
        str | None, typer.Option(help="Remove least recently used entries beyond this total.")
    ] = None,
    older_than: Annotated[
        str | None, typer.Option(help="Remove entries not used for this long (30d, 12h, 90min).")
    ] = None,
    keep: Annotated[
        int | None, typer.Option(min=0, help="Keep at most this many (most recently used).")
    ] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", "-n", help="Only say what would go.")
    ] = False,
    as_json: JsonFlag = False,
) -> None:
    """Remove least recently used entries until every given limit holds."""
    if max_size is None and older_than is None and keep is None:
        raise typer.BadParameter("give at least one of --max-size, --older-than, --keep")
    try:
        size_limit = parse_size(max_size) if max_size is not None else None
    except ValueError as error:
        raise typer.BadParameter(str(error), param_hint="--max-size") from error
    try:
        age_limit = parse_age(older_than) if older_than is not None else None
    except ValueError as error:
        raise typer.BadParameter(str(error), param_hint="--older-than") from error
    catalog = _catalog(cache, option)
    entries = catalog.entries(with_metadata=False)
    # Last use = the last session hit (the store's markers), else the write time: reading
    # (ls, show, verify, sync) never counts as use.
    last_used = last_use_clock(catalog.fs, catalog.root, catalog.is_local)
    doomed = select_for_pruning(
        entries, size_limit, age_limit, keep, now=time.time(), last_used=last_used
    )
    for entry in doomed:
        if not dry_run:
            catalog.remove(entry.path)
        if not as_json:
            verb = "would remove" if dry_run else "removed"
            _echo(f"{verb} {catalog.url(entry.path)} ({format_size(entry.size)})")
    freed = format_size(sum(entry.size for entry in doomed))
    if as_json:
        rows = [{"path": catalog.url(e.path), "size": e.size} for e in doomed]
        typer.echo(_json_text({"dry_run": dry_run, "removed": rows}))
    else:
        _err(f"{'would free' if dry_run else 'freed'} {freed} ({len(doomed)} entries)")


@app.command()
@_store_errors_exit_1
def verify(
    cache: CacheOption = None,
    option: StorageOptions = None,
    fix: Annotated[
        bool, typer.Option("--fix", help="Remove broken entries and stale temp files.")
    ] = False,
    as_json: JsonFlag = False,
) -> None:
    """Open every entry, check its stored key and checksum; report (and --fix) broken ones."""
    catalog = _catalog(cache, option)
    entries = catalog.entries(with_metadata=False)
    problems: list[tuple[str, str, bool]] = []  # path, problem, may be removed
    for entry in entries:
        verdict = catalog.check(entry)
        if verdict.status != "ok":
            problems.append((entry.path, verdict.problem, verdict.removable))
    now = time.time()
    for stray in catalog.stray_files():
        if now - stray.modified > STRAY_MIN_AGE_SECONDS:
            problems.append((stray.path, "temp file left by an interrupted write", True))
    removed: set[str] = set()
    for path, _, removable in problems:
        if fix and removable:
            try:
                catalog.remove(path)
                removed.add(path)
            except (OSError, StoreError) as error:
                _err(f"cannot remove {catalog.url(path)}: {error}")
    if as_json:
        rows = [
            {"path": catalog.url(path), "problem": why, "removed": path in removed}
            for path, why, _ in problems
        ]
        typer.echo(_json_text({"checked": len(entries), "problems": rows}))
    else:
        for path, why, removable in problems:
            verb = "removed" if path in removed else "BROKEN" if removable else "UNREADABLE"
            kept = " (kept: not readable by this user, not damaged)" if not removable else ""
            _echo(f"{verb} {catalog.url(path)}: {why}{kept}")
        _err(f"checked {len(entries)} entries: {len(problems)} problems")
    if len(removed) < len(problems):
        raise typer.Exit(EXIT_PROBLEMS)


@app.command()
@_store_errors_exit_1
def sync(
    source: Annotated[str, typer.Argument(help="Cache to copy from (directory or URL).")],
    destination: Annotated[str, typer.Argument(help="Cache to copy to (directory or URL).")],
    source_option: Annotated[
        list[str] | None, typer.Option(help="fsspec option KEY=VALUE for SOURCE; repeatable.")
    ] = None,
    destination_option: Annotated[
        list[str] | None, typer.Option(help="fsspec option KEY=VALUE for DESTINATION.")
    ] = None,
    model: Annotated[str | None, typer.Option(help="Only this model (its folder name).")] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", "-n", help="Only say what would go.")
    ] = False,
) -> None:
    """Copy the entries DESTINATION lacks from SOURCE, verifying each one on the way."""
    src = _catalog(source, source_option, hint="SOURCE")
    dst = _catalog(destination, destination_option, hint="DESTINATION")
    missing = [
        e for e in src.entries(slug=model, with_metadata=False) if not dst.has(e.relative_path)
    ]
    copied, broken = 0, 0
    for entry in missing:
        if dry_run:
            _echo(f"would copy {entry.relative_path} ({format_size(entry.size)})")
            continue
        problem = _copy(src, dst, entry)
        if problem:
            _err(f"skipped {src.url(entry.path)}: {problem}")
            broken += 1
            continue
        copied += 1
        _echo(f"copied {entry.relative_path} ({format_size(entry.size)})")
    verb = "would copy" if dry_run else "copied"
    count = len(missing) if dry_run else copied
    _err(f"{verb} {count} entries from {src.location} to {dst.location}; {broken} broken skipped")
    if broken:
        raise typer.Exit(EXIT_PROBLEMS)


def _copy(src: Catalog, dst: Catalog, entry: CatalogEntry) -> str:
    """Copy one verified entry; return the problem that stopped it, or ``""``."""
    if entry.status != "ok":
        return entry.error
    try:
        payload = src.read_bytes(entry)
    except (CorruptEntry, OSError) as error:
        return f"cannot read ({error})"
    problem = src.verify(entry, payload)
    if problem:
        return problem
    try:
        dst.write_bytes(entry.relative_path, payload)
    except (StoreError, OSError) as error:
        return f"not written to {dst.location}: {error}"
    return ""


@app.command()
@_store_errors_exit_1
def why(
    key_prefix: Annotated[
        str, typer.Argument(metavar="KEY_PREFIX", help="Key prefix of the entry that was sampled.")
    ],
    cache: CacheOption = None,
    option: StorageOptions = None,
    as_json: JsonFlag = False,
) -> None:
    """Why was this entry sampled? Compare it with the nearest other entry of its model."""
    catalog = _catalog(cache, option)
    entry = _one_entry(catalog, key_prefix)
    result = explain_stored(catalog, entry)
    if entry.error:
        _err(f"{catalog.url(entry.path)}: {entry.error}")
        raise typer.Exit(EXIT_PROBLEMS)
    if as_json:
        typer.echo(_json_text(result.as_dict()))
    else:
        for line in result.text().splitlines():
            _echo(line)


def main() -> None:
    """Console-script entry point."""
    app()


if __name__ == "__main__":
    main()
