"""``cloudcache``: list, inspect, verify, prune and sync cache entries from the command line.

Exit codes: 0 success; 1 problems found or nothing matched (a broken entry, an unknown or
ambiguous key prefix, a refused confirmation, a cache that does not exist or cannot be
listed); 2 usage error (bad option or argument).
Works on local directories and fsspec URLs alike; only files named like cloudcache entries are
ever touched, and symbolic links are never followed. Everything printed from an entry (names,
metadata, errors) is shown as plain text, control characters escaped.

Start-up is part of the interface: this module imports click and the standard library only;
the catalog (h5py, fsspec) is imported by the commands that use it, and xarray only by the
commands that load arrays (``verify``, ``sync``, ``why``'s comparison never does).
"""

from __future__ import annotations

import inspect
import json
import math
import os
import re
import time
from collections.abc import Callable
from typing import IO, TYPE_CHECKING, Any

import click

from cloudcache.cli.table import Table
from cloudcache.cli.units import counted, format_size, parse_age, parse_size, printable
from cloudcache.errors import CorruptEntry, StoreError

if TYPE_CHECKING:
    from cloudcache.stores.maintenance.catalog import Catalog, CatalogEntry
    from cloudcache.stores.maintenance.partial import RunFolder

EXIT_OK = 0
EXIT_PROBLEMS = 1
EXIT_USAGE = 2
#: Temp files younger than this may belong to a writer that is still running.
STRAY_MIN_AGE_SECONDS = 60.0
MIN_PREFIX_LENGTH = 4
#: How ``ls`` names each call kind (``metadata["kind"]``).
KIND_NAMES = {
    "sample": "sample",
    "sample_prior_predictive": "prior predictive",
    "sample_posterior_predictive": "posterior predictive",
    "sample_smc": "SMC",
    "find_MAP": "find_MAP",
    "fit": "fit",
    "fit_pathfinder": "pathfinder",
    "fit_laplace": "Laplace",
}


class Problem(click.ClickException):
    """Something the user should know about that is not a usage error: exit code 1."""

    exit_code = EXIT_PROBLEMS

    def show(self, file: IO[Any] | None = None) -> None:
        click.echo(printable(f"cloudcache: {self.message}"), err=True)


