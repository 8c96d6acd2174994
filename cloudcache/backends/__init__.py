"""Sampling backends: they turn a model and a :class:`SampleRequest` into a DataTree.

Backends know nothing of caching. ``get_backend(name)`` returns one by name.
"""

from __future__ import annotations

from cloudcache.backends.base import Backend
from cloudcache.backends.registry import BACKEND_NAMES, get_backend

__all__ = ["BACKEND_NAMES", "Backend", "get_backend"]
