"""Where results are kept: memory, local directories and fsspec object stores."""

from __future__ import annotations

from cloudcache.errors import CorruptEntry, EntryUnreadable, StoreError
from cloudcache.stores.base import Entry, EntryRef, Lookup, Store
from cloudcache.stores.files import FileStore
from cloudcache.stores.memory import MemoryStore
from cloudcache.stores.tiered import TieredStore

__all__ = [
    "CorruptEntry",
    "Entry",
    "EntryRef",
    "EntryUnreadable",
    "FileStore",
    "Lookup",
    "MemoryStore",
    "Store",
    "StoreError",
    "TieredStore",
]
