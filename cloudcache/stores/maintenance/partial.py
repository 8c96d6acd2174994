"""Checkpoints of interrupted runs and final states of finished ones, as maintenance sees them.

A directory cache keeps two kinds of *partial state* beside its entries: the checkpoint of a run
that was interrupted, ``.resume/<model>/<key>/`` (:mod:`cloudcache.stores.checkpoints`), and
the final states that let a finished run be extended, ``.extend/<model>/<run key>/``
(:mod:`cloudcache.stores.final_states`). Here they are listed (the one walk of
:mod:`cloudcache.stores.walk`: links never followed nor listed), read for what they record
(plain NumPy archives read with ``allow_pickle=False``, never through a link), checked and
removed (:mod:`cloudcache.stores.nofollow`). A torn or foreign file is a problem to report and
remove, never a crash. An object store keeps both in the same layout: they are listed, read
and removed through its filesystem, every call under a deadline
(:class:`~cloudcache.stores.object_checkpoints.ObjectFolder`).
"""

from __future__ import annotations

import dataclasses
import json
import re
import time
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from cloudcache.stores import nofollow
from cloudcache.stores.checkpoints import RESUME_DIR, SEGMENT_NAME, STATE_FILE, read_archive
from cloudcache.stores.final_states import EXTEND_DIR, FILE_NAME
from cloudcache.stores.object_checkpoints import ObjectFolder
from cloudcache.stores.walk import Found, walk_files

if TYPE_CHECKING:
    from cloudcache.stores.maintenance.catalog import Catalog, CatalogEntry

#: Temp files of an interrupted atomic write: ``.<name>.<random>.tmp``.
TEMP_NAME = re.compile(r"^\..+\.tmp$")
#: Partial state younger than this may belong to a run that is writing it right now.
MIN_AGE_SECONDS = 60.0


@dataclass
class RunFolder:
    """One checkpoint or final-state folder, ``<area>/<slug>/<name>`` below ``root``, its
    files, and (once read) its record or the problem that stops it being read."""

    root: str
    area: str
    slug: str
    name: str
    files: list[Found]
    record: dict[str, Any] = field(default_factory=dict, repr=False)
    problem: str = ""
    #: The folder in an object store (``None``: in a local directory).
    objects: ObjectFolder | None = field(default=None, repr=False)

    @property
    def relative_path(self) -> str:
        return f"{self.area}/{self.slug}/{self.name}"

    @property
    def path(self) -> str:
        if self.objects is not None:
            return self.objects.path
        return f"{self.root.rstrip('/')}/{self.relative_path}"

    @property
    def size(self) -> int:
        return sum(found.size for found in self.files)

    @property
    def modified(self) -> float:
        """When it was last written (its newest file)."""
        return max((found.modified for found in self.files), default=0.0)

    def file(self, name: str) -> Found | None:
        return next((found for found in self.files if found.name == name), None)

    def strays(self) -> list[Found]:
        """Temp files of writes that were interrupted (or are under way)."""
        return [found for found in self.files if TEMP_NAME.match(found.name)]

    def archive(self, name: str) -> AbstractContextManager[Any]:
        """The NumPy archive ``name`` of the folder (``allow_pickle=False``, no link followed)."""
        if self.objects is not None:
            return self.objects.archive(name)
        return read_archive(self.root, self.relative_path, name)


def run_folders(catalog: Catalog, area: str, slug: str | None = None) -> list[RunFolder]:
    """Every run folder of ``area`` (``.resume`` or ``.extend``), sorted by model and name."""
    grouped: dict[tuple[str, str], list[Found]] = {}
    for found in walk_files(
        catalog.object_fs,
        catalog.root,
        catalog.is_local,
        slug=slug,
        location=catalog.location,
        area=area,
    ):
        grouped.setdefault((found.slug, found.run), []).append(found)
    folders = [
        RunFolder(catalog.root, area, model, name, files)
        for (model, name), files in sorted(grouped.items())
    ]
    if catalog.object_fs is not None:
        for folder in folders:
            location = catalog.store.backoff_location
            folder.objects = ObjectFolder(
                catalog.object_fs, folder.root, folder.relative_path, location
            )
    return folders


def checkpoints(catalog: Catalog, slug: str | None = None) -> list[RunFolder]:
    """The checkpoints of interrupted runs, each read for its record (or its problem)."""
    found = run_folders(catalog, RESUME_DIR, slug)
    for folder in found:
        read_checkpoint(folder)
    return found


def final_states(catalog: Catalog, slug: str | None = None) -> list[RunFolder]:
    """The folders of final states kept for extending finished runs (not read)."""
    return run_folders(catalog, EXTEND_DIR, slug)


def stored_draws(folder: RunFolder) -> list[tuple[int, Found]]:
    """``(draws, file)`` of each final state in a final-state folder."""
    matches = ((FILE_NAME.match(found.name), found) for found in folder.files)
    return [(int(match[1]), found) for match, found in matches if match is not None]


