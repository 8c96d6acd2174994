"""A store of readable ``.nc`` files under a local directory or any fsspec URL.

Local writes go to a temporary file in the target directory and are renamed into place, so a
reader sees either the old entry or the new one, never a partial file. Object stores get one
whole-object PUT (S3 makes an object visible only once it is complete) and reads fetch the bytes
and decode them in memory. Reads verify the stored key and checksum; a damaged entry is a miss
with a warning (and is replaced by the next write).

Concurrency: on a directory, :meth:`FileStore.single_flight` lets one process sample a key
while the others wait for its entry (see :mod:`cloudcache.stores.locking`). Object stores have
no locks: concurrent writers of one key each PUT a complete entry and the last one wins.
"""

from __future__ import annotations

import contextlib
import copy
import os
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import fsspec
import h5py
from fsspec.implementations.local import LocalFileSystem

from cloudcache.errors import CorruptEntry, StoreError
from cloudcache.stores.base import Entry, EntryRef, Lookup, Store
from cloudcache.stores.deadline import (
    DEFAULT_READ_DEADLINE,
    DEFAULT_WRITE_DEADLINE,
    call_with_deadline,
)
from cloudcache.stores.format.entryfile import checked_entry_file, is_within
from cloudcache.stores.format.inspection import KEY_ATTR
from cloudcache.stores.format.layout import ENTRY_NAME, relative_path
from cloudcache.stores.format.netcdf import decode_entry, encode_entry, write_entry
from cloudcache.stores.locking import DEFAULT_LOCK_TIMEOUT, lock_path, single_flight
from cloudcache.stores.usage import UsageRecord, modified_time
from cloudcache.stores.walk import walk_files
from cloudcache.util.validation import check_root

#: fsspec protocols and the extra that provides each.
EXTRAS_BY_PROTOCOL = {
    "s3": "s3",
    "s3a": "s3",
    "gs": "gcs",
    "gcs": "gcs",
    "az": "azure",
    "abfs": "azure",
    "abfss": "azure",
}

#: Storage options added for S3 unless the user gives their own: fail within seconds when the
#: endpoint is down instead of botocore's and s3fs's minute-long default retry loops.
S3_DEFAULT_CONFIG = {
    "connect_timeout": 3,
    "read_timeout": 10,
    "retries": {"max_attempts": 1, "mode": "standard"},
}

#: After a store could not be reached, it is skipped (a fast miss) for this many seconds.
UNREACHABLE_BACKOFF_SECONDS = 30.0


