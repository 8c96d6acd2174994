"""Several stores in front of each other: memory first, then files."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence

from cloudcache.errors import StoreError
from cloudcache.stores.base import Entry, EntryRef, Lookup, Store
from cloudcache.stores.checkpoints import CheckpointFolder
from cloudcache.stores.final_states import FinalStates


class TieredStore(Store):
    """Reads from the first store that has the entry (promoting it upwards); writes to all.

    Args:
        stores: The stores, fastest first (``cache="disk"`` is memory, then a `FileStore`).

    Raises:
        ValueError: ``stores`` is empty.
    """

    def __init__(self, stores: Sequence[Store]) -> None:
        if not stores:
            raise ValueError("TieredStore needs at least one store")
        for store in stores:
            if not isinstance(store, Store):
                raise TypeError(
                    f"TieredStore takes cloudcache.stores.Store objects; got {type(store).__name__}"
                )
        self.stores = list(stores)
        self.description = " -> ".join(store.description for store in self.stores)

    def lookup(self, ref: EntryRef, timeout: float | None = None) -> Lookup:
        """The first store's entry (each lower store's problems are kept and passed on)."""
        problems: list[str] = []
        for depth, store in enumerate(self.stores):
            found = store.lookup(ref, timeout)
            problems.extend(found.problems)
            entry = found.entry
            if entry is not None:
                for upper in reversed(self.stores[:depth]):
                    entry = upper.adopt(ref, entry)
                return Lookup(entry, tuple(problems))
        return Lookup(None, tuple(problems))

    def put(self, ref: EntryRef, entry: Entry, timeout: float | None = None) -> str:
        """Write to every store; the last (most durable) location is returned.

        If some store fails, the others are still written and one :class:`StoreError` naming
        the failures is raised afterwards.
        """
        locations, failures = [], []
        for store in self.stores:
            try:
                locations.append(store.put(ref, entry, timeout))
            except StoreError as error:
                failures.append(str(error))
        if failures:
            raise StoreError("; ".join(failures))
        return locations[-1]

    def single_flight(
        self, ref: EntryRef, timeout: float | None = None
    ) -> contextlib.AbstractContextManager[bool]:
        """The cross-process lock of the first store that has one (a no-op if none has)."""
        for store in self.stores:
            if type(store).single_flight is not Store.single_flight:
                return store.single_flight(ref, timeout)
        return contextlib.nullcontext(False)

    def record_use(self, ref: EntryRef) -> None:
        """A hit in any tier is use of every tier's copy (memory hits keep disk entries alive)."""
        for store in self.stores:
            store.record_use(ref)

    def last_used(self, ref: EntryRef) -> float | None:
        """The latest use any of the stores recorded."""
        times = [t for t in (store.last_used(ref) for store in self.stores) if t is not None]
        return max(times, default=None)

    def checkpoint_folder(self, ref: EntryRef) -> CheckpointFolder | None:
        """The most durable (last) tier's checkpoint folder: with ``cache="disk"`` the
        directory's, which a new process finds, not the memory tier's."""
        for store in reversed(self.stores):
            folder = store.checkpoint_folder(ref)
            if folder is not None:
                return folder
        return None

    def final_states(self, ref: EntryRef, run_key: str) -> FinalStates | None:
        """The most durable (last) tier that keeps final states (as for checkpoints)."""
        for store in reversed(self.stores):
            states = store.final_states(ref, run_key)
            if states is not None:
                return states
        return None

    def entry_refs(self) -> Iterator[EntryRef]:
        """The entries of the most durable (last) store, which holds every written entry."""
        return self.stores[-1].entry_refs()
