"""The command line's view of partial state: checkpoints of interrupted runs, final states.

``ls --partial`` lists the checkpoints (:func:`list_partial`); ``rm``, ``clear``, ``prune`` and
``verify`` find, count, check and remove checkpoints and final states beside the entries they
handle with the helpers here. An object store keeps checkpoints too (no final states).
Imports click and the standard library only; the store modules are imported when used.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import click

from cloudcache.cli.table import Table
from cloudcache.cli.units import counted, format_size, printable

if TYPE_CHECKING:
    from cloudcache.stores.maintenance.catalog import Catalog, CatalogEntry
    from cloudcache.stores.maintenance.partial import RunFolder
    from cloudcache.stores.walk import Found

PARTIAL_COLUMNS = ("model", "progress", "chains", "last saved", "size", "key")


def _echo(message: str, *, err: bool = False) -> None:
    click.echo(printable(message), err=err)


def list_partial(catalog: Catalog, model: str | None, as_json: bool) -> None:
    """``cloudcache ls --partial``: the interrupted runs, their progress, age and size."""
    from cloudcache.stores.maintenance.partial import checkpoints, final_states, summary

    found = checkpoints(catalog, model)
    now = time.time()
    if as_json:
        rows = [summary(folder, now) for folder in found]
        click.echo(json.dumps(rows, indent=2, allow_nan=False) if rows else "[]")
        return
    finals = final_states(catalog, model)
    lines: list[str] = []
    if not found:
        _echo(f"no interrupted runs in {catalog.location}", err=True)
    else:
        table = Table(PARTIAL_COLUMNS, right=frozenset({"size"}))
        for folder in found:
            table.add_row([printable(cell, 80) for cell in _partial_row(summary(folder, now))])
        total = format_size(sum(folder.size for folder in found))
        runs = counted(len(found), "interrupted run")
        lines += [f"{catalog.location}: {runs}, {total}", *table.lines()]
        torn = [folder for folder in found if folder.problem]
        if torn:
            lines.append(f"{len(torn)} torn or foreign (never resumed; `verify --fix` removes):")
            lines += [
                f"  {folder.name[:16]}  {folder.relative_path}: {folder.problem}" for folder in torn
            ]
        lines.append("the same call resumes each; `cloudcache rm KEY` removes one")
    if finals:
        count = sum(len(folder.files) for folder in finals)
        size = format_size(sum(folder.size for folder in finals))
        files = counted(count, "file")
        lines.append(f"final states kept for extending finished runs: {files}, {size}")
    if lines:
        click.echo("\n".join(printable(line) for line in lines))


def _partial_row(row: dict[str, Any]) -> list[str]:
    from cloudcache.ui.announce import format_seconds

    progress = row["progress"] if row["status"] == "ok" else row["status"].upper()
    chains = "-" if row["chains"] is None else str(row["chains"])
    age = f"{format_seconds(row['age_seconds'])} ago"
    return [row["model"], progress, chains, age, format_size(row["size"]), row["prefix"][:16]]


# -- partial state of entries ---------------------------------------------------------------
@dataclass
class PartialState:
    """The checkpoints and final states of a cache."""

    checkpoints: list[RunFolder] = field(default_factory=list)
    final_states: list[RunFolder] = field(default_factory=list)

    @classmethod
    def of(cls, catalog: Catalog) -> PartialState:
        from cloudcache.stores.checkpoints import RESUME_DIR
        from cloudcache.stores.final_states import EXTEND_DIR
        from cloudcache.stores.maintenance.partial import run_folders

        return cls(run_folders(catalog, RESUME_DIR), run_folders(catalog, EXTEND_DIR))

    def checkpoints_matching(self, prefix: str) -> list[RunFolder]:
        return [folder for folder in self.checkpoints if folder.name.startswith(prefix[:32])]

    def checkpoints_of(self, entry: CatalogEntry) -> list[RunFolder]:
        """The checkpoint of ``entry``'s key (left by an earlier, interrupted run of it)."""
        return [
            folder
            for folder in self.checkpoints
            if folder.slug == entry.slug and folder.name[:16] == entry.prefix
        ]

    def final_state_of(self, entry: CatalogEntry) -> list[tuple[RunFolder, Found]]:
        """The final state ``entry``'s run left for extending it (its metadata names it)."""
        from cloudcache.stores.maintenance.partial import stored_draws

        run_key, draws = entry.metadata.get("run_key"), entry.metadata.get("draws")
        if not isinstance(run_key, str) or not run_key:
            return []
        return [
            (folder, found)
            for folder in self.final_states
            if folder.slug == entry.slug and folder.name == run_key[:32]
            for count, found in stored_draws(folder)
            if count == draws
        ]

    def describe(self) -> list[str]:
        """``["1 checkpoint of an interrupted run (20 KB)", "2 final states ... (4 MB)"]``."""
        parts = []
        if self.checkpoints:
            size = format_size(sum(folder.size for folder in self.checkpoints))
            what = counted(len(self.checkpoints), "checkpoint")
            runs = "an interrupted run" if len(self.checkpoints) == 1 else "interrupted runs"
            parts.append(f"{what} of {runs} ({size})")
        if self.final_states:
            count = sum(len(folder.files) for folder in self.final_states)
            size = format_size(sum(folder.size for folder in self.final_states))
            parts.append(f"{counted(count, 'final-state file')} kept for extending runs ({size})")
        return parts

    def remove_all(self) -> None:
        from cloudcache.stores.maintenance.partial import remove_folder

        for folder in [*self.checkpoints, *self.final_states]:
            remove_folder(folder)


