"""Turn the ``cache=`` argument of :func:`cloudcache.cloud` into a store."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cloudcache.stores.base import Store
from cloudcache.stores.files import FileStore
from cloudcache.stores.tiered import TieredStore
from cloudcache.util.validation import check_cache_location

if TYPE_CHECKING:
    from cloudcache.stores.memory import MemoryStore

CACHE_CHOICES = (
    "True (memory), False (no cache), 'disk' (memory + ./.cloudcache or $CLOUDCACHE_DIR), "
    "a directory path, an fsspec URL such as 's3://bucket/prefix', or a Store object"
)
DEFAULT_DIRECTORY = ".cloudcache"

_process_memory: MemoryStore | None = None


def process_memory_store() -> MemoryStore:
    """The memory store shared by every session of this process (re-run cells hit it)."""
    global _process_memory
    if _process_memory is None:
        from cloudcache.stores.memory import MemoryStore  # xarray: not for the command line

        limit = os.environ.get("CLOUDCACHE_MEMORY_BYTES")
        _process_memory = MemoryStore(int(limit)) if limit else MemoryStore()
    return _process_memory


def default_directory() -> Path:
    """``$CLOUDCACHE_DIR`` if set, else ``./.cloudcache``."""
    return Path(os.environ.get("CLOUDCACHE_DIR") or DEFAULT_DIRECTORY)


def resolve_cache(cache: Any, storage_options: dict[str, Any] | None = None) -> Store | None:
    """Return the store ``cache`` names, or ``None`` for ``cache=False``."""
    if cache is True:
        return process_memory_store()
    if cache is False:
        return None
    if isinstance(cache, str) and cache == "disk":
        cache = default_directory()
    if isinstance(cache, str | os.PathLike):
        location = os.fspath(cache)
        if not location:
            raise ValueError(f"cache must not be an empty string; valid choices: {CACHE_CHOICES}")
        check_cache_location(location)
        return TieredStore([process_memory_store(), FileStore(location, storage_options)])
    if isinstance(cache, Store):
        return cache
    raise TypeError(f"cache must be one of {CACHE_CHOICES}; got {type(cache).__name__} {cache!r}")
