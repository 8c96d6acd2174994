"""The entries of a file cache (local directory or fsspec URL): listing, metadata, removal.

Only files shaped like cloudcache entries (``<root>/<slug>/<label>-<16 hex>.nc``, see
:mod:`cloudcache.stores.layout`) are ever read, copied or removed. Symbolic links are skipped,
so nothing outside the cache root is touched. Listing reads the root attributes only (no
arrays), which keeps ``cloudcache ls`` fast on caches with thousands of entries.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import re
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import fsspec
import h5py
from fsspec.implementations.local import LocalFileSystem

from cloudcache.stores.base import CorruptEntry
from cloudcache.stores.layout import ENTRY_NAME
from cloudcache.stores.netcdf import KEY_ATTR, METADATA_ATTR, decode_entry

#: Temp files left by a writer killed between write and rename: ``.<entry name>.<random>.tmp``.
TEMP_NAME = re.compile(r"^\.(?P<entry>[A-Za-z0-9_.-]+-[0-9a-f]{16}\.nc)\.[^/]*\.tmp$")
#: Remote metadata reads run in parallel (each is a few small range requests).
REMOTE_READERS = 8


@dataclass
class CatalogEntry:
    """One entry file: where it is, its size and times, and (once read) its metadata."""

    path: str
    slug: str
    label: str
    prefix: str
    size: int
    modified: float
    accessed: float
    metadata: dict[str, Any] = field(default_factory=dict, repr=False)
    key: str = ""
    error: str = ""

    @property
    def relative_path(self) -> str:
        return f"{self.slug}/{self.label}-{self.prefix}.nc"

    @property
    def last_used(self) -> float:
        """Last read or write time (access time where the filesystem keeps it)."""
        return max(self.accessed, self.modified)

    def summary(self) -> dict[str, Any]:
        """The row ``cloudcache ls --json`` prints."""
        meta = self.metadata
        return {
            "key": self.key or None,
            "prefix": self.prefix,
            "model": meta.get("model", self.slug),
            "label": self.label,
            "draws": meta.get("draws"),
            "tune": meta.get("tune"),
            "chains": meta.get("chains"),
            "backend": meta.get("backend"),
            "device": meta.get("device"),
            "created": meta.get("created"),
            "sampling_seconds": meta.get("sampling_seconds"),
            "size": self.size,
            "last_used": dt.datetime.fromtimestamp(self.last_used, dt.UTC).isoformat(
                timespec="seconds"
            ),
            "path": self.path,
            "error": self.error or None,
        }


@dataclass
class StrayFile:
    """A temporary file left behind by a killed writer."""

    path: str
    size: int
    modified: float


class Catalog:
    """A view of the entries under one cache root (a local path or an fsspec URL)."""

    def __init__(
        self, location: str | os.PathLike[str], storage_options: dict[str, Any] | None = None
    ):
        self.location = os.fspath(location)
        self.fs, root = fsspec.core.url_to_fs(self.location, **(storage_options or {}))
        self.is_local = isinstance(self.fs, LocalFileSystem)
        self.root = os.path.abspath(os.path.expanduser(root)) if self.is_local else root.rstrip("/")

    @classmethod
    def of_store(cls, store: Any) -> Catalog | None:
        """The catalog of a FileStore, or of the first FileStore inside a TieredStore."""
        stores = getattr(store, "stores", [store])
        for candidate in stores:
            if hasattr(candidate, "fs") and hasattr(candidate, "root"):
                catalog = cls.__new__(cls)
                catalog.location = getattr(candidate, "root_url", candidate.root)
                catalog.fs = candidate.fs
                catalog.is_local = isinstance(candidate.fs, LocalFileSystem)
                catalog.root = (
                    candidate.root.rstrip("/") if not catalog.is_local else candidate.root
                )
                return catalog
        return None

    def url(self, path: str) -> str:
        """``path`` as a user would type it."""
        return path if self.is_local else self.fs.unstrip_protocol(path)

    def exists(self) -> bool:
        return os.path.isdir(self.root) if self.is_local else self.fs.isdir(self.root)

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
        """Fill ``metadata``/``key`` (or ``error``) of each entry from its root attributes."""
        if self.is_local or len(entries) < 2:
            for entry in entries:
                self._fill_metadata(entry)
            return
        with ThreadPoolExecutor(REMOTE_READERS) as pool:
            list(pool.map(self._fill_metadata, entries))

    def _fill_metadata(self, entry: CatalogEntry) -> None:
        try:
            entry.key, entry.metadata = self._root_attributes(entry.path)
        except Exception as error:  # h5py raises many types for damaged files
            entry.error = f"unreadable ({type(error).__name__}: {error})"
            return
        if not entry.key.startswith(entry.prefix):
            entry.error = f"stored key {entry.key[:16]!r} does not match the file name"

    def _root_attributes(self, path: str) -> tuple[str, dict[str, Any]]:
        with contextlib.ExitStack() as stack:
            source: Any = path if self.is_local else stack.enter_context(self.fs.open(path, "rb"))
            handle = stack.enter_context(h5py.File(source, "r"))
            key = _text(handle.attrs.get(KEY_ATTR))
            raw = _text(handle.attrs.get(METADATA_ATTR))
        if not key or not raw:
            raise CorruptEntry("no cloudcache key or metadata in the root attributes")
        record = json.loads(raw)
        if not isinstance(record, dict):
            raise CorruptEntry("metadata record is not a JSON object")
        return key, record

    def _walk(self, slug: str | None) -> Iterator[tuple[CatalogEntry | None, StrayFile | None]]:
        if self.is_local:
            yield from self._walk_local(slug)
        else:
            yield from self._walk_remote(slug)

    def _walk_local(
        self, only: str | None
    ) -> Iterator[tuple[CatalogEntry | None, StrayFile | None]]:
        try:
            folders = list(os.scandir(self.root))
        except FileNotFoundError:
            return
        for folder in folders:
            # Never follow symbolic links; skip hidden folders such as ``.locks``.
            if folder.name.startswith(".") or not folder.is_dir(follow_symlinks=False):
                continue
            if only is not None and folder.name != only:
                continue
            for item in os.scandir(folder.path):
                if not item.is_file(follow_symlinks=False):
                    continue
                info = item.stat(follow_symlinks=False)
                yield _classify(
                    folder.name, item.name, item.path, info.st_size, info.st_mtime, info.st_atime
                )

    def _walk_remote(
        self, only: str | None
    ) -> Iterator[tuple[CatalogEntry | None, StrayFile | None]]:
        try:
            folders = self.fs.ls(self.root, detail=True)
        except FileNotFoundError:
            return
        for folder in folders:
            name = folder["name"].rstrip("/").rsplit("/", 1)[-1]
            if folder["type"] != "directory" or name.startswith("."):
                continue
            if only is not None and name != only:
                continue
            for item in self.fs.ls(folder["name"], detail=True):
                if item["type"] != "file":
                    continue
                file_name = item["name"].rsplit("/", 1)[-1]
                modified = _timestamp(item)
                yield _classify(
                    name, file_name, item["name"], int(item.get("size") or 0), modified, modified
                )

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
        return bytes(self.fs.cat_file(entry.path))

    def verify(self, entry: CatalogEntry, payload: bytes | None = None) -> str:
        """Load the whole entry and check key and checksum; return a problem or ``""``."""
        try:
            if not entry.key and not entry.error:
                self._fill_metadata(entry)
            if entry.error:
                return entry.error
            source: bytes | str = (
                payload
                if payload is not None
                else (entry.path if self.is_local else self.read_bytes(entry))
            )
            decode_entry(source, entry.key)
        except CorruptEntry as error:
            return str(error)
        except OSError as error:
            return f"cannot read ({error})"
        return ""

    def write_bytes(self, relative_path: str, payload: bytes) -> str:
        """Store an entry's bytes at ``relative_path`` (atomically on local disks)."""
        path = f"{self.root}/{relative_path}"
        if self.is_local:
            from cloudcache.stores.files import write_atomically

            write_atomically(Path(path), payload)
        else:
            self.fs.pipe_file(path, payload)
        return path

    def remove(self, path: str) -> None:
        """Delete one entry or stray file (and its model folder once empty, on local disks)."""
        if self.is_local:
            os.unlink(path)
            with contextlib.suppress(OSError):
                os.rmdir(os.path.dirname(path))
        else:
            self.fs.rm_file(path)

    def has(self, relative_path: str) -> bool:
        path = f"{self.root}/{relative_path}"
        if self.is_local:
            return os.path.isfile(path) and not os.path.islink(path)
        return self.fs.isfile(path)


def _classify(
    slug: str, name: str, path: str, size: int, modified: float, accessed: float
) -> tuple[CatalogEntry | None, StrayFile | None]:
    match = ENTRY_NAME.match(name)
    if match is not None:
        entry = CatalogEntry(path, slug, match["label"], match["prefix"], size, modified, accessed)
        return entry, None
    if TEMP_NAME.match(name):
        return None, StrayFile(path, size, modified)
    return None, None


def _timestamp(info: dict[str, Any]) -> float:
    for field_name in ("mtime", "LastModified", "last_modified", "created", "updated"):
        value = info.get(field_name)
        if value is None:
            continue
        if isinstance(value, int | float):
            return float(value)
        if isinstance(value, dt.datetime):
            return value.timestamp()
        with contextlib.suppress(ValueError):
            return dt.datetime.fromisoformat(str(value).replace("Z", "+00:00")).timestamp()
    return time.time()


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bytes):
        return value.decode("utf-8")
    if hasattr(value, "item"):
        value = value.item()
        if isinstance(value, bytes):
            return value.decode("utf-8")
    return str(value)
