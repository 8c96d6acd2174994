"""xarray's private DataTree layout, used to copy a tree's nodes without re-checking alignment;
the lock around its netCDF4 calls, its wrapper for arrays read into memory, and the parts of
Dask it imports on its own.

``DataTree.copy(deep=False)`` rebuilds every node through the public constructor, which checks
alignment against the parent again: about 1 ms per group, most of a memory hit. The checks
cannot fail for a copy of a tree that passed them, so :func:`shallow_copy` fills new nodes
directly (new node objects, new Variable objects, the same arrays) when ``DataTree.__slots__``
is exactly the layout this was written against (:data:`KNOWN_LAYOUT`), and returns ``None``
otherwise, so the caller uses the public copy (``tests/test_compat.py`` says when it changes).
"""

from __future__ import annotations

import contextlib
import copy
import importlib.util
import threading
from typing import Any

import numpy as np
import xarray as xr

#: The DataTree node layout :func:`shallow_copy` knows (xarray 2024.10 and later).
KNOWN_LAYOUT = frozenset(
    {
        "_attrs",
        "_cache",
        "_children",
        "_close",
        "_data_variables",
        "_encoding",
        "_name",
        "_node_coord_variables",
        "_node_dims",
        "_node_indexes",
        "_parent",
    }
)

#: Whether the installed xarray's DataTree has :data:`KNOWN_LAYOUT`.
FAST_COPY = frozenset(getattr(xr.DataTree, "__slots__", ())) == KNOWN_LAYOUT


def shallow_copy(tree: xr.DataTree) -> xr.DataTree | None:
    """A new root tree over the same arrays as ``tree`` (None: layout unknown, or not a root)."""
    if not FAST_COPY or tree.parent is not None:
        return None
    return _copy_node(tree, None)


def _copy_node(node: xr.DataTree, parent: xr.DataTree | None) -> xr.DataTree:
    # Private fields of xarray's DataTree, guarded by KNOWN_LAYOUT above.
    new = object.__new__(xr.DataTree)
    new._name = node._name
    new._parent = parent
    new._close = None
    new._data_variables = {k: v.copy(deep=False) for k, v in node._data_variables.items()}
    new._node_coord_variables = {
        k: v.copy(deep=False) for k, v in node._node_coord_variables.items()
    }
    new._node_dims = dict(node._node_dims)
    new._node_indexes = dict(node._node_indexes)
    new._attrs = copy.copy(node._attrs)
    new._encoding = copy.copy(node._encoding)
    new._children = {name: _copy_node(child, new) for name, child in node._children.items()}
    return new


_OWN_NETCDF4_LOCK = threading.Lock()


def netcdf4_lock() -> contextlib.AbstractContextManager[object]:
    """The lock xarray holds around each call into the netCDF4 C library, which is not
    thread-safe; code calling netCDF4 directly holds it too (a lock of our own if xarray's
    is not where it was; ``tests/test_compat.py`` says when it moves)."""
    try:
        from xarray.backends.netCDF4_ import NETCDF4_PYTHON_LOCK
    except ImportError:
        return _OWN_NETCDF4_LOCK
    return NETCDF4_PYTHON_LOCK


def read_array(values: np.ndarray) -> Any:
    """``values`` wrapped as xarray's backends wrap what they read (an explicitly indexed array),
    for ``xr.Variable`` and ``xr.decode_cf``; ``values`` itself where the wrapper has moved.

    Given a bare NumPy array, every ``xr.Variable`` built over it (each CF decoding step builds
    one) asks whether it is a Dask array, and xarray imports ``dask.array`` to ask: 0.25-0.35 s
    once per process, most of a fresh process's read of a small entry. A wrapped array is
    never asked; ``Dataset.load()`` unwraps it.
    """
    try:
        from xarray.core.indexing import NumpyIndexingAdapter
    except ImportError:
        return values
    return NumpyIndexingAdapter(values)


