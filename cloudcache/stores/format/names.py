"""Which names and strings an entry file can hold: refused before writing, never stored wrong.

PyMC accepts any string as a dimension name or coordinate value, but NetCDF (HDF5 underneath)
cannot store every one faithfully: HDF5 names and variable-length strings end at a NUL byte,
so a dimension called ``"a\\x00b"`` would be stored as ``"a"`` (and every later read would
find the checksum wrong), a coordinate value with a NUL cannot be written at all, and an empty
dimension or variable name fails deep inside h5netcdf. :func:`refuse_unstorable_names` finds
such a name before anything is written and says which one, so the result is returned uncached
with a warning that names it. Everything else (newlines, quotes, slashes in values, ``..``,
any unicode, very long names) is stored and read back exactly.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

import numpy as np
import xarray as xr

from cloudcache.errors import StoreError


def refuse_unstorable_names(tree: xr.DataTree) -> None:
    """Raise :class:`StoreError` naming the first name or string ``tree`` cannot be stored
    with (a NUL byte anywhere, an empty variable or dimension name)."""
    for where, text, is_name in _names_and_strings(tree):
        if isinstance(text, bytes):
            text = text.decode("utf-8", "replace")
        if not isinstance(text, str):
            continue
        if "\0" in text:
            raise StoreError(f"the {where} {text!r} holds a NUL byte, which NetCDF cannot store")
        if is_name and not text:
            raise StoreError(f"the {where} is empty, which NetCDF cannot store")


def _names_and_strings(tree: xr.DataTree) -> Iterator[tuple[str, Any, bool]]:
    """``(what it is, the text, whether it is a variable or dimension name)`` for every group,
    variable, dimension and attribute name and every string value of a variable or attribute."""
    for node in tree.subtree:
        group = node.path
        yield f"group name {group!r}", node.name or "/", False
        dataset = node.to_dataset(inherit=False)
        yield from _attribute_texts(node.attrs, f"group {group}")
        for dim in dataset.dims:
            yield f"dimension name in group {group}", dim, True
        for name, variable in dataset.variables.items():
            yield f"variable name in group {group}", name, True
            yield from _attribute_texts(variable.attrs, f"{group}/{name}")
            if variable.dtype.kind in "OUS":
                for value in np.asarray(variable.values).ravel():
                    yield f"string value of {group}/{name}", value, False


def _attribute_texts(attrs: Mapping[Any, Any], owner: str) -> Iterator[tuple[str, Any, bool]]:
    for name, value in attrs.items():
        yield f"attribute name of {owner}", name, False
        if isinstance(value, str | bytes):
            yield f"value of attribute {name!r} of {owner}", value, False
