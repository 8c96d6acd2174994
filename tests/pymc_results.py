"""What the running PyMC returns, read one way: ``InferenceData`` (PyMC 5) or a DataTree (PyMC 6).

Tests that only read a result's groups use these, so they prove the same thing on both.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import xarray as xr

from cloudcache.compat.pymc import RETURNS_INFERENCEDATA, as_tree, is_inferencedata
from cloudcache.stores.format.netcdf import tree_checksum

__all__ = [
    "RETURNS_INFERENCEDATA",
    "copy_result",
    "describe",
    "group",
    "group_names",
    "result_checksum",
]


def group_names(result: Any) -> list[str]:
    """The result's groups, in its own order."""
    if is_inferencedata(result):
        return list(result.groups())
    return list(result.children)


def group(result: Any, name: str) -> xr.Dataset:
    """One group of the result as a Dataset."""
    if is_inferencedata(result):
        return result[name]
    return result[name].to_dataset(inherit=False)


def copy_result(result: Any, deep: bool = False) -> Any:
    """A copy of the result: a new object of the same type (deep: with new arrays)."""
    if is_inferencedata(result):
        return result.copy()  # ArviZ 0.x copies deeply
    return result.copy(deep=deep)


def result_checksum(result: Any, name: str | None = None) -> str:
    """Checksum of the result's content (or of its group ``name``)."""
    tree = as_tree(result)
    if name is not None:
        tree = xr.DataTree(dataset=group(result, name))
    return tree_checksum(tree)


#: Attributes PyMC stamps afresh on every run (the rest of a group's attributes must agree).
RUN_STAMPS = frozenset({"created_at", "sampling_time"})


def describe(result: Any, *, stamps: bool = True) -> dict[str, Any]:
    """Type, groups, and per group its variables (dims, shape, dtype), coords and attributes.

    Attribute values are compared as values (a NetCDF round trip turns ``1`` into ``int64(1)``).

    ``stamps=False`` leaves out the values (not the names) of :data:`RUN_STAMPS`. JSON-ready, so
    a result in another process can be described and compared.
    """
    described: dict[str, Any] = {
        "type": f"{type(result).__module__}.{type(result).__qualname__}",
        "attrs": _attrs(result.attrs, stamps),
        "groups": {},
    }
    for name in group_names(result):
        dataset = group(result, name)
        described["groups"][name] = {
            "variables": {
                str(key): [list(map(str, var.dims)), list(var.shape), var.dtype.str]
                for key, var in dataset.data_vars.items()
            },
            "coords": {str(key): coord.values.tolist() for key, coord in dataset.coords.items()},
            "attrs": _attrs(dataset.attrs, stamps),
        }
    return described


def _attrs(attrs: dict[str, Any], stamps: bool) -> dict[str, Any]:
    return {
        str(key): (np.asarray(value).tolist() if stamps or key not in RUN_STAMPS else "<stamp>")
        for key, value in attrs.items()
    }
