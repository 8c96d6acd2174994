"""Prune's own record of use: a last-used time that only cache hits (and writes) update.

Listing, showing or verifying an entry reads it, which moves its access time; so access times
say nothing about use. Instead, a hit touches a small empty *marker* in the store's bookkeeping
folder, ``<root>/.locks/.used/<model-slug>/<entry name>.used``, whose modification time is the
last use (the name is never entry-shaped, and nothing under ``.locks`` is listed as an entry).
Entries without a marker were last used when they were written (their own modification time).
A process touches one marker at most once per :data:`TOUCH_INTERVAL_SECONDS` (prune works
in hours and days), and a marker that cannot be written is skipped silently: recording use
never slows or breaks a hit. Local markers are created, touched, read and removed through
:mod:`cloudcache.stores.nofollow`: a marker (or a folder above it) that is a planted symbolic
link is reported once and ignored, never followed out of the root.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import stat
import threading
import time
from typing import TYPE_CHECKING, Any

from cloudcache.errors import PlantedLink, StoreError
from cloudcache.stores import nofollow
from cloudcache.stores.deadline import DEFAULT_LIST_DEADLINE, call_with_deadline
from cloudcache.stores.locking import LOCK_DIRECTORY
from cloudcache.util.forks import ForkSafeLock

if TYPE_CHECKING:
    import fsspec

#: Folder below a store's root that holds the last-used markers.
USAGE_DIRECTORY = f"{LOCK_DIRECTORY}/.used"
#: Suffix of a marker's name (after the entry's own name).
MARKER_SUFFIX = ".used"
#: A process updates one entry's marker at most this often.
TOUCH_INTERVAL_SECONDS = 600.0


def marker_path(root: str, relative_path: str) -> str:
    """Where the last-used marker of the entry at ``relative_path`` lives."""
    return f"{root.rstrip('/')}/{marker_below_root(relative_path)}"


def marker_below_root(relative_path: str) -> str:
    """The marker of the entry at ``relative_path``, as a path below the store's root."""
    return f"{USAGE_DIRECTORY}/{relative_path}{MARKER_SUFFIX}"


#: When this process last touched each marker (by marker path): shared by every store object.
_touched: dict[str, float] = {}
_touched_lock = ForkSafeLock()


class UsageRecord:
    """Reads and touches the last-used markers of one store root (a local root's through
    :mod:`cloudcache.stores.nofollow`: ``fs`` is used for object stores only, may be ``None``)."""

    def __init__(self, fs: fsspec.AbstractFileSystem | None, root: str, is_local: bool) -> None:
        self.fs, self.root, self.is_local = fs, root, is_local

    def touch(self, relative_path: str) -> None:
        """Mark the entry at ``relative_path`` as used now (throttled, never raises)."""
        now = time.monotonic()
        path = marker_path(self.root, relative_path)
        with _touched_lock:
            if now - _touched.get(path, -TOUCH_INTERVAL_SECONDS) < TOUCH_INTERVAL_SECONDS:
                return
            _touched[path] = now
        if self.is_local:
            touch_local(self.root, marker_below_root(relative_path))
        else:  # a PUT costs a round trip: never make the hit wait for it
            threading.Thread(target=self._touch_remote, args=(path,), daemon=True).start()

    def last_used(self, relative_path: str) -> float | None:
        """The marker's time for the entry at ``relative_path``, or ``None`` without one."""
        if self.is_local:
            info = nofollow.lstat(self.root, marker_below_root(relative_path))
            return info.st_mtime if info is not None and stat.S_ISREG(info.st_mode) else None
        try:
            return modified_time(self._remote("info", marker_path(self.root, relative_path)))
        except (OSError, ValueError, StoreError):
            return None

    def all_last_used(self) -> dict[str, float]:
        """``relative path -> marker time`` for every marker below the root (one listing)."""
        base = f"{self.root.rstrip('/')}/{USAGE_DIRECTORY}/"
        found: dict[str, float] = {}
        try:
            if self.is_local:
                for relative, info in nofollow.regular_files(self.root, USAGE_DIRECTORY):
                    found[relative.removesuffix(MARKER_SUFFIX)] = info.st_mtime
            else:
                for path, info in self._remote("find", base, detail=True).items():
                    stamp = modified_time(info)
                    if stamp is not None:
                        relative = path.removeprefix(base.lstrip("/")).lstrip("/")
                        found[relative.removesuffix(MARKER_SUFFIX)] = stamp
        except (OSError, ValueError, StoreError):
            pass
        return found

    def forget(self, relative_path: str) -> None:
        """Remove the marker of an entry that is being removed."""
        if self.is_local:
            try:
                nofollow.remove(self.root, marker_below_root(relative_path))
            except PlantedLink as error:
                nofollow.report(error)
            except OSError:
                pass
            return
        with contextlib.suppress(OSError, StoreError):
            self._remote("rm_file", marker_path(self.root, relative_path))

    def _touch_remote(self, path: str) -> None:
        with contextlib.suppress(Exception):
            self._remote("pipe_file", path, b"")

    def _remote(self, method: str, *args: Any, **kwargs: Any) -> Any:
        """An object-store call on the markers, within one deadline (never hangs a caller)."""
        if self.fs is None:
            raise StoreError(f"no filesystem for the last-used markers under {self.root}")
        return call_with_deadline(
            self.fs,
            method,
            *args,
            seconds=DEFAULT_LIST_DEADLINE,
            what=f"{method} on the last-used markers under {self.root}",
            **kwargs,
        )


def touch_local(root: str, relative: str) -> None:
    """Set the marker's modification time to now, creating it (and its folders) if needed;
    never through a link (reported once, then ignored), never raising."""
    try:
        nofollow.touch(root, relative)
    except PlantedLink as error:
        nofollow.report(error)
    except OSError:
        pass


def modified_time(info: dict[str, Any]) -> float | None:
    """An fsspec ``info()`` record's modification time as Unix time (``None`` if absent)."""
    for name in ("mtime", "LastModified", "last_modified", "created", "updated"):
        value = info.get(name)
        if value is None:
            continue
        if isinstance(value, int | float):
            return float(value)
        if isinstance(value, dt.datetime):
            return value.timestamp()
        with contextlib.suppress(ValueError):
            return dt.datetime.fromisoformat(str(value).replace("Z", "+00:00")).timestamp()
    return None
