"""The entries of a file cache (local directory or fsspec URL): listing, metadata, removal.

A catalog opens its location exactly as :class:`~cloudcache.stores.files.FileStore` does (it
*is* a FileStore's other half: the same filesystem, root and fail-fast object-store settings),
so ``cloudcache ls s3://...`` fails as fast as ``cloud(cache="s3://...")`` on a dead endpoint.

Only files shaped like cloudcache entries (``<root>/<slug>/<label>-<16 hex>.nc``, see
:mod:`cloudcache.stores.format.layout`) are ever read, copied or removed. The listing is the
one walk of :mod:`cloudcache.stores.walk`: symbolic links are never followed, in listing,
reading, writing or removing (a linked entry or model folder is not listed; writes and removals
go through :mod:`cloudcache.stores.nofollow`), and an entry-named file
that is not a regular file (a FIFO, socket or device) is listed as damaged and never opened.
Listing reads the root attributes only (no arrays, no xarray import), which keeps
``cloudcache ls`` fast on large caches; ``check`` loads an entry exactly as a hit does.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import stat
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from cloudcache.errors import CorruptEntry, StoreError
from cloudcache.stores import nofollow
from cloudcache.stores.backoff import check_reachable, mark_unreachable
from cloudcache.stores.deadline import (
    DEFAULT_LIST_DEADLINE,
    DEFAULT_READ_DEADLINE,
    DEFAULT_WRITE_DEADLINE,
    call_with_deadline,
)
from cloudcache.stores.files import FileStore
from cloudcache.stores.format.entryfile import open_regular_file
from cloudcache.stores.format.layout import ENTRY_NAME
from cloudcache.stores.maintenance.headers import read_local_header, read_remote_headers
from cloudcache.stores.tiered import TieredStore
from cloudcache.stores.walk import Found, walk_files

if TYPE_CHECKING:
    import fsspec

#: Temp files left by a writer killed between write and rename: ``.<entry name>.<random>.tmp``.
TEMP_NAME = re.compile(r"^\.(?P<entry>[A-Za-z0-9_.-]+-[0-9a-f]{16}\.nc)\.[^/]*\.tmp$")
#: Object-store entries are fetched and checked this many at a time (``verify``, ``sync``).
REMOTE_READERS = 8

#: What a check found: fine, damaged (safe to delete and resample), or not readable by this
#: process (somebody else's entry: never delete it).
Status = Literal["ok", "damaged", "unreadable"]


@dataclass
class CatalogEntry:
    """One entry file: where it is, its size and times, and (once read) its metadata."""

    path: str
    slug: str
    label: str
    prefix: str
    size: int
    modified: float
    metadata: dict[str, Any] = field(default_factory=dict, repr=False)
    key: str = ""
    error: str = ""
    status: Status = "ok"

    @property
    def relative_path(self) -> str:
        return f"{self.slug}/{self.label}-{self.prefix}.nc"

    def damaged(self, problem: str) -> None:
        """Mark the entry as damaged with ``problem``."""
        self.error, self.status = problem, "damaged"

    def summary(self, last_used: float | None = None) -> dict[str, Any]:
        """The row ``cloudcache ls --json`` prints (``last_used`` default: the write time)."""
        meta = self.metadata
        return {
            "key": self.key or None,
            "prefix": self.prefix,
            "model": meta.get("model", self.slug),
            "label": self.label,
            "kind": meta.get("kind"),
            "draws": meta.get("draws"),
            "tune": meta.get("tune"),
            "chains": meta.get("chains"),
            "backend": meta.get("backend"),
            "device": meta.get("device"),
            "created": meta.get("created"),
            "sampling_seconds": meta.get("sampling_seconds"),
            "size": self.size,
            "modified": iso_time(self.modified),
            "last_used": iso_time(self.modified if last_used is None else last_used),
            "path": self.path,
            "error": self.error or None,
            "status": self.status,
        }


@dataclass(frozen=True)
class EntryVerdict:
    """The result of checking one entry: ``ok``, ``damaged`` or ``unreadable``."""

    status: Status
    problem: str = ""

    @property
    def removable(self) -> bool:
        """Only a damaged entry may be deleted; one this process cannot read never is."""
        return self.status == "damaged"


@dataclass
class StrayFile:
    """A temporary file left behind by a killed writer."""

    path: str
    size: int
    modified: float


class Catalog:
    """A view of the entries under one cache root (a local path, an fsspec URL or a FileStore)."""

    def __init__(
        self,
        location: str | os.PathLike[str] | FileStore,
        storage_options: dict[str, Any] | None = None,
    ):
        store = (
            location if isinstance(location, FileStore) else FileStore(location, storage_options)
        )
        self.store = store
        self.location = store.root_url
        self.is_local = store.is_local
        self.root = store.root if self.is_local else store.root.rstrip("/")

    @property
    def fs(self) -> fsspec.AbstractFileSystem:
        """The store's fsspec filesystem (a local directory's is made only when asked for)."""
        return self.store.fs

    @property
    def object_fs(self) -> fsspec.AbstractFileSystem | None:
        """The object store's filesystem; ``None`` for a local directory (read without fsspec)."""
        return self.store.object_fs

    @classmethod
    def of_store(cls, store: Any) -> Catalog | None:
        """The catalog of a FileStore, or of the first FileStore inside a TieredStore."""
        candidates = store.stores if isinstance(store, TieredStore) else [store]
        for candidate in candidates:
            if isinstance(candidate, FileStore):
                return cls(candidate)
        return None

    def url(self, path: str) -> str:
        """``path`` as a user would type it."""
        return path if self.is_local else self.fs.unstrip_protocol(path)

    def exists(self) -> bool:
        return os.path.isdir(self.root) if self.is_local else self._remote("isdir", self.root)

    # -- listing ------------------------------------------------------------------------
    def entries(self, *, slug: str | None = None, with_metadata: bool = True) -> list[CatalogEntry]:
        """Every entry file (sorted by model and name), metadata read unless told not to."""
        found = [entry for entry, _ in self._walk(slug) if entry is not None]
        found.sort(key=lambda e: (e.slug, e.label, e.prefix))
        if with_metadata:
            self.read_metadata(found)
        return found

    def stray_files(self) -> list[StrayFile]:
        """Temp files of killed writers (``.<entry>.<random>.tmp``), any age."""
        return [stray for _, stray in self._walk(None) if stray is not None]

    def read_metadata(self, entries: list[CatalogEntry]) -> None:
        """Fill ``metadata``/``key`` (or ``error``) of each entry from its root attributes.

        Object-store entries are read together, in rounds of concurrent block fetches
        (:mod:`cloudcache.stores.maintenance.headers`).
        """
        todo = [entry for entry in entries if entry.status == "ok"]
        if self.is_local:
            for entry in todo:
                self._fill_metadata(entry, _local_header(entry.path))
            return
        headers = read_remote_headers(self.fs, [(entry.path, entry.size) for entry in todo])
        for entry, header in zip(todo, headers, strict=True):
            self._fill_metadata(entry, header)

    def _fill_metadata(self, entry: CatalogEntry, header: tuple[str, str] | BaseException) -> None:
        try:
            if isinstance(header, BaseException):
                raise header
            entry.key, entry.metadata = _parse_header(*header)
        except StoreError as error:  # too slow or unreachable: not known to be damaged
            entry.error, entry.status = str(error), "unreadable"
            return
        except PermissionError as error:
            entry.error, entry.status = (
                f"not readable by this user ({error.strerror})",
                "unreadable",
            )
            return
        except Exception as error:  # h5py raises many types for damaged files
            entry.damaged(f"unreadable ({type(error).__name__}: {error})")
            return
        if not entry.key.startswith(entry.prefix):
            entry.damaged(f"stored key {entry.key[:16]!r} does not match the file name")

    def _remote(self, method: str, *args: Any, seconds: float = DEFAULT_LIST_DEADLINE) -> Any:
        """An object-store call within one total deadline (``DeadlineExceeded`` after it)."""
        return call_with_deadline(
            self.fs, method, *args, seconds=seconds, what=f"{method} on {self.location}"
        )

    def _walk(self, slug: str | None) -> Iterator[tuple[CatalogEntry | None, StrayFile | None]]:
        if not self.is_local:  # a store that failed a moment ago is not listed again (backoff)
            check_reachable(self.store.backoff_location, f"listing {self.location}")
        try:
            listed = list(
                walk_files(
                    self.object_fs, self.root, self.is_local, slug=slug, location=self.location
                )
            )
        except StoreError:
            if not self.is_local:
                mark_unreachable(self.store.backoff_location)
            raise
        for found in listed:
            entry, stray = _classify(found)
            if not found.regular:
                if stray is not None:
                    continue  # only regular temp files are strays
                if entry is not None:
                    entry.damaged(f"not a regular file ({found.kind}); never opened")
            yield entry, stray

    def find(self, prefix: str) -> list[CatalogEntry]:
        """Entries whose key starts with ``prefix`` (16 hex or fewer: by file name)."""
        prefix = prefix.lower()
        candidates = [
            e for e in self.entries(with_metadata=False) if e.prefix.startswith(prefix[:16])
        ]
        if len(prefix) > 16:
            self.read_metadata(candidates)
            candidates = [e for e in candidates if e.key.startswith(prefix)]
        return candidates

    # -- whole entries ------------------------------------------------------------------
    def read_bytes(self, entry: CatalogEntry) -> bytes:
        """The entry's bytes (a local entry only if it is a regular file, links not followed)."""
        if self.is_local:
            with open_regular_file(entry.path) as handle:
                return handle.read()
        return bytes(self._remote("cat_file", entry.path, seconds=DEFAULT_READ_DEADLINE))

    def check(self, entry: CatalogEntry, payload: bytes | None = None) -> EntryVerdict:
        """Load the whole entry and check key and checksums, as a hit does: ok, damaged or
        unreadable. A local entry is read from its file, an object-store entry from its bytes
        (``payload`` when given)."""
        from cloudcache.stores.format.netcdf import check_entry  # xarray: only to check

        if not entry.key and not entry.error:
            self.read_metadata([entry])
        if entry.status != "ok" or entry.error:
            return EntryVerdict(entry.status if entry.status != "ok" else "damaged", entry.error)
        try:
            if payload is None and self.is_local:
                source: bytes | str = entry.path
            else:
                source = payload if payload is not None else self.read_bytes(entry)
        except CorruptEntry as error:
            return EntryVerdict("damaged", str(error))
        except PermissionError as error:
            return EntryVerdict("unreadable", f"not readable by this user ({error.strerror})")
        except Exception as error:  # OSError, or a network client's own error: kept, reported
            return EntryVerdict("unreadable", f"cannot read ({type(error).__name__}: {error})")
        verdict = check_entry(source, entry.key, root=self.root if self.is_local else None)
        if verdict.status == "missing":
            return EntryVerdict("damaged", f"gone while checked ({verdict.problem})")
        return EntryVerdict(verdict.status, verdict.problem)

    def check_all(self, entries: list[CatalogEntry]) -> list[EntryVerdict]:
        """:meth:`check` every entry; object-store entries are fetched and checked concurrently."""
        if self.is_local or len(entries) < 2:
            return [self.check(entry) for entry in entries]
        self.read_metadata([entry for entry in entries if not entry.key and not entry.error])
        with ThreadPoolExecutor(REMOTE_READERS) as pool:
            return list(pool.map(self.check, entries))

    def verify(self, entry: CatalogEntry, payload: bytes | None = None) -> str:
        """The problem :meth:`check` finds, or ``""``."""
        return self.check(entry, payload).problem

    def write_bytes(self, relative_path: str, payload: bytes) -> str:
        """Store an entry's bytes at ``relative_path`` (atomically on local disks).

        On a local disk, never through a symbolic link: a linked model folder in the
        destination raises :class:`~cloudcache.errors.PlantedLink` (a ``StoreError``) instead
        of writing outside the root, and a link at the entry's own name is replaced.
        """
        path = f"{self.root}/{relative_path}"
        if self.is_local:
            nofollow.write_atomically(self.root, relative_path, payload)
        else:
            self._remote("pipe_file", path, payload, seconds=DEFAULT_WRITE_DEADLINE)
        return path

    def remove(self, path: str) -> None:
        """Delete one entry or stray file, its last-used marker, and its emptied model folder.

        Locally, never through a link: a model folder swapped for a link since the listing
        raises :class:`~cloudcache.errors.PlantedLink` and nothing is deleted.
        """
        relative = os.path.relpath(path, self.root) if self.is_local else path[len(self.root) + 1 :]
        self.store.usage.forget(relative)
        if self.is_local:
            nofollow.remove(self.root, relative)  # removes a link itself, never its target
            nofollow.remove_empty_folder(self.root, os.path.dirname(relative))
        else:
            self._remote("rm_file", path)

    def has(self, relative_path: str) -> bool:
        """Whether a regular entry file exists at ``relative_path`` (links not followed)."""
        path = f"{self.root}/{relative_path}"
        if not self.is_local:
            return bool(self._remote("isfile", path))
        info = nofollow.lstat(self.root, relative_path)
        return info is not None and stat.S_ISREG(info.st_mode)


def iso_time(timestamp: float) -> str | None:
    """``timestamp`` as ISO 8601 UTC, or ``None`` when it is outside the datetime range."""
    try:
        return dt.datetime.fromtimestamp(timestamp, dt.UTC).isoformat(timespec="seconds")
    except (ValueError, OverflowError, OSError):
        return None


def _classify(found: Found) -> tuple[CatalogEntry | None, StrayFile | None]:
    match = ENTRY_NAME.match(found.name)
    if match is not None:
        entry = CatalogEntry(
            found.path, found.slug, match["label"], match["prefix"], found.size, found.modified
        )
        return entry, None
    if TEMP_NAME.match(found.name):
        return None, StrayFile(found.path, found.size, found.modified)
    return None, None


def _local_header(path: str) -> tuple[str, str] | BaseException:
    try:
        return read_local_header(path)
    except Exception as error:  # reported on the entry by _fill_metadata
        return error


def _parse_header(key: str, raw: str) -> tuple[str, dict[str, Any]]:
    if not key or not raw:
        raise CorruptEntry("no cloudcache key or metadata in the root attributes")
    record = json.loads(raw)
    if not isinstance(record, dict):
        raise CorruptEntry("metadata record is not a JSON object")
    return key, record
