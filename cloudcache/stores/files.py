"""A store of readable ``.nc`` files under a local directory or any fsspec URL.

Local writes go to a temporary file in the target directory and are renamed into place, so a
reader sees either the old entry or the new one, never a partial file. Object stores get one
whole-object PUT. Reads verify the stored key and checksum; a damaged entry is a miss with a
warning (and is replaced by the next write).
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import warnings
from pathlib import Path
from typing import Any

import fsspec
from fsspec.implementations.local import LocalFileSystem

from cloudcache.stores.base import CorruptEntry, Entry, EntryRef, StoreError
from cloudcache.stores.layout import relative_path
from cloudcache.stores.netcdf import decode_entry, encode_entry

#: fsspec protocols and the extra that provides each.
EXTRAS_BY_PROTOCOL = {
    "s3": "s3",
    "s3a": "s3",
    "gs": "gcs",
    "gcs": "gcs",
    "az": "azure",
    "abfs": "azure",
}


class FileStore:
    """Entries as NetCDF files below ``root`` (a path or an fsspec URL)."""

    def __init__(self, root: str | os.PathLike[str], storage_options: dict[str, Any] | None = None):
        self.root_url = os.fspath(root)
        self.fs, self.root = _filesystem(self.root_url, storage_options or {})
        self.is_local = isinstance(self.fs, LocalFileSystem)
        self.description = self.root_url

    def path_of(self, ref: EntryRef) -> str:
        """Where ``ref``'s entry lives in this store."""
        return f"{self.root.rstrip('/')}/{relative_path(ref)}"

    def url_of(self, ref: EntryRef) -> str:
        """The entry's location as a user would type it (path, or URL with protocol)."""
        path = self.path_of(ref)
        if self.is_local:
            return path
        return self.fs.unstrip_protocol(path)

    def get(self, ref: EntryRef) -> Entry | None:
        path = self.path_of(ref)
        try:
            if self.is_local:
                if not os.path.exists(path):
                    return None
                tree, metadata = decode_entry(path, ref.key)
            else:
                try:
                    payload = self.fs.cat_file(path)
                except FileNotFoundError:
                    return None
                tree, metadata = decode_entry(bytes(payload), ref.key)
        except CorruptEntry as error:
            warnings.warn(
                f"cloudcache: ignoring damaged cache entry {self.url_of(ref)}: {error}; "
                "it will be sampled again and replaced",
                RuntimeWarning,
                stacklevel=2,
            )
            return None
        except OSError as error:
            raise StoreError(f"cannot read {self.url_of(ref)}: {error}") from error
        return Entry(tree, metadata, self.url_of(ref))

    def put(self, ref: EntryRef, entry: Entry) -> str:
        payload = encode_entry(entry.tree, ref.key, entry.metadata)
        path = self.path_of(ref)
        try:
            if self.is_local:
                write_atomically(Path(path), payload)
            else:
                self.fs.pipe_file(path, payload)
        except Exception as error:
            raise StoreError(f"cannot write {self.url_of(ref)}: {error}") from error
        return self.url_of(ref)


def write_atomically(path: Path, payload: bytes) -> None:
    """Write ``payload`` to a temp file beside ``path``, fsync it, then rename it into place."""
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor, temp_name = tempfile.mkstemp(
        prefix=f".{path.name}.", suffix=".tmp", dir=path.parent
    )
    try:
        with os.fdopen(descriptor, "wb") as handle:
            handle.write(payload)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temp_name, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temp_name)
        raise


def _filesystem(url: str, storage_options: dict[str, Any]) -> tuple[fsspec.AbstractFileSystem, str]:
    protocol = url.split("://", 1)[0] if "://" in url else "file"
    try:
        fs, root = fsspec.core.url_to_fs(url, **storage_options)
    except (ImportError, ValueError) as error:
        extra = EXTRAS_BY_PROTOCOL.get(protocol)
        hint = f" Install it with: pip install 'cloudcache[{extra}]'" if extra else ""
        raise ImportError(
            f"cache={url!r} needs the fsspec filesystem for {protocol!r}.{hint}"
        ) from error
    if isinstance(fs, LocalFileSystem):
        root = os.path.abspath(os.path.expanduser(root))
    return fs, root
