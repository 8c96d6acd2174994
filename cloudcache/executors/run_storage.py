"""Where a remote run keeps its checkpoints and final state: the caller's store, when the
worker reaches it.

- A local cache directory is shown to the worker through a probe
  (:mod:`cloudcache.executors.shared_folder`): a worker that reads the caller's nonce back saves
  its checkpoints there, resumes from one, extends a stored run and keeps its final state; any
  other worker does none of that and creates nothing.
- An object store (``s3://...``, any fsspec URL) is reached by the worker itself: the store's
  checkpoint and final-state folders travel with the task (their fsspec filesystem, with its
  storage options, as the model does: workers are the user's own trusted machines). A worker
  that cannot reach the store starts over and keeps nothing (each save or read fails within
  the store's deadlines), as a local run does.
- A memory-only cache keeps nothing for a worker: its memory is not the caller's.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass

from cloudcache.executors.shared_folder import (
    SharedFolder,
    holds_checkpoint,
    offer,
    seen_here,
    withdraw,
)
from cloudcache.stores.checkpoints import CheckpointFolder, LocalFolder
from cloudcache.stores.final_states import FinalStates
from cloudcache.stores.object_checkpoints import ObjectFolder

_log = logging.getLogger("cloudcache")


@dataclass(frozen=True)
class RunStorage:
    """What a worker is given to keep a run's state: a ``probe`` of the caller's local
    checkpoint folder, or an object store's ``checkpoints`` folder; and the run key's
    ``final_states`` (in a local directory: used only by a worker that sees the probe)."""

    probe: SharedFolder | None = None
    checkpoints: CheckpointFolder | None = None
    final_states: FinalStates | None = None

    @property
    def path(self) -> str:
        """Where the run's checkpoint is kept."""
        if self.probe is not None:
            return self.probe.path
        return self.checkpoints.path if self.checkpoints is not None else ""

    @property
    def needs_probe(self) -> bool:
        """Whether a worker uses it only once shown to see the caller's folder."""
        return self.probe is not None

    def holds_checkpoint(self) -> bool:
        """Whether a checkpoint is saved there now (never raises)."""
        if self.probe is not None:
            return holds_checkpoint(self.probe)
        return self.checkpoints is not None and self.checkpoints.holds_state()

    def withdraw(self) -> None:
        """Remove the probe, if any (the checkpoint itself stays)."""
        if self.probe is not None:
            withdraw(self.probe)

    def on_worker(self) -> tuple[CheckpointFolder | None, FinalStates | None]:
        """On a worker: the checkpoint folder and final states this worker uses."""
        if self.probe is None:
            return self.checkpoints, self.final_states
        folder = seen_here(self.probe)
        return folder, (self.final_states if folder is not None else None)


def offer_storage(
    folder: CheckpointFolder | None, final_states: FinalStates | None
) -> RunStorage | None:
    """What a worker may keep the run's state in (``None``: nothing, a memory-only cache or a
    local folder the probe cannot be written into).

    An object store's folders are handed over as they are; the caller's ``folder`` is marked
    as used, so that it is cleared once the result is stored.
    """
    if folder is None:
        return None
    if folder.is_local:
        probe = offer(folder)
        if probe is None:
            return None
        finals = None
        if final_states is not None and isinstance(final_states.storage, LocalFolder):
            finals = FinalStates(
                os.path.abspath(final_states.root), final_states.relative, reuse=final_states.reuse
            )
        return RunStorage(probe=probe, final_states=finals)
    if not isinstance(folder.storage, ObjectFolder):
        return None
    finals = (
        final_states
        if final_states is not None and isinstance(final_states.storage, ObjectFolder)
        else None
    )
    storage = RunStorage(checkpoints=folder, final_states=finals)
    if not _travels(storage):
        return None
    folder.touched = True  # the worker may save into it: cleared once the result is stored
    return storage


def _travels(storage: RunStorage) -> bool:
    """Whether ``storage`` (an fsspec filesystem and its options) can be sent to a worker; a
    filesystem that cannot be pickled keeps the remote run going without checkpoints."""
    import cloudpickle

    try:
        cloudpickle.dumps(storage)
    except Exception as error:
        _log.info("cloudcache: the worker keeps no checkpoint (the store cannot travel: %s)", error)
        return False
    return True
