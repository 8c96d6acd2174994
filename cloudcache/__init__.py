"""cloudcache: cache PyMC sampling results in memory, on disk or in an object store."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

from cloudcache.records import CallRecord
from cloudcache.session import Session, cloud
from cloudcache.stores import FileStore, MemoryStore, Store, TieredStore

try:
    __version__ = version("cloudcache")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.0.0+unknown"

__all__ = [
    "CallRecord",
    "FileStore",
    "MemoryStore",
    "Session",
    "Store",
    "TieredStore",
    "__version__",
    "cloud",
]
