"""What every store shares: entry references, entries, the Store protocol and its errors."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import xarray as xr


class StoreError(RuntimeError):
    """A store could not read or write (I/O, permissions, network)."""


class CorruptEntry(ValueError):
    """A stored entry is unreadable, truncated, tampered with or belongs to another key."""


@dataclass(frozen=True)
class EntryRef:
    """Where an entry lives: the full key, the model's slug and a readable request label."""

    key: str
    slug: str
    label: str


@dataclass
class Entry:
    """A stored result: the tree, its metadata record and where it was found."""

    tree: xr.DataTree
    metadata: dict[str, Any] = field(default_factory=dict)
    location: str = ""


@runtime_checkable
class Store(Protocol):
    """A place results can be kept: ``get`` returns ``None`` on a miss."""

    description: str

    def get(self, ref: EntryRef) -> Entry | None: ...

    def put(self, ref: EntryRef, entry: Entry) -> str:
        """Store ``entry``; return where it went. Raises :class:`StoreError` on failure."""
        ...
