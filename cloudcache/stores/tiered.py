"""Several stores in front of each other: memory first, then files."""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from typing import Any

from cloudcache.stores.base import Entry, EntryRef, Store, StoreError


class TieredStore:
    """Reads from the first store that has the entry (promoting it upwards); writes to all."""

    def __init__(self, stores: Sequence[Store]) -> None:
        if not stores:
            raise ValueError("TieredStore needs at least one store")
        self.stores = list(stores)
        self.description = " -> ".join(store.description for store in self.stores)

    def get(self, ref: EntryRef) -> Entry | None:
        for depth, store in enumerate(self.stores):
            entry = store.get(ref)
            if entry is not None:
                for upper in reversed(self.stores[:depth]):
                    entry = self._promote(upper, ref, entry)
                return entry
        return None

    @staticmethod
    def _promote(upper: Store, ref: EntryRef, entry: Entry) -> Entry:
        """Put an entry found lower down into ``upper``; return what the caller gets.

        A store that can *adopt* (memory) keeps the freshly read tree itself and hands back a
        copy, which is cheaper than storing a copy and much cheaper than reading it again.
        """
        adopt = getattr(upper, "adopt", None)
        if adopt is not None:
            return adopt(ref, entry)
        upper.put(ref, entry)
        return entry

    def put(self, ref: EntryRef, entry: Entry) -> str:
        """Write to every store; the last (most durable) location is returned.

        If some store fails, the others are still written and one :class:`StoreError` naming
        the failures is raised afterwards.
        """
        locations, failures = [], []
        for store in self.stores:
            try:
                locations.append(store.put(ref, entry))
            except StoreError as error:
                failures.append(str(error))
        if failures:
            raise StoreError("; ".join(failures))
        return locations[-1]

    def single_flight(self, ref: EntryRef, timeout: float | None = None) -> Any:
        """The cross-process lock of the first store that has one (a no-op if none has)."""
        for store in self.stores:
            flight = getattr(store, "single_flight", None)
            if flight is not None:
                return flight(ref, timeout)
        return contextlib.nullcontext(False)
