"""Checkpoint and final-state folders kept in this process's memory (a memory-only cache).

A memory-only cache (``cache=True``, the default) keeps what its runs leave in the process:
the checkpoint of a run stopped by Ctrl-C (a notebook's kernel interrupt: the kernel lives on,
so running the cell again resumes the run) and the final state of a finished run (a request
for more draws is extended). Each file is the bytes a directory cache would hold (a plain NumPy
archive, read with ``allow_pickle=False``), so a checkpoint or a final state is saved, read
and checked exactly as on disk. The folders are bounded by bytes: beyond the bound the least
recently written folders are dropped whole (never a part of one), the one being written last.
"""

from __future__ import annotations

import contextlib
import io
import time
from collections import OrderedDict
from collections.abc import Iterator
from typing import Any

import numpy as np

from cloudcache.util.forks import ForkSafeLock


class MemoryFolders:
    """The in-memory folders of one memory store, holding at most about ``max_bytes``."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        #: ``relative path -> {name: (bytes, written at)}``, least recently written first.
        self._folders: OrderedDict[str, dict[str, tuple[bytes, float]]] = OrderedDict()
        self._bytes = 0
        self._lock = ForkSafeLock()

    @property
    def nbytes(self) -> int:
        """Bytes held now."""
        return self._bytes

    def folder(self, relative: str) -> MemoryFolder:
        """The folder ``relative`` (created by its first write)."""
        return MemoryFolder(self, relative)

    def write(self, relative: str, name: str, payload: bytes) -> None:
        with self._lock:
            files = self._folders.setdefault(relative, {})
            old = files.pop(name, None)
            self._bytes += len(payload) - (len(old[0]) if old is not None else 0)
            files[name] = (payload, time.time())
            self._folders.move_to_end(relative)
            while self._bytes > self.max_bytes and len(self._folders) > 1:
                oldest = next(iter(self._folders))
                self._drop(oldest, list(self._folders[oldest]))

    def read(self, relative: str, name: str) -> tuple[bytes, float]:
        """The bytes of ``name`` and when they were written; ``FileNotFoundError`` if absent."""
        with self._lock:
            found = self._folders.get(relative, {}).get(name)
        if found is None:
            raise FileNotFoundError(f"memory:{relative}/{name}")
        return found

    def names(self, relative: str) -> list[str]:
        with self._lock:
            return list(self._folders.get(relative, {}))

    def remove(self, relative: str, names: list[str]) -> None:
        with self._lock:
            self._drop(relative, names)

    def clear(self) -> None:
        with self._lock:
            self._folders.clear()
            self._bytes = 0

    def _drop(self, relative: str, names: list[str]) -> None:
        files = self._folders.get(relative)
        if files is None:
            return
        for name in names:
            removed = files.pop(name, None)
            if removed is not None:
                self._bytes -= len(removed[0])
        if not files:
            del self._folders[relative]


class MemoryFolder:
    """One folder of :class:`MemoryFolders` (the storage of a checkpoint or of final states)."""

    def __init__(self, folders: MemoryFolders, relative: str) -> None:
        self.folders, self.relative = folders, relative

    @property
    def path(self) -> str:
        return f"memory:{self.relative}"

    def write(self, name: str, payload: bytes) -> None:
        self.folders.write(self.relative, name, payload)

    @contextlib.contextmanager
    def archive(self, name: str) -> Iterator[Any]:
        payload, _ = self.folders.read(self.relative, name)
        with np.load(io.BytesIO(payload), allow_pickle=False) as archive:
            yield archive

    def written_at(self, name: str) -> float | None:
        try:
            return self.folders.read(self.relative, name)[1]
        except FileNotFoundError:
            return None

    def names(self) -> list[str]:
        return self.folders.names(self.relative)

    def remove(self, names: list[str]) -> None:
        self.folders.remove(self.relative, names)

    def remove_all(self) -> None:
        self.folders.remove(self.relative, self.names())
