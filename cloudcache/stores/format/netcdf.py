"""The entry format: a plain NetCDF4 DataTree whose root attributes carry key and metadata.

An entry opens with ``xarray.open_datatree`` (or ArviZ) without cloudcache installed. The root
attributes hold ``cloudcache_key`` (the full key) and ``cloudcache_metadata`` (a JSON record
including a checksum of every array's content and one of every group's attributes plus the
record itself), so a read can prove the file is whole and belongs to the key it was asked for.
No pickle anywhere: reading an entry never runs code, and anything unexpected in a file (odd
attributes, hostile JSON, foreign files) is reported as :class:`CorruptEntry`, never a crash.

Entries are written and read with the netCDF4 C library (``ENGINE``), several times faster than
h5netcdf, which opens each variable with many HDF5 look-ups. h5netcdf remains the general
engine: it writes a tree netCDF4 refuses (complex numbers), and it reads any entry whose header
holds a type outside NetCDF-4's own (see :mod:`cloudcache.stores.format.inspection`), such as
entries of earlier versions that hold complex attributes. Either engine reads what the other
wrote.
"""

from __future__ import annotations

import io
import json
import math
import os
import tempfile
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal, TypeVar

import h5py
import numpy as np
import xarray as xr

from cloudcache.compat.xarray import index_or_array, netcdf4_lock, time_units, with_time_units
from cloudcache.errors import CorruptEntry, EntryUnreadable, StoreError
from cloudcache.stores.format.checksums import (
    ChecksumWhileReading,
    attrs_checksum,
    tree_checksum,
)
from cloudcache.stores.format.entryfile import checked_entry_file
from cloudcache.stores.format.inspection import (
    FAST_ENGINE,
    GENERAL_ENGINE,
    KEY_ATTR,
    METADATA_ATTR,
    check_header,
    parse_record,
)

_T = TypeVar("_T")

#: Held around every whole netCDF4 write and read of this module. The C library is not
#: thread-safe, and xarray's own lock guards each array written but not the creation of
#: variables: two threads writing entries at once crashed the process.
_NETCDF4_FILES = threading.Lock()

#: The metadata field naming the unit of each date or duration not held in nanoseconds.
TIME_UNITS_FIELD = "time_units"

#: The engine that writes entries (``GENERAL_ENGINE`` when it refuses a tree's types).
ENGINE = FAST_ENGINE


def storable(tree: xr.DataTree) -> xr.DataTree:
    """``tree`` as NetCDF will give it back: text-or-None object arrays become strings.

    NetCDF has no "Python object" type: nutpie's ``divergence_message`` (``None`` or NaN where
    a draw did not diverge, text where it did) would come back as floats or fixed-width text
    and fail its own checksum. Missing items are stored as ``""``; other object arrays are
    left to xarray. A pandas type NetCDF cannot hold (categories, periods, dates with a time
    zone) raises :class:`StoreError` naming the variable.
    """
    has_objects = False
    for node in tree.subtree:
        for name, variable in node.to_dataset(inherit=False).variables.items():
            if not isinstance(variable.dtype, np.dtype):
                raise StoreError(
                    f"{node.path.rstrip('/')}/{name} holds {variable.dtype}, a pandas type with "
                    "no NetCDF form (give the model's coordinates as plain values, such as "
                    "list(index), to cache this result)"
                )
            has_objects = has_objects or variable.dtype.hasobject
    if not has_objects:
        return tree
    groups = {}
    for node in tree.subtree:
        dataset = node.to_dataset(inherit=False)
        for name, variable in dataset.variables.items():
            items = variable.values.ravel().tolist() if variable.dtype.hasobject else None
            if items is not None and all(isinstance(i, str) or _missing(i) for i in items):
                text = np.array(["" if _missing(i) else i for i in items], dtype=str)
                dataset[name] = variable.copy(data=text.reshape(variable.shape))
        groups[node.path] = dataset
    return xr.DataTree.from_dict(groups)


def _values(variable: Any) -> np.ndarray:
    """A netCDF4 variable's whole array; variable-length text as fixed-width, as xarray does."""
    values = np.asarray(variable[...])
    return values.astype(str) if variable.dtype is str else values


def _as_decoded(values: np.ndarray, attrs: dict[str, Any]) -> np.ndarray:
    """``values`` as CF decoding will most likely give them, without a copy: booleans (stored
    as bytes marked ``dtype="bool"``) viewed as booleans. A guess for the checksum made while
    reading, which is used only when the decoded tree holds exactly these bytes."""
    if attrs.get("dtype") == "bool" and values.dtype == np.int8:
        return values.view(np.bool_)
    return values


def _missing(item: Any) -> bool:
    """``None``, or the NaN xarray puts in its place in an object array."""
    return item is None or (isinstance(item, float) and math.isnan(item))


