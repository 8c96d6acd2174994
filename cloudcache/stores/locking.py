"""Single flight on a shared directory: one process samples a key, the others wait for it.

A miss takes an exclusive file lock (the ``filelock`` library) named after the entry, kept
under ``<root>/.locks/`` so it never looks like an entry. The first process samples and writes;
the others block on the lock, then re-read and find the entry. The lock dies with its holder
(the OS releases it), and a waiter that waited longer than its timeout samples by itself.
"""

from __future__ import annotations

import contextlib
import logging
import time
import warnings
from collections.abc import Iterator
from pathlib import Path

from cloudcache.stores.base import EntryRef
from cloudcache.stores.format.layout import relative_path

#: Directory below a store's root that holds the lock files.
LOCK_DIRECTORY = ".locks"

#: Seconds a waiter waits for another process's sampling before sampling by itself.
DEFAULT_LOCK_TIMEOUT = 3600.0

_log = logging.getLogger("cloudcache")


def lock_path(root: str | Path, ref: EntryRef) -> Path:
    """``<root>/.locks/<model-slug>/<entry name>.lock`` for ``ref``."""
    return Path(root) / LOCK_DIRECTORY / f"{relative_path(ref)}.lock"


@contextlib.contextmanager
def single_flight(path: Path, timeout: float, what: str) -> Iterator[bool]:
    """Hold the lock at ``path`` for the block; yields whether the lock is held.

    If another process holds it, wait up to ``timeout`` seconds; after that, warn and run the
    block without the lock (the caller then samples by itself).
    """
    # Imported on the first miss: filelock costs a fresh process ~15 ms, and a hit never locks.
    from filelock import FileLock, Timeout

    path.parent.mkdir(parents=True, exist_ok=True)
    lock = FileLock(path)
    started = time.monotonic()
    try:
        lock.acquire(timeout=0)
    except Timeout:
        _log.info("waiting for another process that is sampling %s", what)
        try:
            lock.acquire(timeout=max(0.0, timeout - (time.monotonic() - started)))
        except Timeout:
            warnings.warn(
                f"cloudcache: waited {timeout:g} s for another process sampling {what}; "
                "sampling here as well",
                RuntimeWarning,
                stacklevel=4,
            )
            yield False
            return
    try:
        yield True
    finally:
        lock.release()
