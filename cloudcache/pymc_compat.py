"""Which PyMC is installed, and the one seam where its result type differs.

PyMC 6 returns an ``xarray.DataTree`` from ``pm.sample`` and the predictive functions; PyMC 5
returns an ArviZ 0.x ``InferenceData``. Inside cloudcache every result is a DataTree (stores,
the audit, the backends' output, the cache path); :func:`as_tree` turns what PyMC's own
functions return into one, and :func:`as_pymc_result` turns a tree into what the installed
PyMC's functions return, just before the caller gets it. Both share the arrays (no copy).
"""

from __future__ import annotations

from typing import Any

import pymc
import xarray as xr

#: The major version of the installed PyMC (5 or 6).
PYMC_MAJOR: int = int(pymc.__version__.split(".", 1)[0])

#: Whether ``pm.sample`` returns ArviZ 0.x ``InferenceData`` (PyMC 5) rather than a DataTree.
RETURNS_INFERENCEDATA: bool = PYMC_MAJOR < 6


def is_result(value: Any) -> bool:
    """Whether ``value`` is a sampling result of either shape (DataTree or InferenceData)."""
    return isinstance(value, xr.DataTree) or _is_inferencedata(value)


def as_tree(result: Any) -> Any:
    """``result`` as a DataTree (an ``InferenceData`` converted, arrays shared); others as given."""
    if _is_inferencedata(result):
        tree = xr.DataTree.from_dict({f"/{name}": result[name] for name in result.groups()})
        tree.attrs = dict(result.attrs)
        return tree
    return result


def as_pymc_result(tree: Any) -> Any:
    """``tree`` as the installed PyMC returns it: ``InferenceData`` on PyMC 5 (arrays shared)."""
    if RETURNS_INFERENCEDATA and isinstance(tree, xr.DataTree):
        from arviz import InferenceData

        groups = {name: node.to_dataset(inherit=False) for name, node in tree.children.items()}
        return InferenceData(attrs=dict(tree.attrs), **groups)
    return tree


def _is_inferencedata(value: Any) -> bool:
    if not RETURNS_INFERENCEDATA:
        return False
    from arviz import InferenceData

    return isinstance(value, InferenceData)
