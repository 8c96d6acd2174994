"""Check an entry's HDF5 header before any array is loaded.

A read must never wait on, or allocate for, anything the entry's own bytes do not bound. So,
from the header alone: the root key attribute *and* the key in the metadata record must both
be the requested key; no object may live outside the file (external links, external raw
storage, virtual datasets); and the sizes the datasets and attributes declare must be in
proportion to the file (a small file declaring a gigabyte of compressed zeros is damaged).
Rejecting an entry therefore costs no more memory than the file itself.
"""

from __future__ import annotations

import json
from typing import Any

import h5py
import numpy as np

from cloudcache.errors import CorruptEntry

KEY_ATTR = "cloudcache_key"
METADATA_ATTR = "cloudcache_metadata"

#: Declared (uncompressed) bytes may exceed the file size by this factor. cloudcache writes
#: entries uncompressed (declared ~= file size); the margin admits compressed copies.
DECLARED_SIZE_RATIO = 64
#: Declared sizes up to this many bytes are always accepted, whatever the file size.
DECLARED_SIZE_FLOOR = 32 * 1024**2


def declared_size_limit(file_size: int, max_bytes: int | None = None) -> int:
    """The most bytes an entry of ``file_size`` bytes may declare (capped by ``max_bytes``)."""
    limit = max(DECLARED_SIZE_FLOOR, DECLARED_SIZE_RATIO * file_size)
    return limit if max_bytes is None else min(limit, max_bytes)


def check_header(
    handle: h5py.File, expected_key: str, file_size: int, max_bytes: int | None = None
) -> dict[str, Any]:
    """Verify keys, self-containment and declared sizes; return the metadata record.

    Raises :class:`CorruptEntry` naming the first problem found.
    """
    limit = declared_size_limit(file_size, max_bytes)
    stored_key = _small_text_attr(handle, KEY_ATTR, limit)
    record = parse_record(_small_text_attr(handle, METADATA_ATTR, limit))
    if stored_key != expected_key:
        raise CorruptEntry(f"stored key {stored_key[:16]!r} does not match {expected_key[:16]!r}")
    recorded_key = record.get("key")
    if recorded_key != expected_key:
        raise CorruptEntry(
            f"the metadata record names key {str(recorded_key)[:16]!r}, "
            f"not {expected_key[:16]!r} (the key attribute was rewritten)"
        )
    declared = _declared_bytes(handle)
    if declared > limit:
        raise CorruptEntry(
            f"declares {declared:,} bytes of data in a {file_size:,}-byte file "
            f"(more than the {limit:,} a read may load)"
        )
    return record


def parse_record(raw: str | None) -> dict[str, Any]:
    """The JSON metadata record from its attribute text (raises :class:`CorruptEntry`)."""
    if not isinstance(raw, str) or not raw:
        raise CorruptEntry("no cloudcache metadata in the file's root attributes")
    try:
        record = json.loads(raw)
    except (ValueError, RecursionError) as error:
        raise CorruptEntry("metadata record is not valid JSON") from error
    if not isinstance(record, dict):
        raise CorruptEntry("metadata record is not a JSON object")
    return record


def _small_text_attr(handle: h5py.File, name: str, limit: int) -> str:
    if name not in handle.attrs:
        raise CorruptEntry(f"no {name} in the file's root attributes")
    _check_attribute_size(handle, name, limit)
    value = handle.attrs[name]
    if isinstance(value, np.ndarray) and value.size == 1:
        value = value.reshape(()).item()
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    if not isinstance(value, str):
        raise CorruptEntry(f"the root attribute {name} is not text")
    return value


def _check_attribute_size(obj: Any, name: str, limit: int) -> int:
    attribute = h5py.h5a.open(obj.id, name.encode())
    size = int(np.prod(attribute.shape or (1,), dtype=np.int64)) * attribute.dtype.itemsize
    if size > limit:
        raise CorruptEntry(f"attribute {name!r} of {obj.name} declares {size:,} bytes")
    return size


def _declared_bytes(handle: h5py.File) -> int:
    """Bytes the datasets of the file declare; refuses references outside the file.

    One ``H5Lvisit`` finds every link (external and user-defined links are refused; soft
    links point inside the file), one ``H5Ovisit`` every object reachable by hard links, each
    once. Only the low-level API is used: this runs on every disk hit.
    """
    odd_links: list[tuple[str, str]] = []

    def check_link(name: bytes, info: Any) -> None:
        if info.type == h5py.h5l.TYPE_EXTERNAL:
            odd_links.append((name.decode("utf-8", "replace"), "an external link"))
        elif info.type not in (h5py.h5l.TYPE_HARD, h5py.h5l.TYPE_SOFT):
            odd_links.append((name.decode("utf-8", "replace"), "a user-defined link"))

    handle.id.links.visit(check_link, info=True)
    if odd_links:
        name, kind = odd_links[0]
        raise CorruptEntry(f"/{name} is {kind} (data from outside the entry)")

    datasets: list[bytes] = []

    def collect(name: bytes, info: Any) -> None:
        if info.type == h5py.h5o.TYPE_DATASET:
            datasets.append(name)

    h5py.h5o.visit(handle.id, collect, info=True)
    return sum(_dataset_bytes(handle, name) for name in datasets)


def _dataset_bytes(handle: h5py.File, name: bytes) -> int:
    dataset = h5py.h5d.open(handle.id, name)
    where = "/" + name.decode("utf-8", "replace")
    plist = dataset.get_create_plist()
    if plist.get_external_count():
        raise CorruptEntry(f"{where} keeps its data in external files (HDF5 external storage)")
    if plist.get_layout() == h5py.h5d.VIRTUAL:
        raise CorruptEntry(f"{where} is a virtual dataset (data from other files)")
    space = dataset.get_space()
    is_null = space.get_simple_extent_type() == h5py.h5s.NULL
    points = 0 if is_null else space.get_simple_extent_npoints()
    return int(points) * int(dataset.get_type().get_size())
