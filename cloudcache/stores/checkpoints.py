"""Checkpoints of unfinished runs, kept beside a cache's entries.

A run that can be resumed (the NumPyro backend's) saves, at chunk boundaries, the sampler's full
state and the draws made since its last save into ``<root>/.resume/<model>/<key prefix>/``:
one ``draws-<first>-<end>.npz`` file per segment of draws, then ``state.npz`` (the state's
leaves, the iteration it belongs to and a JSON record of the run's structure and the segments
it covers), each written atomically. Files are plain NumPy archives read with
``allow_pickle=False``; the folder is hidden from listings of entries, so a checkpoint is never
served as a result. The next identical call finds the folder by its key, checks the record
against its own run (anything else: a one-line reason, and the run starts over) and goes on
from the saved state. The folder is removed once the finished result is stored.

The same files in the same layout are kept in a local directory (:class:`LocalFolder`: never
through a link) or an object store (:mod:`cloudcache.stores.object_checkpoints`: one PUT per
file, every call under the store's deadlines); :class:`CheckpointFolder` does the rest for both.

The cache path opens :func:`checkpointing` around a miss; a backend asks :func:`active_folder`.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import os
import re
import stat
import time
from collections.abc import Iterator, Mapping, Sequence
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from cloudcache.errors import PlantedLink, StoreError
from cloudcache.stores import nofollow

#: The hidden folder below a cache root that holds checkpoints.
RESUME_DIR = ".resume"

#: The file that holds a checkpoint's state and record (written after its segments).
STATE_FILE = "state.npz"
#: The name of a segment of draws: ``draws-<first>-<end>.npz`` (9 digits each).
SEGMENT_NAME = re.compile(r"^draws-(\d{9})-(\d{9})\.npz$")

#: The result attribute by which a backend says its run resumed ("resumed at 600 of 1,000
#: draws"); the cache path moves it into the call's record and its miss announcement.
RESUMED_ATTR = "cloudcache_resumed"

_log = logging.getLogger("cloudcache")


def checkpoint_relative(slug: str, key: str) -> str:
    """The checkpoint folder of ``key`` below a cache root: ``.resume/<model>/<key prefix>``."""
    return f"{RESUME_DIR}/{slug}/{key[:32]}"


@dataclass(frozen=True)
class Checkpoint:
    """A saved run: the state's leaves at ``iteration`` and the draws made before it."""

    iteration: int
    state: list[np.ndarray]
    draws: dict[str, np.ndarray]
    record: dict[str, Any]
    age_seconds: float


class CheckpointUnreachable(StoreError):
    """The store holding a checkpoint did not answer (refused, stalled, past its deadline):
    nothing is known about the checkpoint, so it is neither used nor removed."""


class FolderStorage(Protocol):
    """Where a checkpoint's (or a final state's) folder keeps its files: a local directory or
    an object store."""

    @property
    def path(self) -> str:
        """The folder as a user would type it."""
        ...

    def write(self, name: str, payload: bytes) -> None:
        """Write ``name`` whole (readers never see part of it)."""
        ...

    def archive(self, name: str) -> contextlib.AbstractContextManager[Any]:
        """The NumPy archive ``name``, read with ``allow_pickle=False``."""
        ...

    def written_at(self, name: str) -> float | None:
        """When ``name`` was written; ``None`` when it is not there (or not a regular file)."""
        ...

    def names(self) -> list[str]:
        """The names in the folder, listed afresh (``[]`` when there is no folder)."""
        ...

    def remove(self, names: list[str]) -> None:
        """Remove the files ``names`` of the folder."""
        ...

    def remove_all(self) -> None:
        """Remove every file of the folder, then the folder (never raises)."""
        ...


class LocalFolder:
    """A folder ``relative`` below the directory ``root``: every file operation
    goes through :mod:`cloudcache.stores.nofollow` (never through a link planted below it)."""

    def __init__(self, root: str, relative: str) -> None:
        self.root, self.relative = root, relative

    @property
    def path(self) -> str:
        return f"{self.root.rstrip('/')}/{self.relative}"

    def write(self, name: str, payload: bytes) -> None:
        nofollow.write_atomically(self.root, f"{self.relative}/{name}", payload)

    def archive(self, name: str) -> contextlib.AbstractContextManager[Any]:
        return read_archive(self.root, self.relative, name)

    def written_at(self, name: str) -> float | None:
        info = nofollow.lstat(self.root, f"{self.relative}/{name}")
        return info.st_mtime if info is not None and stat.S_ISREG(info.st_mode) else None

    def names(self) -> list[str]:
        try:
            return [name for name, _ in nofollow.folder_contents(self.root, self.relative)]
        except FileNotFoundError:
            return []

    def remove(self, names: list[str]) -> None:
        """Remove ``names`` (one that cannot be removed stays), then the folders they empty."""
        for name in names:
            with contextlib.suppress(OSError, PlantedLink):
                nofollow.remove(self.root, f"{self.relative}/{name}")
        nofollow.remove_empty_folder(self.root, self.relative)
        nofollow.remove_empty_folder(self.root, self.relative.rsplit("/", 1)[0])  # the model's

    def remove_all(self) -> None:
        try:
            names = self.names()
        except (OSError, PlantedLink):
            names = []
        self.remove(names)


