"""Process-stable fingerprints of PyMC models, data and sampler requests.

Names are imported on first use: ``fingerprint.digest`` (used by the entry format, and so by
the command line) must not pull in PyMC and PyTensor through this package's ``__init__``.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from cloudcache.errors import UnkeyableObject
    from cloudcache.fingerprint.key import KEY_SCHEMA, CacheKey, compute_key

_PUBLIC = {
    "KEY_SCHEMA": "cloudcache.fingerprint.key",
    "CacheKey": "cloudcache.fingerprint.key",
    "UnkeyableObject": "cloudcache.errors",
    "compute_key": "cloudcache.fingerprint.key",
}

__all__ = ["KEY_SCHEMA", "CacheKey", "UnkeyableObject", "compute_key"]


def __getattr__(name: str) -> Any:
    module = _PUBLIC.get(name)
    if module is None:
        raise AttributeError(f"module 'cloudcache.fingerprint' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value
