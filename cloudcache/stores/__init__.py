"""Where results are kept: memory, local directories and fsspec object stores."""

from __future__ import annotations

from cloudcache.stores.base import CorruptEntry, Entry, EntryRef, Store, StoreError
from cloudcache.stores.files import FileStore
from cloudcache.stores.memory import MemoryStore
from cloudcache.stores.tiered import TieredStore

__all__ = [
    "CorruptEntry",
    "Entry",
    "EntryRef",
    "FileStore",
    "MemoryStore",
    "Store",
    "StoreError",
    "TieredStore",
]
