"""The two checksums of an entry, and the content checksum computed while the entry is read.

The content checksum is XXH3-128 over every group's variables in a fixed order (groups by
path, variables by name): name, dimensions and values as the tree holds them. The attribute
checksum covers every group's attributes and the metadata record. A hit verifies both; on a
large entry the content checksum (a pass over every byte, ~0.05 s per GB) would follow the read
(mostly memory traffic, done by netCDF4's C library without the GIL), so a read hands each
array to :class:`ChecksumWhileReading` as it arrives and a thread adds it to the digest
meanwhile. Speculation only: the digest is used when every array the tree holds turns out to
hold exactly what was read (the same bytes, or the same text), unchanged by CF decoding;
otherwise the checksum is computed over the tree afterwards, as :func:`tree_checksum` does.
"""

from __future__ import annotations

import json
import queue
import threading
from collections.abc import Hashable
from typing import Any

import numpy as np
import xarray as xr

from cloudcache.fingerprint.digest import Digest
from cloudcache.stores.format.inspection import KEY_ATTR, METADATA_ATTR
from cloudcache.util.background import in_background


def tree_checksum(tree: xr.DataTree) -> str:
    """XXH3-128 over every group's variables and coordinates: names, dims, dtypes, values."""
    digest = Digest()
    for node in sorted(tree.subtree, key=lambda n: n.path):
        digest.token("group", node.path)
        dataset = node.to_dataset(inherit=False)
        for name in sorted(map(str, dataset.variables)):
            variable = dataset.variables[name]
            _add_variable(digest, name, variable.dims, np.asarray(variable.values))
    return digest.hexdigest()


def _add_variable(
    digest: Digest, name: str, dims: tuple[Hashable, ...], values: np.ndarray
) -> None:
    """One variable's part of the content checksum."""
    digest.token("var", name)
    digest.token("dims", ",".join(map(str, dims)))
    if values.dtype.kind in "Mm":  # dates and durations: their 64-bit counts
        values = _time_counts(values)
    if values.dtype.kind in "OUS":
        digest.token("text", "\x1f".join(map(str, values.ravel().tolist())))
    else:
        digest.array(values)


def _time_counts(values: np.ndarray) -> np.ndarray:
    """Dates or durations as 64-bit counts of nanoseconds where every value has one, else of
    their own unit: a NetCDF round trip may change the unit, not the times (pandas 3 makes
    microseconds, xarray reads them back as nanoseconds)."""
    try:
        in_ns = values.astype(f"{values.dtype.kind}8[ns]")
    except OverflowError:  # outside the nanosecond range (years before 1678 or after 2261)
        return values.view(np.int64)
    if np.array_equal(in_ns.astype(values.dtype).view(np.int64), values.view(np.int64)):
        return in_ns.view(np.int64)
    return values.view(np.int64)


def attrs_checksum(tree: xr.DataTree, record: dict[str, Any]) -> str:
    """XXH3-128 over every group's attributes and the metadata record (minus this checksum).

    Attribute values are compared in the form they take after a NetCDF round trip (arrays as
    lists, a one-item list as its item, bytes as text), so a clean file always verifies.
    """
    digest = Digest()
    for node in sorted(tree.subtree, key=lambda n: n.path):
        digest.token("group", node.path)
        for name in sorted(map(str, node.attrs)):
            if node.path == "/" and name in (KEY_ATTR, METADATA_ATTR):
                continue
            digest.token("attr", name)
            digest.token("value", _attr_text(node.attrs[name]))
    rest = {k: v for k, v in record.items() if k != "attrs_checksum"}
    digest.token("record", json.dumps(rest, sort_keys=True, default=str))
    return digest.hexdigest()


def _attr_text(value: Any) -> str:
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    items = np.asarray(value).tolist()
    if isinstance(items, list):
        items = [i.decode("utf-8", "replace") if isinstance(i, bytes) else i for i in items]
        if len(items) == 1:
            items = items[0]  # NetCDF gives a one-item list back as its item
    return repr(items)


