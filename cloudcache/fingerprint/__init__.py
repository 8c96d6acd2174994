"""Process-stable fingerprints of PyMC models, data and sampler requests."""

from __future__ import annotations

from cloudcache.fingerprint.canonical import UnkeyableObject
from cloudcache.fingerprint.key import KEY_SCHEMA, CacheKey, compute_key

__all__ = ["KEY_SCHEMA", "CacheKey", "UnkeyableObject", "compute_key"]
