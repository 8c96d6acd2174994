"""Checkpoint folders in an object store (any fsspec URL cache: S3, GCS, Azure, memory).

The files and their layout are those of a local checkpoint
(:mod:`cloudcache.stores.checkpoints`): ``<root>/.resume/<model>/<key prefix>/`` holds one
``draws-<first>-<end>.npz`` object per segment, written before the ``state.npz`` that names
them. Each object is written in one PUT, which an object store makes visible only once it is
complete, so no reader ever sees part of one; objects are read into memory and opened with
``allow_pickle=False``. Every call has a total deadline
(:mod:`cloudcache.stores.deadline`) and honours the location's back-off
(:mod:`cloudcache.stores.backoff`), so a slow or dead endpoint never holds a run, its Ctrl-C
or the removal after it: a call that fails raises
:class:`~cloudcache.stores.checkpoints.CheckpointUnreachable` (a save that fails leaves the run
going on without checkpoints; a load that fails starts over and leaves the objects alone).

Object stores have no locks, so two processes may resume one checkpoint at once: both compute
the same floats from it, each state object names only segments its own process wrote (or
read), and a checkpoint that no longer covers its iterations (a segment removed by the other
process's final clean-up) is ignored with a warning and removed, never served.

The final states of finished runs (:mod:`cloudcache.stores.final_states`) are kept the same
way, one object per run below ``<root>/.extend/<model>/<run key>/``.
"""

from __future__ import annotations

import contextlib
import io
import logging
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import numpy as np

from cloudcache.stores.backoff import check_reachable, mark_unreachable
from cloudcache.stores.checkpoints import CheckpointUnreachable
from cloudcache.stores.deadline import (
    DEFAULT_LIST_DEADLINE,
    DEFAULT_READ_DEADLINE,
    DEFAULT_WRITE_DEADLINE,
    Deadline,
)
from cloudcache.stores.usage import modified_time

if TYPE_CHECKING:
    import fsspec

_log = logging.getLogger("cloudcache")


class ObjectFolder:
    """The folder ``<root>/<relative>`` of an object store reached through ``fs`` (a
    checkpoint's, or the final states of a run key);
    ``location`` names it for the back-off shared by every store of the process."""

    def __init__(
        self, fs: fsspec.AbstractFileSystem, root: str, relative: str, location: str
    ) -> None:
        self.fs, self.location = fs, location
        self.folder = f"{root.rstrip('/')}/{relative}"

    @property
    def path(self) -> str:
        return str(self.fs.unstrip_protocol(self.folder))

    def write(self, name: str, payload: bytes) -> None:
        """One PUT of the whole object, within the write deadline."""
        self._call("pipe_file", name, payload, seconds=DEFAULT_WRITE_DEADLINE, verb="writing")

    @contextlib.contextmanager
    def archive(self, name: str) -> Iterator[Any]:
        """The object's bytes (one GET within the read deadline) as a NumPy archive."""
        payload = self._call("cat_file", name, seconds=DEFAULT_READ_DEADLINE, verb="reading")
        with np.load(io.BytesIO(bytes(payload)), allow_pickle=False) as archive:
            yield archive

    def written_at(self, name: str) -> float | None:
        self.fs.invalidate_cache(self.folder)  # another process may have written it meanwhile
        try:
            info = self._call("info", name, seconds=DEFAULT_READ_DEADLINE, verb="looking up")
        except FileNotFoundError:
            return None
        if info.get("type") != "file":
            return None
        written = modified_time(info)
        return written if written is not None else 0.0

    def remove_all(self) -> None:
        """Remove every object of the folder; a store that fails leaves them (said at info
        level: the run's result does not depend on it)."""
        try:
            self.remove(None)
        except Exception as error:  # never stops the caller: the objects stay
            _log.info("cloudcache: cannot remove %s (%s)", self.path, error)

    def names(self) -> list[str]:
        """The names of the folder's objects, listed afresh within the listing deadline;
        :class:`CheckpointUnreachable` when the store fails."""
        return [path.rsplit("/", 1)[-1] for path in self._listed(None, f"listing {self.path}")]

    def remove(self, names: list[str] | None) -> None:
        """Delete the objects ``names`` of the folder (``None``: every object in it), the
        listing and the deletion within one deadline; :class:`CheckpointUnreachable` when
        the store fails."""
        self._listed(names, f"removing {self.path}", remove=True)

    def _listed(self, names: list[str] | None, what: str, *, remove: bool = False) -> list[str]:
        """The paths of ``names`` (``None``: of every object listed in the folder), deleted
        when ``remove``: every call within one deadline, the folder's listing refreshed."""
        try:
            check_reachable(self.location, what)
        except Exception as error:
            raise CheckpointUnreachable(str(error)) from error
        deadline = Deadline(DEFAULT_LIST_DEADLINE, what)
        self.fs.invalidate_cache(self.folder)
        try:
            if names is None:
                listed = deadline.call(self.fs, "ls", self.folder, detail=False)
                paths = [p.rstrip("/") for p in listed]
                paths = [p for p in paths if p.startswith(f"{self.folder}/")]
            else:
                paths = [f"{self.folder}/{name}" for name in names]
            if remove and paths:
                deadline.call(self.fs, "rm", paths)
        except FileNotFoundError:
            return []  # no folder (or removed already)
        except Exception as error:  # botocore/aiohttp errors are not all OSErrors
            mark_unreachable(self.location)
            raise CheckpointUnreachable(f"{type(error).__name__}: {error}") from error
        finally:
            self.fs.invalidate_cache(self.folder)
        return paths

    def _call(self, method: str, name: str, *args: Any, seconds: float, verb: str) -> Any:
        what = f"{verb} {self.path}/{name}"
        try:
            check_reachable(self.location, what)
        except Exception as error:
            raise CheckpointUnreachable(str(error)) from error
        try:
            return Deadline(seconds, what).call(self.fs, method, f"{self.folder}/{name}", *args)
        except FileNotFoundError:
            raise
        except Exception as error:  # botocore/aiohttp errors are not all OSErrors
            mark_unreachable(self.location)
            raise CheckpointUnreachable(f"{type(error).__name__}: {error}") from error