class ChecksumWhileReading:
    """The content checksum of a tree being read, computed in a thread as its arrays arrive.

    The reader announces the groups in path order (:meth:`group`) and each group's arrays in
    name order (:meth:`variable`), as read, before any decoding; :meth:`result` then gives
    :func:`tree_checksum` of the decoded tree: the digest made meanwhile when the tree holds
    exactly what was read (same groups, names, dimensions, dtypes and bytes; text the same
    text), else the checksum computed over the tree.
    """

    def __init__(self) -> None:
        self._digest = Digest()
        self._read: dict[str, dict[str, tuple[tuple[Hashable, ...], np.ndarray]]] = {}
        self._order: list[str] = []
        self._pending: queue.SimpleQueue[tuple[Any, ...] | None] = queue.SimpleQueue()
        self._failed: list[BaseException] = []
        self._thread: threading.Thread | None = None  # started by the first group
        #: Whether :meth:`result` gave the digest made while reading (else: computed after).
        self.speculated = False

    def group(self, path: str) -> None:
        """The next group (paths in sorted order)."""
        if self._order and path <= self._order[-1]:
            raise ValueError(f"group {path!r} out of order")
        self._order.append(path)
        self._read[path] = {}
        if self._thread is None:
            self._thread = in_background(self._consume)
        self._pending.put(("group", path))

    def variable(self, name: str, dims: tuple[Hashable, ...], values: np.ndarray) -> None:
        """The next array of the current group (names in sorted order), as read."""
        group = self._read[self._order[-1]]
        if group and name <= next(reversed(group)):
            raise ValueError(f"variable {name!r} out of order")
        group[name] = (tuple(dims), values)
        self._pending.put(("var", name, tuple(dims), values))

    def result(self, tree: xr.DataTree) -> str:
        """:func:`tree_checksum` of ``tree``, the decoded tree of the arrays announced."""
        self.close()
        self.speculated = not self._failed and self._holds_what_was_read(tree)
        return self._digest.hexdigest() if self.speculated else tree_checksum(tree)

    def close(self) -> None:
        """Stop the thread (also when the read failed half way)."""
        if self._thread is not None and self._thread.is_alive():
            self._pending.put(None)
            self._thread.join()

    def _consume(self) -> None:
        try:
            while (item := self._pending.get()) is not None:
                if item[0] == "group":
                    self._digest.token("group", item[1])
                else:
                    _add_variable(self._digest, *item[1:])
        except BaseException as error:  # reported by result(): the checksum is made again
            self._failed.append(error)
            while self._pending.get() is not None:
                pass

    def _holds_what_was_read(self, tree: xr.DataTree) -> bool:
        nodes = sorted(tree.subtree, key=lambda n: n.path)
        if [node.path for node in nodes] != self._order:
            return False
        for node in nodes:
            variables = node.to_dataset(inherit=False).variables
            read = self._read[node.path]
            if sorted(map(str, variables)) != list(read):
                return False
            for name, (dims, raw) in read.items():
                held = variables[name]
                if held.dims != dims or not _same_content(np.asarray(held.values), raw):
                    return False
        return True


def _same_content(held: np.ndarray, raw: np.ndarray) -> bool:
    """Whether ``held`` adds to the checksum exactly what ``raw`` added: the same dtype, shape
    and bytes (usually the very memory read: nothing to compare), or the same text."""
    if held.shape != raw.shape:
        return False
    if raw.dtype.kind in "OUS" or held.dtype.kind in "OUS":
        if raw.dtype.kind not in "OUS" or held.dtype.kind not in "OUS":
            return False
        return list(map(str, held.ravel().tolist())) == list(map(str, raw.ravel().tolist()))
    if held.dtype != raw.dtype or raw.dtype.kind in "Mm":  # dates: their counts, both ways
        return held.dtype == raw.dtype and _same_bytes(held, raw)
    same_memory = held.__array_interface__["data"][0] == raw.__array_interface__["data"][0]
    return (same_memory and held.strides == raw.strides) or _same_bytes(held, raw)


def _same_bytes(held: np.ndarray, raw: np.ndarray) -> bool:
    held, raw = np.ascontiguousarray(held).reshape(-1), np.ascontiguousarray(raw).reshape(-1)
    return bool(np.array_equal(held.view(np.uint8), raw.view(np.uint8)))
