"""Which entries ``cloudcache prune`` removes: least recently *used* first, every limit held.

"Used" means the store's own record (:mod:`cloudcache.stores.usage`): the last hit, else the
write. Access times are never consulted, so listing, showing or verifying entries does not
keep them alive.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Protocol, TypeVar

from cloudcache.stores.usage import UsageRecord


class Prunable(Protocol):
    """What the policy needs of an entry: its size, write time and place under the root."""

    @property
    def size(self) -> int: ...

    @property
    def modified(self) -> float: ...

    @property
    def relative_path(self) -> str: ...


def last_use_clock(usage: UsageRecord) -> Callable[[Prunable], float]:
    """``entry -> last use`` for the entries of the store ``usage`` records (one listing of
    its markers)."""
    marked = usage.all_last_used()

    def last_used(entry: Prunable) -> float:
        return max(marked.get(entry.relative_path, entry.modified), entry.modified)

    return last_used


E = TypeVar("E", bound=Prunable)


def select_for_pruning(
    entries: Sequence[E],
    max_size: int | None,
    older_than: float | None,
    keep: int | None,
    *,
    now: float,
    last_used: Callable[[E], float] | None = None,
) -> list[E]:
    """Entries to remove, least recently used first, so that every given limit holds.

    ``last_used`` gives each entry's last use (default: its write time, ``modified``).
    """
    clock: Callable[[E], float] = last_used or (lambda entry: entry.modified)
    ordered = sorted(entries, key=clock)  # oldest use first
    doomed: list[E] = []
    remaining = list(ordered)
    if older_than is not None:
        cutoff = now - older_than
        doomed += [entry for entry in remaining if clock(entry) < cutoff]
        remaining = [entry for entry in remaining if clock(entry) >= cutoff]
    if keep is not None and len(remaining) > keep:
        cut = len(remaining) - keep
        doomed += remaining[:cut]
        remaining = remaining[cut:]
    if max_size is not None:
        total = sum(entry.size for entry in remaining)
        while remaining and total > max_size:
            entry = remaining.pop(0)
            doomed.append(entry)
            total -= entry.size
    return doomed
