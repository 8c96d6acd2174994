"""Readable file names: ``<root>/<model-slug>/<draws500_tune500_chains2>-<key prefix>.nc``."""

from __future__ import annotations

import re

from cloudcache.stores.base import EntryRef

SUFFIX = ".nc"
KEY_PREFIX_LENGTH = 16
_SAFE = re.compile(r"[^A-Za-z0-9_.-]+")
ENTRY_NAME = re.compile(r"^(?P<label>[A-Za-z0-9_.-]+)-(?P<prefix>[0-9a-f]{16})\.nc$")


def safe_component(text: str, max_length: int = 64) -> str:
    """One path component that cannot escape the root (no separators, ``..``, NUL or blanks)."""
    cleaned = _SAFE.sub("-", text).strip("-.")[:max_length].strip("-.")
    return cleaned or "model"


def relative_path(ref: EntryRef) -> str:
    """Path of an entry relative to the store root, always two components deep."""
    name = f"{safe_component(ref.label)}-{ref.key[:KEY_PREFIX_LENGTH]}{SUFFIX}"
    return f"{safe_component(ref.slug)}/{name}"


def is_entry_name(name: str) -> bool:
    """Whether a file name has the shape of a cloudcache entry."""
    return ENTRY_NAME.match(name) is not None
