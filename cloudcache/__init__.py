"""cloudcache: cache PyMC sampling results in memory, on disk or in an object store.

Public names are imported on first use, so the command line starts without importing PyMC.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from cloudcache.calls.records import CallRecord
    from cloudcache.prewarm import prewarm
    from cloudcache.session import Session, cloud
    from cloudcache.stores import FileStore, MemoryStore, Store, TieredStore

_PUBLIC = {
    "CallRecord": "cloudcache.calls.records",
    "FileStore": "cloudcache.stores",
    "MemoryStore": "cloudcache.stores",
    "Session": "cloudcache.session",
    "Store": "cloudcache.stores",
    "TieredStore": "cloudcache.stores",
    "cloud": "cloudcache.session",
    "prewarm": "cloudcache.prewarm",
}

__all__ = [
    "CallRecord",
    "FileStore",
    "MemoryStore",
    "Session",
    "Store",
    "TieredStore",
    "__version__",
    "cloud",
    "prewarm",
]


def __getattr__(name: str) -> Any:
    if name == "__version__":  # looked up on first use, like the other public names
        from cloudcache.util.versions import installed_version

        found = installed_version("cloudcache")
        globals()[name] = found if found != "missing" else "0.0.0+unknown"
        return globals()[name]
    module = _PUBLIC.get(name)
    if module is None:
        raise AttributeError(f"module 'cloudcache' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_PUBLIC, "__version__"})
