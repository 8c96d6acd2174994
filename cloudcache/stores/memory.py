"""In-process LRU store bounded by bytes; hands out copies so callers never alter the cache.

A hit must cost almost nothing, yet the caller must get a tree it may mutate freely. So each
entry keeps, next to its master copy, one *ready* deep copy made by a background thread; a hit
hands that copy out and a fresh one is prepared behind it. ``max_bytes`` counts both copies.
An entry read from a slower store is *adopted*: memory keeps the tree just read and the caller
gets one copy, so a disk hit pays for a single in-memory copy and no second read.
"""

from __future__ import annotations

import atexit
import threading
from collections import OrderedDict
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

from cloudcache.stores.base import Entry, EntryRef, Store

DEFAULT_MAX_BYTES = 2 * 1024**3

_copier = ThreadPoolExecutor(max_workers=1, thread_name_prefix="cloudcache-copy")
atexit.register(_copier.shutdown, wait=False, cancel_futures=True)


def _copy(entry: Entry, location: str) -> Entry:
    return Entry(entry.tree.copy(deep=True), dict(entry.metadata), location)


@dataclass
class _Slot:
    master: Future[Entry]
    size: int
    spare: Future[Entry] | None = None


class MemoryStore(Store):
    """Keeps recent results in memory, evicting the least recently used beyond ``max_bytes``."""

    description = "memory"

    def __init__(self, max_bytes: int = DEFAULT_MAX_BYTES) -> None:
        if isinstance(max_bytes, bool) or not isinstance(max_bytes, int) or max_bytes < 0:
            raise ValueError(f"max_bytes must be a non-negative int, got {max_bytes!r}")
        self.max_bytes = max_bytes
        self._slots: OrderedDict[str, _Slot] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()

    @property
    def nbytes(self) -> int:
        """Bytes held now (master and ready copies)."""
        return self._bytes

    def __len__(self) -> int:
        return len(self._slots)

    def __contains__(self, key: str) -> bool:
        return key in self._slots

    def get(self, ref: EntryRef) -> Entry | None:
        with self._lock:
            slot = self._slots.get(ref.key)
            if slot is None:
                return None
            self._slots.move_to_end(ref.key)
            spare, slot.spare = slot.spare, None
        try:
            master = slot.master.result()
        except Exception:
            self._drop(ref.key, slot)
            return None
        if spare is not None and not spare.cancelled():
            copy = spare.result()
        else:
            copy = _copy(master, self.description)
        self._prepare_spare(ref.key, slot)
        return copy

    def put(self, ref: EntryRef, entry: Entry, timeout: float | None = None) -> str:
        """Keep a deep copy of ``entry`` (the caller keeps and may change the original)."""
        size = int(entry.tree.nbytes)
        if 2 * size > self.max_bytes:
            return self.description
        master: Future[Entry] = Future()
        master.set_result(_copy(entry, entry.location))
        self._insert(ref.key, _Slot(master, size))
        return self.description

    def adopt(self, ref: EntryRef, entry: Entry) -> Entry:
        """Keep ``entry`` itself (nobody else holds it) and return a copy for the caller."""
        size = int(entry.tree.nbytes)
        handed_out = _copy(entry, entry.location)
        if 2 * size <= self.max_bytes:
            master: Future[Entry] = Future()
            master.set_result(entry)
            self._insert(ref.key, _Slot(master, size))
        return handed_out

    def clear(self) -> None:
        with self._lock:
            self._slots.clear()
            self._bytes = 0

    def _insert(self, key: str, slot: _Slot) -> None:
        with self._lock:
            old = self._slots.pop(key, None)
            if old is not None:
                self._bytes -= 2 * old.size
            self._slots[key] = slot
            self._bytes += 2 * slot.size
            while self._bytes > self.max_bytes and self._slots:
                _, evicted = self._slots.popitem(last=False)
                self._bytes -= 2 * evicted.size
        self._prepare_spare(key, slot)

    def _prepare_spare(self, key: str, slot: _Slot) -> None:
        def make_spare() -> Entry:
            return _copy(slot.master.result(), self.description)

        with self._lock:
            if self._slots.get(key) is slot and slot.spare is None:
                slot.spare = _copier.submit(make_spare)

    def _drop(self, key: str, slot: _Slot) -> None:
        with self._lock:
            if self._slots.get(key) is slot:
                del self._slots[key]
                self._bytes -= 2 * slot.size
