"""Final sampler states of finished runs, kept so that a request for more draws is extended.

A finished NumPyro run leaves, beside the cache's entries, what its continuation needs: the
sampler's final state (positions, step sizes, mass matrices, adaptation state and random keys
of every chain), every draw's unconstrained positions and stats, and a JSON record of the
run's structure. They are one plain NumPy archive (``allow_pickle=False``), written whole, at
``<root>/.extend/<model>/<run key>/draws-<draws>.npz``: in a local directory (atomically,
never through a link) or an object store (one PUT, under the store's deadlines), through the
folders of :mod:`cloudcache.stores.checkpoints`. The *run key* is the
entry's key with ``draws`` left out (every other component equal), so the entry of
``draws=1000`` and a request for ``draws=2000`` share it. The folder is hidden from listings:
a final state is never served as a result.

The cache path opens :func:`extending` around a miss; a backend asks :func:`active_final_states`
for the longest stored run shorter than its request, and keeps its own final state there when
it finishes. Only the longest runs are kept: saving one removes the shorter ones of its key.
"""

from __future__ import annotations

import contextlib
import json
import logging
import re
from collections.abc import Iterator, Mapping, Sequence
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

import numpy as np

from cloudcache.errors import PlantedLink
from cloudcache.stores.checkpoints import (
    CheckpointUnreachable,
    FolderStorage,
    LocalFolder,
    archive_bytes,
)

#: The hidden folder below a cache root that holds final states.
EXTEND_DIR = ".extend"

#: The result attribute by which a backend says its run extended a stored one ("extended
#: 1,000 -> 2,000 draws"); the cache path moves it into the call's record and its miss line.
EXTENDED_ATTR = "cloudcache_extended"

#: The name of a final state: ``draws-<draws, 9 digits>.npz``.
FILE_NAME = re.compile(r"^draws-(\d{9})\.npz$")
_RECORD = "record"
_log = logging.getLogger("cloudcache")


def final_states_relative(slug: str, run_key: str) -> str:
    """The final-state folder of ``run_key`` below a cache root: ``.extend/<model>/<prefix>``."""
    return f"{EXTEND_DIR}/{slug}/{run_key[:32]}"


@dataclass(frozen=True)
class FinalState:
    """A finished run of ``draws`` draws: its final state's leaves, and every draw's positions
    and stats (``arrays``, each ``(chains, draws, ...)``)."""

    draws: int
    state: list[np.ndarray]
    arrays: dict[str, np.ndarray]
    record: dict[str, Any]