def stamped_entry(tree: xr.DataTree, key: str, metadata: dict[str, Any]) -> xr.DataTree:
    """``tree`` as an entry: a shallow copy whose root attributes carry key and record."""
    tree = storable(tree)
    record = json.loads(
        json.dumps(dict(metadata, key=key, checksum=tree_checksum(tree)), default=str)
    )
    units = time_units(tree)
    if units:  # dates come back in nanoseconds: the reader gives them back in these
        record[TIME_UNITS_FIELD] = units
    record["attrs_checksum"] = attrs_checksum(tree, record)
    stamped = tree.copy(deep=False)
    stamped.attrs = {
        **_sanitize_attrs(tree.attrs),
        KEY_ATTR: key,
        METADATA_ATTR: json.dumps(record, sort_keys=True, default=str),
    }
    return stamped


def write_entry(tree: xr.DataTree, key: str, metadata: dict[str, Any], path: str) -> None:
    """Write ``tree`` as an entry to the local file ``path``, array by array (no bytes in
    memory first). ``path`` is replaced; the caller makes the write atomic."""
    stamped = stamped_entry(tree, key, metadata)
    _with_either_engine(lambda engine: stamped.to_netcdf(path, engine=engine))


def encode_entry(tree: xr.DataTree, key: str, metadata: dict[str, Any]) -> bytes:
    """Serialise ``tree`` with key and metadata (plus checksums) into NetCDF4 bytes.

    Written to a temporary file and read back: netCDF4's in-memory files are padded with
    zeros to 64 KiB steps, which would hide a truncated copy behind its own padding.
    """
    with tempfile.TemporaryDirectory(prefix="cloudcache-") as folder:
        path = os.path.join(folder, "entry.nc")
        write_entry(tree, key, metadata, path)
        with open(path, "rb") as handle:
            return handle.read()


def _with_either_engine(write: Callable[[str], _T]) -> _T:
    """``write(ENGINE)``; if netCDF4 refuses the tree's types, ``write(GENERAL_ENGINE)``.

    netCDF4 refuses what NetCDF-4 cannot hold (complex or boolean attributes, complex or
    half-precision arrays, arrays as attributes: ``TypeError``, ``ValueError``; names that
    start with a dot or hold control characters: ``RuntimeError``); h5netcdf writes many of
    these as plain HDF5, as every entry was written before.
    """
    try:
        with _NETCDF4_FILES:
            return write(ENGINE)
    except (TypeError, ValueError, RuntimeError):
        return write(GENERAL_ENGINE)


def decode_entry(
    source: bytes | str,
    expected_key: str,
    *,
    root: str | None = None,
    max_bytes: int | None = None,
) -> tuple[xr.DataTree, dict[str, Any]]:
    """Open an entry from bytes or a local path, check it, load it and verify its checksums.

    This is the one check of an entry, for hits and for ``cloudcache verify`` alike. Before
    any array is loaded: a local path must be a regular file (inside ``root`` when given);
    root key attribute and metadata record must both name ``expected_key``; nothing may be
    stored outside the file; declared sizes must fit the file (and ``max_bytes``). Then the
    content and attribute checksums (which cover the record and so the key) must match.
    Raises :class:`CorruptEntry`, :class:`~cloudcache.stores.base.EntryUnreadable` (no
    permission: not damaged) or ``FileNotFoundError``.
    """
    if isinstance(source, bytes):
        opened_source: Any = source
        size = len(source)
    else:
        opened_source, size = checked_entry_file(source, root)
    try:
        with h5py.File(_handle(opened_source), "r") as header:
            engine = check_header(header, expected_key, size, max_bytes).engine
        checksum = ChecksumWhileReading()
        try:
            tree = _load(opened_source, engine, checksum)
        finally:
            checksum.close()
    except CorruptEntry:
        raise
    except Exception as error:  # h5py/h5netcdf raise many types for damaged files
        raise CorruptEntry(f"unreadable NetCDF entry ({type(error).__name__}: {error})") from error
    metadata = read_metadata(tree)
    if tree.attrs.get(KEY_ATTR) != expected_key or metadata.get("key") != expected_key:
        raise CorruptEntry("the key changed while the entry was read")
    _verify_checksums(tree, metadata, checksum)
    tree.attrs = {k: v for k, v in tree.attrs.items() if k not in (KEY_ATTR, METADATA_ATTR)}
    try:
        tree = with_time_units(tree, metadata.get(TIME_UNITS_FIELD) or {})
    except ValueError as error:
        raise CorruptEntry(f"odd time units in the record ({error})") from error
    return tree, metadata


@dataclass(frozen=True)
class EntryCheck:
    """The verdict on one stored entry, for ``cloudcache verify`` and the like.

    ``status`` is ``"ok"``, ``"damaged"`` (safe to delete and resample), ``"unreadable"``
    (this process lacks permission: somebody else's entry, never delete it) or ``"missing"``.
    """

    status: Literal["ok", "damaged", "unreadable", "missing"]
    problem: str = ""

    @property
    def removable(self) -> bool:
        """Whether a ``--fix`` may delete the entry (only when it is damaged)."""
        return self.status == "damaged"


