"""Why did this miss? Compare a call's key components with the nearest stored entry.

Every stored entry's metadata carries the named components its key was made of (``graph``,
``data`` per ``pm.Data`` name, ``coords``, ``settings``, ``request``, ``backend``,
``versions``, ``kind``, ``schema``) plus the sampler arguments themselves (``request``). A miss
is explained by the components in which the new call differs from the stored entry of the same
model that differs least.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from cloudcache.stores.maintenance.catalog import Catalog, CatalogEntry
from cloudcache.ui.announce import announce, announce_block

#: Component -> what a user changed when it differs (in the order they are reported).
COMPONENT_MEANINGS: dict[str, str] = {
    "data": "data",
    "graph": "model graph (variables, distributions, priors, parameters, transforms, dims)",
    "coords": "coords (coordinate values or dimension lengths)",
    "settings": "model settings (model name or floatX)",
    "request": "sampler settings",
    "backend": "backend",
    "versions": "library versions",
    "kind": "kind of call",
    "extra": "extra call options",
    "schema": "cloudcache key schema (entries written by another cloudcache version)",
}


@dataclass(frozen=True)
class Difference:
    """One component in which two calls differ, with a readable detail."""

    component: str
    detail: str

    def __str__(self) -> str:
        return self.detail


@dataclass
class Explanation:
    """The nearest stored entry of the same model and how a call differs from it."""

    key: str
    model: str
    nearest: CatalogEntry | None = None
    differences: list[Difference] = field(default_factory=list)
    same_key: CatalogEntry | None = None
    cache: str = ""

    @property
    def title(self) -> str:
        if self.same_key is not None:
            return f"why {self.key[:16]}: an entry with this very key is stored"
        if self.nearest is None:
            return f"why {self.key[:16]} missed: no stored entry of model {self.model!r}"
        return (
            f"why {self.key[:16]} missed: nearest stored entry of {self.model!r} is "
            f"{self.nearest.prefix} ({self.nearest.label}); it differs in"
        )

    @property
    def lines(self) -> list[str]:
        if self.same_key is not None:
            return [
                f"{self.same_key.path}",
                "it was not read: overwrite=True, or it is damaged (see any warning above; "
                "`cloudcache verify` checks it)",
            ]
        if self.nearest is None:
            return [
                f"first run of this model in {self.cache or 'this cache'} "
                "(or the model's name changed: entries are grouped by model name)"
            ]
        if not self.differences:
            return ["no component differs (the entries share every recorded component)"]
        return [str(difference) for difference in self.differences]

    def text(self) -> str:
        return "\n".join([self.title, *(f"  - {line}" for line in self.lines)])

    def as_dict(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "model": self.model,
            "same_key": self.same_key.path if self.same_key else None,
            "nearest": self.nearest.summary() if self.nearest else None,
            "differences": [
                {"component": d.component, "detail": d.detail} for d in self.differences
            ],
        }


def differences(new: dict[str, Any], stored: dict[str, Any]) -> list[Difference]:
    """Components (from two metadata records) in which ``new`` differs from ``stored``."""
    new_parts = _mapping(new.get("components"))
    old_parts = _mapping(stored.get("components"))
    found: list[Difference] = []
    named = set(new_parts) | set(old_parts)
    ordered = [c for c in COMPONENT_MEANINGS if c in named]
    for component in [*ordered, *sorted(named - set(ordered), key=str)]:
        before, after = old_parts.get(component), new_parts.get(component)
        if before == after:
            continue
        found.append(Difference(component, _detail(component, before, after, new, stored)))
    return found


def _detail(
    component: str, before: Any, after: Any, new: dict[str, Any], stored: dict[str, Any]
) -> str:
    if component == "data" and isinstance(before, dict) and isinstance(after, dict):
        return _data_detail(before, after)
    if component == "request":
        changed = _request_changes(stored, new)
        if changed:
            return "sampler settings: " + ", ".join(changed)
        return "sampler settings changed"
    if component == "versions" and isinstance(before, dict) and isinstance(after, dict):
        return "library versions: " + ", ".join(_changed_values(before, after))
    if component == "backend":
        return f"backend: {before} -> {after}"
    if component == "graph":
        return _graph_detail(_mapping(stored.get("variables")), _mapping(new.get("variables")))
    if component == "schema":
        return f"{COMPONENT_MEANINGS['schema']}: {before} -> {after}"
    return f"{COMPONENT_MEANINGS.get(component, component)} changed"


def _mapping(value: Any) -> dict[str, Any]:
    """``value`` if it is a mapping with text names, else empty (records from elsewhere)."""
    if not isinstance(value, dict):
        return {}
    return {str(name): item for name, item in value.items()}


def _graph_detail(before: dict[str, Any], after: dict[str, Any]) -> str:
    """Which variables' own definitions differ (records from before this was kept: no names)."""
    if not before or not after:
        return f"{COMPONENT_MEANINGS['graph']} changed"
    order = [*after, *(name for name in before if name not in after)]
    changed = [
        name for name in order if name in before and name in after and before[name] != after[name]
    ]
    added = [name for name in after if name not in before]
    removed = [name for name in before if name not in after]
    parts = []
    if changed:
        parts.append("definition of " + ", ".join(map(repr, changed)) + " changed")
    if added:
        parts.append("new variable " + ", ".join(map(repr, added)))
    if removed:
        parts.append("variable no longer present: " + ", ".join(map(repr, removed)))
    if not parts:  # the variables are alike: the change is elsewhere in the graph
        return f"{COMPONENT_MEANINGS['graph']} changed"
    return "model graph: " + "; ".join(parts)


