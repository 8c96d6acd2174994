"""Check an entry's HDF5 header before any array is loaded.

A read must never wait on, or allocate for, anything the entry's own bytes do not bound. So,
from the header alone: the root key attribute *and* the key in the metadata record must both
be the requested key; no object may live outside the file (external links, external raw
storage, virtual datasets); and the sizes the datasets and attributes declare must be in
proportion to the file (a small file declaring a gigabyte of compressed zeros is damaged).
Rejecting an entry therefore costs no more memory than the file itself.

The same walk says which library may load the arrays: the netCDF4 C library (fast) reads
every type NetCDF-4 defines, but crashes the process on some HDF5 types it does not (a
half-precision float), silently drops others (complex attributes) and reads a name longer than
its ``NC_MAX_NAME`` bytes cut short (mid-character). An entry holding any type outside
NetCDF-4's own, or a longer name, is therefore read with h5netcdf, which wrote such entries.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Literal

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


#: The xarray engine that loads an entry whose types are all NetCDF-4's own, and the one for
#: any other entry.
FAST_ENGINE = "netcdf4"
GENERAL_ENGINE = "h5netcdf"

#: HDF5 bit layouts (sign, exponent position and size, mantissa position and size) of the two
#: floats NetCDF-4 knows: IEEE single and double precision.
_NETCDF_FLOATS = {4: (31, 23, 8, 0, 23), 8: (63, 52, 11, 0, 52)}

#: The longest name (in UTF-8 bytes) of a group, variable, dimension or attribute the netCDF4 C
#: library reads whole (its ``NC_MAX_NAME``).
NETCDF_MAX_NAME = 256


@dataclass(frozen=True)
class CheckedHeader:
    """What the header check found: the metadata record and the engine to load the arrays."""

    record: dict[str, Any]
    engine: Literal["netcdf4", "h5netcdf"]


def check_header(
    handle: h5py.File, expected_key: str, file_size: int, max_bytes: int | None = None
) -> CheckedHeader:
    """Verify keys, self-containment and declared sizes; return the record and the engine.

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
    declared, netcdf_types = _declared_bytes(handle)
    if declared > limit:
        raise CorruptEntry(
            f"declares {declared:,} bytes of data in a {file_size:,}-byte file "
            f"(more than the {limit:,} a read may load)"
        )
    return CheckedHeader(record, FAST_ENGINE if netcdf_types else GENERAL_ENGINE)


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


def _declared_bytes(handle: h5py.File) -> tuple[int, bool]:
    """Bytes the datasets of the file declare, and whether every dataset and group attribute
    has a NetCDF-4 type and a name netCDF4 reads whole; refuses references outside the file.

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
    groups: list[bytes] = []

    def collect(name: bytes, info: Any) -> None:
        if info.type == h5py.h5o.TYPE_DATASET:
            datasets.append(name)
        elif info.type == h5py.h5o.TYPE_GROUP:
            groups.append(name)

    h5py.h5o.visit(handle.id, collect, info=True)
    declared = 0
    netcdf_types = all(_netcdf_name(name) for name in (*datasets, *groups))
    for name in datasets:
        size, native = _dataset_bytes(handle, name)
        declared += size
        netcdf_types = netcdf_types and native
    if netcdf_types:
        netcdf_types = all(_group_attributes_native(handle, name) for name in groups)
    return declared, netcdf_types


def is_netcdf_type(type_id: Any) -> bool:
    """Whether an HDF5 datatype is one of NetCDF-4's: integers, IEEE floats, text, enums."""
    kind = type_id.get_class()
    if kind == h5py.h5t.INTEGER:
        return type_id.get_size() in (1, 2, 4, 8)
    if kind == h5py.h5t.FLOAT:
        return _NETCDF_FLOATS.get(type_id.get_size()) == tuple(type_id.get_fields())
    if kind == h5py.h5t.STRING:
        return True
    if kind == h5py.h5t.ENUM:
        return is_netcdf_type(type_id.get_super())
    return False


def _netcdf_name(path: bytes) -> bool:
    """Whether every part of an HDF5 object ``path`` fits netCDF4's longest name."""
    return all(len(part) <= NETCDF_MAX_NAME for part in path.split(b"/"))


def _group_attributes_native(handle: h5py.File, name: bytes) -> bool:
    """Whether every attribute of the group ``name`` (``.`` is the root) is a NetCDF-4 one."""
    group = h5py.h5g.open(handle.id, name)
    native = True

    def check(attribute_name: bytes, *_: Any) -> int | None:
        nonlocal native
        attribute = h5py.h5a.open(group, attribute_name)
        space = attribute.get_space()
        if (
            len(attribute_name) > NETCDF_MAX_NAME
            or space.get_simple_extent_ndims() > 1
            or not is_netcdf_type(attribute.get_type())
        ):
            native = False
            return 1  # stop iterating
        return None

    h5py.h5a.iterate(group, check)
    return native


def _dataset_bytes(handle: h5py.File, name: bytes) -> tuple[int, bool]:
    dataset = h5py.h5d.open(handle.id, name)
    if dataset.get_offset() is None:  # not one block inside this file: chunked, or from outside
        where = "/" + name.decode("utf-8", "replace")
        plist = dataset.get_create_plist()  # (costs ~5x the rest: only where it can matter)
        if plist.get_external_count():
            raise CorruptEntry(f"{where} keeps its data in external files (HDF5 external storage)")
        if plist.get_layout() == h5py.h5d.VIRTUAL:
            raise CorruptEntry(f"{where} is a virtual dataset (data from other files)")
    space = dataset.get_space()
    is_null = space.get_simple_extent_type() == h5py.h5s.NULL
    points = 0 if is_null else space.get_simple_extent_npoints()
    datatype = dataset.get_type()
    return int(points) * int(datatype.get_size()), is_netcdf_type(datatype)
