"""What every store shares: entry references, entries, lookups, the Store base and its errors.

:class:`Store` declares every optional feature with a working default, so callers use them
without probing: ``lookup`` (a read that reports problems as values), ``adopt``,
``single_flight`` (a cross-process lock; default: none), ``record_use``/``last_used`` (the
store's own record of hits, which prune uses; default: none kept) and ``entry_refs``
(listing; default: nothing listed). A store implements ``put`` and at least one of ``get``
and ``lookup``.
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from cloudcache.errors import CorruptEntry
from cloudcache.stores.checkpoints import CheckpointFolder
from cloudcache.stores.final_states import FinalStates

if TYPE_CHECKING:  # the command line lists entries without importing xarray
    import xarray as xr


@dataclass(frozen=True)
class EntryRef:
    """Where an entry lives: the full key, the model's slug and a readable request label."""

    key: str
    slug: str
    label: str


@dataclass
class Entry:
    """A stored result: the tree, its metadata record and where it was found."""

    tree: xr.DataTree
    metadata: dict[str, Any] = field(default_factory=dict)
    location: str = ""


@dataclass(frozen=True)
class Lookup:
    """What a read found: the entry (``None`` on a miss) and problems met on the way.

    A problem is a complete ``cloudcache: ...`` sentence (a damaged entry that will be
    replaced); the session turns the first one into its single warning for the call.
    """

    entry: Entry | None
    problems: tuple[str, ...] = ()


class Store:
    """A place results can be kept. Subclasses implement ``put`` and ``get`` or ``lookup``."""

    description: str = "store"

    def lookup(self, ref: EntryRef, timeout: float | None = None) -> Lookup:
        """Read ``ref`` within ``timeout`` seconds (a store default when ``None``).

        Damaged entries come back as problems (never as warnings); I/O failures raise
        :class:`StoreError`. The default wraps :meth:`get` and reports :class:`CorruptEntry`.
        """
        if type(self).get is Store.get:
            raise NotImplementedError(f"{type(self).__name__} implements neither get nor lookup")
        try:
            return Lookup(self.get(ref))
        except CorruptEntry as error:
            return Lookup(None, (f"cloudcache: ignoring damaged cache entry: {error}",))

    def get(self, ref: EntryRef) -> Entry | None:
        """The entry for ``ref`` or ``None``; a damaged entry is a miss with a warning."""
        if type(self).lookup is Store.lookup:
            raise NotImplementedError(f"{type(self).__name__} implements neither get nor lookup")
        found = self.lookup(ref)
        for problem in found.problems:
            warnings.warn(problem, RuntimeWarning, stacklevel=2)
        return found.entry

    def put(self, ref: EntryRef, entry: Entry, timeout: float | None = None) -> str:
        """Store ``entry``; return where it went. Raises :class:`StoreError` on failure."""
        raise NotImplementedError

    def adopt(self, ref: EntryRef, entry: Entry) -> Entry:
        """Keep ``entry`` found in a slower store; return what the caller gets (default: put)."""
        self.put(ref, entry)
        return entry

    def single_flight(
        self, ref: EntryRef, timeout: float | None = None
    ) -> contextlib.AbstractContextManager[bool]:
        """Hold a cross-process lock for ``ref``; the context yields whether one is held."""
        return contextlib.nullcontext(False)

    def record_use(self, ref: EntryRef) -> None:
        """Note that ``ref`` was just served as a hit (default: no record is kept).

        Sessions call this on every hit; plain reads (``get``, ``lookup``, the CLI) do not,
        so inspecting a cache never counts as using it.
        """

    def last_used(self, ref: EntryRef) -> float | None:
        """When ``ref`` was last written or served as a hit (Unix time), if recorded."""
        return None

    def checkpoint_folder(self, ref: EntryRef) -> CheckpointFolder | None:
        """Where an unfinished run of ``ref`` keeps its checkpoint (default: none is kept)."""
        return None

    def final_states(self, ref: EntryRef, run_key: str) -> FinalStates | None:
        """Where finished runs of the run key ``run_key`` (``ref``'s key without ``draws``) keep
        their final states for extension (default: none are kept)."""
        return None

    def entry_refs(self) -> Iterator[EntryRef]:
        """Every entry the store can name (default: none; file stores list via the catalog)."""
        return iter(())
