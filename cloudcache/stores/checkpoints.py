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
import shutil
import stat
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextvars import ContextVar
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

#: The hidden folder below a cache root that holds checkpoints.
RESUME_DIR = ".resume"

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
    """The checkpoint of one key in one directory cache (``writer`` writes a file atomically)."""

    def __init__(self, path: Path, writer: Callable[[Path, bytes], None]) -> None:
        self.path = path
        self.writer = writer
        self.segments: list[str] = []

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
            self.writer(self.path / name, _archive(dict(segment)))
            self.segments.append(name)
        full = {**record, "iteration": int(iteration), "segments": list(self.segments)}
        arrays = {f"leaf_{n}": np.asarray(leaf) for n, leaf in enumerate(state)}
        arrays["record"] = np.array(json.dumps(full, sort_keys=True))
        self.writer(self.path / "state.npz", _archive(arrays))

    def load(self, expected: Mapping[str, Any]) -> Checkpoint | None:
        """The saved run if its record matches ``expected``; else ``None`` (reason logged)."""
        state_file = self.path / "state.npz"
        if not _regular(state_file):
            return None
        expected = json.loads(json.dumps(dict(expected), sort_keys=True, default=str))
        try:
            with np.load(state_file, allow_pickle=False) as archive:
                record = json.loads(str(archive["record"][()]))
                leaves = [np.asarray(archive[f"leaf_{n}"]) for n in range(len(archive.files) - 1)]
            mismatch = [name for name, value in expected.items() if record.get(name) != value]
            if mismatch:
                self.warn(f"it was made by another run structure ({', '.join(mismatch)})")
                return None
            parts: dict[str, list[np.ndarray]] = {}
            for name in record["segments"]:
                if not _regular(self.path / name):
                    raise ValueError(f"segment {name} is missing")
                with np.load(self.path / name, allow_pickle=False) as archive:
                    for field in archive.files:
                        parts.setdefault(field, []).append(np.asarray(archive[field]))
            draws = {field: np.concatenate(arrays, axis=1) for field, arrays in parts.items()}
            age = max(0.0, time.time() - state_file.stat().st_mtime)
        except Exception as error:  # a torn or foreign file: start over, never crash
            self.warn(f"it cannot be read ({type(error).__name__}: {error})")
            return None
        self.segments = list(record["segments"])
        return Checkpoint(int(record["iteration"]), leaves, draws, record, age)

    def clear(self) -> None:
        """Remove the checkpoint (the finished result is stored); never follows links."""
        with contextlib.suppress(FileNotFoundError):
            if self.path.is_symlink() or not self.path.is_dir():
                return
            shutil.rmtree(self.path)
        with contextlib.suppress(OSError):
            self.path.parent.rmdir()  # the model's folder, when it holds no other checkpoint
        self.segments = []

    def warn(self, why: str) -> None:
        """Say once why a checkpoint is not used, and remove it."""
        _log.warning("cloudcache: ignoring the checkpoint in %s: %s; starting over", self.path, why)
        self.clear()


def _archive(arrays: dict[str, np.ndarray]) -> bytes:
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return buffer.getvalue()


def _draw_count(segment: Mapping[str, np.ndarray]) -> int:
    for array in segment.values():
        return int(np.shape(array)[1]) if np.ndim(array) > 1 else 0
    return 0


def _regular(path: Path) -> bool:
    try:
        return stat.S_ISREG(os.lstat(path).st_mode)
    except OSError:
        return False


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
