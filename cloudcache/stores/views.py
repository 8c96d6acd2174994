"""Read-only trees and cheap shallow copies of them (what a memory hit hands out).

``DataTree.copy(deep=False)`` rebuilds every node through the public constructor, which checks
alignment against the parent again: about 1 ms per group, most of a memory hit. The checks
cannot fail for a copy of a tree that passed them, so :func:`shallow_tree` fills the nodes
directly (new node objects, new Variable objects, the same arrays) when xarray's DataTree has
the layout this was written against, and falls back to the public copy when it does not.
"""

from __future__ import annotations

import copy

import numpy as np
import xarray as xr

#: The DataTree node layout :func:`shallow_tree` knows (xarray 2024.10 and later).
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

FAST_COPY = frozenset(getattr(xr.DataTree, "__slots__", ())) == KNOWN_LAYOUT


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
    alone; the arrays are shared (freeze them first to make writes into them fail).
    """
    if not FAST_COPY or tree.parent is not None:
        return tree.copy(deep=False)
    return copy_node(tree, None)


def copy_node(node: xr.DataTree, parent: xr.DataTree | None) -> xr.DataTree:
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
    new._children = {name: copy_node(child, new) for name, child in node._children.items()}
    return new
