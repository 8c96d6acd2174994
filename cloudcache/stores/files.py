"""A store of readable ``.nc`` files under a local directory or any fsspec URL.

Local writes go to a temporary file in the target directory and are renamed into place, so a
reader sees either the old entry or the new one, never a partial file. Object stores get one
whole-object PUT (S3 makes an object visible only once it is complete) and reads fetch the bytes
and decode them in memory. Reads verify the stored key and checksum; a damaged entry is a miss
with a warning (and is replaced by the next write).

Every local create, rename and delete (entries, their temp files, lock folders) goes through
:mod:`cloudcache.stores.nofollow`, so a symbolic link planted below the root is never followed
out of it: a write through one fails with one warning, a lock path through one is reported and
skipped. A directory path is read and written with the operating system's own calls only:
fsspec (with asyncio) is imported for URLs, which keeps the command line's start-up short.

Concurrency: on a directory, :meth:`FileStore.single_flight` lets one process sample a key
while the others wait for its entry (see :mod:`cloudcache.stores.locking`). Object stores have
no locks: concurrent writers of one key each PUT a complete entry and the last one wins.
"""

from __future__ import annotations

import contextlib
import copy
import os
import stat
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import h5py

from cloudcache.errors import CorruptEntry, PlantedLink, StoreError
from cloudcache.stores import nofollow
from cloudcache.stores.backoff import check_reachable, location_of, mark_unreachable
from cloudcache.stores.base import Entry, EntryRef, Lookup, Store
from cloudcache.stores.checkpoints import CheckpointFolder, checkpoint_relative
from cloudcache.stores.deadline import (
    DEFAULT_LIST_DEADLINE,
    DEFAULT_READ_DEADLINE,
    DEFAULT_WRITE_DEADLINE,
    call_with_deadline,
    run_with_deadline,
)
from cloudcache.stores.final_states import FinalStates, final_states_relative
from cloudcache.stores.format.entryfile import checked_entry_file
from cloudcache.stores.format.inspection import KEY_ATTR
from cloudcache.stores.format.layout import ENTRY_NAME, relative_path
from cloudcache.stores.locking import (
    DEFAULT_LOCK_TIMEOUT,
    LOCK_DIRECTORY,
    lock_path,
    single_flight,
)
from cloudcache.stores.object_checkpoints import ObjectFolder
from cloudcache.stores.usage import UsageRecord, modified_time
from cloudcache.stores.walk import walk_files
from cloudcache.util.validation import check_root

if TYPE_CHECKING:
    import fsspec

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