class FinalStates:
    """The final states of one run key: the folder ``relative`` below the cache ``root``, its
    files kept by ``storage`` (a local directory, the default, or an object store).

    ``reuse=False`` (``overwrite=True``): nothing stored is used, a finished run is still kept.
    """

    def __init__(
        self,
        root: str,
        relative: str,
        storage: FolderStorage | None = None,
        *,
        reuse: bool = True,
    ) -> None:
        self.root = root
        self.relative = relative
        self.storage: FolderStorage = storage or LocalFolder(root, relative)
        self.reuse = reuse

    @property
    def path(self) -> str:
        return self.storage.path

    def stored_draws(self) -> list[int]:
        """The draw counts of the runs kept here, shortest first (none when the store fails)."""
        try:
            names = self.storage.names()
        except (OSError, PlantedLink):
            return []
        except CheckpointUnreachable as error:
            _log.info("cloudcache: cannot list the stored runs in %s (%s)", self.path, error)
            return []
        counts = (FILE_NAME.match(name) for name in names)
        return sorted(int(match[1]) for match in counts if match is not None)

    def save(
        self,
        draws: int,
        state: Sequence[np.ndarray],
        arrays: Mapping[str, np.ndarray],
        record: Mapping[str, Any],
    ) -> None:
        """Keep the run of ``draws`` draws (unless a longer one is kept); drop shorter ones."""
        stored = self.stored_draws()
        if stored and stored[-1] > draws:
            return
        payload = {f"leaf_{n}": np.asarray(leaf) for n, leaf in enumerate(state)}
        payload.update({f"draws_{name}": np.asarray(array) for name, array in arrays.items()})
        payload[_RECORD] = np.array(json.dumps({**record, "draws": int(draws)}, sort_keys=True))
        self.storage.write(_name(draws), archive_bytes(payload))
        shorter = [_name(count) for count in stored if count < draws]
        if shorter:
            with contextlib.suppress(OSError, PlantedLink, CheckpointUnreachable):
                self.storage.remove(shorter)

    def longest_up_to(self, draws: int, expected: Mapping[str, Any]) -> FinalState | None:
        """The longest kept run of at most ``draws`` draws whose record matches ``expected``;
        ``None`` when there is none (a mismatch, a damaged file, a store that fails: one
        warning)."""
        if not self.reuse:
            return None
        shorter = [count for count in self.stored_draws() if count <= draws]
        if not shorter:
            return None
        count = shorter[-1]
        expected = json.loads(json.dumps(dict(expected), sort_keys=True, default=str))
        try:
            with self.storage.archive(_name(count)) as archive:
                record = json.loads(str(archive[_RECORD][()]))
                leaves = sorted(
                    (int(name[5:]), name) for name in archive.files if name.startswith("leaf_")
                )
                state = [np.asarray(archive[name]) for _, name in leaves]
                arrays = {
                    name[6:]: np.asarray(archive[name])
                    for name in archive.files
                    if name.startswith("draws_")
                }
        except FileNotFoundError:  # replaced by a longer run a moment ago
            _log.info("cloudcache: the stored run of %s draws in %s is gone", count, self.path)
            return None
        except CheckpointUnreachable as error:
            self.warn(count, draws, f"the store did not answer ({error})")
            return None
        except Exception as error:  # a torn or foreign file: sample everything, never crash
            self.warn(count, draws, f"it cannot be read ({type(error).__name__}: {error})")
            return None
        mismatch = [name for name, value in expected.items() if record.get(name) != value]
        if record.get("draws") != count:
            mismatch.append("draws")
        if mismatch:
            self.warn(count, draws, f"it was made by another run ({', '.join(mismatch)})")
            return None
        if [n for n, _ in leaves] != list(range(len(leaves))) or not arrays:
            self.warn(count, draws, "its state is incomplete")
            return None
        if any(np.ndim(a) < 2 or np.shape(a)[1] != count for a in arrays.values()):
            self.warn(count, draws, "its draws do not match its record")
            return None
        return FinalState(count, state, arrays, record)

    def warn(self, stored: int, draws: int, why: str) -> None:
        """Say in one line why the stored run is not extended."""
        _log.warning(
            "cloudcache: not extending the stored run of %s draws in %s: %s; sampling all %s",
            f"{stored:,}",
            self.path,
            why,
            f"{draws:,}",
        )

    def clear(self) -> None:
        """Remove every final state of this run key, and the folders emptied (never raises;
        locally never through a link)."""
        self.storage.remove_all()


def _name(draws: int) -> str:
    return f"draws-{draws:09d}.npz"


def extended_text(stored: int, draws: int) -> str:
    """``"extended 1,000 -> 2,000 draws"``."""
    return f"extended {stored:,} -> {draws:,} draws"


_active: ContextVar[FinalStates | None] = ContextVar("cloudcache_final_states", default=None)


@contextlib.contextmanager
def extending(states: FinalStates | None) -> Iterator[FinalStates | None]:
    """Make ``states`` the final states of the run inside the block (``None``: none kept)."""
    token = _active.set(states)
    try:
        yield states
    finally:
        _active.reset(token)


def active_final_states() -> FinalStates | None:
    """The final states of the run in progress's run key, if its store keeps them."""
    return _active.get()