class FileStore(Store):
    """Entries as NetCDF files below ``root`` (a path or an fsspec URL).

    ``storage_options`` go to fsspec unchanged (credentials come from the filesystem's own
    configuration, never from cloudcache). ``lock_timeout``: seconds a process waits for another
    one sampling the same key on a shared directory before sampling by itself.
    ``max_entry_bytes``: entries declaring more data than this are damaged (default: only the
    proportion to the file size is checked, see :mod:`cloudcache.stores.format.inspection`).
    """

    def __init__(
        self,
        root: str | os.PathLike[str],
        storage_options: dict[str, Any] | None = None,
        *,
        lock_timeout: float = DEFAULT_LOCK_TIMEOUT,
        max_entry_bytes: int | None = None,
    ):
        if isinstance(lock_timeout, bool) or not isinstance(lock_timeout, int | float):
            raise TypeError(f"lock_timeout must be a number of seconds; got {lock_timeout!r}")
        if lock_timeout < 0:
            raise ValueError(f"lock_timeout must be >= 0 seconds; got {lock_timeout!r}")
        if max_entry_bytes is not None and (
            isinstance(max_entry_bytes, bool)
            or not isinstance(max_entry_bytes, int)
            or max_entry_bytes <= 0
        ):
            raise ValueError(
                f"max_entry_bytes must be None or a positive int; got {max_entry_bytes!r}"
            )
        self.root_url = check_root(root)
        self.fs, self.root = _filesystem(self.root_url, storage_options or {})
        self.is_local = isinstance(self.fs, LocalFileSystem)
        self.description = self.root_url
        self.lock_timeout = float(lock_timeout)
        self.max_entry_bytes = max_entry_bytes
        self.usage = UsageRecord(self.fs, self.root, self.is_local)
        self._unreachable_until = 0.0

    def path_of(self, ref: EntryRef) -> str:
        """Where ``ref``'s entry lives in this store."""
        return f"{self.root.rstrip('/')}/{relative_path(ref)}"

    def url_of(self, ref: EntryRef) -> str:
        """The entry's location as a user would type it (path, or URL with protocol)."""
        path = self.path_of(ref)
        if self.is_local:
            return path
        return self.fs.unstrip_protocol(path)

    def lookup(self, ref: EntryRef, timeout: float | None = None) -> Lookup:
        """Read ``ref``: a damaged entry is a problem (and a miss); I/O failures raise.

        Object-store reads finish within ``timeout`` seconds (default
        :data:`~cloudcache.stores.deadline.DEFAULT_READ_DEADLINE`) or raise
        :class:`StoreError`; an entry this process may not read raises
        :class:`~cloudcache.stores.base.EntryUnreadable`.
        """
        try:
            if self.is_local:
                tree, metadata = self._read_local(ref)
            else:
                tree, metadata = self._read_remote(ref, timeout or DEFAULT_READ_DEADLINE)
        except FileNotFoundError:
            return Lookup(None)
        except CorruptEntry as error:
            return Lookup(
                None,
                (
                    f"cloudcache: ignoring damaged cache entry {self.url_of(ref)}: {error}; "
                    "it will be sampled again and replaced",
                ),
            )
        return Lookup(Entry(tree, metadata, self.url_of(ref)))

    def put(self, ref: EntryRef, entry: Entry, timeout: float | None = None) -> str:
        """Write ``entry`` whole (never a partial entry); object stores within ``timeout`` s.

        A local entry streams to a temporary file beside its place (no copy of the bytes in
        memory); an object store gets the bytes in one PUT.
        """
        path = self.path_of(ref)
        if self.is_local:
            try:
                self._check_inside_root(path)
                with without_dask_locks():
                    write_atomically(
                        Path(path),
                        lambda temp: write_entry(entry.tree, ref.key, entry.metadata, temp),
                    )
            except Exception as error:
                raise StoreError(f"cannot write {self.url_of(ref)}: {error}") from error
        else:
            with without_dask_locks():
                payload = encode_entry(entry.tree, ref.key, entry.metadata)
            self._check_reachable(ref)
            try:
                call_with_deadline(
                    self.fs,
                    "pipe_file",
                    path,
                    payload,
                    seconds=timeout or DEFAULT_WRITE_DEADLINE,
                    what=f"writing {self.url_of(ref)}",
                )
            except Exception as error:
                self._mark_unreachable()
                raise StoreError(f"cannot write {self.url_of(ref)}: {_describe(error)}") from error
        return self.url_of(ref)

    def single_flight(
        self, ref: EntryRef, timeout: float | None = None
    ) -> contextlib.AbstractContextManager[bool]:
        """Context manager: hold the cross-process lock for ``ref`` while it is sampled.

        On a directory, other processes missing on the same key wait (up to ``timeout``
        seconds, default :attr:`lock_timeout`) and then find the entry. Object stores have no
        locks: this is a no-op there and the last complete write wins.
        """
        if not self.is_local:
            return contextlib.nullcontext(False)
        wait = self.lock_timeout if timeout is None else float(timeout)
        return single_flight(lock_path(self.root, ref), wait, f"{ref.slug} ({ref.label})")

    def record_use(self, ref: EntryRef) -> None:
        """Touch ``ref``'s last-used marker (see :mod:`cloudcache.stores.usage`)."""
        self.usage.touch(relative_path(ref))

    def last_used(self, ref: EntryRef) -> float | None:
        """The last hit on ``ref``, else its write time; ``None`` if there is no entry."""
        marked = self.usage.last_used(relative_path(ref))
        try:
            if self.is_local:
                written: float | None = os.lstat(self.path_of(ref)).st_mtime
            else:
                written = modified_time(self.fs.info(self.path_of(ref)))
        except (OSError, ValueError):
            return None
        return max(t for t in (marked, written) if t is not None)

    def entry_refs(self) -> Iterator[EntryRef]:
        """Every regular entry-shaped file below the root whose header names a key (links and
        special files skipped: :mod:`cloudcache.stores.walk`)."""
        for found in walk_files(self.fs, self.root, self.is_local, location=self.root_url):
            match = ENTRY_NAME.match(found.name)
            if match is None or not found.regular:
                continue
            with contextlib.suppress(Exception):  # damaged or unreadable: not listed
                key = self._stored_key(found.path)
                if key.startswith(match["prefix"]):
                    yield EntryRef(key, found.slug, match["label"])

    def _stored_key(self, path: str) -> str:
        with contextlib.ExitStack() as stack:
            if self.is_local:
                source: Any = checked_entry_file(path, self.root)[0]
            else:
                source = stack.enter_context(self.fs.open(path, "rb"))
            handle = stack.enter_context(h5py.File(source, "r"))
            value = handle.attrs.get(KEY_ATTR)
        return value.decode() if isinstance(value, bytes) else str(value)

    def _check_inside_root(self, path: str) -> None:
        folder = os.path.dirname(path)
        if os.path.lexists(folder) and not is_within(folder, self.root):
            raise StoreError(f"{folder} is a link out of the cache root; not writing through it")

    def _read_local(self, ref: EntryRef) -> tuple[Any, dict[str, Any]]:
        path = self.path_of(ref)
        try:
            return decode_entry(path, ref.key, root=self.root, max_bytes=self.max_entry_bytes)
        except (CorruptEntry, FileNotFoundError, StoreError):
            raise
        except OSError as error:
            raise StoreError(f"cannot read {self.url_of(ref)}: {error}") from error

    def _read_remote(self, ref: EntryRef, deadline: float) -> tuple[Any, dict[str, Any]]:
        self._check_reachable(ref)
        try:
            payload = call_with_deadline(
                self.fs,
                "cat_file",
                self.path_of(ref),
                seconds=deadline,
                what=f"reading {self.url_of(ref)}",
            )
        except FileNotFoundError:
            raise
        except Exception as error:  # botocore/aiohttp errors are not all OSErrors
            self._mark_unreachable()
            raise StoreError(f"cannot read {self.url_of(ref)}: {_describe(error)}") from error
        return decode_entry(bytes(payload), ref.key, max_bytes=self.max_entry_bytes)

    def _check_reachable(self, ref: EntryRef) -> None:
        if time.monotonic() < self._unreachable_until:
            raise StoreError(
                f"skipping {self.url_of(ref)}: the store failed less than "
                f"{UNREACHABLE_BACKOFF_SECONDS:g} s ago"
            )

    def _mark_unreachable(self) -> None:
        self._unreachable_until = time.monotonic() + UNREACHABLE_BACKOFF_SECONDS


