"""``cloudcache``: list, inspect, verify, prune and sync cache entries from the command line.

Exit codes: 0 success; 1 problems found or nothing matched (a broken entry, an unknown or
ambiguous key prefix, a refused confirmation); 2 usage error (bad option or argument).
Works on local directories and fsspec URLs alike; only files named like cloudcache entries are
ever touched, and symbolic links are never followed.
"""

from __future__ import annotations

import json
import os
import re
import sys
import time
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from cloudcache.announce import format_age, format_seconds
from cloudcache.catalog import Catalog, CatalogEntry
from cloudcache.cli_units import format_size, parse_age, parse_size
from cloudcache.explain import explain_stored
from cloudcache.stores.pruning import last_use_clock, select_for_pruning
from cloudcache.stores.resolve import default_directory

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
    return Console(width=None if sys.stdout.isatty() else 200, highlight=False, soft_wrap=False)


def _err(message: str) -> None:
    typer.echo(message, err=True)


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
    except (ImportError, ValueError) as error:
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
    return format_seconds(float(seconds)) if isinstance(seconds, int | float) else "?"


def _created(entry: CatalogEntry) -> str:
    created = entry.metadata.get("created")
    if not created:
        return "?"
    return f"{str(created)[:19].replace('T', ' ')} ({format_age(created)} ago)"


# -- commands ---------------------------------------------------------------------------
@app.command("ls")
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
        typer.echo(json.dumps([entry.summary() for entry in entries], indent=2))
        return
    if not entries:
        _err(f"no entries in {catalog.location}")
        return
    table = Table(title=f"{catalog.location}: {len(entries)} entries", title_justify="left")
    for column in ("model", "draws/tune/chains", "backend", "created", "size", "saves", "key"):
        table.add_column(column, no_wrap=True, justify="right" if column == "size" else "left")
    for entry in entries:
        meta = entry.metadata
        shape = (
            f"{meta.get('draws')}/{meta.get('tune')}/{meta.get('chains')}" if meta else entry.label
        )
        table.add_row(
            str(meta.get("model", entry.slug)),
            shape,
            str(meta.get("backend", "?")),
            _created(entry) if not entry.error else f"[red]{entry.error[:60]}[/red]",
            format_size(entry.size),
            _saved(entry),
            entry.prefix,
        )
    total = sum(entry.size for entry in entries)
    table.caption = f"total {format_size(total)}"
    _out().print(table)


@app.command()
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
    typer.echo(json.dumps(record, indent=2, sort_keys=True))


@app.command()
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
        typer.echo(f"removed {catalog.url(matches[0].path)}")
    if failed:
        raise typer.Exit(EXIT_PROBLEMS)


@app.command()
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
    typer.echo(f"removed {len(entries)} entries ({total}) from {catalog.location}")


@app.command()
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
    doomed = select_for_pruning(
        catalog.entries(with_metadata=False),
        size_limit,
        age_limit,
        keep,
        now=time.time(),
        last_used=last_use_clock(catalog.fs, catalog.root, catalog.is_local),
    )
    for entry in doomed:
        if not dry_run:
            catalog.remove(entry.path)
        if not as_json:
            verb = "would remove" if dry_run else "removed"
            typer.echo(f"{verb} {catalog.url(entry.path)} ({format_size(entry.size)})")
    freed = format_size(sum(entry.size for entry in doomed))
    if as_json:
        rows = [{"path": catalog.url(e.path), "size": e.size} for e in doomed]
        typer.echo(json.dumps({"dry_run": dry_run, "removed": rows}, indent=2))
    else:
        _err(f"{'would free' if dry_run else 'freed'} {freed} ({len(doomed)} entries)")


@app.command()
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
    problems: list[tuple[str, str]] = []
    for entry in entries:
        problem = catalog.verify(entry)
        if problem:
            problems.append((entry.path, problem))
    now = time.time()
    for stray in catalog.stray_files():
        if now - stray.modified > STRAY_MIN_AGE_SECONDS:
            problems.append((stray.path, "temp file left by an interrupted write"))
    unfixed = 0
    for path, _ in problems:
        if fix:
            try:
                catalog.remove(path)
            except OSError as error:
                _err(f"cannot remove {catalog.url(path)}: {error}")
                unfixed += 1
    if as_json:
        rows = [{"path": catalog.url(p), "problem": why, "removed": fix} for p, why in problems]
        typer.echo(json.dumps({"checked": len(entries), "problems": rows}, indent=2))
    else:
        for path, why in problems:
            typer.echo(f"{'removed' if fix else 'BROKEN'} {catalog.url(path)}: {why}")
        _err(f"checked {len(entries)} entries: {len(problems)} problems")
    if problems and (not fix or unfixed):
        raise typer.Exit(EXIT_PROBLEMS)


@app.command()
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
            typer.echo(f"would copy {entry.relative_path} ({format_size(entry.size)})")
            continue
        payload = src.read_bytes(entry)
        problem = src.verify(entry, payload)
        if problem:
            _err(f"skipped {src.url(entry.path)}: {problem}")
            broken += 1
            continue
        dst.write_bytes(entry.relative_path, payload)
        copied += 1
        typer.echo(f"copied {entry.relative_path} ({format_size(entry.size)})")
    verb = "would copy" if dry_run else "copied"
    count = len(missing) if dry_run else copied
    _err(f"{verb} {count} entries from {src.location} to {dst.location}; {broken} broken skipped")
    if broken:
        raise typer.Exit(EXIT_PROBLEMS)


@app.command()
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
        typer.echo(json.dumps(result.as_dict(), indent=2))
    else:
        typer.echo(result.text())


def main() -> None:
    """Console-script entry point."""
    app()


if __name__ == "__main__":
    main()
