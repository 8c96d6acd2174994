"""Checkpoints written in the background while the run goes on sampling.

A checkpoint is the sampler's state plus the draws made since the last one; writing and
fsyncing it takes time proportional to those draws (tenths of a second for a few tens of MB),
which the sampler would otherwise wait for. :class:`CheckpointWriter` writes one checkpoint at
a time in a thread, in order (a save first waits for the one before it), from arrays already
copied to the host, so what is written never depends on where the run has got to meanwhile.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from cloudcache.stores.checkpoints import CheckpointFolder

_log = logging.getLogger("cloudcache")


@dataclass(frozen=True)
class Snapshot:
    """What one checkpoint writes, copied to the host at a chunk boundary: the sampler's state
    leaves at ``iteration`` and the draws ``first ..`` made since the last save."""

    iteration: int
    leaves: list[np.ndarray]
    segment: Mapping[str, np.ndarray]
    first: int

    def write(self, folder: CheckpointFolder, record: Mapping[str, Any]) -> None:
        folder.save(self.iteration, self.leaves, self.segment, self.first, dict(record))


class CheckpointWriter:
    """Saves the checkpoints of one run into ``folder`` (``None``: saves nothing)."""

    def __init__(self, folder: CheckpointFolder | None) -> None:
        self.folder = folder
        self._thread: threading.Thread | None = None
        self._error: Exception | None = None

    def save(self, snapshot: Snapshot, record: Mapping[str, Any]) -> None:
        """Start saving ``snapshot``; returns at once. A save that fails removes what was
        saved and stops the saving (the run goes on: a full disk must not stop it)."""
        self.wait()
        if self.folder is None:
            return
        args = (self.folder, snapshot, record)
        self._thread = threading.Thread(target=self._write, args=args, daemon=True)
        self._thread.start()

    @property
    def busy(self) -> bool:
        """Whether a save is still being written."""
        return self._thread is not None and self._thread.is_alive()

    def save_now(self, snapshot: Snapshot, record: Mapping[str, Any]) -> Exception | None:
        """Save at once, after the save in progress (a Ctrl-C's save); the error of a save
        that failed (the last checkpoint then stays as it was), else None."""
        self.wait()
        if self.folder is None:
            return RuntimeError("checkpoints are off for this run")
        try:
            snapshot.write(self.folder, record)
        except Exception as error:
            return error
        return None

    def wait(self) -> None:
        """Wait for the save in progress; after a failed one, remove the checkpoint and stop."""
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        if self._error is not None and self.folder is not None:
            _log.info("cannot save a checkpoint (%s); going on without", self._error)
            self.folder.clear()  # no partial checkpoint is ever left
            self.folder = None

    def _write(
        self, folder: CheckpointFolder, snapshot: Snapshot, record: Mapping[str, Any]
    ) -> None:
        try:
            snapshot.write(folder, record)
        except Exception as error:
            self._error = error
