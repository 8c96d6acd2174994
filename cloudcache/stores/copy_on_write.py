"""One copy of a miss's arrays for the caller and the memory store: copy-on-write pages.

The memory store must keep a result the caller can no longer change, while the caller keeps a
writable result of its own. A deep copy doubles the memory a miss holds. Instead, the large
arrays of the tree move into one anonymous shared-memory file (Linux ``memfd_create``), mapped
twice: read-only and shared for the store, privately (copy-on-write) for the caller. Until the
caller writes into an array, both read the same physical pages; a page the caller writes is
copied for the caller alone, so the store never sees the change. Small arrays, text and object
arrays are copied as before (their pages would cost more than they save), and where
``memfd_create`` is missing the whole tree is deep-copied.
"""

from __future__ import annotations

import mmap
import os
from collections.abc import Iterator

import numpy as np
import xarray as xr

from cloudcache.stores.views import freeze, shallow_tree

#: Arrays smaller than this are copied: a mapping per tree, pages of 4 KiB, a copy is cheap.
SHARE_AT_LEAST_BYTES = 64 * 1024


def kept_copy(tree: xr.DataTree) -> xr.DataTree:
    """A read-only twin of ``tree`` for a store; ``tree``'s large arrays become copy-on-write.

    ``tree`` keeps its variables, dims, attributes and values, and stays writable; its large
    numeric arrays are swapped for private mappings of the shared pages the returned tree reads.
    """
    if not hasattr(os, "memfd_create"):
        return freeze(tree.copy(deep=True))
    kept = shallow_tree(tree)
    pairs = [
        (mine, theirs)
        for mine, theirs in zip(_variables(tree), _variables(kept), strict=True)
        if _shareable(mine.data) and not isinstance(mine, xr.IndexVariable)  # data: immutable
    ]
    if pairs:
        shared, private = _map_twice([mine.data for mine, _ in pairs])
        for (mine, theirs), store_view, caller_view in zip(pairs, shared, private, strict=True):
            mine.data = caller_view
            theirs.data = store_view
    shared_ids = {id(theirs) for _, theirs in pairs}
    for variable in _variables(kept):
        if id(variable) not in shared_ids and not isinstance(variable, xr.IndexVariable):
            variable.data = variable.copy(deep=True).data
    return freeze(kept)


def _variables(tree: xr.DataTree) -> Iterator[xr.Variable]:
    """Every variable object of every node, in a fixed order (the nodes' own objects)."""
    for node in tree.subtree:
        dataset = node.to_dataset(inherit=False)
        for name in sorted(map(str, dataset.variables)):
            yield dataset.variables[name]


def _shareable(data: object) -> bool:
    return (
        type(data) is np.ndarray
        and data.nbytes >= SHARE_AT_LEAST_BYTES
        and data.dtype.kind in "biufcmM"
        and not data.dtype.hasobject
    )


def _map_twice(arrays: list[np.ndarray]) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """The arrays' bytes in one memory file: read-only shared views, and copy-on-write ones."""
    offsets, total = [], 0
    for array in arrays:
        offsets.append(total)
        total += -(-array.nbytes // mmap.PAGESIZE) * mmap.PAGESIZE
    descriptor = os.memfd_create("cloudcache-entry", os.MFD_CLOEXEC)
    try:
        os.ftruncate(descriptor, total)
        for array, offset in zip(arrays, offsets, strict=True):
            view = memoryview(np.ascontiguousarray(array)).cast("B")
            written = 0
            while written < len(view):
                written += os.pwrite(descriptor, view[written:], offset + written)
        shared = mmap.mmap(descriptor, total, flags=mmap.MAP_SHARED, prot=mmap.PROT_READ)
        private = mmap.mmap(
            descriptor, total, flags=mmap.MAP_PRIVATE, prot=mmap.PROT_READ | mmap.PROT_WRITE
        )
    finally:
        os.close(descriptor)  # the mappings keep the memory file alive

    def views(mapping: mmap.mmap) -> list[np.ndarray]:
        return [
            np.frombuffer(mapping, array.dtype, array.size, offset).reshape(array.shape)
            for array, offset in zip(arrays, offsets, strict=True)
        ]

    return views(shared), views(private)