def index_or_array(name: str, dims: tuple[str, ...], values: np.ndarray) -> Any:
    """What a variable read from a file holds: for a dimension coordinate of a plain dtype,
    the ``pandas.Index`` xarray would build from it, else :func:`read_array`.

    xarray builds a dimension's index from a bare array through a Dask check that imports
    ``dask`` when it is installed (~0.1 s once per process, in a small hit of a fresh
    process); an index given as ``pandas.Index`` is used as it is. Only dtypes an index keeps
    exactly (integers, floats of 32 bits and more, objects) are given so.
    """
    import pandas as pd

    plain = values.dtype.kind in "iu" or (values.dtype.kind == "f" and values.dtype.itemsize >= 4)
    if dims != (name,) or values.ndim != 1 or not (plain or values.dtype.kind == "O"):
        return read_array(values)
    return pd.Index(values, dtype=values.dtype, copy=False)


def dask_modules_imported_by_xarray() -> tuple[str, ...]:
    """The Dask modules xarray imports, when they are installed, to build a result from NumPy
    arrays (``dask.array``: is each array a Dask array?) and to write it (``dask.distributed``:
    which scheduler is running?): 0.4 s of a fresh process's miss, worth importing while a
    sampler runs. Empty without Dask."""
    try:
        if importlib.util.find_spec("dask") is None:
            return ()
        wanted = ["dask.array"]
        if importlib.util.find_spec("distributed") is not None:
            wanted.append("dask.distributed")
    except (ImportError, ValueError):  # a broken installation: xarray's own import says so
        return ()
    return tuple(wanted)


#: The units a date or duration variable may be given back in (pandas' own).
TIME_UNITS = ("s", "ms", "us", "ns")


def time_units(tree: xr.DataTree) -> dict[str, str]:
    """``{"/group/name": unit}`` of each date or duration variable of ``tree`` not held in
    nanoseconds.

    xarray's NetCDF decoding gives dates back in nanoseconds (where they fit), whatever unit
    they were written in: with pandas 3 a model's date coordinates are microseconds, and a
    result read from a file would differ in dtype from the one sampled. What this returns,
    kept with the file, lets :func:`with_time_units` give the reader the sampled dtypes.
    """
    units = {}
    for node in tree.subtree:
        for name, variable in node.to_dataset(inherit=False).variables.items():
            if variable.dtype.kind in "mM":
                unit, _ = np.datetime_data(variable.dtype)
                if unit != "ns" and unit in TIME_UNITS:
                    units[f"{node.path.rstrip('/')}/{name}"] = unit
    return units


def with_time_units(tree: xr.DataTree, units: dict[str, str]) -> xr.DataTree:
    """``tree`` (as read from a file) with each variable :func:`time_units` named given back
    in its unit (exact: the values were written in that unit). Raises ``ValueError`` when
    ``units`` names something ``tree`` does not hold as a date or duration."""
    if not units:
        return tree
    if not isinstance(units, dict):
        raise ValueError(f"time units must be a mapping, not {type(units).__name__}")
    import pandas as pd

    groups = {node.path: node.to_dataset(inherit=False) for node in tree.subtree}
    for where, unit in units.items():
        path, _, name = str(where).rpartition("/")
        dataset = groups.get(path or "/")
        variable = None if dataset is None else dataset.variables.get(name)
        if variable is None or variable.dtype.kind not in "mM" or unit not in TIME_UNITS:
            raise ValueError(f"no date or duration {where!r} to give in unit {unit!r}")
        kind = "datetime64" if variable.dtype.kind == "M" else "timedelta64"
        values = variable.values.astype(f"{kind}[{unit}]")
        if variable.dims == (name,):  # a dimension coordinate: its index, built as a reader does
            data: Any = pd.Index(values, name=name, copy=False)
        else:
            data = read_array(values)
        replaced = xr.Variable(variable.dims, data, variable.attrs, variable.encoding)
        if name in dataset.coords:
            dataset.coords[name] = replaced
        else:
            dataset[name] = replaced
        groups[path or "/"] = dataset.load()
    return xr.DataTree.from_dict(groups)