def check_entry(
    source: bytes | str,
    expected_key: str,
    *,
    root: str | None = None,
    max_bytes: int | None = None,
) -> EntryCheck:
    """:func:`decode_entry`'s verdict as a value (the same checks a hit makes)."""
    try:
        decode_entry(source, expected_key, root=root, max_bytes=max_bytes)
    except FileNotFoundError as error:
        return EntryCheck("missing", str(error))
    except CorruptEntry as error:
        return EntryCheck("damaged", str(error))
    except (EntryUnreadable, PermissionError) as error:
        return EntryCheck("unreadable", str(error))
    except OSError as error:
        return EntryCheck("unreadable", f"cannot read ({error})")
    return EntryCheck("ok")


def _handle(source: bytes | str) -> Any:
    return io.BytesIO(source) if isinstance(source, bytes) else source


def _load(source: bytes | str, engine: str, checksum: ChecksumWhileReading) -> xr.DataTree:
    """Every group and array of the (checked) entry, loaded with ``engine`` (netCDF4 hands
    each array to ``checksum`` as it is read)."""
    if engine == FAST_ENGINE:
        return load_with_netcdf4(source, checksum)
    with xr.open_datatree(_handle(source), engine=engine) as opened:
        return opened.load()


def load_with_netcdf4(
    source: bytes | str, checksum: ChecksumWhileReading | None = None
) -> xr.DataTree:
    """The tree ``xarray.load_datatree(source, engine="netcdf4")`` gives, ~20 % sooner.

    Each group's variables are read whole and undecoded, as xarray's netCDF4 backend reads
    them (no masking, scaling or text conversion by netCDF4), and decoded by xarray's own
    ``decode_cf``: only the per-variable lazy-array layers of ``open_datatree`` are skipped.
    Groups are read in path order and their variables in name order, each array handed to
    ``checksum`` as it arrives.
    """
    import netCDF4

    with _NETCDF4_FILES, netcdf4_lock():  # ours (whole files), then xarray's (each call)
        return _read_groups(netCDF4.Dataset, source, checksum)


def _read_groups(
    dataset: Any, source: bytes | str, checksum: ChecksumWhileReading | None
) -> xr.DataTree:
    if isinstance(source, bytes):
        opened = dataset("entry.nc", mode="r", memory=source)
    else:
        opened = dataset(source, mode="r")
    with opened as root:
        root.set_auto_maskandscale(False)
        root.set_auto_chartostring(False)
        order, pending = [], [("/", root)]  # the order the tree's groups are made in
        while pending:
            path, group = pending.pop()
            order.append((path, group))
            pending.extend((f"{path.rstrip('/')}/{name}", g) for name, g in group.groups.items())
        groups: dict[str, xr.Dataset] = {}
        for path, group in sorted(order, key=lambda item: item[0]):
            if checksum is not None:
                checksum.group(path)
            read = {}
            for name in sorted(group.variables):
                variable = group.variables[name]
                values = _values(variable)
                attrs = {attr: variable.getncattr(attr) for attr in variable.ncattrs()}
                if checksum is not None:
                    checksum.variable(name, variable.dimensions, _as_decoded(values, attrs))
                read[name] = xr.Variable(
                    variable.dimensions, index_or_array(name, variable.dimensions, values), attrs
                )
            variables = {name: read[name] for name in group.variables}  # the file's order
            attrs = {attr: group.getncattr(attr) for attr in group.ncattrs()}
            groups[path] = xr.decode_cf(xr.Dataset(variables, attrs=attrs)).load()
    return xr.DataTree.from_dict({path: groups[path] for path, _ in order})


def _verify_checksums(
    tree: xr.DataTree, metadata: dict[str, Any], checksum: ChecksumWhileReading
) -> None:
    try:
        content_ok = metadata.get("checksum") == checksum.result(tree)
        attrs_ok = "attrs_checksum" not in metadata or metadata["attrs_checksum"] == (
            attrs_checksum(tree, metadata)
        )
    except Exception as error:  # odd dtypes or attribute values in a planted file
        raise CorruptEntry(f"cannot check the content ({type(error).__name__}: {error})") from error
    if not content_ok:
        raise CorruptEntry("content checksum mismatch (the file was modified or damaged)")
    if not attrs_ok:
        raise CorruptEntry("attribute checksum mismatch (the file was modified or damaged)")


def read_metadata(tree: xr.DataTree) -> dict[str, Any]:
    """The JSON metadata record of an opened entry (raises :class:`CorruptEntry`)."""
    return parse_record(tree.attrs.get(METADATA_ATTR))


def _sanitize_attrs(attrs: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in attrs.items() if k not in (KEY_ATTR, METADATA_ATTR)}