class CacheGroup(click.Group):
    """The command group: a store that cannot be listed or read is a one-line problem."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except StoreError as error:
            raise Problem(str(error)) from None


@click.group(
    "cloudcache",
    cls=CacheGroup,
    invoke_without_command=True,  # a bare `cloudcache` prints the help (exit code 0)
    subcommand_metavar="COMMAND [ARGS]...",
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
)
@click.version_option(package_name="cloudcache", prog_name="cloudcache", default=False)
@click.pass_context
def app(context: click.Context) -> None:
    """Inspect and maintain a cloudcache cache: a local directory or an fsspec URL
    (s3://bucket/prefix, gs://..., memory://...).

    Every command takes --cache/-c (default: $CLOUDCACHE_DIR, else ./.cloudcache) and
    --option/-o KEY=VALUE (an fsspec storage option). Exit codes: 0 success, 1 problems
    found or nothing matched, 2 usage error.
    """
    if context.invoked_subcommand is None:  # a bare `cloudcache`: the help, exit code 0
        click.echo(context.get_help())


def cache_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """``--cache/-c`` and ``--option/-o`` (repeatable), passed as ``cache`` and ``options``."""
    command = click.option(
        "--option",
        "-o",
        "options",
        multiple=True,
        default=None,
        metavar="KEY=VALUE",
        help="fsspec storage option (VALUE may be JSON); repeatable.",
    )(command)
    return click.option(
        "--cache",
        "-c",
        metavar="DIR|URL",
        default=None,
        help="Cache directory or fsspec URL. Default: $CLOUDCACHE_DIR, else ./.cloudcache.",
    )(command)


json_flag = click.option(
    "--json", "as_json", is_flag=True, default=False, help="Print JSON for scripts."
)
dry_run_flag = click.option(
    "--dry-run", "-n", is_flag=True, default=False, help="Only say what would happen."
)
model_option = click.option(
    "--model", metavar="NAME", default=None, help="Only this model (its folder name)."
)


def _echo(message: str, *, err: bool = False) -> None:
    click.echo(printable(message), err=err)


def _storage_options(items: tuple[str, ...], hint: str) -> dict[str, Any]:
    options: dict[str, Any] = {}
    for item in items:
        name, sep, raw = item.partition("=")
        if not sep or not name:
            raise click.BadParameter(f"expected KEY=VALUE, got {item!r}", param_hint=hint)
        try:
            options[name] = json.loads(raw)
        except ValueError:
            options[name] = raw
    return options


def _catalog(
    cache: str | None,
    options: tuple[str, ...],
    hint: str = "--cache",
    option_hint: str = "--option",
    *,
    must_exist: bool = True,
) -> Catalog:
    """The catalog of ``cache``; a local cache that does not exist is a problem (exit 1).

    Object stores have no folders to be missing: an empty prefix lists no entries.
    """
    from cloudcache.stores.maintenance.catalog import Catalog
    from cloudcache.stores.resolve import default_directory

    location = cache if cache else os.fspath(default_directory())
    storage_options = _storage_options(options, option_hint)
    try:
        catalog = Catalog(location, storage_options)
    except (ImportError, ValueError, TypeError) as error:
        raise click.BadParameter(f"cannot open {location!r}: {error}", param_hint=hint) from error
    if must_exist and catalog.is_local and not os.path.isdir(catalog.root):
        what = "is not a directory" if os.path.lexists(catalog.root) else "does not exist"
        raise Problem(f"no cache at {catalog.location}: it {what}")
    return catalog


def _check_prefix(prefix: str) -> str:
    if not re.fullmatch(r"[0-9a-fA-F]+", prefix) or len(prefix) < MIN_PREFIX_LENGTH:
        raise click.BadParameter(
            f"{prefix!r} is not a key prefix (at least {MIN_PREFIX_LENGTH} hex digits, "
            "as `cloudcache ls` shows)",
            param_hint="KEY_PREFIX",
        )
    return prefix.lower()


def _one_entry(catalog: Catalog, prefix: str) -> CatalogEntry:
    matches = catalog.find(_check_prefix(prefix))
    if not matches:
        raise Problem(f"no entry with key prefix {prefix!r} in {catalog.location}")
    if len(matches) > 1:
        names = ", ".join(entry.relative_path for entry in matches)
        raise Problem(f"key prefix {prefix!r} is ambiguous: {names}; type more digits")
    return matches[0]


# -- how entries look -------------------------------------------------------------------
def _number(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return printable(value, 12)


def _kind(meta: dict[str, Any]) -> str:
    kind = meta.get("kind", "sample")  # entries written before predictive calls were cached
    return KIND_NAMES.get(kind, printable(kind, 30)) if isinstance(kind, str) else "?"


def _shape(meta: dict[str, Any], label: str) -> str:
    """``draws/tune/chains``, ``-`` where a call has none (a predictive call has no tune); the
    entry's label where it has none of them (``fit_advi_n10000``, ``smc_draws2000_chains4``)."""
    values = [meta.get(name) for name in ("draws", "tune", "chains")]
    if all(value is None for value in values):
        return label
    return "/".join(_number(value) for value in values)


def _saved(meta: dict[str, Any]) -> str:
    from cloudcache.ui.announce import format_seconds

    seconds = meta.get("sampling_seconds")
    if isinstance(seconds, bool) or not isinstance(seconds, int | float):
        return "?"
    return format_seconds(float(seconds)) if math.isfinite(seconds) and seconds >= 0 else "?"


def _created(meta: dict[str, Any]) -> str:
    from cloudcache.ui.announce import format_age

    created = meta.get("created")
    if not isinstance(created, str) or not created:
        return "?"
    return f"{created[:19].replace('T', ' ')} ({format_age(created)} ago)"


LS_COLUMNS = ("model", "kind", "draws/tune/chains", "backend", "created", "size", "saves", "key")


def _row(entry: CatalogEntry) -> list[str]:
    """One ``ls`` row as plain text; an entry whose metadata cannot be shown is damaged."""
    if not entry.error:
        try:
            meta = entry.metadata
            cells = [
                meta.get("model", entry.slug),
                _kind(meta),
                _shape(meta, entry.label),
                meta.get("backend", "?"),
                _created(meta),
                format_size(entry.size),
                _saved(meta),
                entry.prefix,
            ]
            return [printable(cell, 80) for cell in cells]
        except Exception as error:  # any metadata shape or value: list the entry as damaged
            entry.damaged(f"metadata cannot be shown ({type(error).__name__}: {error})")
    cells = [entry.slug, "?", entry.label, "?", entry.status.upper(), format_size(entry.size)]
    return [printable(cell, 80) for cell in cells] + ["?", entry.prefix]


def _plain_json(value: Any) -> Any:
    if value is None or type(value) in (str, int, bool):
        return value
    if isinstance(value, dict):
        return {str(name): _plain_json(item) for name, item in value.items()}
    if isinstance(value, list | tuple):
        return [_plain_json(item) for item in value]
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if value is None or isinstance(value, str | int | float | bool):
        return value
    return printable(value)


def _json_text(value: Any, *, sort_keys: bool = False) -> str:
    """Strict JSON (non-finite numbers and odd values as text), control characters escaped."""
    return json.dumps(_plain_json(value), indent=2, sort_keys=sort_keys, allow_nan=False)


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


def _entries_in(count: int, location: str) -> str:
    return f"{counted(count, 'entry', 'entries')} ({location})"


# -- commands ---------------------------------------------------------------------------
@app.command("ls", short_help="List the entries: model, kind, draws, backend, age, size, key.")
@cache_options
@model_option
@click.option(
    "--partial",
    is_flag=True,
    default=False,
    help="List interrupted runs (their checkpoints) instead: progress, age, size, key.",
)
@json_flag
def list_entries(
    cache: str | None,
    options: tuple[str, ...],
    model: str | None,
    partial: bool,
    as_json: bool,
) -> None:
    """List the entries: model, kind (sample, prior or posterior predictive),
    draws/tune/chains ("-" where a call has none), backend, created, size, the sampling
    time a hit saves, and the key prefix that show, rm and why take.

    Reads only each entry's root attributes (key and metadata), never its arrays.

    --partial lists the interrupted runs instead: the checkpoints the cache keeps for the
    next identical call to resume (model, progress such as "2,400 of 4,000 draws", chains,
    when it was last saved, size, key prefix), a torn or foreign one marked TORN, and the
    space final states kept for extending finished runs take (a directory cache only).
    """
    catalog = _catalog(cache, options)
    if partial:
        from cloudcache.cli.partial import list_partial

        list_partial(catalog, model, as_json)
        return
    entries = catalog.entries(slug=model)
    if as_json:
        rows = [_json_row(entry) for entry in entries]  # one object a line: C-encoded, fast
        lines = ",\n".join(json.dumps(row, allow_nan=False) for row in rows)
        click.echo(f"[\n{lines}\n]" if rows else "[]")
        return
    if not entries:
        _echo(f"no entries in {catalog.location}", err=True)
        return
    table = Table(LS_COLUMNS, right=frozenset({"size"}))
    for entry in entries:
        table.add_row(_row(entry))
    damaged = [entry for entry in entries if entry.error]
    total = format_size(sum(entry.size for entry in entries))
    lines = [f"{catalog.location}: {counted(len(entries), 'entry', 'entries')}, {total}"]
    lines += table.lines()
    if damaged:
        lines.append(f"{len(damaged)} damaged or unreadable:")
        lines += [f"  {entry.prefix}  {entry.relative_path}: {entry.error}" for entry in damaged]
    click.echo("\n".join(printable(line) for line in lines))


@app.command(short_help="Print one entry's full metadata record as JSON.")
@click.argument("key_prefix", metavar="KEY_PREFIX")
@cache_options
def show(key_prefix: str, cache: str | None, options: tuple[str, ...]) -> None:
    """Print the full metadata record of the entry KEY_PREFIX names (at least 4 hex digits
    of the key `ls` shows) as JSON: key and its components, sampler arguments, backend,
    device, library versions, created, sampling seconds, checksums.
    """
    catalog = _catalog(cache, options)
    entry = _one_entry(catalog, key_prefix)
    catalog.read_metadata([entry])
    if entry.error:
        raise Problem(f"{catalog.url(entry.path)}: {entry.error}")
    record = {"path": catalog.url(entry.path), "size": entry.size, **entry.metadata}
    click.echo(_json_text(record, sort_keys=True))


@app.command(short_help="Remove entries (and interrupted runs) by key prefix.")
@click.argument("key_prefixes", metavar="KEY_PREFIX...", nargs=-1, required=True)
@cache_options
def rm(key_prefixes: tuple[str, ...], cache: str | None, options: tuple[str, ...]) -> None:
    """Remove the entries the key prefixes name, with the checkpoint of their key and the
    final state their run left for extending it; a prefix that names no entry but one
    interrupted run (`ls --partial`) removes its checkpoint. Each prefix must name exactly
    one key (a prefix that names none or several removes nothing, and the exit code is 1).
    """
    from cloudcache.cli.partial import PartialState, remove_entry_state

    prefixes = [_check_prefix(prefix) for prefix in key_prefixes]
    catalog = _catalog(cache, options)
    entries = catalog.entries(with_metadata=False)
    state = PartialState.of(catalog)
    failed = False
    for prefix in prefixes:
        matches = [entry for entry in entries if entry.prefix.startswith(prefix[:16])]
        if len(prefix) > 16:
            catalog.read_metadata(matches)
            matches = [entry for entry in matches if entry.key.startswith(prefix)]
        saved = state.checkpoints_matching(prefix)
        if len(matches) == 1:
            saved = [folder for folder in saved if folder not in state.checkpoints_of(matches[0])]
        if len(matches) + len(saved) != 1:
            problem = (
                "no entry or interrupted run"
                if not matches and not saved
                else f"{counted(len(matches) + len(saved), 'key')} (ambiguous)"
            )
            _echo(f"{prefix}: {problem}; nothing removed", err=True)
            failed = True
            continue
        if saved:
            _remove_checkpoint(saved[0])
            continue
        entry = matches[0]
        catalog.read_metadata([entry])  # its key and run key name its partial state
        catalog.remove(entry.path)
        _echo(f"removed {catalog.url(entry.path)}")
        for line in remove_entry_state(state, entry):
            _echo(line)
    if failed:
        raise click.exceptions.Exit(EXIT_PROBLEMS)


def _remove_checkpoint(folder: RunFolder) -> None:
    from cloudcache.stores.maintenance.partial import remove_folder

    remove_folder(folder)
    _echo(
        f"removed the checkpoint of an interrupted run {folder.path} ({format_size(folder.size)})"
    )


@app.command(short_help="Remove every entry and interrupted run (asks first).")
@cache_options
@click.option("--yes", "-y", is_flag=True, default=False, help="Do not ask for confirmation.")
def clear(cache: str | None, options: tuple[str, ...], yes: bool) -> None:
    """Remove every entry, temp files of interrupted writes, the checkpoints of interrupted
    runs (.resume) and the final states kept for extending runs (.extend) from the cache.
    Asks first, saying what it removes, unless --yes; files not named like entries are left
    alone.
    """
    from cloudcache.cli.partial import PartialState

    catalog = _catalog(cache, options)
    entries = catalog.entries(with_metadata=False)
    strays = catalog.stray_files()
    state = PartialState.of(catalog)
    if not entries and not strays and not state.describe():
        _echo(f"no entries in {catalog.location}", err=True)
        return
    size = format_size(sum(entry.size for entry in entries))
    parts = [f"{counted(len(entries), 'entry', 'entries')} ({size})"] if entries or strays else []
    parts += state.describe()
    what = " and ".join([", ".join(parts[:-1]), parts[-1]]) if len(parts) > 1 else parts[0]
    if not yes and not click.confirm(printable(f"Remove {what} from {catalog.location}?")):
        _echo("nothing removed", err=True)
        raise click.exceptions.Exit(EXIT_PROBLEMS)
    for path in [entry.path for entry in entries] + [stray.path for stray in strays]:
        catalog.remove(path)
    state.remove_all()
    _echo(f"removed {what} from {catalog.location}")


@app.command(short_help="Remove least recently used entries until every limit holds.")
@cache_options
@click.option(
    "--max-size",
    metavar="SIZE",
    default=None,
    help="Remove least recently used entries until the total is at most SIZE (5GB, 500MiB).",
)
@click.option(
    "--older-than",
    metavar="AGE",
    default=None,
    help="Remove entries not used for AGE (30d, 12h, 90min).",
)
@click.option(
    "--keep",
    type=click.IntRange(min=0),
    metavar="N",
    default=None,
    help="Keep at most N entries (the most recently used).",
)
@dry_run_flag
@json_flag
def prune(
    cache: str | None,
    options: tuple[str, ...],
    max_size: str | None,
    older_than: str | None,
    keep: int | None,
    dry_run: bool,
    as_json: bool,
) -> None:
    """Remove least recently used entries until every given limit holds. "Used" means
    written or served as a hit; listing, showing or verifying an entry is not use.

    Partial state counts too: the final state a run left for extending it goes with its
    entry (its bytes count as the entry's); the checkpoint of an interrupted run, and a
    final state whose entry is gone, count on their own, last used when written. --max-size
    and --older-than apply to all of them, --keep counts entries only. Anything written in
    the last minute may belong to a run going on: it is left alone.
    """
    if max_size is None and older_than is None and keep is None:
        raise click.UsageError("give at least one of --max-size, --older-than, --keep")
    try:
        size_limit = parse_size(max_size) if max_size is not None else None
    except ValueError as error:
        raise click.BadParameter(str(error), param_hint="--max-size") from error
    try:
        age_limit = parse_age(older_than) if older_than is not None else None
    except ValueError as error:
        raise click.BadParameter(str(error), param_hint="--older-than") from error
    from cloudcache.stores.maintenance.partial import prune_units, remove_unit
    from cloudcache.stores.maintenance.pruning import last_use_clock, select_for_pruning

    catalog = _catalog(cache, options)
    entries = catalog.entries(with_metadata=False)
    now = time.time()
    units = prune_units(catalog, entries, now)
    # Last use = the last session hit (the store's markers), else the write time: reading
    # (ls, show, verify, sync) never counts as use.
    last_used = last_use_clock(catalog.store.usage)
    whole = [unit for unit in units if unit.entry is not None]
    doomed = select_for_pruning(whole, None, None, keep, now=now, last_used=last_used)
    rest = [unit for unit in units if unit not in doomed]
    doomed += select_for_pruning(rest, size_limit, age_limit, None, now=now, last_used=last_used)
    for unit in doomed:
        if not dry_run:
            remove_unit(catalog, unit)
        if not as_json:
            verb = "would remove" if dry_run else "removed"
            for path, size in unit.parts:
                _echo(f"{verb} {catalog.url(path)} ({format_size(size)})")
    if as_json:
        rows = [
            {"path": catalog.url(path), "size": size}
            for unit in doomed
            for path, size in unit.parts
        ]
        click.echo(_json_text({"dry_run": dry_run, "removed": rows}))
        return
    freed = format_size(sum(unit.size for unit in doomed))
    verb = "would free" if dry_run else "freed"
    removed = [unit for unit in doomed if unit.entry is not None]
    what = counted(len(removed), "entry", "entries")
    others = len(doomed) - len(removed)
    also = f" and {counted(others, 'checkpoint or final state', 'checkpoints or final states')}"
    _echo(f"{verb} {freed} ({what}{also if others else ''})", err=True)


@app.command(short_help="Load every entry and check its key and checksums.")
@cache_options
@click.option(
    "--fix", is_flag=True, default=False, help="Remove damaged entries and stale temp files."
)
@json_flag
def verify(cache: str | None, options: tuple[str, ...], fix: bool, as_json: bool) -> None:
    """Load every entry as a hit would and check its stored key and checksums, and read
    every checkpoint of an interrupted run and final state kept for extending a run as a
    resume or an extension would (NumPy archives, never unpickled). --fix removes damaged
    entries, torn or foreign checkpoints and final states, and temp files of interrupted
    writes older than a minute, never an entry this user merely cannot read (reported as
    UNREADABLE and kept). Partial state written in the last minute may belong to a run
    going on: it is not checked. Object-store entries are fetched and checked concurrently.
    """
    from cloudcache.cli.partial import partial_problems

    catalog = _catalog(cache, options)
    entries = catalog.entries(with_metadata=False)
    problems: list[tuple[str, str, Callable[[], None] | None]] = []  # path, problem, remover
    for entry, verdict in zip(entries, catalog.check_all(entries), strict=True):
        if verdict.status != "ok":
            remover = _remover(catalog, entry.path) if verdict.removable else None
            problems.append((entry.path, verdict.problem, remover))
    now = time.time()
    for stray in catalog.stray_files():
        if now - stray.modified > STRAY_MIN_AGE_SECONDS:
            why = "temp file left by an interrupted write"
            problems.append((stray.path, why, _remover(catalog, stray.path)))
    partial, partial_found = partial_problems(catalog)
    problems += partial_found
    removed: set[str] = set()
    for path, _, remover in problems:
        if fix and remover is not None:
            try:
                remover()
                removed.add(path)
            except (OSError, StoreError) as error:
                _echo(f"cannot remove {catalog.url(path)}: {error}", err=True)
    if as_json:
        rows = [
            {"path": catalog.url(path), "problem": why, "removed": path in removed}
            for path, why, _ in problems
        ]
        report = {"checked": len(entries), "checked_partial": partial, "problems": rows}
        click.echo(_json_text(report))
    else:
        for path, why, remover in problems:
            verb = "removed" if path in removed else "BROKEN" if remover else "UNREADABLE"
            kept = " (kept: not readable by this user, not damaged)" if remover is None else ""
            _echo(f"{verb} {catalog.url(path)}: {why}{kept}")
        checked = counted(len(entries), "entry", "entries")
        if partial:
            states = counted(partial, "checkpoint or final state", "checkpoints and final states")
            checked += f" and {states}"
        found = counted(len(problems), "problem") if problems else "no problems"
        fixed = f", {len(removed)} removed" if removed else ""
        _echo(f"checked {checked} in {catalog.location}: {found}{fixed}", err=True)
    if len(removed) < len(problems):
        raise click.exceptions.Exit(EXIT_PROBLEMS)


@app.command(short_help="Copy the entries DESTINATION lacks from SOURCE, checking each.")
@click.argument("source", metavar="SOURCE")
@click.argument("destination", metavar="DESTINATION")
@click.option(
    "--source-option",
    "source_options",
    multiple=True,
    default=None,
    metavar="KEY=VALUE",
    help="fsspec storage option for SOURCE; repeatable.",
)
@click.option(
    "--destination-option",
    "destination_options",
    multiple=True,
    default=None,
    metavar="KEY=VALUE",
    help="fsspec storage option for DESTINATION; repeatable.",
)
@model_option
@dry_run_flag
def sync(
    source: str,
    destination: str,
    source_options: tuple[str, ...],
    destination_options: tuple[str, ...],
    model: str | None,
    dry_run: bool,
) -> None:
    """Copy the entries DESTINATION lacks from SOURCE (each a directory or fsspec URL),
    loading and checking each one before it is written; broken ones are skipped and
    reported (exit code 1). DESTINATION is created when it does not exist.
    """
    src = _catalog(source, source_options, "SOURCE", "--source-option")
    dst = _catalog(
        destination, destination_options, "DESTINATION", "--destination-option", must_exist=False
    )
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
            _echo(f"skipped {src.url(entry.path)}: {problem}", err=True)
            broken += 1
            continue
        copied += 1
        _echo(f"copied {entry.relative_path} ({format_size(entry.size)})")
    verb = "would copy" if dry_run else "copied"
    count = counted(len(missing) if dry_run else copied, "entry", "entries")
    skipped = f"; skipped {counted(broken, 'broken entry', 'broken entries')}" if broken else ""
    _echo(f"{verb} {count} from {src.location} to {dst.location}{skipped}", err=True)
    if broken:
        raise click.exceptions.Exit(EXIT_PROBLEMS)


def _remover(catalog: Catalog, path: str) -> Callable[[], None]:
    return lambda: catalog.remove(path)


def _copy(src: Catalog, dst: Catalog, entry: CatalogEntry) -> str:
    """Copy one checked entry; return the problem that stopped it, or ``""``."""
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


@app.command(short_help="Why was this entry sampled? Compare it with its nearest neighbour.")
@click.argument("key_prefix", metavar="KEY_PREFIX")
@cache_options
@json_flag
def why(key_prefix: str, cache: str | None, options: tuple[str, ...], as_json: bool) -> None:
    """Why was the entry KEY_PREFIX names sampled? Compares it with the nearest other entry
    of its model and names the key components that differ.
    """
    from cloudcache.ui.explain import explain_stored

    catalog = _catalog(cache, options)
    entry = _one_entry(catalog, key_prefix)
    result = explain_stored(catalog, entry)
    if entry.error:
        raise Problem(f"{catalog.url(entry.path)}: {entry.error}")
    if as_json:
        click.echo(_json_text(result.as_dict()))
    else:
        for line in result.text().splitlines():
            _echo(line)


def _clean_help(group: click.Group) -> None:
    """Docstrings as help without their source indentation (for ``--help`` and the docs)."""
    for command in [group, *group.commands.values()]:
        if command.help:
            command.help = inspect.cleandoc(command.help)


_clean_help(app)


def main() -> None:
    """Console-script entry point."""
    app(prog_name="cloudcache")
