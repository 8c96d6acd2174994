"""The entry format: a plain NetCDF4 DataTree whose root attributes carry key and metadata.

An entry opens with ``xarray.open_datatree`` (or ArviZ) without cloudcache installed. The root
attributes hold ``cloudcache_key`` (the full key) and ``cloudcache_metadata`` (a JSON record
including a checksum of every array's content), so a read can prove the file is whole and
belongs to the key it was asked for. No pickle anywhere: reading an entry never runs code.
"""

from __future__ import annotations

import io
import json
from typing import Any

import numpy as np
import xarray as xr

from cloudcache.fingerprint.digest import Digest
from cloudcache.stores.base import CorruptEntry

ENGINE = "h5netcdf"
KEY_ATTR = "cloudcache_key"
METADATA_ATTR = "cloudcache_metadata"


def tree_checksum(tree: xr.DataTree) -> str:
    """XXH3-128 over every group's variables and coordinates: names, dims, dtypes, values."""
    digest = Digest()
    for node in sorted(tree.subtree, key=lambda n: n.path):
        digest.token("group", node.path)
        dataset = node.to_dataset(inherit=False)
        for name in sorted(map(str, dataset.variables)):
            variable = dataset.variables[name]
            digest.token("var", name)
            digest.token("dims", ",".join(map(str, variable.dims)))
            values = np.asarray(variable.values)
            if values.dtype.kind in "OUS":
                digest.token("text", "\x1f".join(map(str, values.ravel().tolist())))
            else:
                digest.array(values)
    return digest.hexdigest()


def encode_entry(tree: xr.DataTree, key: str, metadata: dict[str, Any]) -> bytes:
    """Serialise ``tree`` with key and metadata (plus checksum) into NetCDF4 bytes."""
    record = dict(metadata, key=key, checksum=tree_checksum(tree))
    stamped = tree.copy(deep=False)
    stamped.attrs = {
        **_sanitize_attrs(tree.attrs),
        KEY_ATTR: key,
        METADATA_ATTR: json.dumps(record, sort_keys=True, default=str),
    }
    payload = stamped.to_netcdf(engine=ENGINE)
    return bytes(payload)


def decode_entry(source: bytes | str, expected_key: str) -> tuple[xr.DataTree, dict[str, Any]]:
    """Open an entry from bytes or a local path, load it and verify key and checksum."""
    try:
        handle = io.BytesIO(source) if isinstance(source, bytes) else source
        with xr.open_datatree(handle, engine=ENGINE) as opened:
            tree = opened.load()
    except Exception as error:  # h5py/h5netcdf raise many types for damaged files
        raise CorruptEntry(f"unreadable NetCDF entry ({type(error).__name__}: {error})") from error
    metadata = read_metadata(tree)
    stored_key = tree.attrs.get(KEY_ATTR)
    if stored_key != expected_key:
        raise CorruptEntry(
            f"stored key {str(stored_key)[:16]!r} does not match {expected_key[:16]!r}"
        )
    if metadata.get("checksum") != tree_checksum(tree):
        raise CorruptEntry("content checksum mismatch (the file was modified or damaged)")
    tree.attrs = {k: v for k, v in tree.attrs.items() if k not in (KEY_ATTR, METADATA_ATTR)}
    return tree, metadata


def read_metadata(tree: xr.DataTree) -> dict[str, Any]:
    """The JSON metadata record of an opened entry (raises :class:`CorruptEntry`)."""
    raw = tree.attrs.get(METADATA_ATTR)
    if not isinstance(raw, str):
        raise CorruptEntry("no cloudcache metadata in the file's root attributes")
    try:
        record = json.loads(raw)
    except ValueError as error:
        raise CorruptEntry("metadata record is not valid JSON") from error
    if not isinstance(record, dict):
        raise CorruptEntry("metadata record is not a JSON object")
    return record


def _sanitize_attrs(attrs: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in attrs.items() if k not in (KEY_ATTR, METADATA_ATTR)}
