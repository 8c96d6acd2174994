"""Checkpoints of unfinished runs, kept beside a directory cache's entries.

A run that can be resumed (the NumPyro backend's) saves, at chunk boundaries, the sampler's full
state and the draws made since its last save into ``<root>/.resume/<model>/<key prefix>/``:
one ``draws-<first>-<end>.npz`` file per segment of draws, then ``state.npz`` (the state's
leaves, the iteration it belongs to and a JSON record of the run's structure and the segments
it covers), each written atomically. Files are plain NumPy archives read with
``allow_pickle=False``; the folder is hidden from listings of entries, so a checkpoint is never
served as a result. The next identical call finds the folder by its key, checks the record
against its own run (anything else: a one-line reason, and the run starts over) and goes on
from the saved state. The folder is removed once the finished result is stored.

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
from typing import Any

import numpy as np

from cloudcache.errors import PlantedLink
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


@dataclass(frozen=True)
class Checkpoint:
    """A saved run: the state's leaves at ``iteration`` and the draws made before it."""

    iteration: int
    state: list[np.ndarray]
    draws: dict[str, np.ndarray]
    record: dict[str, Any]
    age_seconds: float


class CheckpointFolder:
    """The checkpoint of one key in a directory cache: the folder ``relative`` below ``root``.

    Every file operation goes through :mod:`cloudcache.stores.nofollow`: nothing is read,
    written or deleted through a link planted below the root.
    """

    def __init__(self, root: str, relative: str) -> None:
        self.root = root
        self.relative = relative
        self.segments: list[str] = []

    @property
    def path(self) -> str:
        return f"{self.root.rstrip('/')}/{self.relative}"

    def save(
        self,
        iteration: int,
        state: Sequence[np.ndarray],
        segment: Mapping[str, np.ndarray],
        first: int,
        record: Mapping[str, Any],
    ) -> None:
        """Save the state at ``iteration`` and the draws ``first ..`` made since the last save."""
        count = _draw_count(segment)
        if count:
            name = f"draws-{first:09d}-{first + count:09d}.npz"
            nofollow.write_atomically(self.root, f"{self.relative}/{name}", archive_bytes(segment))
            self.segments.append(name)
        full = {**record, "iteration": int(iteration), "segments": list(self.segments)}
        arrays = {f"leaf_{n}": np.asarray(leaf) for n, leaf in enumerate(state)}
        arrays["record"] = np.array(json.dumps(full, sort_keys=True))
        nofollow.write_atomically(self.root, f"{self.relative}/{STATE_FILE}", archive_bytes(arrays))

    def load(self, expected: Mapping[str, Any]) -> Checkpoint | None:
        """The saved run if its record matches ``expected``; else ``None`` (reason logged)."""
        info = nofollow.lstat(self.root, f"{self.relative}/{STATE_FILE}")
        if info is None or not stat.S_ISREG(info.st_mode):
            return None
        expected = json.loads(json.dumps(dict(expected), sort_keys=True, default=str))
        try:
            with self._archive_at(STATE_FILE) as archive:
                record = json.loads(str(archive["record"][()]))
                leaves = [np.asarray(archive[f"leaf_{n}"]) for n in range(len(archive.files) - 1)]
            mismatch = [name for name, value in expected.items() if record.get(name) != value]
            if mismatch:
                self.warn(f"it was made by another run structure ({', '.join(mismatch)})")
                return None
            parts: dict[str, list[np.ndarray]] = {}
            for name in record["segments"]:
                with self._archive_at(name) as archive:
                    for field in archive.files:
                        parts.setdefault(field, []).append(np.asarray(archive[field]))
            draws = {field: np.concatenate(arrays, axis=1) for field, arrays in parts.items()}
        except Exception as error:  # a torn or foreign file: start over, never crash
            self.warn(f"it cannot be read ({type(error).__name__}: {error})")
            return None
        self.segments = list(record["segments"])
        age = max(0.0, time.time() - info.st_mtime)
        return Checkpoint(int(record["iteration"]), leaves, draws, record, age)

    def clear(self) -> None:
        """Remove the checkpoint (the finished result is stored); never through a link."""
        try:
            names = [name for name, _ in nofollow.folder_contents(self.root, self.relative)]
        except (OSError, PlantedLink):
            names = []
        for name in names:
            with contextlib.suppress(OSError, PlantedLink):
                nofollow.remove(self.root, f"{self.relative}/{name}")
        nofollow.remove_empty_folder(self.root, self.relative)
        nofollow.remove_empty_folder(self.root, self.relative.rsplit("/", 1)[0])  # the model's
        self.segments = []

    def warn(self, why: str) -> None:
        """Say once why a checkpoint is not used, and remove it."""
        _log.warning("cloudcache: ignoring the checkpoint in %s: %s; starting over", self.path, why)
        self.clear()

    def _archive_at(self, name: str) -> contextlib.AbstractContextManager[Any]:
        return read_archive(self.root, self.relative, name)


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