def write_atomically(path: Path, payload: bytes | Callable[[str], None]) -> None:
    """Write to a temp file beside ``path``, fsync it, then rename it into place.

    ``payload`` is the bytes, or a function that writes the file at the path it is given
    (replacing the empty temporary file there).
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor, temp_name = tempfile.mkstemp(
        prefix=f".{path.name}.", suffix=".tmp", dir=path.parent
    )
    try:
        os.fchmod(descriptor, 0o666 & ~current_umask())  # mkstemp creates 0600: share as asked
        with os.fdopen(descriptor, "wb") as handle:
            if isinstance(payload, bytes | bytearray | memoryview):
                handle.write(payload)
                handle.flush()
            else:
                payload(temp_name)  # truncates and refills the same file (mode kept)
            os.fsync(handle.fileno())
        os.replace(temp_name, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temp_name)
        raise


def current_umask() -> int:
    """The process umask, read without changing it where Linux allows (else set and reset)."""
    with contextlib.suppress(OSError, ValueError), open("/proc/self/status") as status:
        for line in status:
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def without_dask_locks() -> contextlib.AbstractContextManager[Any]:
    """Let xarray write NetCDF bytes with plain thread locks even where a Dask client is active.

    With a distributed client as default (or inside a Dask worker) xarray guards NetCDF writes
    with a cluster-wide lock named after the target, which fails for in-memory targets. Our
    writes are single whole files with no Dask arrays, so Dask's local scheduler is right here.
    """
    try:
        import dask
    except ImportError:
        return contextlib.nullcontext()
    return dask.config.set(scheduler="synchronous")


def with_default_options(protocol: str, storage_options: dict[str, Any]) -> dict[str, Any]:
    """``storage_options`` with cloudcache's fail-fast defaults for ``protocol`` filled in.

    For S3, botocore's ``config_kwargs`` get short connect/read timeouts and one retry; any
    key the user sets (``config_kwargs={"retries": ...}`` etc.) wins.
    """
    options = copy.deepcopy(storage_options)
    if protocol in ("s3", "s3a"):
        config = dict(options.get("config_kwargs") or {})
        for name, value in S3_DEFAULT_CONFIG.items():
            config.setdefault(name, copy.deepcopy(value))
        options["config_kwargs"] = config
    return options


def _filesystem(url: str, storage_options: dict[str, Any]) -> tuple[fsspec.AbstractFileSystem, str]:
    protocol = url.split("://", 1)[0].lower() if "://" in url else "file"
    extra = EXTRAS_BY_PROTOCOL.get(protocol)
    try:
        fs, root = fsspec.core.url_to_fs(url, **with_default_options(protocol, storage_options))
    except ImportError as error:
        hint = f" Install it with: pip install 'cloudcache[{extra}]'" if extra else ""
        raise ImportError(
            f"cache={url!r} needs the fsspec filesystem for {protocol!r}, which is not "
            f"installed.{hint}"
        ) from error
    except ValueError as error:
        if extra is None and protocol not in fsspec.available_protocols():
            raise ValueError(
                f"cache={url!r}: unknown storage protocol {protocol!r}; use a directory path or "
                "an fsspec URL such as 's3://bucket/prefix', 'gs://...', 'az://...', 'memory://...'"
            ) from error
        raise
    if protocol in ("s3", "s3a") and hasattr(fs, "retries"):
        fs.retries = 1  # botocore retries (config_kwargs) already; no second s3fs retry loop
    if isinstance(fs, LocalFileSystem):
        root = os.path.abspath(os.path.expanduser(root))
    return fs, root


def _describe(error: BaseException) -> str:
    return f"{type(error).__name__}: {error}"
