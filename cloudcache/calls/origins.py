"""Trees the cache returned, remembered by identity, so a posterior predictive can name its trace.

Every tree a ``pm.sample`` call returned from (or wrote to) the cache is exactly the stored entry
its record describes: its content is what the key (plus the entry's creation stamp, which
changes when ``overwrite=True`` resamples) names. :func:`remember_origin` keeps that identity,
with a weak reference so it never keeps a tree alive; :func:`known_origin` gives it back while
the tree still holds the very variables it held then.
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass
from typing import Any

import xarray as xr

from cloudcache.calls.records import CallRecord
from cloudcache.compat.pymc import is_result, result_groups
from cloudcache.fingerprint.canonical import content_digest
from cloudcache.util.forks import ForkSafeLock
from cloudcache.util.jsonable import jsonable

#: Groups of a trace DataTree that ``sample_posterior_predictive`` reads.
TRACE_GROUPS: tuple[str, ...] = ("posterior", "constant_data", "observed_data")


@dataclass(frozen=True)
class Origin:
    """A tree the cache returned: its run identity and the variables it held then."""

    tree: weakref.ref
    run_id: str
    label: str
    variables: tuple[tuple[str, str, Any], ...]


_origins: dict[int, Origin] = {}
_origins_lock = ForkSafeLock()


def remember_origin(tree: Any, record: CallRecord | None) -> None:
    """Remember that ``tree`` is exactly the stored entry ``record`` describes.

    Only trees that were read from or written to a store qualify: their content is what the
    key (plus the entry's creation stamp, which changes when ``overwrite=True`` resamples)
    names, so a later posterior predictive can use that instead of hashing the draws.
    """
    if not is_result(tree) or record is None or not record.key:
        return
    if record.location == "uncached":
        return
    stamp = (record.metadata.get("created"), record.metadata.get("sampling_seconds"))
    run_id = content_digest(("cache", record.key, jsonable(stamp)))
    ident = id(tree)

    def forget(reference: weakref.ref, ident: int = ident) -> None:
        with _origins_lock:
            known = _origins.get(ident)
            if known is not None and known.tree is reference:
                del _origins[ident]

    origin = Origin(weakref.ref(tree, forget), run_id, record.key[:8], _trace_variables(tree))
    with _origins_lock:
        _origins[ident] = origin


def _trace_variables(tree: Any) -> tuple[tuple[str, str, Any], ...]:
    """``(group, name, Variable)`` of everything PyMC reads from ``tree``, in a fixed order.

    ``tree``: a DataTree or an InferenceData (PyMC 5).
    """
    found: list[tuple[str, str, Any]] = []
    children = result_groups(tree)
    groups = TRACE_GROUPS if "posterior" in children else ("", *TRACE_GROUPS[1:])
    for group in groups:
        node = children.get(group)
        if group == "" and isinstance(tree, xr.DataTree):
            node = tree  # a tree without a posterior: PyMC 6 reads its root
        if node is None:
            continue
        variables = node.variables  # the stored Variable objects, no Dataset view built
        found.extend((group, str(name), variables[name]) for name in sorted(map(str, variables)))
    return tuple(found)


def known_origin(tree: Any) -> Origin | None:
    with _origins_lock:
        origin = _origins.get(id(tree))
    if origin is None or origin.tree() is not tree:
        return None
    current = _trace_variables(tree)
    if len(current) != len(origin.variables):
        return None
    for (group, name, variable), (was_group, was_name, was_variable) in zip(
        current, origin.variables, strict=True
    ):
        if group != was_group or name != was_name or variable is not was_variable:
            return None  # a group or variable was replaced since the cache returned it
    return origin