def remove_entry_state(state: PartialState, entry: CatalogEntry) -> list[str]:
    """Remove the checkpoint and final state of a removed entry; what was removed, in words."""
    from cloudcache.stores.maintenance.partial import remove_file, remove_folder

    said = []
    for folder in state.checkpoints_of(entry):
        remove_folder(folder)
        said.append(f"removed its checkpoint {folder.path} ({format_size(folder.size)})")
    for folder, found in state.final_state_of(entry):
        remove_file(folder, found)
        said.append(f"removed its final state {found.path} ({format_size(found.size)})")
    return said


def partial_problems(catalog: Catalog) -> tuple[int, list[tuple[str, str, Any]]]:
    """Check every checkpoint and final state older than a minute as a resume or extension
    reads it: how many were checked, and ``(path, problem, remove)`` for each broken one and
    each temp file of an interrupted write."""
    from cloudcache.stores.maintenance.partial import (
        MIN_AGE_SECONDS,
        check_checkpoint,
        check_final_state,
        remove_file,
        remove_folder,
        stored_draws,
    )

    state = PartialState.of(catalog)
    now = time.time()
    checked, problems = 0, []
    for folder in state.checkpoints:
        if now - folder.modified <= MIN_AGE_SECONDS:
            continue  # a run may be saving it right now
        checked += 1
        problem = check_checkpoint(folder)
        if problem:
            problems.append((folder.path, f"checkpoint {problem}", _remover(remove_folder, folder)))
    for folder in state.final_states:
        for draws, found in stored_draws(folder):
            if now - found.modified <= MIN_AGE_SECONDS:
                continue
            checked += 1
            problem = check_final_state(folder, draws, found)
            if problem:
                problems.append(
                    (found.path, f"final state {problem}", _remover(remove_file, folder, found))
                )
    broken = {path for path, _, _ in problems}
    for folder in state.final_states + state.checkpoints:
        if folder.path in broken:
            continue  # removed whole
        for stray in folder.strays():
            if now - stray.modified > MIN_AGE_SECONDS:
                why = "temp file left by an interrupted write"
                problems.append((stray.path, why, _remover(remove_file, folder, stray)))
    return checked, problems


def _remover(function: Any, *arguments: Any) -> Any:
    return lambda: function(*arguments)
