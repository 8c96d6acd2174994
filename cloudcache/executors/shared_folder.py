"""A remote run's checkpoints, kept in the caller's cache directory when its worker sees it.

A Dask worker may save a run's checkpoints into the caller's checkpoint folder only when it is
shown to see that very folder (a shared filesystem, or the caller's own machine): the caller
writes a *probe* holding a fresh random nonce into the folder (atomically, never through a
link), and the worker uses the folder only if it reads the same nonce back at that path, below
the same root, without following a link and without creating anything. A worker that reads
anything else (another machine's disk, a folder that is not there) runs without checkpoints,
as if the cache kept none. The probe is named like a temp file (``.worker-probe.<random>.tmp``),
so maintenance treats a leftover one as a stray of an interrupted write.
"""

from __future__ import annotations

import contextlib
import hmac
import logging
import os
import secrets
import stat
from dataclasses import dataclass

from cloudcache.errors import PlantedLink, StoreError
from cloudcache.stores import nofollow
from cloudcache.stores.checkpoints import STATE_FILE, CheckpointFolder

#: The start of a probe's name; a random part and ``.tmp`` follow.
PROBE_PREFIX = ".worker-probe."

_NONCE_BYTES = 16
_log = logging.getLogger("cloudcache")


@dataclass(frozen=True)
class SharedFolder:
    """What a worker needs to check that it sees the caller's checkpoint folder: the cache
    ``root`` (absolute), the folder ``relative`` below it, the ``probe``'s name in it and the
    ``nonce`` the probe holds."""

    root: str
    relative: str
    probe: str
    nonce: str

    @property
    def path(self) -> str:
        return f"{self.root.rstrip('/')}/{self.relative}"


def offer(folder: CheckpointFolder) -> SharedFolder | None:
    """Write a probe with a fresh nonce into ``folder`` for a worker to read back; ``None``
    (remote runs keep no checkpoints) when it cannot be written."""
    shared = SharedFolder(
        os.path.abspath(folder.root),
        folder.relative,
        f"{PROBE_PREFIX}{secrets.token_hex(6)}.tmp",
        secrets.token_hex(_NONCE_BYTES),
    )
    try:
        nofollow.write_atomically(
            shared.root, f"{shared.relative}/{shared.probe}", shared.nonce.encode()
        )
    except (OSError, PlantedLink, StoreError) as error:
        _log.info("cloudcache: remote runs keep no checkpoint here (%s)", error)
        return None
    return shared


def withdraw(shared: SharedFolder) -> None:
    """Remove the probe, and the folder (and its model's) when nothing else is in it."""
    with contextlib.suppress(OSError, PlantedLink, StoreError):
        nofollow.remove(shared.root, f"{shared.relative}/{shared.probe}")
    nofollow.remove_empty_folder(shared.root, shared.relative)
    nofollow.remove_empty_folder(shared.root, shared.relative.rsplit("/", 1)[0])


def holds_checkpoint(shared: SharedFolder) -> bool:
    """Whether the folder holds a saved state (as seen here, never through a link)."""
    info = nofollow.lstat(shared.root, f"{shared.relative}/{STATE_FILE}")
    return info is not None and stat.S_ISREG(info.st_mode)


def seen_here(shared: SharedFolder) -> CheckpointFolder | None:
    """On a worker: the checkpoint folder if this process reads the probe's nonce at its path
    (a regular file, no link followed on the way, nothing created); else ``None``."""
    expected = shared.nonce.encode()
    flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | os.O_NONBLOCK | os.O_CLOEXEC
    try:
        with nofollow.opened_folder(shared.root, shared.relative, create=False) as folder:
            descriptor = os.open(shared.probe, flags, dir_fd=folder)
            with os.fdopen(descriptor, "rb") as handle:
                if not stat.S_ISREG(os.fstat(handle.fileno()).st_mode):
                    return None
                found = handle.read(len(expected) + 1)
    except (OSError, PlantedLink, StoreError):
        return None
    if not hmac.compare_digest(found, expected):
        return None
    return CheckpointFolder(shared.root, shared.relative)


def sees(shared: SharedFolder) -> bool:
    """On a worker: whether it sees the caller's folder (:func:`seen_here`)."""
    return seen_here(shared) is not None