class FileStore(Store):
    """Entries as NetCDF files below ``root`` (a path or an fsspec URL).

    Args:
        root: A directory path, or an fsspec URL such as ``"s3://bucket/prefix"``.
        storage_options: Passed to fsspec unchanged (credentials come from the filesystem's
            own configuration, never from cloudcache).
        lock_timeout: Seconds a process waits for another one sampling the same key on a
            shared directory before sampling by itself.
        max_entry_bytes: Entries declaring more data than this are damaged (default: only the
            proportion to the file size is checked, see
            :mod:`cloudcache.stores.format.inspection`).

    Examples:
        ```python
        store = cc.FileStore("s3://team-bucket/cloudcache", {"profile": "team"})
        with cc.cloud(model, cache=store):
            idata = pm.sample(1000, random_seed=1)
        ```
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
        self._storage_options = storage_options or {}
        self._fs, self.root = _filesystem(self.root_url, self._storage_options)
        self.is_local = self._fs is None or _is_local_filesystem(self._fs)
        self.description = self.root_url
        self.lock_timeout = float(lock_timeout)
        self.max_entry_bytes = max_entry_bytes
        self.usage = UsageRecord(self.object_fs, self.root, self.is_local)
        #: The object-store location whose failures every store of the process shares
        #: (:mod:`cloudcache.stores.backoff`).
        self.backoff_location = location_of(self.root_url, storage_options or {})

    @property
    def fs(self) -> fsspec.AbstractFileSystem:
        """The fsspec filesystem of the root (for a directory path: made on first use)."""
        if self._fs is None:
            import fsspec

            self._fs = fsspec.filesystem("file", **self._storage_options)
        return self._fs

    @property
    def object_fs(self) -> fsspec.AbstractFileSystem | None:
        """The filesystem to reach the entries through: ``None`` for a local directory, which
        is read with the operating system's own calls (:mod:`cloudcache.stores.nofollow`,
        :mod:`cloudcache.stores.walk`), so its commands never import fsspec."""
        return None if self.is_local else self.fs

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

        A tree holding a name NetCDF cannot store faithfully (a NUL byte, an empty dimension
        name) raises :class:`StoreError` naming it, before anything is written. A local entry
        streams to its temporary file (no copy of the bytes in memory); an object store gets
        the bytes in one PUT.
        """
        # xarray: imported on the first read or write, never by the command line's listings
        from cloudcache.stores.format.names import refuse_unstorable_names
        from cloudcache.stores.format.netcdf import encode_entry, write_entry

        refuse_unstorable_names(entry.tree)
        path = self.path_of(ref)
        if self.is_local:
            try:
                with without_dask_locks():
                    nofollow.write_atomically(
                        self.root,
                        relative_path(ref),
                        lambda target: write_entry(entry.tree, ref.key, entry.metadata, target),
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
        return self._local_single_flight(ref, wait)

    @contextlib.contextmanager
    def _local_single_flight(self, ref: EntryRef, wait: float) -> Iterator[bool]:
        """The lock, once its path is known to hold no planted link (reported, then skipped)."""
        try:
            self._check_lock_path(ref)
        except PlantedLink as error:
            nofollow.report(error)
            yield False
            return
        with single_flight(lock_path(self.root, ref), wait, f"{ref.slug} ({ref.label})") as held:
            yield held

    def _check_lock_path(self, ref: EntryRef) -> None:
        """Create the lock's folders without following links; refuse a lock file that is one."""
        folder, name = f"{LOCK_DIRECTORY}/{relative_path(ref)}.lock".rsplit("/", 1)
        nofollow.make_folders(self.root, folder)
        info = nofollow.lstat(self.root, f"{folder}/{name}")
        if info is not None and not stat.S_ISREG(info.st_mode):
            what = "a symbolic link" if stat.S_ISLNK(info.st_mode) else "not a regular file"
            raise PlantedLink(f"{lock_path(self.root, ref)} is {what}; never followed")

    def record_use(self, ref: EntryRef) -> None:
        """Touch ``ref``'s last-used marker (see :mod:`cloudcache.stores.usage`)."""
        self.usage.touch(relative_path(ref))

    def last_used(self, ref: EntryRef) -> float | None:
        """The last hit on ``ref``, else its write time; ``None`` if there is no entry."""
        marked = self.usage.last_used(relative_path(ref))
        if self.is_local:
            info = nofollow.lstat(self.root, relative_path(ref))
            if info is None or not stat.S_ISREG(info.st_mode):
                return None
            written: float | None = info.st_mtime
        else:
            try:
                info = call_with_deadline(
                    self.fs,
                    "info",
                    self.path_of(ref),
                    seconds=DEFAULT_LIST_DEADLINE,
                    what=f"looking up {self.url_of(ref)}",
                )
                written = modified_time(info)
            except (OSError, ValueError, StoreError):
                return None
        return max(t for t in (marked, written) if t is not None)

    def checkpoint_folder(self, ref: EntryRef) -> CheckpointFolder:
        """``<root>/.resume/<model>/<key>/``: in a local directory (never through a link) or
        an object store (one PUT per file, under the store's deadlines and back-off)."""
        relative = checkpoint_relative(ref.slug, ref.key)
        if self.is_local:
            return CheckpointFolder(self.root, relative)
        storage = ObjectFolder(self.fs, self.root, relative, self.backoff_location)
        return CheckpointFolder(self.root, relative, storage)

    def final_states(self, ref: EntryRef, run_key: str) -> FinalStates:
        """``<root>/.extend/<model>/<run key>/``: in a local directory (never through a link)
        or an object store (one PUT per file, under the store's deadlines and back-off)."""
        relative = final_states_relative(ref.slug, run_key)
        if self.is_local:
            return FinalStates(self.root, relative)
        storage = ObjectFolder(self.fs, self.root, relative, self.backoff_location)
        return FinalStates(self.root, relative, storage)

    def entry_refs(self) -> Iterator[EntryRef]:
        """Every regular entry-shaped file below the root whose header names a key (links and
        special files skipped: :mod:`cloudcache.stores.walk`). An object store's listing has
        one deadline (:data:`~cloudcache.stores.deadline.DEFAULT_LIST_DEADLINE`), each header
        read its own (:data:`~cloudcache.stores.deadline.DEFAULT_READ_DEADLINE`)."""
        if not self.is_local:
            check_reachable(self.backoff_location, f"listing {self.root_url}")
        try:
            found_files = list(
                walk_files(self.object_fs, self.root, self.is_local, location=self.root_url)
            )
        except StoreError:
            if not self.is_local:
                mark_unreachable(self.backoff_location)
            raise
        for found in found_files:
            match = ENTRY_NAME.match(found.name)
            if match is None or not found.regular:
                continue
            with contextlib.suppress(Exception):  # damaged or unreadable: not listed
                key = self._stored_key(found.path)
                if key.startswith(match["prefix"]):
                    yield EntryRef(key, found.slug, match["label"])

    def _stored_key(self, path: str) -> str:
        if self.is_local:
            return self._read_stored_key(path)
        return run_with_deadline(
            lambda: self._read_stored_key(path),
            DEFAULT_READ_DEADLINE,
            f"reading the header of {self.fs.unstrip_protocol(path)}",
        )

    def _read_stored_key(self, path: str) -> str:
        with contextlib.ExitStack() as stack:
            if self.is_local:
                source: Any = checked_entry_file(path, self.root)[0]
            else:
                source = stack.enter_context(self.fs.open(path, "rb"))
            handle = stack.enter_context(h5py.File(source, "r"))
            value = handle.attrs.get(KEY_ATTR)
        return value.decode() if isinstance(value, bytes) else str(value)

    def _read_local(self, ref: EntryRef) -> tuple[Any, dict[str, Any]]:
        from cloudcache.stores.format.netcdf import decode_entry  # xarray: on first read/write

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
        from cloudcache.stores.format.netcdf import decode_entry  # xarray: on first read/write

        return decode_entry(bytes(payload), ref.key, max_bytes=self.max_entry_bytes)

    def _check_reachable(self, ref: EntryRef) -> None:
        check_reachable(self.backoff_location, self.url_of(ref))

    def _mark_unreachable(self) -> None:
        mark_unreachable(self.backoff_location)


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


def _is_directory_path(location: str) -> bool:
    """Whether ``location`` is a plain directory path (no ``protocol://``, no ``::`` chain)."""
    return "://" not in location and "::" not in location


def _filesystem(
    url: str, storage_options: dict[str, Any]
) -> tuple[fsspec.AbstractFileSystem | None, str]:
    """The filesystem and root of ``url``; a plain directory path gets no filesystem (fsspec is
    not imported for it) and its absolute path, as fsspec's local filesystem would give it."""
    if _is_directory_path(url):
        return None, os.path.abspath(os.path.expanduser(url))
    import fsspec

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
    if _is_local_filesystem(fs):
        root = os.path.abspath(os.path.expanduser(root))
    return fs, root


def _is_local_filesystem(fs: fsspec.AbstractFileSystem) -> bool:
    from fsspec.implementations.local import LocalFileSystem

    return isinstance(fs, LocalFileSystem)


def _describe(error: BaseException) -> str:
    return f"{type(error).__name__}: {error}"
