"""Where results are kept: memory, local directories and fsspec object stores.

Public names are imported on first use, so the command line's metadata commands (``ls``,
``show``, ``rm``, ``prune``) reach the file layer without importing xarray.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from cloudcache.errors import CorruptEntry, EntryUnreadable, StoreError
    from cloudcache.stores.base import Entry, EntryRef, Lookup, Store
    from cloudcache.stores.files import FileStore
    from cloudcache.stores.memory import MemoryStore
    from cloudcache.stores.tiered import TieredStore

_PUBLIC = {
    "CorruptEntry": "cloudcache.errors",
    "Entry": "cloudcache.stores.base",
    "EntryRef": "cloudcache.stores.base",
    "EntryUnreadable": "cloudcache.errors",
    "FileStore": "cloudcache.stores.files",
    "Lookup": "cloudcache.stores.base",
    "MemoryStore": "cloudcache.stores.memory",
    "Store": "cloudcache.stores.base",
    "StoreError": "cloudcache.errors",
    "TieredStore": "cloudcache.stores.tiered",
}

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


def __getattr__(name: str) -> Any:
    module = _PUBLIC.get(name)
    if module is None:
        raise AttributeError(f"module 'cloudcache.stores' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_PUBLIC})
