"""Read-only trees and cheap shallow copies of them (what a memory hit hands out)."""

from __future__ import annotations

import numpy as np
import xarray as xr

from cloudcache.compat.xarray import shallow_copy


def freeze(tree: xr.DataTree) -> xr.DataTree:
    """Mark every data array of ``tree`` read-only, in place; returns ``tree``."""
    for node in tree.subtree:
        for variable in node.to_dataset(inherit=False).variables.values():
            if isinstance(variable, xr.IndexVariable):
                continue  # index values live in an immutable pandas Index already
            data = variable.data
            if isinstance(data, np.ndarray):
                data.flags.writeable = False
    return tree


def shallow_tree(tree: xr.DataTree) -> xr.DataTree:
    """A new tree (nodes, variables, attrs dicts) over the same arrays as ``tree``.

    Adding, dropping or replacing variables, groups or attributes of the copy leaves ``tree``
    alone; the arrays are shared (freeze them first to make writes into them fail). The nodes
    are filled directly where xarray's layout is known (:mod:`cloudcache.compat.xarray`; the
    public copy re-checks alignment, ~1 ms per group), else copied publicly.
    """
    fast = shallow_copy(tree)
    return fast if fast is not None else tree.copy(deep=False)