# -- reading and checking ----------------------------------------------------------------
def read_checkpoint(folder: RunFolder) -> None:
    """Fill ``record`` from the checkpoint's state file, or ``problem`` (torn, foreign)."""
    state = folder.file(STATE_FILE)
    if state is None:
        folder.problem = f"torn: no {STATE_FILE} (stopped before its first save finished)"
        return
    if not state.regular:
        folder.problem = f"{STATE_FILE} is {state.kind}; never opened"
        return
    try:
        with folder.archive(STATE_FILE) as archive:
            record = json.loads(str(archive["record"][()]))
    except Exception as error:  # a torn or foreign file: reported, never a crash
        folder.problem = f"torn or foreign {STATE_FILE} ({type(error).__name__}: {error})"
        return
    segments = record.get("segments") if isinstance(record, dict) else None
    if not isinstance(segments, list) or not _count(record.get("iteration")):
        folder.problem = f"foreign: {STATE_FILE} records no iteration and segments"
        return
    folder.record = record
    missing = [name for name in segments if folder.file(str(name)) is None]
    if missing:
        folder.problem = f"torn: its segment {missing[0]} is missing"


def check_checkpoint(folder: RunFolder) -> str:
    """Read the whole checkpoint as a resume would (every leaf and segment, no pickle):
    ``""`` when it is whole, else what is wrong."""
    read_checkpoint(folder)
    if folder.problem:
        return folder.problem
    record = folder.record
    try:
        with folder.archive(STATE_FILE) as archive:
            for name in archive.files:
                np.asarray(archive[name])
        made = 0
        for name in record["segments"]:
            match = SEGMENT_NAME.match(str(name))
            count = _segment_draws(folder, str(name))
            if match is None or int(match[1]) != made or int(match[2]) != made + count:
                return f"torn: its segment {name} does not follow the one before"
            made += count
    except Exception as error:  # a torn or foreign file: reported, never a crash
        return f"torn or foreign ({type(error).__name__}: {error})"
    tune = record.get("tune")
    if _count(tune) and made != max(0, record["iteration"] - tune):
        return f"torn: {made:,} draws saved, its state is at draw {record['iteration'] - tune:,}"
    return ""


def _segment_draws(folder: RunFolder, name: str) -> int:
    found = folder.file(name)
    if found is None or not found.regular:
        raise ValueError(f"{name} is missing or not a regular file")
    with folder.archive(name) as archive:
        counts = {np.shape(archive[field])[1:2] for field in archive.files}
    if len(counts) != 1 or counts == {()}:
        raise ValueError(f"the arrays of {name} hold different numbers of draws")
    return int(counts.pop()[0])


def check_final_state(folder: RunFolder, draws: int, found: Found) -> str:
    """Read one final state whole (no pickle): ``""`` when it is whole, else what is wrong."""
    if not found.regular:
        return f"{found.kind}; never opened"
    try:
        with folder.archive(found.name) as archive:
            record = json.loads(str(archive["record"][()]))
            arrays = {name: np.asarray(archive[name]) for name in archive.files}
    except Exception as error:  # a torn or foreign file: reported, never a crash
        return f"torn or foreign ({type(error).__name__}: {error})"
    if not isinstance(record, dict) or record.get("draws") != draws:
        return f"foreign: its record does not say {draws:,} draws"
    kept = [array for name, array in arrays.items() if name.startswith("draws_")]
    if not kept or not any(name.startswith("leaf_") for name in arrays):
        return "torn: its state or its draws are missing"
    if any(array.ndim < 2 or array.shape[1] != draws for array in kept):
        return f"torn: its draws are not {draws:,}"
    return ""


# -- what a checkpoint says --------------------------------------------------------------
def progress(folder: RunFolder) -> str:
    """``"2,400 of 4,000 draws"``, ``"warm-up: 300 of 1,000"``, or what else is known."""
    record = folder.record
    iteration, tune, draws = (record.get(name) for name in ("iteration", "tune", "draws"))
    if not _count(iteration):
        return "?"
    if not (_count(tune) and _count(draws)):  # a record without them: only its iteration
        return f"at iteration {iteration:,}"
    if iteration < tune:
        return f"warm-up: {iteration:,} of {tune:,}"
    return f"{iteration - tune:,} of {draws:,} draws"