def _data_detail(before: dict[str, Any], after: dict[str, Any]) -> str:
    parts = []
    changed = sorted(name for name in set(before) & set(after) if before[name] != after[name])
    added = sorted(set(after) - set(before))
    removed = sorted(set(before) - set(after))
    if changed:
        parts.append("values of pm.Data " + ", ".join(map(repr, changed)) + " changed")
    if added:
        parts.append("new pm.Data " + ", ".join(map(repr, added)))
    if removed:
        parts.append("pm.Data no longer present: " + ", ".join(map(repr, removed)))
    return "data: " + "; ".join(parts)


#: Stands for a field a record does not hold (entries written before it was recorded).
_UNRECORDED = object()


def _request_changes(stored: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """The sampler arguments that differ, named as the user spelled them.

    The key holds ``random_seed`` in its key form (the per-chain generators' digests); the
    records keep the user's spelling next to it, so a seed change reads ``random_seed 1 -> 2``.
    """
    before = dict(_mapping(stored.get("request")))
    after = dict(_mapping(new.get("request")))
    old_key, new_key = before.pop("random_seed", None), after.pop("random_seed", None)
    changed = _changed_values(before, after)
    if old_key != new_key:
        old = stored.get("random_seed", _UNRECORDED)
        now = new.get("random_seed", _UNRECORDED)
        if _UNRECORDED in (old, now):  # no spelling kept: the key forms, unless they are digests
            old, now = old_key, new_key
        if old == now or _tagged(old) or _tagged(now):
            changed.append("random_seed changed")
        else:
            changed.append(f"random_seed {_short(old)} -> {_short(now)}")
    return sorted(changed)


def _tagged(value: Any) -> bool:
    """A seed's internal key form, such as ``["chain-generators", [...]]``: no user spelling."""
    return isinstance(value, list | tuple) and bool(value) and isinstance(value[0], str)


def _changed_values(before: dict[str, Any], after: dict[str, Any]) -> list[str]:
    changed = []
    for name in sorted(set(before) | set(after), key=str):
        old, new = before.get(name, "<unset>"), after.get(name, "<unset>")
        if old == new:
            continue
        if isinstance(old, dict) and isinstance(new, dict):
            changed.extend(f"{name}.{inner}" for inner in _changed_values(old, new))
        else:
            changed.append(f"{name} {_short(old)} -> {_short(new)}")
    return changed


def _short(value: Any, limit: int = 40) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def nearest_entry(
    new: dict[str, Any], candidates: list[CatalogEntry]
) -> tuple[CatalogEntry | None, list[Difference]]:
    """The candidate differing in the fewest components (ties: the most recently created)."""
    best: tuple[tuple[int, str], CatalogEntry, list[Difference]] | None = None
    for candidate in candidates:
        if candidate.error or not candidate.metadata:
            continue
        try:
            found = differences(new, candidate.metadata)
        except Exception:  # a neighbour's record of an unexpected shape is no comparison
            continue
        created = str(candidate.metadata.get("created", ""))
        rank = (len(found), _inverted(created))
        if best is None or rank < best[0]:
            best = (rank, candidate, found)
    return (best[1], best[2]) if best else (None, [])


def _inverted(text: str) -> str:
    """Sort key that puts later ISO times first."""
    return "".join(chr(0x10FFFF - ord(c)) for c in text)


def explain(catalog: Catalog, new: dict[str, Any]) -> Explanation:
    """Explain why the call described by the metadata record ``new`` is not (or is) stored."""
    key = str(new.get("key", ""))
    model = str(new.get("model", ""))
    entries = catalog.entries(slug=model)
    result = Explanation(key=key, model=model, cache=catalog.location)
    others = []
    for entry in entries:
        if key and (entry.key == key):
            if new.get("_stored_path") != entry.path:
                result.same_key = entry
            continue
        others.append(entry)
    if result.same_key is None:
        result.nearest, result.differences = nearest_entry(new, others)
    return result


def explain_stored(catalog: Catalog, entry: CatalogEntry) -> Explanation:
    """Explain why a stored entry was sampled: compare it with its model's other entries."""
    if not entry.metadata and not entry.error:
        catalog.read_metadata([entry])
    record = dict(entry.metadata, key=entry.key, _stored_path=entry.path)
    record.setdefault("model", entry.slug)
    return explain(catalog, record)


def explain_miss(store: Any, record: dict[str, Any], *, overwrite: bool, quiet: bool) -> None:
    """On a miss with ``explain=True``: announce why (never raises)."""
    try:
        if overwrite:
            announce("explain: overwrite=True, so the cache was not read", quiet=quiet)
            return
        catalog = Catalog.of_store(store)
        if catalog is None:
            announce(
                "explain: needs a disk or object-store cache (cache='disk', a path or a URL) "
                "to compare with stored entries",
                quiet=quiet,
            )
            return
        result = explain(catalog, record)
        announce_block(result.title, result.lines, quiet=quiet)
    except Exception as error:  # an explanation must never break a sampling call
        announce(f"explain failed: {error}", quiet=quiet, level=logging.WARNING)
