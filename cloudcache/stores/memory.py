"""In-process LRU store bounded by bytes; hits hand out read-only views, never copies.

Every array the store keeps is marked read-only, and a hit returns a shallow copy of the tree:
new DataTree, Dataset and Variable objects (so adding, dropping or renaming variables never
reaches the cache) over the very same read-only arrays. A hit therefore costs microseconds per
variable whatever the size of the draws, and writing into a returned array in place raises
NumPy's ``ValueError: assignment destination is read-only`` instead of silently changing the
cache. ``cloud(..., copy=True)`` hands out writable deep copies instead.

``put`` keeps a read-only copy whose large arrays share copy-on-write pages with the caller's
writable original (one copy of the draws in memory, not two); ``adopt`` keeps the tree it is
given (one just read from a slower store, which nobody else holds) without a copy.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

from cloudcache.stores.base import Entry, EntryRef, Store
from cloudcache.stores.checkpoints import CheckpointFolder, checkpoint_relative
from cloudcache.stores.copy_on_write import kept_copy
from cloudcache.stores.final_states import FinalStates, final_states_relative
from cloudcache.stores.memory_folders import MemoryFolders
from cloudcache.stores.views import freeze, shallow_tree
from cloudcache.util.forks import ForkSafeLock

DEFAULT_MAX_BYTES = 2 * 1024**3


def read_only_view(entry: Entry, location: str) -> Entry:
    """A new tree over the same (read-only) arrays of ``entry``, with its own metadata dict."""
    return Entry(shallow_tree(entry.tree), dict(entry.metadata), location)


@dataclass
class _Slot:
    entry: Entry
    size: int


class MemoryStore(Store):
    """Keeps recent results in memory, evicting the least recently used beyond ``max_bytes``.

    The checkpoints and final states of its runs are kept in memory too
    (:mod:`cloudcache.stores.memory_folders`), within their own ``max_bytes``.

    Args:
        max_bytes: The most bytes of results kept; the least recently used go first.
    """

    description = "memory"

    def __init__(self, max_bytes: int = DEFAULT_MAX_BYTES) -> None:
        if isinstance(max_bytes, bool) or not isinstance(max_bytes, int) or max_bytes < 0:
            raise ValueError(f"max_bytes must be a non-negative int, got {max_bytes!r}")
        self.max_bytes = max_bytes
        self._slots: OrderedDict[str, _Slot] = OrderedDict()
        self._bytes = 0
        self._lock = ForkSafeLock()
        #: The checkpoints and final states of this store's runs.
        self.partial = MemoryFolders(max_bytes)

    @property
    def nbytes(self) -> int:
        """Bytes held now."""
        return self._bytes

    def __len__(self) -> int:
        return len(self._slots)

    def __contains__(self, key: str) -> bool:
        return key in self._slots

    def get(self, ref: EntryRef) -> Entry | None:
        """A read-only view of the entry (see the module docstring), or ``None``."""
        with self._lock:
            slot = self._slots.get(ref.key)
            if slot is None:
                return None
            self._slots.move_to_end(ref.key)
        return read_only_view(slot.entry, self.description)

    def put(self, ref: EntryRef, entry: Entry, timeout: float | None = None) -> str:
        """Keep a read-only copy of ``entry``; the caller's original stays writable.

        Large arrays are not copied: they become copy-on-write pages shared by both
        (:mod:`cloudcache.stores.copy_on_write`).
        """
        size = int(entry.tree.nbytes)
        if size <= self.max_bytes:
            kept = Entry(kept_copy(entry.tree), dict(entry.metadata), entry.location)
            self._insert(ref.key, _Slot(kept, size))
        return self.description

    def adopt(self, ref: EntryRef, entry: Entry) -> Entry:
        """Keep ``entry`` itself, frozen (nobody else holds it); return a view for the caller."""
        size = int(entry.tree.nbytes)
        freeze(entry.tree)
        if size <= self.max_bytes:
            self._insert(ref.key, _Slot(entry, size))
        return read_only_view(entry, entry.location)

    def checkpoint_folder(self, ref: EntryRef) -> CheckpointFolder | None:
        """The checkpoint of ``ref``'s run, in this process's memory (a Ctrl-C keeps it);
        none when the store keeps nothing (``max_bytes=0``)."""
        if not self.max_bytes:
            return None
        relative = checkpoint_relative(ref.slug, ref.key)
        return CheckpointFolder(self.description, relative, self.partial.folder(relative))

    def final_states(self, ref: EntryRef, run_key: str) -> FinalStates | None:
        """The final states of ``run_key``'s runs, in this process's memory (as above)."""
        if not self.max_bytes:
            return None
        relative = final_states_relative(ref.slug, run_key)
        return FinalStates(self.description, relative, self.partial.folder(relative))

    def clear(self) -> None:
        """Drop every entry, checkpoint and final state."""
        with self._lock:
            self._slots.clear()
            self._bytes = 0
        self.partial.clear()

    def _insert(self, key: str, slot: _Slot) -> None:
        with self._lock:
            old = self._slots.pop(key, None)
            if old is not None:
                self._bytes -= old.size
            self._slots[key] = slot
            self._bytes += slot.size
            while self._bytes > self.max_bytes and self._slots:
                _, evicted = self._slots.popitem(last=False)
                self._bytes -= evicted.size
