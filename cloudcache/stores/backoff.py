"""Object-store locations that failed a moment ago, skipped by every store of the process.

After a read, write or listing of an object store fails (refused, stalled, past its deadline),
the location is skipped (a fast miss) for :data:`UNREACHABLE_BACKOFF_SECONDS`. The record is
process-wide and kept per *location*, never per store object: every ``cloud(cache=url)`` block
builds its own store, and each one waiting for the same dead endpoint again is what the back-off
exists to prevent. A location is the cache URL together with the endpoint it is reached through
(``endpoint_url`` in ``storage_options``), so one bucket behind two endpoints is two locations.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from cloudcache.errors import StoreError
from cloudcache.util.forks import ForkSafeLock

#: After a location failed, it is skipped for this many seconds.
UNREACHABLE_BACKOFF_SECONDS = 30.0

_failed_until: dict[str, float] = {}
_lock = ForkSafeLock()


def location_of(root_url: str, storage_options: Mapping[str, Any]) -> str:
    """The back-off's name for ``root_url`` reached with ``storage_options``."""
    client = storage_options.get("client_kwargs")
    endpoint = (client.get("endpoint_url") if isinstance(client, Mapping) else None) or (
        storage_options.get("endpoint_url") or storage_options.get("endpoint")
    )
    return f"{root_url.rstrip('/')} via {endpoint}" if endpoint else root_url.rstrip("/")


def check_reachable(location: str, what: str) -> None:
    """Raise :class:`StoreError` for ``what`` while ``location`` is backed off."""
    with _lock:
        until = _failed_until.get(location, 0.0)
    if time.monotonic() < until:
        raise StoreError(
            f"skipping {what}: the store failed less than {UNREACHABLE_BACKOFF_SECONDS:g} s ago "
            "(it is tried again after that)"
        )


def mark_unreachable(location: str) -> None:
    """Skip ``location`` for the next :data:`UNREACHABLE_BACKOFF_SECONDS`, in every store."""
    with _lock:
        _failed_until[location] = time.monotonic() + UNREACHABLE_BACKOFF_SECONDS
