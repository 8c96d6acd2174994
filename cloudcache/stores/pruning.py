"""Which entries ``cloudcache prune`` removes: least recently used first, until limits hold."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol


class Prunable(Protocol):
    """What the policy needs to know about an entry."""

    @property
    def size(self) -> int: ...

    @property
    def last_used(self) -> float: ...


def select_for_pruning[EntryT: Prunable](
    entries: Sequence[EntryT],
    max_size: int | None,
    older_than: float | None,
    keep: int | None,
    *,
    now: float,
) -> list[EntryT]:
    """Entries to remove, least recently used first, so that every given limit holds.

    ``older_than``: seconds since last use; ``keep``: how many entries may stay;
    ``max_size``: bytes the remaining entries may take. ``last_used`` is the store's own record
    of use (hits and writes), never a file's access time.
    """
    ordered = sorted(entries, key=lambda entry: entry.last_used)  # oldest use first
    doomed: list[EntryT] = []
    remaining = list(ordered)
    if older_than is not None:
        cutoff = now - older_than
        doomed += [entry for entry in remaining if entry.last_used < cutoff]
        remaining = [entry for entry in remaining if entry.last_used >= cutoff]
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