def summary(folder: RunFolder, now: float | None = None) -> dict[str, Any]:
    """The row ``cloudcache ls --partial --json`` prints for a checkpoint."""
    record = folder.record
    iteration, tune, draws = (record.get(name) for name in ("iteration", "tune", "draws"))
    done = iteration - tune if _count(iteration) and _count(tune) else None
    return {
        "model": folder.slug,
        "prefix": folder.name,
        "progress": progress(folder) if not folder.problem else None,
        "iteration": iteration if _count(iteration) else None,
        "tune": tune if _count(tune) else None,
        "draws": draws if _count(draws) else None,
        "draws_done": max(0, done) if done is not None else None,
        "chains": record.get("chains") if _count(record.get("chains")) else None,
        "age_seconds": round(max(0.0, (now or time.time()) - folder.modified), 1),
        "size": folder.size,
        "path": folder.path,
        "status": "torn" if folder.problem else "ok",
        "error": folder.problem or None,
    }


def _count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


# -- removing ----------------------------------------------------------------------------
def remove_folder(folder: RunFolder) -> None:
    """Delete every file of the folder, then the folder and its emptied model folder.

    Never through a link: a folder swapped for one since the listing raises
    :class:`~cloudcache.errors.PlantedLink` and nothing below it is deleted. In an object
    store, the listed objects are deleted in one call under a deadline.
    """
    if folder.objects is not None:
        folder.objects.remove([found.name for found in folder.files])
        return
    for found in folder.files:
        nofollow.remove(folder.root, f"{folder.relative_path}/{found.name}")
    nofollow.remove_empty_folder(folder.root, folder.relative_path)
    nofollow.remove_empty_folder(folder.root, f"{folder.area}/{folder.slug}")


def remove_file(folder: RunFolder, found: Found) -> None:
    """Delete one file of the folder (and the folders it empties); never through a link."""
    if folder.objects is not None:
        folder.objects.remove([found.name])
        folder.files = [other for other in folder.files if other is not found]
        return
    nofollow.remove(folder.root, f"{folder.relative_path}/{found.name}")
    folder.files = [other for other in folder.files if other is not found]
    if not folder.files:
        nofollow.remove_empty_folder(folder.root, folder.relative_path)
        nofollow.remove_empty_folder(folder.root, f"{folder.area}/{folder.slug}")


# -- pruning -----------------------------------------------------------------------------
@dataclass(eq=False)
class PruneUnit:
    """What ``prune`` keeps or removes as one: an entry with the final state its run left, the
    checkpoint of an interrupted run, or a final state whose entry is gone."""

    relative_path: str
    modified: float
    #: ``(path, size)`` of every file or folder it removes, the entry (if any) first.
    parts: list[tuple[str, int]]
    entry: CatalogEntry | None = None
    folders: list[RunFolder] = field(default_factory=list)
    files: list[tuple[RunFolder, Found]] = field(default_factory=list)

    @property
    def size(self) -> int:
        return sum(size for _, size in self.parts)


def prune_units(catalog: Catalog, entries: list[CatalogEntry], now: float) -> list[PruneUnit]:
    """Every entry (with its final state), checkpoint and orphaned final state as one unit.

    Partial state written in the last :data:`MIN_AGE_SECONDS` may belong to a run that is
    going on: it is left out (neither counted nor removed).
    """
    units = [PruneUnit(e.relative_path, e.modified, [(e.path, e.size)], e) for e in entries]
    for folder in run_folders(catalog, RESUME_DIR):
        if now - folder.modified > MIN_AGE_SECONDS:
            unit = PruneUnit(folder.relative_path, folder.modified, [(folder.path, folder.size)])
            units.append(dataclasses.replace(unit, folders=[folder]))
    finals = run_folders(catalog, EXTEND_DIR)
    if not finals:
        return units
    catalog.read_metadata([entry for entry in entries if not entry.key and not entry.error])
    owners = {_final_state_of(entry): unit for unit in units if (entry := unit.entry)}
    for folder in finals:
        for draws, found in stored_draws(folder):
            owner = owners.get((folder.slug, folder.name, draws))
            if owner is not None:
                owner.parts.append((found.path, found.size))
                owner.files.append((folder, found))
            elif now - found.modified > MIN_AGE_SECONDS:
                relative = f"{folder.relative_path}/{found.name}"
                units.append(
                    PruneUnit(
                        relative,
                        found.modified,
                        [(found.path, found.size)],
                        files=[(folder, found)],
                    )
                )
    return units


def _final_state_of(entry: CatalogEntry) -> tuple[str, str, int] | None:
    """Where the final state of ``entry``'s run is kept: ``(slug, run folder, draws)``."""
    run_key, draws = entry.metadata.get("run_key"), entry.metadata.get("draws")
    if not isinstance(run_key, str) or not run_key or not _count(draws):
        return None
    return entry.slug, run_key[:32], draws


def remove_unit(catalog: Catalog, unit: PruneUnit) -> None:
    """Remove everything of ``unit``: its entry, its folders, its final-state files."""
    if unit.entry is not None:
        catalog.remove(unit.entry.path)
    for folder in unit.folders:
        remove_folder(folder)
    for folder, found in unit.files:
        remove_file(folder, found)