class CheckpointFolder:
    """The checkpoint of one key: the folder ``relative`` below the cache ``root``.

    Its files are kept by ``storage``: a local directory (:class:`LocalFolder`, the default)
    or an object store (:class:`~cloudcache.stores.object_checkpoints.ObjectFolder`); what is
    saved, read and checked is the same for both.
    """

    def __init__(self, root: str, relative: str, storage: FolderStorage | None = None) -> None:
        self.root = root
        self.relative = relative
        self.storage: FolderStorage = storage or LocalFolder(root, relative)
        self.segments: list[str] = []
        #: Whether this run found a checkpoint here or saved one (:meth:`served`).
        self.touched = False

    @property
    def path(self) -> str:
        return self.storage.path

    @property
    def is_local(self) -> bool:
        """Whether the folder is in a local directory (a Dask worker may be shown it)."""
        return isinstance(self.storage, LocalFolder)

    def save(
        self,
        iteration: int,
        state: Sequence[np.ndarray],
        segment: Mapping[str, np.ndarray],
        first: int,
        record: Mapping[str, Any],
    ) -> None:
        """Save the state at ``iteration`` and the draws ``first ..`` made since the last save:
        the segment first, then the state that names it (each written whole)."""
        self.touched = True
        count = _draw_count(segment)
        if count:
            name = f"draws-{first:09d}-{first + count:09d}.npz"
            self.storage.write(name, archive_bytes(segment))
            self.segments.append(name)
        full = {**record, "iteration": int(iteration), "segments": list(self.segments)}
        arrays = {f"leaf_{n}": np.asarray(leaf) for n, leaf in enumerate(state)}
        arrays["record"] = np.array(json.dumps(full, sort_keys=True))
        self.storage.write(STATE_FILE, archive_bytes(arrays))

    def load(self, expected: Mapping[str, Any]) -> Checkpoint | None:
        """The saved run if its record matches ``expected``; else ``None`` (reason logged). A
        store that does not answer leaves the checkpoint as it is (the run starts over)."""
        try:
            return self._load(expected)
        except CheckpointUnreachable as error:
            _log.warning(
                "cloudcache: cannot read the checkpoint in %s (%s); starting over", self.path, error
            )
            return None

    def _load(self, expected: Mapping[str, Any]) -> Checkpoint | None:
        saved_at = self.storage.written_at(STATE_FILE)
        if saved_at is None:
            return None
        self.touched = True
        expected = json.loads(json.dumps(dict(expected), sort_keys=True, default=str))
        try:
            with self.storage.archive(STATE_FILE) as archive:
                record = json.loads(str(archive["record"][()]))
                leaves = [np.asarray(archive[f"leaf_{n}"]) for n in range(len(archive.files) - 1)]
            mismatch = [name for name, value in expected.items() if record.get(name) != value]
            if mismatch:
                self.warn(f"it was made by another run structure ({', '.join(mismatch)})")
                return None
            parts: dict[str, list[np.ndarray]] = {}
            for name in record["segments"]:
                with self.storage.archive(name) as archive:
                    for field in archive.files:
                        parts.setdefault(field, []).append(np.asarray(archive[field]))
            draws = {field: np.concatenate(arrays, axis=1) for field, arrays in parts.items()}
        except CheckpointUnreachable:
            raise
        except Exception as error:  # a torn or foreign file: start over, never crash
            self.warn(f"it cannot be read ({type(error).__name__}: {error})")
            return None
        self.segments = list(record["segments"])
        age = max(0.0, time.time() - saved_at)
        return Checkpoint(int(record["iteration"]), leaves, draws, record, age)

    def holds_state(self) -> bool:
        """Whether a saved state is there now (``False`` when the store does not answer)."""
        try:
            return self.storage.written_at(STATE_FILE) is not None
        except (OSError, PlantedLink, StoreError):
            return False

    def clear(self) -> None:
        """Remove the checkpoint; never raises."""
        self.storage.remove_all()
        self.segments = []

    def served(self) -> None:
        """The finished result is stored: remove the checkpoint. An object-store folder that
        this run neither read a checkpoint from nor saved one to is left unlisted (a run that
        keeps none, such as nutpie's, costs no request); a local one is always cleared (a Dask
        worker may have saved into it)."""
        if self.touched or self.is_local:
            self.clear()

    def warn(self, why: str) -> None:
        """Say once why a checkpoint is not used, and remove it."""
        _log.warning("cloudcache: ignoring the checkpoint in %s: %s; starting over", self.path, why)
        self.clear()


@contextlib.contextmanager
def read_archive(root: str, relative_folder: str, name: str) -> Iterator[Any]:
    """The NumPy archive ``name`` in the folder ``relative_folder`` below ``root``, read
    without following a link and without unpickling anything."""
    flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
    with nofollow.opened_folder(root, relative_folder, create=False) as folder:
        descriptor = os.open(name, flags, dir_fd=folder)
        with os.fdopen(descriptor, "rb") as handle:
            if not stat.S_ISREG(os.fstat(handle.fileno()).st_mode):
                raise ValueError(f"{name} is not a regular file")
            with np.load(handle, allow_pickle=False) as archive:  # read in place: no copy
                yield archive


def archive_bytes(arrays: Mapping[str, np.ndarray]) -> bytes:
    """``arrays`` as the bytes of one uncompressed NumPy archive (``np.savez``)."""
    buffer = io.BytesIO()
    np.savez(buffer, **dict(arrays))
    return buffer.getvalue()


def _draw_count(segment: Mapping[str, np.ndarray]) -> int:
    for array in segment.values():
        return int(np.shape(array)[1]) if np.ndim(array) > 1 else 0
    return 0


_active: ContextVar[CheckpointFolder | None] = ContextVar("cloudcache_checkpoint", default=None)


@contextlib.contextmanager
def checkpointing(folder: CheckpointFolder | None) -> Iterator[CheckpointFolder | None]:
    """Make ``folder`` the checkpoint of the run inside the block (``None``: no checkpoints)."""
    token = _active.set(folder)
    try:
        yield folder
    finally:
        _active.reset(token)


def active_folder() -> CheckpointFolder | None:
    """The checkpoint folder of the run in progress, if its store keeps checkpoints."""
    return _active.get()
