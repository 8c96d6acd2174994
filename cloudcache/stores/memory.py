"""In-process LRU store bounded by bytes; hands out copies so callers never alter the cache."""

from __future__ import annotations

import threading
from collections import OrderedDict

from cloudcache.stores.base import Entry, EntryRef

DEFAULT_MAX_BYTES = 2 * 1024**3


class MemoryStore:
    """Keeps recent results in memory, evicting the least recently used beyond ``max_bytes``."""

    description = "memory"

    def __init__(self, max_bytes: int = DEFAULT_MAX_BYTES) -> None:
        if isinstance(max_bytes, bool) or not isinstance(max_bytes, int) or max_bytes < 0:
            raise ValueError(f"max_bytes must be a non-negative int, got {max_bytes!r}")
        self.max_bytes = max_bytes
        self._entries: OrderedDict[str, tuple[Entry, int]] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()

    @property
    def nbytes(self) -> int:
        """Bytes held now."""
        return self._bytes

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, key: str) -> bool:
        return key in self._entries

    def get(self, ref: EntryRef) -> Entry | None:
        with self._lock:
            held = self._entries.get(ref.key)
            if held is None:
                return None
            self._entries.move_to_end(ref.key)
            entry = held[0]
        return Entry(entry.tree.copy(deep=True), dict(entry.metadata), self.description)

    def put(self, ref: EntryRef, entry: Entry) -> str:
        size = int(entry.tree.nbytes)
        if size > self.max_bytes:
            return self.description
        kept = Entry(entry.tree.copy(deep=True), dict(entry.metadata), entry.location)
        with self._lock:
            if ref.key in self._entries:
                self._bytes -= self._entries.pop(ref.key)[1]
            self._entries[ref.key] = (kept, size)
            self._bytes += size
            while self._bytes > self.max_bytes and self._entries:
                _, (_, evicted) = self._entries.popitem(last=False)
                self._bytes -= evicted
        return self.description

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
            self._bytes = 0
