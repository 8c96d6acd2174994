"""The one walk over a file cache's entries (``<root>/<slug>/<file>``), by the strictest rules.

Every reader of a cache directory's contents (a FileStore listing its entries, the catalog behind
the command line, its view of checkpoints and final states) walks it here, so all follow the
same rules: hidden folders (``.locks``) are skipped unless one is asked for by name (``area``:
the run folders of ``.resume`` and ``.extend``), symbolic links are never followed nor listed (a
linked model folder or file is not part of the cache), and a file that is not a regular file (a
FIFO, socket or device) is reported as such (:attr:`Found.regular`), never opened. Object stores
have no links: their folders and files are listed as the filesystem reports them, within one
total deadline for the whole walk (:data:`~cloudcache.stores.deadline.DEFAULT_LIST_DEADLINE`,
or ``seconds``).
"""

from __future__ import annotations

import os
import stat
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from cloudcache.errors import PlantedLink, StoreError
from cloudcache.stores import nofollow
from cloudcache.stores.deadline import DEFAULT_LIST_DEADLINE, Deadline
from cloudcache.stores.format.entryfile import file_kind
from cloudcache.stores.usage import modified_time

if TYPE_CHECKING:
    import fsspec


@dataclass(frozen=True)
class Found:
    """One file below a model folder: where it is, its size and time, and what it is."""

    slug: str
    name: str
    path: str
    size: int
    modified: float
    #: ``"a regular file"``, or what else it is (``"a FIFO (named pipe)"``).
    kind: str = "a regular file"
    #: The run folder below the model folder (in an ``area`` only: a key prefix), else ``""``.
    run: str = ""

    @property
    def regular(self) -> bool:
        return self.kind == "a regular file"


def walk_files(
    fs: fsspec.AbstractFileSystem | None,
    root: str,
    is_local: bool,
    *,
    slug: str | None = None,
    location: str | None = None,
    seconds: float = DEFAULT_LIST_DEADLINE,
    area: str | None = None,
) -> Iterator[Found]:
    """Every file two levels below ``root`` (only in the folder ``slug`` when given).

    A local directory (``is_local``) is read with the operating system's own calls, never
    through ``fs`` (which may be ``None`` there); an object store through ``fs``.

    With ``area`` (a hidden folder such as ``.resume``), every file of its run folders instead:
    ``<root>/<area>/<slug>/<run>/<file>``, each folder opened without following a link (an
    area, model or run folder that is a link holds nothing); an object store's as listed.

    A missing root holds nothing; a root that cannot be listed raises :class:`StoreError`
    naming ``location`` (default: ``root``); a model folder this user may not list is skipped.
    An object store's listing that takes more than ``seconds`` in all raises
    :class:`~cloudcache.errors.DeadlineExceeded` (a :class:`StoreError`).
    """
    where = location or root
    try:
        if is_local and area is not None:
            yield from _walk_area(root, area, slug)
        elif is_local:
            yield from _walk_local(root, slug, where)
        elif fs is None:
            raise ValueError("an object store's listing needs its filesystem")
        elif area is not None:
            deadline = Deadline(seconds, f"listing {where}/{area}")
            yield from _walk_remote_area(fs, root.rstrip("/"), area, slug, deadline)
        else:
            deadline = Deadline(seconds, f"listing {where}")
            yield from _walk_remote(fs, root.rstrip("/"), slug, deadline)
    except FileNotFoundError:
        return
    except StoreError:
        raise
    except Exception as error:  # botocore/aiohttp errors are not all OSErrors
        raise StoreError(f"cannot list {where}: {type(error).__name__}: {error}") from error


def _walk_local(root: str, only: str | None, where: str) -> Iterator[Found]:
    try:
        folders = list(os.scandir(root))
    except FileNotFoundError:
        return
    except OSError as error:
        raise StoreError(f"cannot list {where}: {error}") from error
    for folder in folders:
        if folder.name.startswith(".") or not folder.is_dir(follow_symlinks=False):
            continue
        if only is not None and folder.name != only:
            continue
        yield from _files(root, folder.name, folder.name)


def _walk_area(root: str, area: str, only: str | None) -> Iterator[Found]:
    for slug in _folders(root, area):
        if only is not None and slug != only:
            continue
        for run in _folders(root, f"{area}/{slug}"):
            yield from _files(root, f"{area}/{slug}/{run}", slug, run)


def _folders(root: str, relative: str) -> list[str]:
    """The names of the (non-hidden) folders in ``relative``, links neither followed nor listed."""
    try:
        items = nofollow.folder_contents(root, relative)
    except (OSError, PlantedLink):
        return []  # missing, a link, or not listable by this user: holds nothing it could use
    return sorted(
        name for name, info in items if stat.S_ISDIR(info.st_mode) and not name.startswith(".")
    )


def _files(root: str, relative: str, slug: str, run: str = "") -> Iterator[Found]:
    """Every file in the folder ``relative`` (opened without following a link: a folder
    swapped for one is not listed); links in it are neither followed nor listed."""
    try:
        items = nofollow.folder_contents(root, relative)
    except (OSError, PlantedLink):
        return  # a folder this user may not list holds nothing it could use
    for name, info in items:
        if stat.S_ISLNK(info.st_mode):
            continue  # never followed, never touched: not part of the cache
        kind = "a regular file" if stat.S_ISREG(info.st_mode) else file_kind(info.st_mode)
        path = os.path.join(root, relative, name)
        yield Found(slug, name, path, info.st_size, info.st_mtime, kind, run)


def _walk_remote(
    fs: fsspec.AbstractFileSystem, root: str, only: str | None, deadline: Deadline
) -> Iterator[Found]:
    def listing(path: str) -> list[dict[str, Any]]:
        return deadline.call(fs, "ls", path, detail=True)

    for folder in listing(root):
        name = folder["name"].rstrip("/").rsplit("/", 1)[-1]
        if folder["type"] != "directory" or name.startswith("."):
            continue
        if only is not None and name != only:
            continue
        for item in listing(folder["name"]):
            if item["type"] != "file":
                continue
            file_name = item["name"].rsplit("/", 1)[-1]
            size = int(item.get("size") or 0)
            yield Found(name, file_name, item["name"], size, _timestamp(item))


def _walk_remote_area(
    fs: fsspec.AbstractFileSystem, root: str, area: str, only: str | None, deadline: Deadline
) -> Iterator[Found]:
    def folders(path: str) -> list[tuple[str, str]]:
        fs.invalidate_cache(path)  # another process may have written it meanwhile
        listed = deadline.call(fs, "ls", path, detail=True)
        named = ((item, item["name"].rstrip("/").rsplit("/", 1)[-1]) for item in listed)
        return [
            (item["name"].rstrip("/"), name)
            for item, name in named
            if item["type"] == "directory" and not name.startswith(".")
        ]

    for model_path, slug in folders(f"{root}/{area}"):
        if only is not None and slug != only:
            continue
        for run_path, run in folders(model_path):
            for item in deadline.call(fs, "ls", run_path, detail=True):
                if item["type"] != "file":
                    continue
                name = item["name"].rsplit("/", 1)[-1]
                size = int(item.get("size") or 0)
                yield Found(slug, name, item["name"], size, _timestamp(item), run=run)


def _timestamp(info: dict[str, Any]) -> float:
    modified = modified_time(info)
    return time.time() if modified is None else modified
